"""The K-fold transfer protocol (seed 000 §9): one labeled set, several encoders, linear probe / fine-tuning / k-NN.

:func:`evaluate` runs one protocol for several models and writes ``OUT/<model-slug>/<protocol>/results.json``
(DESIGN §3.5 plus ``excluded``, ``config``, ``layer``, ``readout``); :func:`run_evaluation` is the CLI's entry
point: several protocols, the comparison table, the confusion figures and the layer-sweep plots.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np

from tessera.config import save_config, to_dict
from tessera.errors import ConfigError, TesseraError
from tessera.evaluate.config import EvalConfig
from tessera.evaluate.datasets import EvalData
from tessera.evaluate.features import encoder_device, extract_features, fold_standardizer, resolve_readout
from tessera.evaluate.folds import stratified_folds
from tessera.evaluate.metrics import aggregate, fold_metrics

PROTOCOLS = ("linear", "finetune", "knn")


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
    used as is (tests, notebooks)."""
    if isinstance(ref, str):
        import tessera

        label, ref = split_model_label(ref)
        return label, tessera.load(ref, device=device)
    return getattr(ref, "name", type(ref).__name__), ref


def resolve_data(data, cfg: EvalConfig) -> EvalData:
    if isinstance(data, EvalData):
        return data
    from tessera.evaluate.benchmarks import load_eval_data

    return load_eval_data(str(data), hdu=cfg.hdu, max_per_class=cfg.max_per_class, seed=cfg.seed)


def sweep_layer_ids(encoder) -> list[int]:
    """Every block, shallow to deep (``embed(..., layer=i)`` reads block i's output, 0-based)."""
    return list(range(int(encoder.num_layers)))


def _check_folds(labels: np.ndarray, k: int, classes: list[str]) -> None:
    counts = np.bincount(labels, minlength=len(classes))
    small = [f"{c} ({n})" for c, n in zip(classes, counts) if n < k]
    if small:
        raise TesseraError(f"{k}-fold stratified CV needs >= {k} samples per class; too few: {', '.join(small)}")


def _fold_predictions(protocol: str, encoder, data: EvalData, folds, layer: int, readout: str, cfg: EvalConfig,
                      cache_root: Path, device) -> list[tuple[np.ndarray, np.ndarray]]:
    """(y_true, y_pred) per fold for one protocol at one layer."""
    from tqdm.auto import tqdm

    train, test = data.train, data.test if data.test is not None else data.train
    common = dict(layer=layer, readout=readout, cache_root=cache_root, chunk_size=cfg.extract_batch_size,
                  device=device, progress=cfg.progress)
    out = []
    if protocol == "linear":
        from tessera.evaluate.linear import predict, train_probe_cached

        feats = extract_features(encoder, train, d4=True, **common)  # (8, N, D): every D4 element, once
        test_feats = feats[0] if data.test is None else extract_features(encoder, test, d4=False, **common)[0]
        for k, (tr, te) in enumerate(tqdm(folds, desc="folds", disable=not cfg.progress, leave=False)):
            fold_feats, fold_test = feats, test_feats[te]
            if cfg.linear.standardize:
                scale = fold_standardizer(feats[:, tr])
                fold_feats, fold_test = scale(feats), scale(fold_test)
            head = train_probe_cached(fold_feats, train.labels, tr, len(train.classes), cfg.linear, seed=cfg.seed + k,
                                      progress=cfg.progress)
            out.append((test.labels[te], predict(head, fold_test)[0]))
    elif protocol == "knn":
        from tessera.evaluate.knn import knn_predict

        feats = extract_features(encoder, train, d4=False, **common)[0]
        test_feats = feats if data.test is None else extract_features(encoder, test, d4=False, **common)[0]
        for tr, te in folds:
            fold_train, fold_test = feats[tr], test_feats[te]
            if cfg.knn.standardize:
                scale = fold_standardizer(fold_train)
                fold_train, fold_test = scale(fold_train), scale(fold_test)
            pred = knn_predict(fold_train, train.labels[tr], fold_test, len(train.classes), cfg.knn.k, cfg.knn.temperature)
            out.append((test.labels[te], pred))
    elif protocol == "finetune":
        from tessera.evaluate.finetune import finetune_fold, predict_finetuned

        for k, (tr, te) in enumerate(tqdm(folds, desc="folds", disable=not cfg.progress, leave=False)):
            enc, head = finetune_fold(encoder, train, tr, len(train.classes), cfg.finetune, seed=cfg.seed + k,
                                      readout=readout, layer=layer, device=device, progress=cfg.progress)
            pred = predict_finetuned(enc, head, test, te, readout=readout, layer=layer,
                                     batch_size=cfg.extract_batch_size, device=device, bf16=cfg.finetune.bf16_cuda)
            out.append((test.labels[te], pred))
            del enc, head
    else:
        raise ConfigError(f"protocol {protocol!r} is not one of {', '.join(PROTOCOLS)}")
    return out


