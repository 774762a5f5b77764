"""Contrastive losses against explicit-loop references (seed 000 Eq. 8-16)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tessera.objectives.contrastive import ContrastiveLoss


def _emb(*shape, seed=0):
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64), dim=-1)


def reference_loss(queries, keys, offset, tau, kind, beta=1.0, alpha=0.5, tau_h=0.15, tau_plus=0.0):
    """Straight from the equations, one query and one negative at a time (float64)."""
    b, v, _ = queries.shape
    k = keys.shape[0]
    total = 0.0
    for i in range(b):
        for a in range(v):
            q = queries[i, a]
            pos, neg_s = [], []
            for j in range(k):
                for c in range(v):
                    if j == offset + i and c == a:
                        continue  # the query itself
                    s = float(q @ keys[j, c])
                    (pos if j == offset + i else neg_s).append(s)
            p = sum(math.exp(s / tau) for s in pos)  # Eq. 8
            n = [math.exp(s / tau) for s in neg_s]
            if kind == "infonce":
                qm = sum(n)  # Eq. 9
            elif kind == "hcl":
                n_bar = sum(n) / len(n)
                w = [beta * nij / n_bar for nij in n]  # Eq. 11
                qm = sum(wij * nij for wij, nij in zip(w, n))  # Eq. 12
                if tau_plus:
                    qm = max((qm - tau_plus * len(n) * p / len(pos)) / (1 - tau_plus), len(n) * math.exp(-1 / tau))
            else:
                z = sum(math.exp(s / tau_h) for s in neg_s)
                w_hard = [math.exp(s / tau_h) / z for s in neg_s]  # Eq. 14
                w = [(1 - alpha) / len(n) + alpha * wh for wh in w_hard]  # Eq. 15
                scale = len(n) / sum(w)
                qm = sum(scale * wij * nij for wij, nij in zip(w, n))  # Eq. 16
            total += -math.log(p / (p + qm))  # Eq. 10 / 13
    return total / (b * v)


@pytest.mark.parametrize("kind", ["infonce", "hcl", "soft_hcl"])
@pytest.mark.parametrize("v", [2, 3])
def test_matches_reference_single_process(kind, v):
    z = _emb(5, v, 8)
    loss = ContrastiveLoss(kind)(z, z, 0, 0.2)
    assert loss.item() == pytest.approx(reference_loss(z, z, 0, 0.2, kind), rel=1e-9)


@pytest.mark.parametrize("kind", ["infonce", "hcl", "soft_hcl"])
def test_matches_reference_with_gathered_keys(kind):
    keys = _emb(8, 2, 6, seed=1)  # G = 2 processes x B = 4
    queries = keys[4:8]  # rank 1's local samples
    loss = ContrastiveLoss(kind)(queries, keys, query_offset=4, temperature=0.1)
    assert loss.item() == pytest.approx(reference_loss(queries, keys, 4, 0.1, kind), rel=1e-9)


def test_hcl_equals_squared_mass_form_and_debiasing_reference():
    z = _emb(4, 2, 5, seed=2)
    # q_HCL = beta * sum n^2 / mean n (seed 000 §7.2.2): with beta = 2 the reweighted mass doubles.
    for beta in (1.0, 2.0):
        got = ContrastiveLoss("hcl", beta=beta)(z, z, 0, 0.2).item()
        assert got == pytest.approx(reference_loss(z, z, 0, 0.2, "hcl", beta=beta), rel=1e-9)
    got = ContrastiveLoss("hcl", tau_plus=0.1)(z, z, 0, 0.5).item()
    assert got == pytest.approx(reference_loss(z, z, 0, 0.5, "hcl", tau_plus=0.1), rel=1e-9)


def test_infonce_two_views_equals_cross_entropy():
    b, tau = 6, 0.15
    z = _emb(b, 2, 7, seed=3)
    flat = z.reshape(2 * b, 7)
    logits = flat @ flat.T / tau
    logits.fill_diagonal_(float("-inf"))  # the query is not its own key
    target = torch.arange(2 * b) ^ 1  # (i, 0) <-> (i, 1)
    ce = F.cross_entropy(logits, target)
    torch.testing.assert_close(ContrastiveLoss("infonce")(z, z, 0, tau), ce)


def test_soft_hcl_alpha_limits():
    z = _emb(4, 2, 5, seed=4)
    # alpha = 0 is pure uniform weighting = InfoNCE; alpha = 1 is the pure hardness distribution.
    torch.testing.assert_close(ContrastiveLoss("soft_hcl", alpha=0.0)(z, z, 0, 0.1), ContrastiveLoss("infonce")(z, z,
        0, 0.1))
    got = ContrastiveLoss("soft_hcl", alpha=1.0)(z, z, 0, 0.1).item()
    assert got == pytest.approx(reference_loss(z, z, 0, 0.1, "soft_hcl", alpha=1.0), rel=1e-9)


@pytest.mark.parametrize("kind", ["infonce", "hcl", "soft_hcl"])
def test_symmetric_under_consistent_permutation(kind):
    z = _emb(6, 2, 8, seed=5)
    loss = ContrastiveLoss(kind)
    base = loss(z, z, 0, 0.1)
    perm = torch.randperm(6, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(loss(z[perm], z[perm], 0, 0.1), base)
    swapped = z.flip(1)  # swap the two views of every sample
    torch.testing.assert_close(loss(swapped, swapped, 0, 0.1), base)


@pytest.mark.parametrize("kind", ["infonce", "hcl", "soft_hcl"])
def test_finite_loss_and_grads_at_tiny_temperature(kind):
    z = _emb(4, 2, 8, seed=6).float().requires_grad_(True)
    zn = F.normalize(z, dim=-1)
    loss = ContrastiveLoss(kind)(zn, zn, 0, 0.005)  # exp(1/0.005) overflows float32: log space must not
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(z.grad).all()


def test_better_alignment_gives_lower_loss():
    base = _emb(6, 1, 8, seed=7)
    aligned = torch.cat([base, F.normalize(base + 0.01 * _emb(6, 1, 8, seed=8), dim=-1)], dim=1)
    random_pairs = torch.cat([base, _emb(6, 1, 8, seed=9)], dim=1)
    for kind in ("infonce", "hcl", "soft_hcl"):
        loss = ContrastiveLoss(kind)
        assert loss(aligned, aligned, 0, 0.1) < loss(random_pairs, random_pairs, 0, 0.1)


def test_shape_errors_are_readable():
    loss = ContrastiveLoss()
    z = _emb(4, 2, 8)
    with pytest.raises(ValueError, match=r"\(B, V, D\)"):
        loss(z.reshape(8, 8), z, 0, 0.1)
    with pytest.raises(ValueError, match="share V"):
        loss(z, _emb(4, 3, 8), 0, 0.1)
    with pytest.raises(ValueError, match="query_offset"):
        loss(z, z, 1, 0.1)
    with pytest.raises(ValueError, match="2 views"):
        loss(z[:, :1], z[:, :1], 0, 0.1)
    with pytest.raises(ValueError, match="temperature"):
        loss(z, z, 0, 0.0)
    with pytest.raises(ValueError, match="unknown"):
        ContrastiveLoss("triplet")
