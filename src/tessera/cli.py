"""The ``tessera`` command. Each subcommand lives in ``tessera.commands.<name>``: it adds its parser and
calls one function of a package. Heavy imports (torch, astropy) happen inside the commands, so
``tessera --help`` is instant."""

from __future__ import annotations

import argparse
import importlib
import sys

from tessera import __version__
from tessera.commands._common import add_quiet_argument
from tessera.errors import TesseraError

# name -> one-line help; the module tessera.commands.<name> provides add_arguments(parser) and run(args).
COMMANDS = {
    "simulate": "make synthetic data with known truth (radio mosaics, labeled morphologies, strong lenses)",
    "ingest": "turn FITS mosaics/cubes, images and arrays into a normalized cutout store",
    "views": "draw the training views of a cutout store into a figure",
    "pretrain": "continued pretraining of a ViT (reconstruction, contrastive, two-stage)",
    "align": "align two pretrained towers into one shared space (CLIP-style, seed 003)",
    "evaluate": "linear probe, fine-tuning and k-NN under stratified K-fold CV",
    "superres": "super-resolution head on an encoder's token grid: SSIM/PSNR against bicubic",
    "bakeoff": "pretrain several recipes with one budget and rank them against random init",
    "demo": "the end-to-end demo on simulated data, offline",
    "embed": "embed every cutout of a store (or a data spec) into a resumable embedding set",
    "index": "build a FAISS index (flat, IVF-PQ, HNSW) over an embedding set",
    "search": "find the cutouts most similar to a cutout, an image file or a sky position",
    "export": "write a run's encoder with its Hugging Face model card, optionally pushed to the Hub",
}


def _command_module(name: str):
    return importlib.import_module(f"tessera.commands.{name.replace('-', '_')}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tessera",
        description="Turn unlabeled scientific images into a domain-adapted Vision Transformer, and measure it.",
    )
    parser.add_argument("--version", action="version", version=f"tessera {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    parser.command_parsers = {}  # name -> its parser, for parse_arguments
    for name, help_text in COMMANDS.items():
        module = _command_module(name)
        cmd = sub.add_parser(
            name,
            help=help_text,
            description=(module.__doc__ or help_text).strip(),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(cmd)
        if not _has_subcommands(cmd):  # nested commands (simulate radio) add --quiet to each leaf
            add_quiet_argument(cmd)
        cmd.set_defaults(_run=module.run)
        parser.command_parsers[name] = cmd
    return parser


def _has_subcommands(parser: argparse.ArgumentParser) -> bool:
    return any(isinstance(a, argparse._SubParsersAction) for a in parser._actions)


def parse_arguments(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse ``argv``, letting ``key=value`` overrides follow options (``tessera views STORE --out x.png a.b=1``).

    Plain ``parse_args`` binds all positionals of a command in one go, so overrides after an option would be
    "unrecognized"; ``parse_intermixed_args`` does not, but it refuses nested subparsers, so it is applied to
    the chosen command's own parser, and nested commands (``simulate radio``) keep the plain parse.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    name = next((a for a in argv if not a.startswith("-")), None)
    if name not in COMMANDS:
        return parser.parse_args(argv)
    command_parser = parser.command_parsers[name]
    rest = argv[argv.index(name) + 1 :]
    if any(a in ("-h", "--help") for a in argv[: argv.index(name)]):
        return parser.parse_args(argv)
    try:
        namespace = command_parser.parse_intermixed_args(rest)
    except TypeError:  # the command has nested subcommands
        namespace = command_parser.parse_args(rest)
    namespace.command = name
    return namespace


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse_arguments(parser, argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 0
    from tessera.progress import output_mode

    try:
        with output_mode(quiet=bool(getattr(args, "quiet", False))):
            result = args._run(args)
    except TesseraError as exc:
        print(f"tessera {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tessera {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
