"""Labelled data: read CSV or JSONL strictly, fingerprint the file, split it reproducibly.

Reading is strict on purpose: a row without text or label is an error with its line number, not a
silently smaller training set, so the fingerprint in the manifest describes what really trained.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

from pigeonhole.model.manifest import sha256_file
from pigeonhole_tools.training.errors import DataError

CSV_SUFFIXES = (".csv",)
JSONL_SUFFIXES = (".jsonl", ".ndjson")
_MAX_REPORTED = 5

T = TypeVar("T")


@dataclass(frozen=True)
class LabelledData:
    """Texts and labels of one file, with what identifies the file (path as given, sha256, columns)."""

    source: str
    sha256: str
    columns: tuple[str, ...]
    texts: list[str]
    labels: list[str]

    @property
    def rows(self) -> int:
        return len(self.texts)

    def fingerprint(self) -> dict[str, object]:
        return {"path": self.source, "sha256": self.sha256, "rows": self.rows, "columns": list(self.columns)}


def load_labelled(path: Path | str, text_column: str, label_column: str) -> LabelledData:
    """Read a labelled CSV (header row) or JSONL (one object a line) file; raise DataError on anything odd."""
    source = str(path)
    p = Path(path)
    if not p.is_file():
        raise DataError(f"data file {source} does not exist or is not a file")
    suffix = p.suffix.lower()
    if suffix in CSV_SUFFIXES:
        columns, records = _read_csv(p)
    elif suffix in JSONL_SUFFIXES:
        columns, records = _read_jsonl(p)
    else:
        raise DataError(f"data file {source}: unsupported extension {p.suffix!r} (use .csv, .jsonl or .ndjson)")
    for column in (text_column, label_column):
        if column not in columns:
            raise DataError(f"data file {source} has no column {column!r}; columns are {sorted(columns)}")
    texts: list[str] = []
    labels: list[str] = []
    problems: list[str] = []
    for line, record in records:
        text, label = record.get(text_column), record.get(label_column)
        if not isinstance(text, str) or not text.strip():
            problems.append(f"line {line}: {text_column!r} is empty or not a string")
            continue
        if isinstance(label, bool) or not isinstance(label, str | int) or not str(label).strip():
            problems.append(f"line {line}: {label_column!r} is empty or not a string/integer")
            continue
        texts.append(text)
        labels.append(str(label).strip())
    if problems:
        shown = "; ".join(problems[:_MAX_REPORTED])
        more = f" (and {len(problems) - _MAX_REPORTED} more)" if len(problems) > _MAX_REPORTED else ""
        raise DataError(f"data file {source}: {len(problems)} unusable rows: {shown}{more}")
    if not texts:
        raise DataError(f"data file {source} has no rows")
    if len(set(labels)) < 2:
        raise DataError(f"data file {source} has fewer than two distinct labels in {label_column!r}")
    return LabelledData(source=source, sha256=sha256_file(p), columns=columns, texts=texts, labels=labels)


def _read_csv(path: Path) -> tuple[tuple[str, ...], list[tuple[int, dict[str, object]]]]:
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            columns = tuple(reader.fieldnames or ())
            # DictReader.line_num counts physical lines, so quoted multi-line texts still report the right line.
            records = [(reader.line_num, dict(row)) for row in reader]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"data file {path} is not a readable UTF-8 CSV: {exc}") from exc
    if not columns:
        raise DataError(f"data file {path} is empty (a CSV needs a header row)")
    return columns, records


def _read_jsonl(path: Path) -> tuple[tuple[str, ...], list[tuple[int, dict[str, object]]]]:
    records: list[tuple[int, dict[str, object]]] = []
    columns: dict[str, None] = {}
    try:
        with path.open(encoding="utf-8-sig") as fh:
            for number, raw in enumerate(fh, start=1):
                if not raw.strip():
                    continue
                try:
                    obj = json.loads(raw)
                except json.JSONDecodeError as exc:
                    raise DataError(f"data file {path}, line {number}: not valid JSON ({exc.msg})") from exc
                if not isinstance(obj, dict):
                    raise DataError(
                        f"data file {path}, line {number}: expected a JSON object, got {type(obj).__name__}"
                    )
                columns.update(dict.fromkeys(obj))
                records.append((number, obj))
    except UnicodeDecodeError as exc:
        raise DataError(f"data file {path} is not UTF-8: {exc}") from exc
    return tuple(columns), records


def stratified_split(labels: Sequence[str], fraction: float, seed: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Indices (kept, held_out): each class gives round(n * fraction) rows, but always keeps at least one.

    Done per class with a seeded generator rather than with scikit-learn's splitter so that a class
    with a single example stays in training instead of failing the whole build.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"the held-out fraction must be within (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    by_class: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_class.setdefault(label, []).append(i)
    held: list[int] = []
    for label in sorted(by_class):
        members = np.asarray(by_class[label], dtype=np.int64)
        n_held = min(len(members) - 1, int(np.floor(len(members) * fraction + 0.5)))
        if n_held > 0:
            held.extend(rng.permutation(members)[:n_held].tolist())
    held_arr = np.sort(np.asarray(held, dtype=np.int64))
    kept_arr = np.setdiff1d(np.arange(len(labels), dtype=np.int64), held_arr)
    if held_arr.size == 0:
        raise DataError(f"a held-out fraction of {fraction} leaves no row to hold out: the data set is too small")
    return kept_arr, held_arr


def take(items: Sequence[T], indices: NDArray[np.int64]) -> list[T]:
    return [items[int(i)] for i in indices]
