"""Progress reporting that suits where the output goes (issue 17, "Terminal output").

:func:`progress_bar` is a drop-in for the ``tqdm(...)`` calls of this codebase (``update``, ``set_postfix``,
``set_description``, ``close``, context manager, iteration, ``initial=``): a tqdm bar when stderr is a
terminal, else one plain line every ``every`` steps or every ``seconds`` seconds (whichever comes first) and
a last line on close, so a log file gets no carriage returns or cursor-up codes.

:func:`set_quiet` (``--quiet`` of every command) turns every bar off, and quiets the third-party bars and
warnings: transformers' "Loading weights" / "Writing model shards" bars and its logging, huggingface_hub's
download bars, and Python warnings from other packages (tessera's own warnings stay visible).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import warnings
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

_QUIET = False


_HF_ENV = {"HF_HUB_DISABLE_PROGRESS_BARS": "1", "TRANSFORMERS_VERBOSITY": "error"}


def silence_hf_bars() -> None:
    """Turn off the Hugging Face bars ("Loading weights", "Writing model shards", downloads) and transformers'
    info/warning logging. Set through the environment (read when the libraries are imported) and, when they
    are imported already, through their switches: importing transformers just to silence it costs seconds."""
    os.environ.update(_HF_ENV)
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()


def set_quiet(quiet: bool = True) -> None:
    """Silence every progress bar of this process (ours and the Hugging Face libraries') and third-party warnings."""
    global _QUIET
    _QUIET = bool(quiet)
    if not quiet:
        return
    silence_hf_bars()
    # Third-party warnings (torch, transformers, astropy...) are not the user's to act on; ours are.
    warnings.filterwarnings("ignore")
    warnings.filterwarnings("default", module=r"tessera(\..*)?$")


def is_quiet() -> bool:
    return _QUIET


@contextlib.contextmanager
def output_mode(quiet: bool = False, stream: TextIO | None = None):
    """How a command talks, inside this block only (``tessera.cli.main`` runs each command in one).

    ``quiet``: :func:`set_quiet`. Otherwise, when ``stream`` (stderr) is not a terminal, the Hugging Face
    bars are turned off: they would fill a log file with carriage returns, and our own
    :func:`progress_bar` already writes plain lines there. Everything is restored on exit, so calling the
    CLI in-process (as the tests do) does not leave the process quiet.
    """
    global _QUIET
    stream = stream if stream is not None else sys.stderr
    if not quiet and _is_tty(stream):
        yield
        return
    saved_flag = _QUIET
    saved_env = {k: os.environ.get(k) for k in _HF_ENV}
    hf = _hf_state()
    with warnings.catch_warnings():
        if quiet:
            set_quiet(True)
        else:
            silence_hf_bars()
        try:
            yield
        finally:
            _QUIET = saved_flag
            for key, value in saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            _restore_hf_state(hf, saved_env)


def _hf_state() -> dict:
    state: dict = {}
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import are_progress_bars_disabled

        state["hub_disabled"] = are_progress_bars_disabled()
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        state["verbosity"], state["bars"] = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    return state


def _restore_hf_state(state: dict, saved_env: dict) -> None:
    """Put the libraries back as they were (or at their defaults when they were imported inside the block)."""
    default_off = saved_env.get("HF_HUB_DISABLE_PROGRESS_BARS") not in (None, "", "0")
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars, enable_progress_bars

        with warnings.catch_warnings():  # the hub warns when its import-time env var still says "off"
            warnings.simplefilter("ignore")
            (disable_progress_bars if state.get("hub_disabled", default_off) else enable_progress_bars)()
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity(state.get("verbosity", hf_logging.WARNING))
        with warnings.catch_warnings():  # transformers' switch calls the hub's, which warns the same way
            warnings.simplefilter("ignore")
            (hf_logging.enable_progress_bar if state.get("bars",
                                                         not default_off) else hf_logging.disable_progress_bar)()


def _is_tty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class PlainProgress:
    """Progress as plain lines: ``desc: n/total (rate unit/s) key=value ...`` every ``every`` steps or ``seconds``."""

    def __init__(
        self,
        iterable: Iterable | None = None,
        total: int | None = None,
        desc: str = "",
        every: int | None = None,
        seconds: float = 10.0,
        unit: str = "it",
        initial: int = 0,
        stream: TextIO | None = None,
    ):
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.every = every if every is not None else max(1, (total or 100) // 10)
        self.seconds = seconds
        self.n = self._last_n = self._start_n = int(initial)
        self.stream = stream if stream is not None else sys.stderr
        self.postfix = ""
        self._start = self._last_t = time.monotonic()
        self.closed = False

    # -- the tqdm surface used in tessera ------------------------------------------------------------------
    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if self.n - self._last_n >= self.every or now - self._last_t >= self.seconds:
            self._emit(now)

    def set_postfix(self, ordered_dict: dict | None = None, refresh: bool = True, **kwargs: Any) -> None:
        items = dict(ordered_dict or {}, **kwargs)
        self.postfix = " ".join(f"{k}={_fmt(v)}" for k, v in items.items())

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        self.desc = desc or ""

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.n != self._last_n:
            self._emit(time.monotonic())

    def __iter__(self) -> Iterator:
        if self.iterable is None:
            raise TypeError("progress_bar() without an iterable cannot be iterated")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> "PlainProgress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- output --------------------------------------------------------------------------------------------
    def line(self, now: float | None = None) -> str:
        now = time.monotonic() if now is None else now
        elapsed = max(now - self._start, 1e-9)
        done = f"{self.n}/{self.total}" if self.total is not None else str(self.n)
        rate = (self.n - self._start_n) / elapsed
        text = f"{self.desc + ': ' if self.desc else ''}{done} {self.unit} ({rate:.2f} {self.unit}/s, {elapsed:.0f} s)"
        return f"{text} {self.postfix}" if self.postfix else text

    def _emit(self, now: float) -> None:
        self._last_n, self._last_t = self.n, now
        try:
            print(self.line(now), file=self.stream, flush=True)
        except (OSError, ValueError):  # a closed or broken stream must not stop the work
            pass


class _NullProgress(PlainProgress):
    """Counts but prints nothing (``disable=True`` or ``--quiet``)."""

    def _emit(self, now: float) -> None:
        self._last_n, self._last_t = self.n, now


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def progress_bar(
    iterable: Iterable | None = None,
    total: int | None = None,
    desc: str = "",
    disable: bool | None = False,
    every: int | None = None,
    seconds: float = 10.0,
    unit: str = "it",
    initial: int = 0,
    stream: TextIO | None = None,
    **tqdm_kwargs: Any,
):
    """A tqdm bar on a terminal, plain lines otherwise, nothing when ``disable`` or quiet.

    ``disable=None`` means "only on a terminal" (tqdm's meaning): no plain lines either. Extra keyword
    arguments (``leave``, ``dynamic_ncols``...) go to tqdm and are ignored by the plain form.
    """
    stream = stream if stream is not None else sys.stderr
    tty = _is_tty(stream)
    if disable or _QUIET or (disable is None and not tty):
        return _NullProgress(iterable, total, desc, every, seconds, unit, initial, stream)
    if tty:
        from tqdm import tqdm

        return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, file=stream, **tqdm_kwargs)
    return PlainProgress(iterable, total, desc, every, seconds, unit, initial, stream)
