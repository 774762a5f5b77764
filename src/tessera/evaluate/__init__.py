"""tessera.evaluate: labeled sets and benchmarks, a multi-layer D4 feature cache, a registry of protocols (strict
linear probe, converged logistic probe, fine-tuning, k-NN, ridge regression, retrieval) under stratified K-fold
CV (seed 000 §9), label efficiency, dense-feature diagnostics, results.json, comparison tables and figures."""

from tessera.evaluate.config import EvalConfig

__all__ = ["EvalConfig", "evaluate", "run_evaluation", "label_efficiency", "comparison_table"]


def __getattr__(name):  # lazy: keep `import tessera.evaluate` free of torch
    if name in ("evaluate", "run_evaluation", "label_efficiency"):
        from tessera.evaluate import protocol

        return getattr(protocol, name)
    if name == "comparison_table":
        from tessera.evaluate.report import comparison_table

        return comparison_table
    raise AttributeError(name)
