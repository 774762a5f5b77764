"""Alignment under 2-process gloo DDP: the loss and the gradients equal those of one process on the global batch
(cross-modal negatives gathered across processes, with gradient)."""

from __future__ import annotations

import socket

import pytest
import torch
import torch.multiprocessing as mp

from tests.align import _ddp_worker as W


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_loss_and_gradients_equal_single_process(tmp_path):
    mp.spawn(W.ddp_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    ref_loss, ref_grads = W.single_process_reference()
    for rank in range(2):
        loss, grads = torch.load(tmp_path / f"rank{rank}.pt", weights_only=False)
        assert loss == pytest.approx(ref_loss, rel=1e-5)
        assert grads.keys() == ref_grads.keys() and "log_scale" in grads
        fa = torch.cat([grads[k].flatten() for k in sorted(grads)])
        fb = torch.cat([ref_grads[k].flatten() for k in sorted(ref_grads)])
        assert float((fa - fb).norm() / fb.norm()) < 1e-4
