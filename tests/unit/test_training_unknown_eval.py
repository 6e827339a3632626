"""`pigeonhole model evaluate-unknown` on tiny synthetic intents: a real build per seed, intents it never
saw scored by the loaded package, and a report whose numbers hang together."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pigeonhole_tools.training.cli import model_app

_TOPICS = {
    "card_lost": ["lost", "stolen", "missing", "thief"],
    "exchange": ["rate", "currency", "euros", "conversion"],
    "top_up": ["topup", "reload", "deposit", "funds"],
    "transfer": ["transfer", "wire", "send", "recipient"],
    "pin": ["pin", "code", "blocked", "unlock"],
    "refund": ["refund", "return", "merchant", "money back"],
    "fees": ["fee", "charge", "commission", "cost"],
    "address": ["address", "moved", "postcode", "street"],
}
_FILLER = ["please", "help", "my", "the", "today", "urgent", "hi", "account", "card", "why", "is", "can you"]


def _write(path: Path, n_per_class: int, seed: int) -> None:
    rng = random.Random(seed)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "category"])
        for label, keywords in _TOPICS.items():
            for _ in range(n_per_class):
                words = [*rng.sample(_FILLER, 3), *rng.sample(keywords, 2)]
                rng.shuffle(words)
                writer.writerow([" ".join(words), label])


@pytest.mark.timeout(180)
def test_the_report_covers_each_seed_and_its_numbers_hang_together(tmp_path: Path) -> None:
    _write(tmp_path / "train.csv", 40, 1)
    _write(tmp_path / "test.csv", 15, 2)
    report = tmp_path / "report.json"
    args = ["evaluate-unknown", "--data", str(tmp_path / "train.csv"), "--eval-data", str(tmp_path / "test.csv")]
    args += ["--report", str(report), "--seeds", "0,1", "--unseen", "2", "--epochs", "15", "--hidden", "16"]
    args += ["--no-refit", "--latency-repeats", "2"]
    result = CliRunner().invoke(model_app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(report.read_text(encoding="utf-8"))
    runs = data["runs"]
    assert [r["seed"] for r in runs] == [0, 1]
    assert runs[0]["unseen_intents"] != runs[1]["unseen_intents"]
    for run in runs:
        assert len(run["unseen_intents"]) == 2
        assert run["n_unseen_test"] == 30
        assert run["n_known_test"] == 90
        op = run["operating_point"]
        assert 0.0 <= op["known_accuracy"] <= op["known_auto_share"] <= 1.0
        assert op["unseen_routed_away"] == pytest.approx(op["unseen_unknown"] + op["unseen_low_confidence"])
        for method in ("unknown_score", "max_prob"):
            points = run["curves"][method]
            assert points[-1]["unseen_recall"] == 0.0  # the infinite threshold flags nothing
            assert points[-1]["known_accuracy"] == pytest.approx(run["known_accuracy_no_routing"])
            assert 0.0 <= run["auroc"][method] <= 1.0
    summary = data["summary"]
    assert summary["seeds"] == [0, 1]
    assert set(summary["operating_point"]) >= {"known_accuracy", "unseen_routed_away"}
    assert "never-seen intents" in result.output
    assert data["unknown_features"] == ["max_prob", "hidden_distance", "oov_share"]

    # The report beside a package built from the same data: verify prints it and finds nothing to note.
    package = tmp_path / "package"
    build = ["build", "--data", str(tmp_path / "train.csv"), "--eval-data", str(tmp_path / "test.csv")]
    build += ["--name", "synthetic", "--version", "0.1.0", "--out", str(package), "--epochs", "15", "--hidden", "16"]
    build += ["--latency-repeats", "2"]
    built = CliRunner().invoke(model_app, build)
    assert built.exit_code == 0, built.output
    shown = CliRunner().invoke(model_app, ["verify", str(package), "--unknown-report", str(report)])
    assert shown.exit_code == 0, shown.output
    assert "never-seen intents" in shown.output
    assert "note:" not in shown.output
    # Another data set's report, or another unknown score: verify says so.
    data["data_sha256"] = "0" * 64
    data["unknown_features"] = ["max_prob"]
    other = tmp_path / "other.json"
    other.write_text(json.dumps(data), encoding="utf-8")
    noted = CliRunner().invoke(model_app, ["verify", str(package), "--unknown-report", str(other)])
    assert noted.exit_code == 0, noted.output
    assert "other training data" in noted.output
    assert "unknown score uses ['max_prob']" in noted.output
