"""`pigeonhole local canary` end to end: moto server over HTTP, the emulated event source mapping, the real handler.

Two candidates against the committed package: a GOOD one (the committed package under another version
string) must be promoted, and a BROKEN one (trained on shuffled labels) must be rolled back, for a reason
that cannot fire for the good one: its own review rate. The interval is 3 simulated minutes at 30 % (the
shortest in which a 3-of-5 alarm can fire) to keep the module within seconds; docs/local.md shows a run
at infra's 10 % / 5 minutes.
"""

from __future__ import annotations

import csv
import json
import random
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pigeonhole import alarms as defs
from pigeonhole import metrics_catalog as mc
from pigeonhole_tools.local.canary.judge import golden_module, rollback_alarms
from pigeonhole_tools.local.canary.run import (
    EXIT_PROMOTED,
    EXIT_ROLLED_BACK_ALARM,
    EXIT_ROLLED_BACK_PRE_TRAFFIC,
    min_events,
)
from pigeonhole_tools.local.cli import local_app
from pigeonhole_tools.training.cli import model_app

PER_CLASS = 20  # 77 classes x 20 rows: enough for a stratified hold-out, seconds to train
# The rollback alarm on the review rate (whatever pigeonhole.alarms names it): the one a shuffled model trips.
REVIEW = next(a for a in rollback_alarms("2") if mc.EVENTS_REVIEW.name in {q.name for q in a.queries()})


def ships_golden(package: Path) -> bool:
    return json.loads((package / "manifest.json").read_text(encoding="utf-8")).get("golden") is not None


@pytest.fixture(scope="session")
def good_candidate(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Path:
    """The committed package, re-versioned: the same model, so anything it trips the current one trips too."""
    out = tmp_path_factory.mktemp("good") / "model"
    shutil.copytree(model_dir, out)
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    manifest["version"] = f"{manifest['version']}-canary"
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return out


@pytest.fixture(scope="session")
def shuffled_candidate(tmp_path_factory: pytest.TempPathFactory, banking77_dir: Path) -> Path:
    """`pigeonhole model build` on a BANKING77 subset whose labels are shuffled by a fixed seed (~15 s)."""
    work = tmp_path_factory.mktemp("shuffled")
    with (banking77_dir / "train.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    rng = random.Random(0)
    by_label: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_label.setdefault(row["category"], []).append(row)
    subset = [r for label in sorted(by_label) for r in rng.sample(by_label[label], PER_CLASS)]
    labels = [r["category"] for r in subset]
    rng.shuffle(labels)
    data = work / "shuffled.csv"
    with data.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["text", "category"])
        writer.writeheader()
        writer.writerows({"text": r["text"], "category": label} for r, label in zip(subset, labels, strict=True))
    out = work / "model"
    args = ["build", "--data", str(data), "--name", "shuffled", "--version", "0.0.1-shuffled", "--out", str(out)]
    args += ["--epochs", "2", "--hidden", "16", "--no-refit", "--latency-repeats", "1"]
    # Near-chance accuracy in fp32 and int8 alike: the int8-vs-fp32 accuracy gate says nothing here. It stays
    # in force for every normal build (default 0.01).
    args += ["--max-accuracy-drop", "1.0"]
    result = CliRunner().invoke(model_app, args)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture
def cold_handler(restore_environ: None) -> Iterator[None]:
    from pigeonhole.classify import handler as handler_module

    handler_module.reset_for_tests()
    yield
    handler_module.reset_for_tests()
    handler_module.metrics.clear_default_dimensions()  # the last version's ModelVersion: not the next test's


def rehearse(candidate: Path, tmp_path: Path, *extra: str) -> tuple[int, str, dict[str, Any]]:
    report = tmp_path / "canary.json"
    args = ["canary", "--candidate", str(candidate), "--percent", "30", "--minutes", "3"]
    args += ["--log-file", str(tmp_path / "handler.log"), "--report", str(report), *extra]
    result = CliRunner().invoke(local_app, args)
    assert report.is_file(), result.output
    return result.exit_code, result.output, json.loads(report.read_text(encoding="utf-8"))


def alarm_rows(report: dict[str, Any], role: str, alarm: defs.AlarmDef) -> list[dict[str, Any]]:
    name = defs.alarm_name("pigeonhole", alarm.suffix)
    return [a for m in report["minutes_run"] for a in m["alarms"][role] if a["alarm"] == name]


def test_good_candidate_is_promoted(good_candidate: Path, tmp_path: Path, cold_handler: None) -> None:
    # The golden check runs where the package ships a golden set (a deploy refuses a package without one).
    golden = golden_module() is not None and ships_golden(good_candidate)
    code, output, report = rehearse(good_candidate, tmp_path, *(() if golden else ("--no-pre-traffic",)))

    assert code == EXIT_PROMOTED, output
    assert "PROMOTED" in output
    assert report["outcome"] == "PROMOTED"
    assert report["decided_by"] == []
    assert len(report["minutes_run"]) == 3
    for minute in report["minutes_run"]:
        # The candidate really served: enough records every minute for the rate alarms to judge it.
        assert minute["batches"]["candidate"] >= 1
        assert minute["records"]["candidate"] >= min_events()
        assert minute["batches"]["current"] > minute["batches"]["candidate"]
        assert all(a["state"] == "OK" for a in minute["alarms"]["candidate"]), minute["alarms"]["candidate"]
    # The alarm that rolls the broken candidate back was evaluated on real values here, and far from firing.
    review = [v for a in alarm_rows(report, "candidate", REVIEW) for v in a["values"] if v is not None]
    assert review
    assert max(review) < REVIEW.threshold
    if golden:
        assert report["pre_traffic"]["ran"]
        assert report["pre_traffic"]["passed"]


def test_shuffled_candidate_is_rolled_back_by_its_review_rate(
    shuffled_candidate: Path, tmp_path: Path, cold_handler: None
) -> None:
    # Without the pre-traffic hook, so the canary interval itself must catch it.
    code, output, report = rehearse(shuffled_candidate, tmp_path, "--no-pre-traffic")

    assert code == EXIT_ROLLED_BACK_ALARM, output
    assert "ROLLED BACK" in output
    assert [a["alarm"] for a in report["decided_by"]] == [defs.alarm_name("pigeonhole", REVIEW.suffix)]
    assert report["candidate"]["model_version"] == "0.0.1-shuffled"
    # Decided by the candidate's own metrics: the current version, serving 70 % meanwhile, stayed OK.
    assert all(a["state"] == "OK" for a in alarm_rows(report, "current", REVIEW))
    assert alarm_rows(report, "candidate", REVIEW)[-1]["state"] == "ALARM"


@pytest.mark.skipif(golden_module() is None, reason="pigeonhole.model.golden is not in this checkout")
def test_shuffled_candidate_never_gets_traffic_with_the_golden_check(
    shuffled_candidate: Path, tmp_path: Path, cold_handler: None
) -> None:
    code, output, report = rehearse(shuffled_candidate, tmp_path)

    assert code == EXIT_ROLLED_BACK_PRE_TRAFFIC, output
    assert report["minutes_run"] == []
    assert report["pre_traffic"]["ran"]
    assert not report["pre_traffic"]["passed"]
    if ships_golden(shuffled_candidate):  # refused for its labels, not merely for lacking a golden set
        assert report["pre_traffic"]["verdict"]["accuracy"] < report["pre_traffic"]["verdict"]["min_accuracy"]
