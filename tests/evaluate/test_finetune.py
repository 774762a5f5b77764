import numpy as np
import pytest
import torch

from tessera.evaluate.config import FinetuneConfig
from tessera.evaluate.finetune import finetune_fold, layer_lr_scale, make_head, param_groups, predict_finetuned

from tests.evaluate.doubles import TinyEncoder, synthetic_set


def test_layerwise_lr_and_weight_decay_groups():
    enc = TinyEncoder(depth=3)
    cfg = FinetuneConfig()
    groups = param_groups(enc, make_head(enc.hidden_size, 3, 0.0, 0), cfg)
    lr_of = {n: g["lr"] for g in groups for n in g["names"]}
    wd_of = {n: g["weight_decay"] for g in groups for n in g["names"]}
    base, d, L = 5e-4, 0.65, 3
    for i in range(L):  # block i: base * 0.65 ** (L - i)
        assert lr_of[f"blocks.{i}.weight"] == pytest.approx(base * d ** (L - i))
    assert lr_of["norm.weight"] == pytest.approx(base * d)  # final norm belongs to the last block
    assert lr_of["embed.weight"] == pytest.approx(base * d ** (L + 1))  # embeddings: deepest decay
    assert lr_of["pos_embed"] == lr_of["embed.weight"]
    assert lr_of["head.2.weight"] == pytest.approx(base * 10)  # head lr x10
    assert wd_of["blocks.0.weight"] == 0.05 and wd_of["blocks.0.bias"] == 0.0
    assert wd_of["norm.weight"] == 0.0 and wd_of["pos_embed"] == 0.0 and wd_of["head.0.weight"] == 0.0
    assert layer_lr_scale(L, L, d) == pytest.approx(d)


def test_finetune_updates_backbone_on_a_copy_and_learns():
    enc = TinyEncoder()
    ls = synthetic_set(12, seed=2)
    original = {k: v.clone() for k, v in enc.module.state_dict().items()}
    cfg = FinetuneConfig(epochs=8, batch_size=8, lr=5e-3)
    idx = np.arange(len(ls))
    tuned, head = finetune_fold(enc, ls, idx, 3, cfg, seed=0)
    changed = [k for k, v in tuned.module.state_dict().items() if not torch.equal(v, original[k])]
    assert "embed.weight" in changed and "blocks.0.weight" in changed  # the whole backbone trains
    assert all(torch.equal(v, original[k]) for k,
               v in enc.module.state_dict().items())  # the input encoder is untouched
    pred = predict_finetuned(tuned, head, ls, idx)
    assert (pred == ls.labels).mean() > 0.6  # it fitted the training set (chance 1/3)
