"""Hugging Face model cards for exported encoders (issue 19).

An exported directory (:mod:`tessera.models.export`) carries a ``README.md``: YAML metadata the Hub indexes
(``library_name: tessera``, ``pipeline_tag: feature-extraction``, tags) and a body saying what the encoder is
(backbone, input size, channels, readout), what it was pretrained on (the run's ``corpus.json``: cutout count
and manifest digest, plus the store's own description when the store is at hand), the recipe (the stages'
objectives and the resolved ``config.yaml``) and, given an evaluation directory, its comparison table.

Files are read as plain files (YAML/JSON/parquet), so this module imports nothing of training or evaluation
(DESIGN §1 layering). The card is written with ``huggingface_hub.ModelCard`` (which ships with transformers), so
its metadata is exactly what the Hub's own card tools parse.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tessera.errors import TesseraError
from tessera.io import atomic_write_text

CARD = "README.md"
RUN_CONFIG = "config.yaml"
RUN_CORPUS = "corpus.json"
COMPARISON = "comparison.md"
BASE_TAGS = ("tessera", "self-supervised", "radio-astronomy", "astronomy", "image-feature-extraction")


# --------------------------------------------------------------------------------------------- facts


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _read_yaml(path: Path) -> dict | None:
    return yaml.safe_load(path.read_text()) if path.is_file() else None


def model_facts(model_dir: Path) -> dict[str, Any]:
    """What ``model_dir/tessera.json`` (and config.json) say of the encoder."""
    from tessera.models.export import TESSERA_JSON

    info = _read_json(model_dir / TESSERA_JSON)
    if info is None:
        raise TesseraError(f"{model_dir}: not an exported tessera model (no {TESSERA_JSON})")
    hf = _read_json(model_dir / "config.json") or {}
    return {
        "backbone": info.get("backbone"),
        "image_size": info.get("image_size"),
        "channels": (info.get("adapter") or {}).get("channels", hf.get("num_channels")),
        "registers": info.get("registers", 0),
        "readout": info.get("readout"),
        "hidden_size": hf.get("hidden_size") or (hf.get("hidden_sizes") or [None])[-1],
        "layers": hf.get("num_hidden_layers") or (len(hf["depths"]) if "depths" in hf else None),
        "model_type": hf.get("model_type"),
    }


def store_facts(store: Path) -> dict[str, Any]:
    """The description of a cutout store: cutouts, inputs, cutout shapes, tile and normalization settings."""
    import pandas as pd

    from tessera.corpus.layout import CONFIG, MANIFEST

    manifest_path = store / MANIFEST
    if not manifest_path.is_file():
        raise TesseraError(f"--corpus {store}: not a cutout store (no {MANIFEST})")
    manifest = pd.read_parquet(manifest_path)
    facts: dict[str, Any] = {"path": str(store), "cutouts": int(len(manifest))}
    if "path" in manifest.columns:
        facts["inputs"] = int(manifest["path"].nunique())
    for key, column in (("formats", "format"), ("sources", "source"), ("channels", "channels")):
        if column in manifest.columns:
            facts[key] = sorted(str(v) for v in manifest[column].dropna().unique())
    if {"h", "w"} <= set(manifest.columns):
        facts["cutout sizes"] = sorted(f"{h}x{w}" for h, w in set(zip(manifest["h"], manifest["w"], strict=True)))
    ingest = _read_yaml(store / CONFIG) or {}
    for key in ("tile", "stride", "stretch", "to_gray"):
        if ingest.get(key) is not None:
            facts[key] = ingest[key]
    return facts


def recipe_of(run_config: dict | None) -> list[str]:
    """The objectives of the run's stages, in order (``train.stages``); [] when unknown."""
    stages = ((run_config or {}).get("train") or {}).get("stages") or []
    return [str(s) if not isinstance(s, dict) else str(s.get("objective", s)) for s in stages]


# --------------------------------------------------------------------------------------------- the card


def card_metadata(facts: dict[str, Any], recipe: list[str]) -> dict[str, Any]:
    """The YAML header: library, pipeline, tags (backbone kind, the recipe's objectives)."""
    tags = list(BASE_TAGS)
    for extra in [facts.get("backbone"), facts.get("model_type"), *recipe]:
        if extra and extra not in tags:
            tags.append(str(extra))
    return {"library_name": "tessera", "pipeline_tag": "feature-extraction", "tags": tags}