def _result(name: str, data: EvalData, protocol: str, cfg: EvalConfig, layer: int, readout: str, per_fold: list[dict]) -> dict:
    agg = aggregate(per_fold)
    return {
        "model": name, "data": data.name, "protocol": protocol, "folds": cfg.folds, "seed": cfg.seed,
        "classes": list(data.train.classes), "n_samples": len(data.train),
        "macro_f1": agg["macro_f1"], "weighted_f1": agg["weighted_f1"], "accuracy": agg["accuracy"],
        "per_fold": agg["per_fold"], "confusion": agg["confusion"],
        "excluded": data.excluded, "layer": layer, "readout": readout,
        "test_data": "NVSS (paired objects)" if data.test is not None else None,
        "config": to_dict(cfg),
    }


def _write_json(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2))


def evaluate(models: list, data, protocol: str, out: str | Path, cfg: EvalConfig | None = None) -> list[dict]:
    """Run ``protocol`` for every model on ``data`` under stratified K-fold CV; one result per model (DESIGN §3.5).

    With ``cfg.sweep_layers`` every block is evaluated too (``OUT/<slug>/<protocol>/layer_sweep.json``) and the
    returned result carries ``layer_sweep``; the main result is the one at ``cfg.layer``.
    """
    cfg = cfg or EvalConfig()
    if protocol not in PROTOCOLS:
        raise ConfigError(f"protocol {protocol!r} is not one of {', '.join(PROTOCOLS)}")
    if cfg.sweep_layers and protocol == "finetune":
        raise ConfigError("config key 'sweep_layers': a layer sweep runs with linear or knn, not finetune (one fine-tune per block)")
    out = Path(out)
    data = resolve_data(data, cfg)
    _check_folds(data.train.labels, cfg.folds, data.train.classes)
    # Folds over samples; for frdeep-cross a sample is an object, so train FIRST / test NVSS never share a galaxy.
    folds = stratified_folds(data.train.labels, cfg.folds, cfg.seed)
    cache_root = Path(cfg.cache_dir) if cfg.cache_dir else out / "cache"
    results = []
    for ref in models:
        name, encoder = resolve_model(ref, cfg.device)
        device = encoder_device(encoder, cfg.device)
        readout = resolve_readout(encoder, cfg.readout)
        depth = int(encoder.num_layers)
        if not -depth <= cfg.layer < depth:
            raise ConfigError(f"config key 'layer': {cfg.layer} is out of range for {name} ({depth} blocks)")
        layers = sweep_layer_ids(encoder) if cfg.sweep_layers else [cfg.layer % depth]
        by_layer = {}
        for layer in layers:
            preds = _fold_predictions(protocol, encoder, data, folds, layer, readout, cfg, cache_root, device)
            per_fold = [fold_metrics(y, p, len(data.train.classes)) for y, p in preds]
            by_layer[layer] = _result(name, data, protocol, cfg, layer, readout, per_fold)
        # -1 and depth-1 are the same block; the result records the layer as the user asked for it.
        main = {**by_layer[cfg.layer % depth], "layer": cfg.layer}
        target = out / model_slug(name) / protocol
        if cfg.sweep_layers:
            keys = ("layer", "macro_f1", "weighted_f1", "accuracy")
            sweep = [{k: by_layer[layer][k] for k in keys} for layer in sweep_layer_ids(encoder)]
            main = {**main, "layer_sweep": sweep}
            _write_json(sweep, target / "layer_sweep.json")
        _write_json(main, target / "results.json")
        results.append(main)
        print(f"{name} / {protocol}: macro-F1 {main['macro_f1']['mean']:.3f} ± {main['macro_f1']['std']:.3f}", file=sys.stderr)
    return results


def run_evaluation(models: list, data, protocols: list[str], out: str | Path, cfg: EvalConfig | None = None,
                   overwrite: bool = False, resume: bool = False) -> list[dict]:
    """The ``tessera evaluate`` job: every protocol, then comparison.md/.csv, confusion_<protocol>.png and (sweeps)
    layer_sweep_<protocol>.png in ``out``; prints the table. Returns all results."""
    from tessera.evaluate.report import confusion_figure, layer_sweep_plot, write_comparison
    from tessera.outputs import prepare_output_dir

    cfg = cfg or EvalConfig()
    out = prepare_output_dir(out, overwrite=overwrite, resume=resume)
    save_config(cfg, out)
    data = resolve_data(data, cfg)
    if data.excluded:
        print(f"{len(data.excluded)} image(s) excluded (listed in results.json 'excluded')", file=sys.stderr)
    results = []
    for protocol in protocols:
        res = evaluate(models, data, protocol, out, cfg)
        confusion_figure(res, out / f"confusion_{protocol}.png")
        if cfg.sweep_layers:
            layer_sweep_plot({r["model"]: r["layer_sweep"] for r in res}, out / f"layer_sweep_{protocol}.png", protocol)
        results.extend(res)
    md = write_comparison(results, out)
    print(md)
    return results
