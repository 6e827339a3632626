"""Reading labelled CSV / JSONL strictly, and the seeded stratified split."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from pigeonhole.model.manifest import sha256_file
from pigeonhole_tools.training.data import load_labelled, stratified_split, take
from pigeonhole_tools.training.errors import DataError


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_loads_with_fingerprint(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.csv", 'text,category,extra\nwhere is my card,card,1\n"rate, please",fx,2\n')
    data = load_labelled(path, "text", "category")
    assert data.texts == ["where is my card", "rate, please"]
    assert data.labels == ["card", "fx"]
    assert data.rows == 2
    assert data.columns == ("text", "category", "extra")
    assert data.sha256 == sha256_file(path)
    assert data.fingerprint() == {
        "path": str(path),
        "sha256": data.sha256,
        "rows": 2,
        "columns": ["text", "category", "extra"],
    }


def test_csv_with_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufefftext,category\na,x\nb,y\n".encode())
    assert load_labelled(path, "text", "category").labels == ["x", "y"]


def test_jsonl_loads_and_stringifies_integer_labels(tmp_path: Path) -> None:
    lines = [{"text": "hello", "label": 1}, {}, {"text": "bye", "label": 2, "meta": "m"}]
    body = "\n".join("" if not line else json.dumps(line) for line in lines) + "\n"
    data = load_labelled(_write(tmp_path / "d.jsonl", body), "text", "label")
    assert data.texts == ["hello", "bye"]
    assert data.labels == ["1", "2"]
    assert data.columns == ("text", "label", "meta")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_labelled(tmp_path / "nope.csv", "text", "category")


def test_unsupported_extension(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unsupported extension"):
        load_labelled(_write(tmp_path / "d.parquet", "x"), "text", "category")


def test_missing_column_names_the_columns(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.csv", "utterance,category\na,x\nb,y\n")
    with pytest.raises(DataError, match=r"no column 'text'.*\['category', 'utterance'\]"):
        load_labelled(path, "text", "category")


def test_empty_csv(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="empty"):
        load_labelled(_write(tmp_path / "d.csv", ""), "text", "category")


def test_csv_rows_without_text_or_label_are_errors_with_line_numbers(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.csv", "text,category\nok,x\n   ,y\nfine,\nok,y\n")
    with pytest.raises(DataError, match=r"2 unusable rows: line 3: 'text'.*line 4: 'category'"):
        load_labelled(path, "text", "category")


def test_header_only_csv_has_no_rows(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no rows"):
        load_labelled(_write(tmp_path / "d.csv", "text,category\n"), "text", "category")


def test_invalid_json_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", "label": \n')
    with pytest.raises(DataError, match="line 2: not valid JSON"):
        load_labelled(path, "text", "label")


def test_json_line_that_is_not_an_object(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.jsonl", '{"text": "a", "label": "x"}\n["b", "y"]\n')
    with pytest.raises(DataError, match="line 2: expected a JSON object, got list"):
        load_labelled(path, "text", "label")


def test_json_non_string_text_and_boolean_label(tmp_path: Path) -> None:
    body = '{"text": 5, "label": "x"}\n{"text": "b", "label": true}\n{"text": "c", "label": "y"}\n'
    with pytest.raises(DataError, match=r"line 1: 'text'.*line 2: 'label'"):
        load_labelled(_write(tmp_path / "d.jsonl", body), "text", "label")


def test_single_label_is_not_a_classification_problem(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="fewer than two distinct labels"):
        load_labelled(_write(tmp_path / "d.csv", "text,category\na,x\nb,x\n"), "text", "category")


def test_non_utf8_csv(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_bytes(b"text,category\ncaf\xe9,x\n")
    with pytest.raises(DataError, match="UTF-8"):
        load_labelled(path, "text", "category")


def test_stratified_split_keeps_class_shares_and_is_seeded() -> None:
    labels = ["a"] * 50 + ["b"] * 30 + ["c"] * 10 + ["d"]
    kept, held = stratified_split(labels, 0.2, seed=7)
    assert Counter(take(labels, held)) == {"a": 10, "b": 6, "c": 2}  # "d" has one row: it stays in training
    assert np.intersect1d(kept, held).size == 0
    assert sorted(np.r_[kept, held].tolist()) == list(range(len(labels)))
    again_kept, again_held = stratified_split(labels, 0.2, seed=7)
    assert again_held.tolist() == held.tolist()
    assert again_kept.tolist() == kept.tolist()
    _, other = stratified_split(labels, 0.2, seed=8)
    assert other.tolist() != held.tolist()


def test_stratified_split_always_keeps_one_row_per_class() -> None:
    kept, held = stratified_split(["a", "a", "b", "b"], 0.9, seed=0)
    assert Counter(take(["a", "a", "b", "b"], kept)) == {"a": 1, "b": 1}
    assert held.size == 2


def test_stratified_split_refuses_a_split_that_holds_nothing_out() -> None:
    with pytest.raises(DataError, match="too small"):
        stratified_split(["a", "b", "c"], 0.2, seed=0)


def test_stratified_split_fraction_bounds() -> None:
    with pytest.raises(ValueError, match="within"):
        stratified_split(["a", "b"], 1.0, seed=0)
