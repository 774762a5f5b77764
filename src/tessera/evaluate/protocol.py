"""The K-fold transfer protocol (seed 000 §9): one labeled set, several encoders, the protocols of the registry.

:func:`evaluate` runs one protocol for several models and writes ``OUT/<model-slug>/<protocol>/results.json``
(DESIGN §3.5 plus ``task``, ``excluded``, ``config``, ``layer``, ``readout``, ``seconds`` and, per task, the
extra metrics); :func:`run_evaluation` is the CLI's entry point: several protocols, the comparison table, the
confusion figures, the layer-sweep plots, label efficiency and diagnostics. :func:`label_efficiency` returns the
few-label curves. Every model and the data are resolved before any model is evaluated, so a bad reference
fails in seconds, not after an hour of the first model. The library returns results; the command prints.
"""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path

import numpy as np

from tessera.config import save_config, to_dict
from tessera.errors import ConfigError, TesseraError
from tessera.evaluate.config import EvalConfig
from tessera.evaluate.datasets import EvalData
from tessera.evaluate.features import FeatureProvider, encoder_device, resolve_readout
from tessera.evaluate.folds import stratified_folds
from tessera.evaluate.metrics import aggregate, fold_metrics, regression_metrics
from tessera.evaluate.registry import PROTOCOL_NAMES, ProtocolInput, get_protocol

PROTOCOLS = PROTOCOL_NAMES
log = logging.getLogger("tessera.evaluate")


