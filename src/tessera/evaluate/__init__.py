"""tessera.evaluate: labeled sets and benchmarks, D4 feature cache, linear probe, fine-tuning, k-NN under
stratified K-fold CV (seed 000 §9), results.json, comparison tables and confusion figures."""

from tessera.evaluate.config import EvalConfig

__all__ = ["EvalConfig", "evaluate", "run_evaluation", "comparison_table"]


def __getattr__(name):  # lazy: keep `import tessera.evaluate` free of torch
    if name in ("evaluate", "run_evaluation"):
        from tessera.evaluate import protocol

        return getattr(protocol, name)
    if name == "comparison_table":
        from tessera.evaluate.report import comparison_table

        return comparison_table
    raise AttributeError(name)
