"""``model.attn_implementation``: SDPA and eager attention give the same encoder and decoder outputs; the
``train.compile`` path compiles the step's modules where torch.compile can run and says why where not."""

from __future__ import annotations

import dataclasses
import os

import pytest
import torch

from tessera.models.config import ModelConfig
from tessera.models.pretrain_model import build_pretrain_model, compile_model, compile_unsupported


def _pair(**kw):
    cfg = ModelConfig(preset="vit_micro_patch8_32", proj_hidden=32, proj_dim=16, **kw)
    models = []
    for impl in ("sdpa", "eager"):
        torch.manual_seed(0)
        models.append(build_pretrain_model(dataclasses.replace(cfg, attn_implementation=impl)).eval())
    return models


@pytest.mark.parametrize("registers", [0, 2])
def test_sdpa_and_eager_attention_give_the_same_outputs(registers):
    sdpa, eager = _pair(registers=registers)
    assert sdpa.encoder.backbone.config._attn_implementation == "sdpa"
    assert eager.encoder.backbone.config._attn_implementation == "eager"
    assert eager.decoder.config._attn_implementation == "eager"
    x = torch.rand(3, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    noise = torch.rand(3, 16, generator=torch.Generator().manual_seed(2))  # same noise -> same kept patches
    with torch.no_grad():
        a, b = sdpa.encoder(x), eager.encoder(x)
        ra, rb = sdpa.reconstruct(x, noise=noise), eager.reconstruct(x, noise=noise)
    for name in ("cls", "registers", "patches"):
        assert torch.allclose(getattr(a, name), getattr(b, name), atol=1e-5, rtol=1e-4), name
    assert torch.equal(ra["mask"], rb["mask"])
    assert torch.allclose(ra["pred"], rb["pred"], atol=1e-5, rtol=1e-4)  # encoder + MAE decoder


def test_compile_support_is_reported_and_compile_keeps_parameter_names():
    reason = compile_unsupported(torch.device("cpu"))
    model = build_pretrain_model(ModelConfig(preset="vit_micro_patch8_32", proj_hidden=32, proj_dim=16))
    names = list(model.state_dict())
    if reason is not None:
        with pytest.warns(UserWarning, match="train.compile"):
            assert compile_model(model, torch.device("cpu")) == []
        pytest.skip(f"torch.compile cannot run here: {reason}")
    compiled = compile_model(model, torch.device("cpu"))
    assert compiled == ["encoder", "decoder", "projection"]
    assert list(model.state_dict()) == names  # nn.Module.compile is in place: checkpoints keep their keys


def _compiled_matches_eager(backend: str) -> None:
    torch.manual_seed(0)
    model = build_pretrain_model(ModelConfig(preset="vit_micro_patch8_32", proj_hidden=32, proj_dim=16)).eval()
    x = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expect = model.encoder(x).patches
        assert compile_model(model, torch.device("cpu"), backend=backend) == ["encoder", "decoder", "projection"]
        got = model.encoder(x).patches
    assert torch.allclose(expect, got, atol=1e-5, rtol=1e-4)


def test_compiled_encoder_graph_matches_eager():
    """TorchDynamo capture + AOT autograd of the encoder (backend aot_eager: the graph, without Inductor's code
    generation, which takes ~80 s on a 2-core CPU)."""
    if compile_unsupported(torch.device("cpu")) is not None:
        pytest.skip(f"torch.compile cannot run here: {compile_unsupported(torch.device('cpu'))}")
    _compiled_matches_eager("aot_eager")


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("TESSERA_TEST_INDUCTOR") != "1",
                    reason="Inductor's CPU code generation takes ~80 s on 2 cores; set TESSERA_TEST_INDUCTOR=1 "
                           "(benchmarks/gpu_suite.sh runs the compiled step on the GPU)")
def test_inductor_compiled_encoder_matches_eager():
    if compile_unsupported(torch.device("cpu")) is not None:
        pytest.skip(f"torch.compile cannot run here: {compile_unsupported(torch.device('cpu'))}")
    _compiled_matches_eager("inductor")
