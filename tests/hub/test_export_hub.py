"""Model cards, `tessera export`, and publishing to a local stand-in of the Hugging Face Hub (issue 19)."""

from __future__ import annotations

import json

import pytest
import torch

from tessera.cli import main
from tests.hub.standin import HubStandIn

MODEL = "random:vit_micro_patch8_32"
TABLE = "| model | protocol | macro_f1 |\n|---|---|---|\n| mine | linear | 0.812 ± 0.010 |\n"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run directory as `tessera pretrain` leaves it: config.yaml, corpus.json and model/ (a micro ViT)."""
    from tessera.config import save_config
    from tessera.models.export import export_model
    from tessera.models.load import load
    from tessera.train.config import resolve_pretrain_config

    run = tmp_path_factory.mktemp("run") / "run"
    run.mkdir()
    save_config(resolve_pretrain_config("cpu", []), run)
    (run / "corpus.json").write_text(json.dumps({"manifest_sha256": "ab" * 32, "cutouts": 50}))
    export_model(load(MODEL).module, run / "model", card_context={"run_dir": run})
    return run


@pytest.fixture
def eval_dir(tmp_path):
    d = tmp_path / "eval"
    d.mkdir()
    (d / "comparison.md").write_text(TABLE)
    return d


def _card(path):
    from huggingface_hub import ModelCard

    return ModelCard.load(path / "README.md")


def _embed(ref_or_encoder, seed: int = 0):
    from tessera.models.load import load

    enc = load(ref_or_encoder) if isinstance(ref_or_encoder, str) else ref_or_encoder
    x = torch.rand(3, 1, 32, 32, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return enc.embed(x)


def test_a_runs_export_carries_a_card_with_corpus_and_recipe(run_dir):
    card = _card(run_dir / "model")
    assert card.data.library_name == "tessera"
    assert card.data.pipeline_tag == "feature-extraction"
    assert {"tessera", "vit_mae", "reconstruction", "contrastive"} <= set(card.data.tags)
    assert "- cutouts: 50" in card.text and "ab" * 32 in card.text
    assert "Stages: reconstruction then contrastive." in card.text
    assert "batch_size_reconstruction:" in card.text  # the resolved config.yaml is in the card


def test_export_command_copies_the_model_and_adds_the_eval_table(run_dir, eval_dir, tmp_path):
    out = tmp_path / "out"
    assert main(["export", str(run_dir), "--out", str(out), "--eval", str(eval_dir), "--quiet"]) == 0
    source = run_dir / "model"
    for f in source.iterdir():
        if f.name != "README.md":
            assert (out / f.name).read_bytes() == f.read_bytes()
    assert {f.name for f in out.iterdir()} == {f.name for f in source.iterdir()}
    card = _card(out)
    assert TABLE.strip() in card.text and card.data.library_name == "tessera"
    assert torch.equal(_embed(str(out)), _embed(str(run_dir)))


def test_export_rewrites_a_previous_export_and_its_own_source(run_dir, eval_dir, tmp_path):
    out = tmp_path / "out"
    assert main(["export", str(run_dir), "--out", str(out), "--quiet"]) == 0
    (out / "stale.bin").write_bytes(b"x")
    assert main(["export", str(run_dir), "--out", str(out), "--eval", str(eval_dir), "--quiet"]) == 0
    assert not (out / "stale.bin").exists() and TABLE.strip() in _card(out).text
    assert main(["export", str(out), "--out", str(out), "--quiet"]) == 0  # in place: the card only
    assert TABLE.strip() not in _card(out).text and (out / "model.safetensors").is_file()


def test_export_describes_the_store_given_with_corpus(run_dir, tmp_path):
    from tests.search.conftest import ingest, write_mosaic

    store = ingest([write_mosaic(tmp_path / "m", "a.fits", 1, 150.0, 2.0)], tmp_path / "store")
    out = tmp_path / "out"
    assert main(["export", str(run_dir), "--out", str(out), "--corpus", str(store), "--quiet"]) == 0
    text = _card(out).text
    assert "- inputs: 1" in text and "- tile: 32" in text


@pytest.mark.parametrize("argv, message", [
    (["--eval", "{tmp}/nowhere"], "not a `tessera evaluate` output directory"),
    (["--push-to-hub", "bad id!"], "not a valid Hub repository id"),
    (["--corpus", "{tmp}"], "not a cutout store"),
])
def test_bad_input_is_one_line_and_writes_nothing(run_dir, tmp_path, capsys, argv, message):
    out = tmp_path / "out"
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(["export", str(run_dir), "--out", str(out), *argv, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_export_refuses_a_foreign_out_and_a_missing_run(run_dir, tmp_path, capsys):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    assert main(["export", str(run_dir), "--out", str(tmp_path / "busy"), "--quiet"]) == 2
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"
    assert main(["export", str(tmp_path / "norun"), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "not an exported model" in err and "no such run directory" in err


@pytest.fixture
def hub(monkeypatch):
    """The stand-in Hub, with huggingface_hub pointed at it (what HF_ENDPOINT does at import time)."""
    import huggingface_hub.constants as C

    with HubStandIn() as standin:
        monkeypatch.setattr(C, "ENDPOINT", standin.url)
        monkeypatch.setattr(C, "HUGGINGFACE_CO_URL_TEMPLATE", standin.url + "/{repo_id}/resolve/{revision}/{filename}")
        monkeypatch.setattr(C, "HF_HUB_OFFLINE", False)
        monkeypatch.setenv("HF_TOKEN", "hf_standin")
        yield standin


def test_push_to_hub_uploads_exactly_the_export_and_loads_back_the_same_encoder(run_dir, eval_dir, tmp_path, hub):
    from tessera.hub import load_from_hub

    out = tmp_path / "out"
    assert main(["export", str(run_dir), "--out", str(out), "--eval", str(eval_dir), "--push-to-hub", "me/tiny",
                 "--quiet"]) == 0
    assert ("POST", "/api/repos/create") in hub.log and ("POST", "/api/models/me/tiny/commit/main") in hub.log
    assert hub.repos["me/tiny"] == {f.name: f.read_bytes() for f in out.iterdir()}
    assert hub.validated == [(out / "README.md").read_text()]  # the card passed the Hub's metadata check
    pulled = load_from_hub("me/tiny", cache_dir=tmp_path / "cache")
    assert torch.equal(_embed(pulled), _embed(str(run_dir)))


def test_push_of_a_card_the_hub_rejects_is_a_one_line_error(run_dir, tmp_path, hub):
    from tessera.errors import TesseraError
    from tessera.hub import export_run, push_folder

    out = export_run(run_dir, tmp_path / "out")
    (out / "README.md").write_text("---\nlibrary_name: [not, a, string]\ntags: tessera\n---\n\nbad card\n")
    with pytest.raises(TesseraError, match="Invalid metadata in README.md") as info:
        push_folder(out, "me/bad")
    assert "\n" not in str(info.value) and hub.repos.get("me/bad", {}) == {}


def test_from_pretrained_of_the_pushed_repo_is_the_exported_backbone(run_dir, tmp_path, hub):
    from transformers import AutoModel

    from tessera.hub import export_run, push_folder

    push_folder(export_run(run_dir, tmp_path / "out"), "me/plain")
    pulled = AutoModel.from_pretrained("me/plain", cache_dir=tmp_path / "cache").eval()
    local = AutoModel.from_pretrained(run_dir / "model").eval()
    x = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    noise = torch.arange(16, dtype=torch.float32).expand(2, 16)  # ViT-MAE: keep the patch order fixed
    with torch.no_grad():
        a = pulled(pixel_values=x, noise=noise).last_hidden_state
        b = local(pixel_values=x, noise=noise).last_hidden_state
    assert type(pulled) is type(local) and torch.equal(a, b)
    assert any(m == "GET" and p.startswith("/me/plain/resolve/") and p.endswith("model.safetensors")
               for m, p in hub.log)  # it came from the stand-in
