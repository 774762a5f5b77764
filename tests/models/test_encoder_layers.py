"""Multi-layer readout in one pass, the extra readouts, attention maps and the cached fingerprint (issue 11)."""

import pytest
import torch

from tessera.models import build_pretrain_model
from tessera.models import encoder as encoder_mod
from tessera.models.encoder import Encoder

from tests.models._helpers import micro_cfg


def _encoder(**kw) -> Encoder:
    torch.manual_seed(0)
    return Encoder(build_pretrain_model(micro_cfg(**kw)).encoder, name="micro")


def _count_embedding_calls(enc):
    calls = []
    enc.module.adapter.register_forward_hook(lambda *a: calls.append(1))
    return calls


@pytest.mark.parametrize("readout", ["mean_patch", "cls", "mean_patch+cls"])
def test_multi_layer_embed_equals_per_layer_calls_in_one_forward(readout):
    enc = _encoder(registers=2)
    images = torch.rand(3, 1, 40, 40)  # not the model size: resized inside
    calls = _count_embedding_calls(enc)
    multi = enc.embed(images, readout=readout, layers=[0, -1])
    assert len(calls) == 1 and sorted(multi) == [0, enc.num_layers - 1]
    for block, feats in multi.items():
        single = enc.embed(images, readout=readout, layer=block)
        torch.testing.assert_close(feats, single, rtol=1e-5, atol=1e-6)
    assert len(calls) == 1 + len(multi)
    width = 2 * enc.hidden_size if readout == "mean_patch+cls" else enc.hidden_size
    assert multi[0].shape == (3, width)


def test_multi_layer_tokens_and_out_of_range():
    enc = _encoder()
    images = torch.rand(2, 1, 32, 32)
    toks = enc.tokens(images, layers=[0, 1])
    torch.testing.assert_close(toks[0]["patches"], enc.tokens(images, layer=0)["patches"])
    with pytest.raises(ValueError, match="out of range"):
        enc.embed(images, layers=[5])


def test_attention_maps_are_row_stochastic_and_match_eager_path():
    enc = _encoder(registers=1)
    images = torch.rand(2, 1, 32, 32)
    attn = enc.attention(images)
    t = 1 + 1 + (32 // 8) ** 2
    heads = enc.module.config.num_attention_heads
    assert attn.shape == (2, heads, t, t)
    torch.testing.assert_close(attn.sum(-1), torch.ones(2, heads, t))
    # The block's output computed from these weights equals the block's own forward (eager attention).
    block = enc.module.blocks[-1]
    captured = {}
    block.register_forward_pre_hook(lambda _m, args: captured.setdefault("h", args[0]))
    with torch.no_grad():
        enc.module.eval()
        enc.module(enc.prepare(images))
        h = captured["h"]
        a = block.attention
        v = a.v_proj(block.layernorm_before(h)).view(2, t, heads, -1).transpose(1, 2)
        ctx = (attn @ v).transpose(1, 2).reshape(2, t, -1)
        mine = h + a.o_proj(ctx)
        ref = h + a(block.layernorm_before(h))[0]
    torch.testing.assert_close(mine, ref, rtol=1e-4, atol=1e-5)


def test_fingerprint_cached_until_weights_change(monkeypatch):
    enc = _encoder()
    calls = []
    real = encoder_mod._fingerprint
    monkeypatch.setattr(encoder_mod, "_fingerprint", lambda *a: calls.append(1) or real(*a))
    first = enc.fingerprint
    assert enc.fingerprint == first and len(calls) == 1  # computed once per set of weights
    # An in-place optimizer update must invalidate it (foreach and for-loop AdamW both bump _version).
    for foreach in (False, True):
        params = [p for p in enc.module.parameters() if p.requires_grad]
        for p in params:
            p.grad = torch.ones_like(p)
        before = enc.fingerprint
        torch.optim.AdamW(params, lr=1e-3, foreach=foreach).step()
        after = enc.fingerprint
        assert after != before
    n = len(calls)
    # load_state_dict of the same weights: recomputed (version bumped) but equal.
    enc.module.load_state_dict(enc.module.state_dict())
    assert enc.fingerprint == after and len(calls) == n + 1
    # .data writes bypass version counters: the documented escape hatch.
    with torch.no_grad():
        next(enc.module.parameters()).data.add_(1.0)
    enc.invalidate_fingerprint()
    assert enc.fingerprint != after