def model_slug(name: str) -> str:
    """A directory-safe name for a model reference (``random:cpu`` -> ``random_cpu``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("_.") or "model"


def split_model_label(ref: str) -> tuple[str, str]:
    """``LABEL=REF`` -> (LABEL, REF) for the table; a bare REF is its own label (``random:cpu`` stays as is)."""
    label, sep, rest = ref.partition("=")
    if sep and label and rest and re.fullmatch(r"[A-Za-z0-9_.+-]+", label):
        return label, rest
    return ref, ref


def resolve_model(ref, device: str | None = None):
    """(name, encoder): a string (``REF`` or ``LABEL=REF``) goes through ``tessera.load``; an encoder object is
    used as is (tests, notebooks); a (name, encoder) pair is passed through."""
    if isinstance(ref, tuple) and len(ref) == 2 and isinstance(ref[0], str):
        return ref
    if isinstance(ref, str):
        import tessera

        label, ref = split_model_label(ref)
        return label, tessera.load(ref, device=device)
    return getattr(ref, "name", type(ref).__name__), ref


def resolve_models(models: list, device: str | None = None) -> list[tuple[str, object]]:
    """Every model loaded up front: a bad second reference fails before the first is evaluated."""
    if not models:
        raise ConfigError("no model to evaluate (give --model at least once)")
    return [resolve_model(ref, device) for ref in models]


def resolve_data(data, cfg: EvalConfig) -> EvalData:
    if isinstance(data, EvalData):
        return data
    from tessera.evaluate.benchmarks import load_eval_data

    loaded = load_eval_data(str(data), hdu=cfg.hdu, max_per_class=cfg.max_per_class, seed=cfg.seed,
                            common_field=cfg.retrieval.common_field, max_nan_fraction=cfg.max_nan_fraction,
                            stretch=cfg.stretch)
    return loaded.center_cropped(cfg.center_crop) if cfg.center_crop is not None else loaded


def sweep_layer_ids(encoder) -> list[int]:
    """Every block, shallow to deep (``embed(..., layer=i)`` reads block i's output, 0-based)."""
    return list(range(int(encoder.num_layers)))


def _check_folds(labels: np.ndarray, k: int, classes: list[str]) -> None:
    counts = np.bincount(labels, minlength=len(classes))
    small = [f"{c} ({n})" for c, n in zip(classes, counts) if n < k]
    if small:
        raise TesseraError(f"{k}-fold stratified CV needs >= {k} samples per class; too few: {', '.join(small)}")


def task_of(protocol, cfg: EvalConfig) -> str:
    """classification | regression (config key ``target``) | retrieval; ConfigError for an unsupported mix."""
    if "retrieval" in protocol.tasks:
        return "retrieval"
    if cfg.target is not None:
        if "regression" not in protocol.tasks:
            raise ConfigError(f"config key 'target': protocol {protocol.name!r} is a classifier; "
                              "with a regression target use knn or ridge")
        return "regression"
    if "classification" not in protocol.tasks:
        raise ConfigError(f"protocol {protocol.name!r} is a regression probe: it needs config key 'target' (--target "
                          "COLUMN)")
    return "classification"


def check_protocol(name: str, cfg: EvalConfig):
    """The registry entry for ``name``, after every check that needs no data: task, sweep, readouts."""
    protocol = get_protocol(name)
    task_of(protocol, cfg)
    if cfg.sweep_layers and not protocol.sweepable:
        raise ConfigError(f"config key 'sweep_layers': a layer sweep runs with frozen-feature protocols, not {name} "
                          "(one training run per block)")
    if cfg.concat_last > 1 and "encoder" in protocol.needs:
        raise ConfigError(f"config key 'concat_last': {name} trains the encoder on one block's readout; "
                          "concatenated blocks are for frozen-feature protocols")
    return protocol


def targets_of(ls, column: str, data_name: str) -> np.ndarray:
    """(N,) float64 regression targets from the metadata column ``column``; TesseraError if missing/non-numeric."""
    import pandas as pd

    if column not in ls.meta.columns:
        cols = ", ".join(c for c in ls.meta.columns if c != "source") or "none"
        raise TesseraError(f"{data_name}: no column {column!r} for config key 'target' (columns: {cols})")
    values = pd.to_numeric(ls.meta[column], errors="coerce").to_numpy(dtype=np.float64)
    bad = int(np.sum(~np.isfinite(values)))
    if bad:
        raise TesseraError(f"{data_name}: column {column!r} (config key 'target') has {bad} non-numeric or missing "
                           "value(s)")
    return values


def make_folds(task: str, y: np.ndarray, cfg: EvalConfig, classes) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified K-fold for classification, shuffled K-fold for regression; the first ``max_folds`` only."""
    if task == "retrieval":
        return []
    if task == "classification":
        _check_folds(y, cfg.folds, classes)
        # Folds over samples; for frdeep-cross a sample is an object, so train FIRST / test NVSS never share a galaxy.
        folds = stratified_folds(y, cfg.folds, cfg.seed)
    else:
        from sklearn.model_selection import KFold

        if len(y) < cfg.folds:
            raise TesseraError(f"{cfg.folds}-fold CV needs >= {cfg.folds} samples, got {len(y)}")
        folds = [(tr, te) for tr, te in KFold(cfg.folds, shuffle=True, random_state=cfg.seed).split(y)]
    return folds[: cfg.max_folds] if cfg.max_folds else folds


def _fold_entry(task: str, fr, n_classes: int) -> dict:
    base = regression_metrics(fr.y_true, fr.y_pred) if task == "regression" else \
        fold_metrics(fr.y_true, fr.y_pred, n_classes, fr.scores)
    return {**base, **fr.info}


def _result(name: str, data: EvalData, protocol: str, cfg: EvalConfig, layer: int, readout: str, task: str,
            per_fold: list[dict] | None = None, summary: dict | None = None) -> dict:
    """One results.json (DESIGN §3.5, extended): classification keeps every original key; regression has
    ``r2``/``mae``; retrieval has ``match_retrieval``/``label_retrieval`` instead of fold metrics."""
    out = {"model": name, "data": data.name, "protocol": protocol, "task": task, "folds": cfg.folds, "seed": cfg.seed,
           "classes": list(data.train.classes), "n_samples": len(data.train)}
    if per_fold is not None:
        agg = aggregate(per_fold)
        out.update({k: v for k, v in agg.items() if k not in ("per_fold", "confusion")})
        out["per_fold"] = agg["per_fold"]
        if "confusion" in agg:
            out["confusion"] = agg["confusion"]
        if cfg.max_folds:
            out["folds_run"] = len(per_fold)
    if summary is not None:
        out.update(summary)
    if task == "regression":
        out["target"] = cfg.target
    out.update({
        "excluded": data.excluded, "layer": layer, "readout": readout, "concat_last": cfg.concat_last,
        "test_data": (data.test_description or f"{len(data.test)} paired images") if data.test is not None else None,
        "data_options": dict(data.options),
        "config": to_dict(cfg),
    })
    return out


def _write_json(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2))


def _protocol_input(encoder, data, layer, readout, cfg, provider, device, task, targets):
    return ProtocolInput(encoder=encoder, data=data, layer=layer, readout=readout, cfg=cfg, features=provider,
                         device=device, task=task, targets_train=targets[0], targets_test=targets[1])


def _run_layer(protocol, inp: ProtocolInput, folds, name: str, cfg: EvalConfig) -> dict:
    if protocol.summary is not None:
        return _result(name, inp.data, protocol.name, cfg, inp.layer, inp.readout, inp.task,
                       summary=protocol.summary(inp))
    predictor = protocol.predictor(inp)
    per_fold = []
    for k, (tr, te) in enumerate(folds):
        per_fold.append(_fold_entry(inp.task, predictor(tr, te, cfg.seed + k), inp.n_classes))
    return _result(name, inp.data, protocol.name, cfg, inp.layer, inp.readout, inp.task, per_fold=per_fold)


SWEEP_KEYS = ("macro_f1", "weighted_f1", "accuracy", "balanced_accuracy", "roc_auc", "r2", "mae")


def best_layer(sweep: list[dict], metric: str) -> int:
    """The block with the best mean ``metric`` (lowest for mae); ties -> the shallowest."""
    values = [row[metric]["mean"] for row in sweep]
    pick = int(np.argmin(values)) if metric == "mae" else int(np.argmax(values))
    return int(sweep[pick]["layer"])


def main_metric(result: dict) -> str | None:
    """The headline metric of a result: macro_f1, r2, or (retrieval) None."""
    return "macro_f1" if "macro_f1" in result else "r2" if "r2" in result else None


def _evaluate_model(name, encoder, data, protocol, folds, task, targets, cfg, cache_root, out) -> dict:
    start = time.perf_counter()
    device = encoder_device(encoder, cfg.device)
    readout = resolve_readout(encoder, cfg.readout)
    depth = int(encoder.num_layers)
    if not -depth <= cfg.layer < depth:
        raise ConfigError(f"config key 'layer': {cfg.layer} is out of range for {name} ({depth} blocks)")
    layers = sweep_layer_ids(encoder) if cfg.sweep_layers else [cfg.layer % depth]
    needs_features = bool({"features", "d4_features"} & set(protocol.needs))
    provider = FeatureProvider(encoder, data, readout, layers if needs_features else [], cache_root,
                               cfg.extract_batch_size, device, cfg.progress, cfg.concat_last)
    by_layer = {}
    for layer in layers:
        inp = _protocol_input(encoder, data, layer, readout, cfg, provider, device, task, targets)
        by_layer[layer] = _run_layer(protocol, inp, folds, name, cfg)
    # -1 and depth-1 are the same block; the result records the layer as the user asked for it.
    main = {**by_layer[cfg.layer % depth], "layer": cfg.layer}
    target = out / model_slug(name) / protocol.name
    if cfg.sweep_layers:
        sweep = [{"layer": layer,
                  **{k: by_layer[layer][k] for k in SWEEP_KEYS if k in by_layer[layer]}} for layer in layers]
        metric = main_metric(main)
        main["layer_sweep"] = sweep
        if metric:
            main["best_layer"] = {"metric": metric, "layer": best_layer(sweep, metric)}
        _write_json(sweep, target / "layer_sweep.json")
    if cfg.label_efficiency.enabled and protocol.label_efficiency and task == "classification":
        from tessera.evaluate.label_efficiency import label_efficiency_rows

        inp = _protocol_input(encoder, data, cfg.layer % depth, readout, cfg, provider, device, task, targets)
        main["label_efficiency"] = label_efficiency_rows(protocol.predictor(inp), data.train.labels, folds,
                                                         inp.n_classes, cfg.label_efficiency.shots,
                                                         cfg.label_efficiency.draws, cfg.seed)
    main["seconds"] = round(time.perf_counter() - start, 3)
    _write_json(main, target / "results.json")
    metric = main_metric(main)
    if metric:
        log.info("%s / %s: %s %.3f ± %.3f (%.1f s)", name, protocol.name, metric, main[metric]["mean"],
                 main[metric]["std"],
                 main["seconds"])
    return main


def _prepare(data, protocol_name: str, cfg: EvalConfig):
    """(protocol, task, folds, targets) for ``data`` — every check that can fail, before any model runs."""
    protocol = check_protocol(protocol_name, cfg)
    task = task_of(protocol, cfg)
    if "pairs" in protocol.needs and task == "retrieval" and data.test is None:
        log.info("%s has no paired images: retrieval reports label retrieval only", data.name)
    targets = (None, None)
    if task == "regression":
        t_train = targets_of(data.train, cfg.target, data.name)
        t_test = targets_of(data.test, cfg.target, data.name) if data.test is not None else None
        targets = (t_train, t_test)
    y = targets[0] if task == "regression" else data.train.labels
    folds = make_folds(task, y, cfg, data.train.classes)
    return protocol, task, folds, targets


def evaluate(models: list, data, protocol: str, out: str | Path, cfg: EvalConfig | None = None) -> list[dict]:
    """Run ``protocol`` for every model on ``data``; one result per model (DESIGN §3.5, extended).

    models: encoder objects, references (``REF`` / ``LABEL=REF``) or (name, encoder) pairs; all are loaded (and
    the data read and checked) before the first is evaluated. data: an :class:`EvalData` or a spec string.
    Writes ``OUT/<slug>/<protocol>/results.json`` (and ``layer_sweep.json`` with ``cfg.sweep_layers``; the
    returned result then carries ``layer_sweep`` and ``best_layer``; the main result is the one at ``cfg.layer``).
    """
    cfg = cfg or EvalConfig()
    check_protocol(protocol, cfg)
    out = Path(out)
    data = resolve_data(data, cfg)
    proto, task, folds, targets = _prepare(data, protocol, cfg)
    named = resolve_models(models, cfg.device)
    cache_root = Path(cfg.cache_dir) if cfg.cache_dir else out / "cache"
    return [_evaluate_model(name, enc, data, proto, folds, task, targets, cfg, cache_root, out) for name, enc in named]


def run_evaluation(models: list, data, protocols: list[str], out: str | Path, cfg: EvalConfig | None = None,
                   overwrite: bool = False, resume: bool = False) -> list[dict]:
    """The ``tessera evaluate`` job: every protocol, then comparison.md/.csv, confusion_<protocol>.png,
    (sweeps) layer_sweep_<protocol>.png, (label efficiency) label_efficiency.md and .png, (diagnostics)
    OUT/<slug>/diagnostics.json and .png with diagnostics.md. Returns all results; prints nothing.

    Protocols, data and every model are checked and loaded before the output folder is touched."""
    from tessera.evaluate.report import confusion_figure, layer_sweep_plot, write_comparison
    from tessera.outputs import prepare_output_dir

    cfg = cfg or EvalConfig()
    for name in protocols:
        check_protocol(name, cfg)
    data = resolve_data(data, cfg)
    for name in protocols:
        _prepare(data, name, cfg)
    named = resolve_models(models, cfg.device)
    out = prepare_output_dir(out, overwrite=overwrite, resume=resume)
    save_config(cfg, out)
    if data.excluded:
        log.info("%d image(s) excluded (listed in results.json 'excluded')", len(data.excluded))
    results = []
    for protocol in protocols:
        res = evaluate(named, data, protocol, out, cfg)
        if all("confusion" in r for r in res):
            confusion_figure(res, out / f"confusion_{protocol}.png")
        if cfg.sweep_layers and all("best_layer" in r for r in res):  # retrieval has no headline metric
            layer_sweep_plot(res, out / f"layer_sweep_{protocol}.png", protocol)
        results.extend(res)
    if any(r.get("label_efficiency") for r in results):
        from tessera.evaluate.label_efficiency import label_efficiency_figure, label_efficiency_table

        (out / "label_efficiency.md").write_text(label_efficiency_table(results))
        label_efficiency_figure(results, out / "label_efficiency.png")
    if cfg.diagnostics.enabled:
        from tessera.evaluate.diagnostics import diagnostics_table, run_diagnostics

        diag = [run_diagnostics(enc, data.train, out / model_slug(name), cfg.diagnostics, seed=cfg.seed, name=name)
                for name, enc in named]
        (out / "diagnostics.md").write_text(diagnostics_table(diag))
    write_comparison(results, out)
    return results


def label_efficiency(models: list, data, protocols=("logistic", "knn"), out: str | Path | None = None,
                     cfg: EvalConfig | None = None) -> list[dict]:
    """Few-label curves: for each model and protocol, {"model", "protocol", "data", "classes",
    "label_efficiency": [{"per_class": 5 | ... | "all", "n_draws", "n_train", "macro_f1": {"mean", "std"}, ...}]}.

    Shots and draws come from ``cfg.label_efficiency`` (default 5, 10, 25, 50, all; 5 draws per fold). Results
    (with the full protocol at all labels) go to ``out`` like :func:`evaluate`; a temporary folder if None.
    """
    import copy
    import tempfile

    cfg = copy.deepcopy(cfg or EvalConfig())
    cfg.label_efficiency.enabled = True
    for name in protocols:
        if not get_protocol(name).label_efficiency:
            raise ConfigError(f"label efficiency runs with logistic or knn, not {name!r}")
    data = resolve_data(data, cfg)
    named = resolve_models(models, cfg.device)
    keys = ("model", "protocol", "data", "classes", "label_efficiency")
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(out) if out is not None else Path(tmp)
        return [{k: r[k] for k in keys} for name in protocols for r in evaluate(named, data, name, target, cfg)]