def _model_section(facts: dict[str, Any]) -> str:
    rows = [("backbone", facts["backbone"]), ("HF model type", facts["model_type"]),
            ("input size", f"{facts['image_size']} x {facts['image_size']}"), ("input channels", facts["channels"]),
            ("hidden size", facts["hidden_size"]), ("blocks", facts["layers"]), ("registers", facts["registers"]),
            ("default readout", facts["readout"])]
    lines = ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows if v is not None]
    return "## Model\n\n" + "\n".join(lines)


def _corpus_section(corpus: dict | None, store: dict | None) -> str:
    if corpus is None and store is None:
        return "## Pretraining corpus\n\nNot recorded (the model was not exported from a tessera run directory)."
    lines = []
    if corpus is not None:
        lines.append(f"- cutouts: {corpus.get('cutouts')}")
        lines.append(f"- manifest SHA-256: `{corpus.get('manifest_sha256')}`")
    if store is not None:
        if corpus is None:
            lines.append(f"- cutouts: {store['cutouts']}")
        for key in ("inputs", "formats", "sources", "channels", "cutout sizes", "tile", "stride", "stretch", "to_gray"):
            if key in store:
                value = ", ".join(store[key]) if isinstance(store[key], list) else store[key]
                lines.append(f"- {key}: {value}")
    return "## Pretraining corpus\n\nA tessera cutout store (`tessera ingest`):\n\n" + "\n".join(lines)


def _recipe_section(run_config: dict | None, recipe: list[str]) -> str:
    if run_config is None:
        return "## Recipe\n\nNot recorded."
    stages = " then ".join(recipe) if recipe else "(no stages recorded)"
    config = yaml.safe_dump(run_config, sort_keys=False).rstrip()
    return (f"## Recipe\n\nStages: {stages}.\n\nResolved configuration (`config.yaml` of the run):\n\n"
            f"```yaml\n{config}\n```")


def _eval_section(eval_dir: Path | None) -> str | None:
    if eval_dir is None:
        return None
    table = eval_dir / COMPARISON
    if not table.is_file():
        raise TesseraError(f"--eval {eval_dir}: not a `tessera evaluate` output directory (no {COMPARISON})")
    return f"## Evaluation\n\nFrom `tessera evaluate` ({eval_dir.name}):\n\n{table.read_text().strip()}"


def _usage_section(repo_id: str | None) -> str:
    ref = repo_id or "path/to/this/directory"
    return ("## Usage\n\n```python\nimport tessera\n\n"
            f"encoder = tessera.load(\"{ref}\")  # a local copy; a Hub id goes through tessera.hub.load_from_hub\n"
            "features = encoder.embed(images)   # (B, C, H, W) float -> (B, D)\n```\n\n"
            "With no registers the directory is also a plain Hugging Face checkpoint (`AutoModel.from_pretrained`).")


def build_card(model_dir: str | Path, run_dir: str | Path | None = None, eval_dir: str | Path | None = None,
               store: str | Path | None = None, repo_id: str | None = None):
    """The ``huggingface_hub.ModelCard`` of exported ``model_dir``; ``run_dir`` supplies corpus.json and
    config.yaml, ``store`` the corpus description, ``eval_dir`` the comparison table."""
    from huggingface_hub import ModelCard, ModelCardData

    model_dir = Path(model_dir)
    facts = model_facts(model_dir)
    run_config = _read_yaml(Path(run_dir) / RUN_CONFIG) if run_dir is not None else None
    corpus = _read_json(Path(run_dir) / RUN_CORPUS) if run_dir is not None else None
    store_info = store_facts(Path(store)) if store is not None else None
    recipe = recipe_of(run_config)
    data = ModelCardData(**card_metadata(facts, recipe))
    how = f"pretrained by tessera ({' then '.join(recipe)})" if recipe else "exported by tessera (no run recorded)"
    title = f"# {repo_id or model_dir.name}\n\nA {facts['backbone']} image encoder {how}, for radio-astronomy cutouts."
    sections = [title, _model_section(facts), _corpus_section(corpus, store_info), _recipe_section(run_config, recipe),
                _eval_section(Path(eval_dir) if eval_dir is not None else None), _usage_section(repo_id)]
    body = "\n\n".join(s for s in sections if s)
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}\n")


def write_card(model_dir: str | Path, **kw) -> Path:
    """Build the card (:func:`build_card`) and write it atomically to ``model_dir/README.md``."""
    path = Path(model_dir) / CARD
    atomic_write_text(path, str(build_card(model_dir, **kw)))
    return path
