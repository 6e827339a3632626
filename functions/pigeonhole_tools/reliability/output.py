"""Where the real handlers' stdout goes during a long run: their JSON logs and EMF metrics, to a file or nowhere.

Powertools binds each Logger's stream when the handler module is imported; those streams are pointed
at the file for the run and back afterwards, and ``print`` (EMF) follows ``sys.stdout``.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO


@contextlib.contextmanager
def handler_output(loggers: Sequence[Any], log_file: Path | None) -> Iterator[TextIO]:
    """Redirect stdout and the given Powertools loggers' handlers to ``log_file`` (default: os.devnull)."""
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
    path = str(log_file) if log_file is not None else os.devnull
    with open(path, "w", encoding="utf-8") as sink:
        saved: list[tuple[logging.StreamHandler[Any], Any]] = []
        propagating: list[tuple[logging.Logger, bool]] = []
        for logger in loggers:
            handler = getattr(logger, "registered_handler", None)
            if isinstance(handler, logging.StreamHandler):
                saved.append((handler, handler.setStream(sink)))
            inner = getattr(logger, "_logger", None)  # Powertools' stdlib logger: it propagates to the root
            if isinstance(inner, logging.Logger):
                propagating.append((inner, inner.propagate))
                inner.propagate = False  # (a test runner's root handler would keep every record in memory)
        try:
            with contextlib.redirect_stdout(sink):
                yield sink
        finally:
            for handler, stream in saved:
                handler.setStream(stream)
            for inner, propagate in propagating:
                inner.propagate = propagate


@contextlib.contextmanager
def quiet(names: Sequence[str], level: int = logging.ERROR) -> Iterator[None]:
    """Raise these loggers' level for the run (the poller warns once per failed batch: thousands under faults)."""
    saved = [(logging.getLogger(n), logging.getLogger(n).level) for n in names]
    for logger, _ in saved:
        logger.setLevel(level)
    try:
        yield
    finally:
        for logger, previous in saved:
            logger.setLevel(previous)
