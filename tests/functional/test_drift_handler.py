"""The drift run: closed windows only, each reported once (empty and small ones too), catalog metrics out."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pigeonhole import constants as c
from pigeonhole import metrics_catalog as mc
from pigeonhole.adapters.dynamodb import DynamoDBAdapter
from pigeonhole.classify.routing import Classification
from pigeonhole.config import MonitorSettings
from pigeonhole.drift import handler as drift_handler
from pigeonhole.drift import layout as keys
from pigeonhole.drift.handler import drift_config
from pigeonhole.drift.recorder import WindowRecorder
from pigeonhole.drift.service import DriftConfig, DriftService, MetricPoint, run_drift
from pigeonhole.exceptions import ConfigurationError
from pigeonhole.feedback.service import FeedbackService
from pigeonhole.model.manifest import Manifest

from .conftest import Context
from .monitoring_support import (
    FEEDBACK,
    PREDICTIONS,
    VERSION,
    WINDOWS,
    CrashError,
    assert_in_catalog,
    at,
    classification,
    emf,
    manifest,
    moto_dynamodb,
    runtime,
    scan,
)

NORMAL_TEXTS = ["when will my card arrive", "what is the exchange rate", "my card is lost"]
ODD_TEXT = "zzz qqq xxx yyy www vvv uuu ttt sss rrr ppp ooo"  # long and entirely out of vocabulary
FIRST_RUN = at("2026-11-29T07:10:30Z")  # 07:00 is closed (07:05 + 2 min grace), 07:05 is not
SECOND_RUN = at("2026-11-29T07:13:00Z")  # now 07:05 is closed too


def normal(prefix: str, n: int, when: str) -> list[Classification]:
    rng = random.Random(prefix)
    return [
        classification(f"{prefix}{i}", rng.choice([0, 0, 1, 2]), rng.uniform(0.7, 1.0), when, rng.choice(NORMAL_TEXTS))
        for i in range(n)
    ]


def drifted(prefix: str, n: int, when: str) -> list[Classification]:
    return [classification(f"{prefix}{i}", 2, 0.3, when, ODD_TEXT) for i in range(n)]


@pytest.fixture
def ddb() -> Iterator[Any]:
    """06:50 has 5 events (below the minimum of 20), 06:55 none, 07:00 forty drifted ones, 07:05 ten."""
    with moto_dynamodb() as client:
        recorder = WindowRecorder(DynamoDBAdapter(client), WINDOWS, PREDICTIONS, clock=FIRST_RUN.timestamp)
        events = (
            normal("a", 5, "2026-11-29T06:51:00Z")
            + drifted("d", 40, "2026-11-29T07:02:00Z")
            + normal("b", 10, "2026-11-29T07:06:00Z")
        )
        for i in range(0, len(events), 10):
            assert recorder.observe([(e.event.id, e) for e in events[i : i + 10]], [], runtime()) == {}
        yield client


class Collect:
    def __init__(self) -> None:
        self.points: list[MetricPoint] = []

    def __call__(self, points: Sequence[MetricPoint]) -> None:
        self.points.extend(points)


def run(client: Any, now: datetime, m: Manifest | None = None, **config: Any) -> tuple[Any, Collect]:
    sink = Collect()
    result = run_drift(
        now,
        store=DynamoDBAdapter(client),
        manifest=m or manifest(),
        windows_table=WINDOWS,
        config=DriftConfig(**config),
        emit=sink,
    )
    return result, sink


def reports(client: Any) -> dict[str, dict[str, Any]]:
    return {
        i["window_start"]: {**i, "report": json.loads(i["report"])}
        for i in scan(client, WINDOWS)
        if str(i["sk"]).startswith("R#")
    }


def by_window(points: Sequence[MetricPoint], run_result: Any) -> dict[str, dict[tuple[str, str | None], float]]:
    out: dict[str, dict[tuple[str, str | None], float]] = {}
    for w in run_result.windows:
        out[w.window_start] = {(p.name, p.dimensions.get(mc.DIM_SIGNAL)): p.value for p in w.metrics}
    return out


# -- which windows ----------------------------------------------------------------------------------


def test_closed_windows_are_reported_once_including_empty_and_small_ones(ddb: Any) -> None:
    result, _ = run(ddb, FIRST_RUN)
    assert [w.window_start for w in result.windows] == [
        "2026-11-29T06:50:00Z",
        "2026-11-29T06:55:00Z",
        "2026-11-29T07:00:00Z",
    ]  # from the first window seen; 07:05 is still open (end + grace > now)
    items = reports(ddb)
    assert set(items) == {w.window_start for w in result.windows}

    small, empty, drift = (items[k] for k in sorted(items))
    assert (small["severity"], small["n"]) == ("insufficient_data", 5)
    assert "severity_value" not in small
    reason = small["report"]["signals"]["class_mix"]["reasons"][0]
    assert "5 events < minimum 20" in reason
    assert (empty["severity"], empty["n"]) == ("insufficient_data", 0)
    assert empty["report"]["metrics"]["expected_accuracy"] is None

    assert (drift["severity"], drift["n"], int(drift["severity_value"])) == ("page", 40, 2)
    class_mix = drift["report"]["signals"]["class_mix"]
    assert class_mix["severity"] == "page"
    assert class_mix["statistics"]["psi"] > 0.25
    assert class_mix["thresholds"]["psi_page"] == 0.25
    assert drift["report"]["signals"]["feature:oov_share"]["severity"] in ("warn", "page")
    assert drift["report"]["metrics"]["expected_accuracy"] == pytest.approx(0.3)
    assert drift["pk"] == f"W#{VERSION}"
    assert drift["window_end"] == "2026-11-29T07:05:00Z"
    assert int(drift["reference_windows"]) == 1  # 06:50 (06:55 has no item)
    assert int(drift["expires_at"]) == keys.expires_at(at("2026-11-29T07:00:00Z"), 90)


def test_a_rerun_is_a_no_op_and_a_later_run_picks_up_the_next_window(ddb: Any) -> None:
    run(ddb, FIRST_RUN)
    before = reports(ddb)
    again, sink = run(ddb, FIRST_RUN)
    assert again.windows == []
    assert sink.points == []  # nothing emitted twice
    assert reports(ddb) == before
    later, _ = run(ddb, SECOND_RUN)
    assert [w.window_start for w in later.windows] == ["2026-11-29T07:05:00Z"]
    assert {k: v for k, v in reports(ddb).items() if k in before} == before
    # Its trailing reference: the 12 windows before it that exist (06:50 and 07:00).
    assert int(reports(ddb)["2026-11-29T07:05:00Z"]["reference_windows"]) == 2
    assert reports(ddb)["2026-11-29T07:05:00Z"]["report"]["reference_signals"] is not None


def test_the_grace_period_holds_a_window_back(ddb: Any) -> None:
    result, _ = run(ddb, at("2026-11-29T07:06:59Z"), grace_seconds=120)
    assert result.windows[-1].window_start == "2026-11-29T06:55:00Z"  # 07:00 closes at 07:05 + 2 min
    result, _ = run(ddb, at("2026-11-29T07:07:00Z"), grace_seconds=120)
    assert [w.window_start for w in result.windows] == ["2026-11-29T07:00:00Z"]


def test_no_windows_no_reports() -> None:
    with moto_dynamodb() as client:
        result, sink = run(client, FIRST_RUN)
        assert result.windows == []
        assert sink.points == []


def test_a_concurrent_run_that_wrote_first_wins(ddb: Any) -> None:
    run(ddb, FIRST_RUN)
    before = reports(ddb)

    class StaleReads(DynamoDBAdapter):
        """Reads as if the other run's reports were not there yet."""

        def query(self, table: str, pk: str, sk_between: Any = None, **kwargs: Any) -> list[dict[str, Any]]:
            items = super().query(table, pk, sk_between, **kwargs)
            return [i for i in items if not str(i["sk"]).startswith("R#")]

    late = at("2026-11-29T07:11:00Z")
    result = DriftService(StaleReads(ddb), manifest(), WINDOWS, emit=lambda _: None).run(late)
    assert [w.written for w in result.windows] == [False, False, False]
    assert reports(ddb) == before


