"""Publishing exported encoders on the Hugging Face Hub, and loading them back (issue 19).

Both go through ``huggingface_hub`` and so honour its environment: ``HF_ENDPOINT`` (another Hub, or the local
stand-in of the tests), ``HF_TOKEN`` / the saved login, ``HF_HUB_OFFLINE``. Nothing here knows the Hub's HTTP
protocol; the tests check the calls against a local stand-in server implementing the endpoints used.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tessera.errors import TesseraError

MODEL = "model"  # a run directory's exported encoder (tessera.train.run.MODEL; not imported: hub sits above train)


def check_repo_id(repo_id: str) -> str:
    """``namespace/name`` or ``name`` as the Hub spells them; a one-line error otherwise."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise TesseraError(f"--push-to-hub {repo_id}: not a valid Hub repository id ({exc})") from None
    return repo_id


def _source_of(run_dir: Path) -> tuple[Path, Path | None]:
    """(the exported model directory, the run directory describing it or None) of a run or export ``RUN``."""
    from tessera.models.card import RUN_CONFIG
    from tessera.models.export import TESSERA_JSON

    if (run_dir / MODEL / TESSERA_JSON).is_file():
        return run_dir / MODEL, run_dir
    if (run_dir / TESSERA_JSON).is_file():  # an export; a run's own model/ is still described by its run
        parent = run_dir.parent
        return run_dir, parent if run_dir.name == MODEL and (parent / RUN_CONFIG).is_file() else None
    if not run_dir.is_dir():
        raise TesseraError(f"{run_dir}: no such run directory")
    raise TesseraError(f"{run_dir}: neither a run directory with an exported {MODEL}/ nor an exported model directory "
                       f"({TESSERA_JSON} missing)")


def _prepare_out(out: Path, source: Path) -> None:
    """Empty ``out`` of a previous export (rewrite) or create it; refuse a folder holding anything else."""
    from tessera.models.export import TESSERA_JSON

    if out.exists() and not out.is_dir():
        raise TesseraError(f"--out {out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not (out / TESSERA_JSON).is_file():
            raise TesseraError(f"--out {out}: a non-empty directory that is not an exported model; "
                               "choose another --out")
        if source.resolve() in out.resolve().parents or out.resolve() in source.resolve().parents:
            raise TesseraError(f"--out {out}: nested with the model directory {source}")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def export_run(run_dir: str | Path, out: str | Path, eval_dir: str | Path | None = None,
               store: str | Path | None = None, repo_id: str | None = None) -> Path:
    """Copy the encoder of run (or export) ``run_dir`` to ``out`` byte for byte and write its model card there
    (:func:`tessera.models.card.build_card`); ``out`` may be the source itself (only the card is rewritten).
    Every input is checked (the card is built) before anything is written. Returns ``out``."""
    from tessera.io import atomic_write_text
    from tessera.models.card import CARD, build_card

    source, run = _source_of(Path(run_dir))
    out = Path(out)
    card = build_card(source, run_dir=run, eval_dir=eval_dir, store=store, repo_id=repo_id)
    if not (out.exists() and out.resolve() == source.resolve()):
        _prepare_out(out, source)
        for path in sorted(source.iterdir()):
            if path.is_file() and path.name != CARD:
                shutil.copy2(path, out / path.name)
    atomic_write_text(out / CARD, str(card))
    return out


def push_folder(folder: str | Path, repo_id: str, private: bool = False, token: str | None = None,
                commit_message: str = "Upload tessera encoder") -> str:
    """Create model repo ``repo_id`` if needed (``HfApi.create_repo(exist_ok=True)``) and upload every file of
    ``folder`` to it (``upload_folder``); returns the commit URL."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(token=token)
    try:
        repo = api.create_repo(repo_id, repo_type="model", private=private or None, exist_ok=True)
        commit = api.upload_folder(repo_id=repo.repo_id, folder_path=str(folder), repo_type="model",
                                   commit_message=commit_message)
    except ValueError as exc:  # upload_folder's README.md metadata check (the Hub's validate-yaml)
        raise TesseraError(f"--push-to-hub {repo_id}: {str(exc).splitlines()[0]} {' '.join(str(exc).splitlines()[1:])}"
                           ) from exc
    except HfHubHTTPError as exc:
        raise TesseraError(f"--push-to-hub {repo_id}: the Hub refused the upload ({str(exc).splitlines()[0]})") from exc
    return str(commit.commit_url if hasattr(commit, "commit_url") else commit)


def download(repo_id: str, revision: str | None = None, cache_dir: str | Path | None = None) -> Path:
    """A local snapshot of Hub repo ``repo_id`` (``snapshot_download``)."""
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(repo_id, revision=revision, cache_dir=cache_dir))


def load_from_hub(repo_id: str, revision: str | None = None, device=None, cache_dir: str | Path | None = None):
    """The encoder of a tessera export published on the Hub: its snapshot, loaded by :func:`tessera.load`
    (registers and input adapter included, which a plain ``from_pretrained`` of the backbone would not restore)."""
    from tessera.models.load import load

    return load(str(download(repo_id, revision=revision, cache_dir=cache_dir)), device=device)
