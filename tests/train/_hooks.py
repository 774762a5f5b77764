"""Step hooks the engine tests inject into ``pretrain(..., after_step=...)`` to interrupt a run."""

from __future__ import annotations


class StopRequested(RuntimeError):
    """Raised by :func:`stop_at` once the run reaches the given global step (after its checkpoint)."""


def stop_at(global_step: int):
    """An ``after_step`` hook that stops the run after optimizer step ``global_step`` (run-wide)."""

    def hook(step: int) -> None:
        if step >= global_step:
            raise StopRequested(f"stopped after global step {step} (test hook)")

    return hook