def test_a_crash_before_the_report_is_written_retries_the_window(ddb: Any) -> None:
    def crash(_: Sequence[MetricPoint]) -> None:
        raise CrashError("died while emitting")

    with pytest.raises(CrashError):
        DriftService(DynamoDBAdapter(ddb), manifest(), WINDOWS, emit=crash).run(FIRST_RUN)
    assert reports(ddb) == {}
    result, _ = run(ddb, FIRST_RUN)
    assert len(result.windows) == 3


# -- metrics ----------------------------------------------------------------------------------------


def test_catalog_metrics_per_window(ddb: Any) -> None:
    result, sink = run(ddb, FIRST_RUN)
    metrics = by_window(sink.points, result)
    small, empty, drift = (metrics[k] for k in sorted(metrics))
    assert empty == {("WindowEvents", None): 0.0}  # nothing else is defined for an empty window
    assert small[("WindowEvents", None)] == 5.0
    assert ("DriftSeverity", None) not in small  # insufficient data emits no severity
    assert ("ExpectedAccuracy", None) in small
    assert drift[("DriftSeverity", None)] == 2.0
    assert drift[("WindowEvents", None)] == 40.0
    assert drift[("ExpectedAccuracy", None)] == pytest.approx(0.3)
    signals = {"class_mix", "confidence", "feature:length_chars", "feature:oov_share"}
    assert {s for (name, s) in drift if name == "DriftPSI"} == signals
    assert {s for (name, s) in drift if name == "DriftJS"} == signals
    assert drift[("DriftPSI", "class_mix")] > 0.25
    for p in sink.points:
        assert p.dimensions[mc.DIM_MODEL_VERSION] == VERSION


