"""Make synthetic radio data with known truth.

  tessera simulate radio --out DIR [--mosaics N] [--size PX] [--seed S]       survey-like FITS mosaics + catalogue.csv
  tessera simulate morphology --out DIR [--per-class N] [--size PX] [--seed S] labeled cutouts + labels.csv
  tessera simulate lensing --out DIR [--per-class N] [--size PX] [--seed S]    strong lenses (no_sub/cdm/axion) as NPY,
                                                                               LR/HR pairs under sr/, labels.csv
  tessera simulate lineart --out DIR [--sheets N] [--seed S]                   construction sheets (PDF + PNG),
                                                                               wall masks, labeled tiles + labels.csv
  tessera simulate pairs --out DIR [--n N] [--size PX] [--seed S]             radio images + radio spectra of the
                                                                               same sources, truth in pairs.csv

Config precedence (later wins): dataclass defaults -> --config PRESET_OR_YAML (section simulate_radio /
simulate_morphology / simulate_lensing / simulate_lineart / simulate_pairs) -> the flags
--mosaics/--per-class/--sheets/--n/--size/--seed -> trailing key=value overrides.
The same seed gives byte-identical files.
"""

from __future__ import annotations

import argparse

from tessera.commands._common import add_config_arguments, add_quiet_argument, non_negative_int, positive_int

PRECEDENCE = (
    "precedence (later wins): defaults, --config file section '{section}', the flags above, key=value overrides"
)


def _add_common(parser: argparse.ArgumentParser, section: str, size: bool = True) -> None:
    """--out, --seed, --overwrite, --quiet, --config and the precedence epilog; --size where the kind has one."""
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory (must be empty or absent)")
    if size:
        parser.add_argument("--size", type=positive_int, metavar="PX", help="image side in pixels (config key: size)")
    parser.add_argument("--seed", type=non_negative_int, metavar="S", help="random seed (config key: seed)")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty output directory")
    add_quiet_argument(parser, "print nothing on success")
    add_config_arguments(parser)
    parser.epilog = PRECEDENCE.format(section=section)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="kind", metavar="KIND", required=True)
    radio = sub.add_parser(
        "radio",
        help="survey-like FITS mosaics (Jy/beam, WCS, beam, noise, sources, artefacts) and a source catalogue",
        description="Write N survey-like FITS mosaics and catalogue.csv of the injected sources.",
    )
    radio.add_argument("--mosaics", type=positive_int, metavar="N", help="number of mosaics (config key: mosaics)")
    _add_common(radio, "simulate_radio")
    morph = sub.add_parser(
        "morphology",
        help="labeled single-source cutouts (FRI, FRII, Compact, Bent) with labels.csv",
        description="Write labeled single-source FITS cutouts and labels.csv (path,label,...).",
    )
    morph.add_argument(
        "--per-class", type=positive_int, metavar="N", help="cutouts per class (config key: per_class)"
    )
    _add_common(morph, "simulate_morphology")
    lens = sub.add_parser(
        "lensing",
        help="galaxy-galaxy strong lenses (no_sub, cdm, axion substructure) with LR/HR pairs and labels.csv",
        description="Write strong-lensing images (lenstronomy: SIE + shear, Sersic source, PSF, noise) as NPY in "
        "class folders, matched low/high-resolution pairs under sr/, and labels.csv (path,label,hr_path,lr_path, "
        "lens and source parameters).",
    )
    lens.add_argument("--per-class", type=positive_int, metavar="N", help="images per class (config key: per_class)")
    _add_common(lens, "simulate_lensing")
    line = sub.add_parser(
        "lineart",
        help="procedural floor-plan sheets (vector PDF + PNG) with wall masks and labeled tiles",
        description="Write N construction sheets (walls, doors, windows, stairs, dimensions, grid, title block) "
        "as PDF and PNG, a wall mask per sheet, and labeled ink-bright tiles with labels.csv.",
    )
    line.add_argument("--sheets", type=positive_int, metavar="N", help="number of sheets (config key: sheets)")
    _add_common(line, "simulate_lineart", size=False)
    pairs = sub.add_parser(
        "pairs",
        help="paired radio images and radio spectra (flat/steep/peaked, physically coupled) with pairs.csv",
        description="Write N simulated radio sources as an image (FITS) and a radio spectrum (NPY, 100 MHz-10 GHz) "
        "each, pairs.csv (path_a,path_b, spectral_index, curvature, peak_freq_mhz, total_flux_jy, "
        "angular_size_arcsec, label, spectral_class) and images.csv/spectra.csv position catalogues.",
    )
    pairs.add_argument("--n", type=positive_int, metavar="N", help="number of sources (config key: n)")
    _add_common(pairs, "simulate_pairs")


def _flag_overrides(args: argparse.Namespace, keys: dict[str, str]) -> list[str]:
    """Flags given on the command line as ``key=value`` strings, applied before the user's overrides."""
    return [f"{key}={getattr(args, attr)}" for attr, key in keys.items() if getattr(args, attr) is not None]


# kind -> (module, config class, simulate function, message(cfg, written, out)); imported lazily by _simulator:
# the lensing simulator needs lenstronomy and the line-art one pypdfium2.
SIMULATORS = {
    "radio": ("tessera.simulate", "SimulateRadioConfig", "simulate_radio",
              lambda cfg, paths, out: f"wrote {len(paths)} mosaic(s) and catalogue.csv to {out}"),
    "morphology": ("tessera.simulate", "SimulateMorphologyConfig", "simulate_morphology",
                   lambda cfg, labels, out: f"wrote {cfg.per_class * len(cfg.classes)} cutouts and {labels}"),
    "lensing": ("tessera.simulate.lensing", "SimulateLensingConfig", "simulate_lensing",
                lambda cfg, labels, out: f"wrote {cfg.per_class * len(cfg.classes)} lensing images with their LR/HR "
                f"pairs and {labels}"),
    "lineart": ("tessera.simulate.lineart", "SimulateLineartConfig", "simulate_lineart",
                lambda cfg, labels, out: f"wrote {cfg.sheets} sheet(s) (PDF + PNG), wall masks and {labels}"),
    "pairs": ("tessera.simulate.pairs", "SimulatePairsConfig", "simulate_pairs",
              lambda cfg, path, out: f"wrote {cfg.n} image/spectrum pairs and {path}"),
}


def _simulator(kind: str):
    """(config class, simulate function, message) of one kind (SIMULATORS), its module imported now."""
    import importlib

    module_name, config_name, function_name, message = SIMULATORS[kind]
    module = importlib.import_module(module_name)
    return getattr(module, config_name), getattr(module, function_name), message


# The flag that sets each kind's count; --size and --seed are common (lineart has no --size).
COUNT_FLAG = {"radio": "mosaics", "morphology": "per_class", "lensing": "per_class", "lineart": "sheets", "pairs": "n"}


def run(args: argparse.Namespace) -> int:
    from tessera.config import resolve_config

    config_class, simulate, message = _simulator(args.kind)
    keys = [COUNT_FLAG[args.kind], *(["size"] if hasattr(args, "size") else []), "seed"]
    flags = _flag_overrides(args, {key: key for key in keys})
    cfg = resolve_config(config_class, args.config, flags + list(args.overrides), section=f"simulate_{args.kind}")
    written = simulate(cfg, args.out, overwrite=args.overwrite)
    if not args.quiet:
        print(message(cfg, written, args.out))
    return 0
