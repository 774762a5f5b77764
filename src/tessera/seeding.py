"""One way to derive independent random streams from a tuple of integers (seed, rank, worker, index, step...)."""

from __future__ import annotations

import numpy as np


def mix_seed(*parts: int) -> int:
    """A 63-bit seed that is a pure function of ``parts``; NumPy's SeedSequence mixes them, so neighbouring
    indices, steps or ranks get unrelated streams. Negative parts are taken modulo 2**64."""
    words = [int(p) % (1 << 64) for p in parts]
    return int(np.random.SeedSequence(words).generate_state(1, dtype=np.uint64)[0] >> 1)