def test_metrics_are_printed_as_emf_with_catalog_names_and_dimensions(
    ddb: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    DriftService(DynamoDBAdapter(ddb), manifest(), WINDOWS).run(FIRST_RUN)  # the default emitter
    points = emf(capsys.readouterr().out)
    assert points
    assert_in_catalog(points)
    assert {p["name"] for p in points} == {m.name for m in mc.DRIFT_METRICS}
    psi = [p for p in points if p["name"] == "DriftPSI"]
    assert psi[0]["dimensions"] == {
        mc.DIM_SERVICE: "drift",
        mc.DIM_MODEL_VERSION: VERSION,
        mc.DIM_SIGNAL: psi[0]["dimensions"][mc.DIM_SIGNAL],
    }
    severity = [p for p in points if p["name"] == "DriftSeverity"]
    assert [p["value"] for p in severity] == [2.0]


# -- thresholds and configuration ------------------------------------------------------------------


def test_thresholds_come_from_the_manifest_and_the_environment_overrides_them(ddb: Any) -> None:
    settings = MonitorSettings.from_env(
        {c.ENV_WINDOWS_TABLE: WINDOWS, c.ENV_DRIFT_THRESHOLDS: json.dumps({"psi_warn": 50, "psi_page": 100})}
    )
    config = drift_config(settings)
    result = DriftService(DynamoDBAdapter(ddb), manifest(), WINDOWS, config, emit=lambda _: None).run(FIRST_RUN)
    drift = result.windows[-1].report
    assert drift["thresholds"]["psi_page"] == 100
    assert drift["thresholds"]["min_window_events"] == 20  # still the manifest's
    assert drift["signals"]["class_mix"]["thresholds"]["psi_page"] == 100
    assert result.windows[-1].severity == "warn"  # JS / chi-square / expected accuracy still warn; PSI no longer pages


def test_misspelt_threshold_overrides_fail_at_cold_start() -> None:
    with pytest.raises(ConfigurationError, match="psi_pgae"):
        DriftService(DynamoDBAdapter(object()), manifest(), WINDOWS, DriftConfig(threshold_overrides={"psi_pgae": 1}))  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=c.ENV_DRIFT_THRESHOLDS):
        MonitorSettings.from_env({c.ENV_WINDOWS_TABLE: "w", c.ENV_DRIFT_THRESHOLDS: "[1]"})
    with pytest.raises(ConfigurationError, match=c.ENV_WINDOWS_TABLE):
        MonitorSettings.from_env({})


def test_monitor_settings_defaults() -> None:
    s = MonitorSettings.from_env({c.ENV_WINDOWS_TABLE: "w"})
    assert (s.window_seconds, s.grace_seconds, s.reference_windows, s.lookback_windows) == (300, 120, 12, 288)
    assert (s.predictions_table, s.feedback_table, s.threshold_overrides) == (None, None, {})


# -- labels after the report ------------------------------------------------------------------------


def test_labels_that_arrive_later_refresh_the_report_s_label_metrics(ddb: Any) -> None:
    run(ddb, FIRST_RUN)
    assert reports(ddb)["2026-11-29T07:00:00Z"]["report"]["accuracy"] is None
    feedback = FeedbackService(
        DynamoDBAdapter(ddb), manifest(), WINDOWS, PREDICTIONS, FEEDBACK, clock=SECOND_RUN.timestamp
    )
    records = [
        {"messageId": f"f{i}", "body": json.dumps({"id": f"d{i}", "label": "lost_card" if i % 4 else "card_arrival"})}
        for i in range(20)
    ]
    feedback.process(records)
    result, sink = run(ddb, FIRST_RUN)
    assert result.windows == []  # the verdict and its metrics are not re-emitted
    assert sink.points == []
    assert result.refreshed == ["2026-11-29T07:00:00Z"]
    item = reports(ddb)["2026-11-29T07:00:00Z"]
    labels = json.loads(item["labels"])
    assert int(item["labelled"]) == 20
    assert labels["accuracy"]["accuracy"] == pytest.approx(15 / 20)
    assert labels["accuracy"]["label_coverage"] == pytest.approx(20 / 40)
    assert labels["accuracy"]["label_latency_p50_seconds"] is not None
    again, _ = run(ddb, FIRST_RUN)
    assert again.refreshed == []


# -- the Lambda handler -----------------------------------------------------------------------------


def test_the_handler_runs_on_the_clock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, context: Context) -> None:
    (tmp_path / "manifest.json").write_text(manifest().dump())
    monkeypatch.setenv(c.ENV_MODEL_DIR, str(tmp_path))
    monkeypatch.setenv(c.ENV_WINDOWS_TABLE, WINDOWS)
    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    when = keys.iso(hour_ago)
    with moto_dynamodb() as client:
        recorder = WindowRecorder(DynamoDBAdapter(client), WINDOWS, PREDICTIONS)
        recorder.observe([(e.event.id, e) for e in normal("h", 3, when)], [], runtime())
        drift_handler.reset_for_tests(None)
        try:
            summary = drift_handler.handler({"source": "aws.scheduler", "detail-type": "Scheduled Event"}, context)
        finally:
            drift_handler.reset_for_tests(None)
    assert summary["model_version"] == VERSION
    assert summary["reported"][0] == {
        "window": keys.window_of(hour_ago.timestamp(), 300),
        "severity": "insufficient_data",
        "events": 3,
    }
    assert len(summary["reported"]) >= 10  # every closed window since, empty ones included
