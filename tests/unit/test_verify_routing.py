"""`pigeonhole model verify` prints the routing numbers the manifest carries: calibration, the unknown
operating point and the per-class thresholds (and says so when a package has none)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pigeonhole_tools.training.cli import model_app

PACKAGE = Path(__file__).resolve().parents[2] / "layers" / "model"


def _verify(package: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("COLUMNS", "200")
    result = CliRunner().invoke(model_app, ["verify", str(package)])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result.output


def _row(output: str, label: str) -> list[str]:
    """The cells of the last table row whose first cell is `label` (the routing tables come last)."""
    rows = [[c.strip() for c in line.strip("│┃ ").split("│")] for line in output.splitlines()]
    found = [cells[1:] for cells in rows if cells and cells[0] == label]
    assert found, f"no row {label!r} in:\n{output}"
    return found[-1]


def test_a_package_with_routing_blocks_shows_its_numbers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "model"
    shutil.copytree(PACKAGE, package)
    raw: dict[str, Any] = json.loads((package / "manifest.json").read_text(encoding="utf-8"))
    hard = raw["classes"][5]
    raw["unknown"] = {
        "features": ["max_prob", "oov_share"],
        "weights": [-4.5, 3.25],
        "bias": 0.75,
        "threshold": 0.6125,
        "target": {"max_known_share_unknown": 0.05},
        "evaluation": {"held_out_recall": 0.8125},
    }
    raw["thresholds"]["per_class"] = {hard: 0.9375}
    raw["thresholds"]["selection"] = {  # the shape the build writes (pigeonhole_tools.training.decide)
        "target_auto_precision": 0.97,
        "eval": {"with_per_class": {"coverage": 0.8125, "auto_accuracy": 0.984375}},
        "classes": {hard: {"threshold": 0.9375, "eval": {"own": {"coverage": 0.4375, "auto_accuracy": 0.96875}}}},
    }
    raw["drift_baseline"]["unknown_rate"] = 0.0425
    quality = {"ece_15": 0.044, "brier": 0.12, "nll": 0.3, "accuracy": 0.924}
    raw["metrics"]["calibration"] = {
        "method": "temperature",
        "temperature": 1.375,
        "eval": {
            "fp32": {"before": quality, "after": {**quality, "ece_15": 0.0175}},
            "int8": {"before": quality, "after": {**quality, "ece_15": 0.0185}},
        },
    }
    (package / "manifest.json").write_text(json.dumps(raw), encoding="utf-8")

    out = _verify(package, monkeypatch)
    assert "Calibration: temperature, T = 1.3750" in out
    assert _row(out, "ECE (15 bins)")[-4:] == ["0.0440", "0.0175", "0.0440", "0.0185"]
    assert _row(out, "threshold") == ["0.6125"]
    assert _row(out, "weight oov_share") == ["3.2500"]
    assert _row(out, "target max_known_share_unknown") == ["0.0500"]
    assert _row(out, "measured held_out_recall") == ["0.8125"]
    assert _row(out, "drift baseline unknown rate") == ["0.0425"]
    assert _row(out, hard) == ["0.9375", "0.4375", "0.9688"]
    assert _row(out, "every other class")[1:] == ["0.8125", "0.9844"]
    assert "target auto-routed precision 0.9700" in out


def test_a_package_without_them_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = json.loads((PACKAGE / "manifest.json").read_text(encoding="utf-8"))
    out = _verify(PACKAGE, monkeypatch)
    if "unknown" not in raw or raw["unknown"] is None:
        assert _row(out, "unknown score")[0].startswith("none in this package")
    if not raw["thresholds"].get("per_class"):
        assert "(no per-class thresholds)" in out
    assert _row(out, "every other class")[0] == f"{raw['thresholds']['review_confidence']:.4f}"
