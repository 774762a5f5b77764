"""What the benchmark scripts that drive ``tessera`` commands share: running one command in-process, and the
fine-tuning schedule that trains a ViT from random init.

The seed's fine-tune schedule (batch 256, layer-wise decay 0.65, head lr x10) cannot train a from-scratch ViT on a
few hundred images: 80 optimizer steps, with the embeddings at 0.65^7 of the lr, leave it predicting one class
(README, fine-tuning). A supervised baseline from random init needs many small steps at one lr for every layer.
The lr is each script's own (it depends on the data: demo_learnability 1.5e-3; lensing 3e-4).
"""

from __future__ import annotations

import contextlib
import io
import shlex

FROM_SCRATCH_FINETUNE = (
    "finetune.batch_size=32",
    "finetune.layer_decay=1.0",
    "finetune.head_lr_mult=1.0",
    "finetune.warmup_ratio=0.1",
)


def run_tessera(argv: list[str]) -> str:
    """Run one ``tessera`` command in-process and return what it printed; raise on a non-zero exit."""
    from tessera.cli import main

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(argv)
    if code != 0:
        raise SystemExit(f"tessera {shlex.join(argv)} failed with exit code {code}")
    return buffer.getvalue()
