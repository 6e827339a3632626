"""`pigeonhole drift report`: report items written by the real drift run, read back as a table and a PNG."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pigeonhole.adapters.dynamodb import DynamoDBAdapter
from pigeonhole.classify.routing import Classification
from pigeonhole.drift.recorder import WindowRecorder
from pigeonhole.drift.service import DriftConfig, run_drift
from pigeonhole.feedback.service import FeedbackService
from pigeonhole_tools.monitoring.cli import harness_app
from pigeonhole_tools.monitoring.sandbox import fast_transactions
from pigeonhole_tools.monitoring.window_report import load_rows, write_chart

from .monitoring_support import (
    CLASSES,
    FEEDBACK,
    PREDICTIONS,
    VERSION,
    WINDOWS,
    at,
    classification,
    manifest,
    moto_dynamodb,
    runtime,
)

T0 = at("2026-11-29T06:00:00Z")
# Texts weighted so their length and out-of-vocabulary shares resemble the tiny baseline's histograms.
NORMAL_TEXTS = {
    "the card": 5,
    "my card is lost": 15,
    "is the card lost": 10,
    "what is the exchange rate": 10,
    "what is the rate today": 15,
    "when will my card arrive": 15,
    "card lost abroad what now": 10,
    "what is the exchange rate for my card when lost": 5,
    "lost my card in the taxi yesterday evening": 5,
    "exchange rate is terrible honestly folks": 5,
    "my card is lost and the exchange rate when my card is lost is what i need to know about right now": 2,
}
CONFIDENCE_BINS = [(0.2, 0.4, 50), (0.4, 0.6, 100), (0.6, 0.8, 250), (0.8, 1.0, 600)]  # the baseline's
ODD_TEXT = "zzz qqq xxx yyy www vvv uuu ttt sss rrr ppp ooo"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Window 0-3 normal (200 events, half labelled), 4 drifted (60 odd events), 5 small (5 events), 6 empty.
PLAN = ["normal", "normal", "normal", "normal", "drifted", "small", "empty"]


def _events(kind: str, w: int, rng: random.Random) -> list[Classification]:
    start = T0 + timedelta(minutes=5 * w)
    when = (start + timedelta(seconds=30)).isoformat().replace("+00:00", "Z")
    if kind == "drifted":
        return [classification(f"w{w}-{i}", 2, 0.3, when, ODD_TEXT) for i in range(60)]
    n = {"normal": 200, "small": 5, "empty": 0}[kind]
    texts, weights = list(NORMAL_TEXTS), list(NORMAL_TEXTS.values())
    out = []
    for i in range(n):
        low, high, _ = rng.choices(CONFIDENCE_BINS, weights=[b[2] for b in CONFIDENCE_BINS])[0]
        label = rng.choices([0, 1, 2], weights=[5, 3, 2])[0]
        text = rng.choices(texts, weights=weights)[0]
        out.append(classification(f"w{w}-{i}", label, rng.uniform(low, high), when, text))
    return out


@pytest.fixture(scope="module")
def reported() -> Iterator[Any]:
    """Seven windows through the recorder, labels through the feedback service, one drift run per window."""
    with fast_transactions(), moto_dynamodb() as client:
        store = DynamoDBAdapter(client)
        rng = random.Random(3)
        clock = [T0.timestamp()]
        recorder = WindowRecorder(store, WINDOWS, PREDICTIONS, clock=lambda: clock[0])
        feedback = FeedbackService(store, manifest(), WINDOWS, PREDICTIONS, FEEDBACK, clock=lambda: clock[0])
        for w, kind in enumerate(PLAN):
            clock[0] = (T0 + timedelta(minutes=5 * w, seconds=60)).timestamp()
            events = _events(kind, w, rng)
            for i in range(0, len(events), 10):
                assert recorder.observe([(e.event.id, e) for e in events[i : i + 10]], [], runtime()) == {}
            labelled = events[: len(events) // 2] if kind == "normal" else []
            records = [
                {
                    "messageId": f"l-{e.event.id}",
                    "body": json.dumps({"id": e.event.id, "label": CLASSES[e.label_index if j % 5 else 1]}),
                    "attributes": {"SentTimestamp": str(int(clock[0] * 1000))},
                }
                for j, e in enumerate(labelled)
            ]
            if records:
                outcomes = feedback.process(records)
                assert {o.status for o in outcomes.values()} == {"labelled"}
            run_drift(
                T0 + timedelta(minutes=5 * (w + 1), seconds=150),
                store=store,
                manifest=manifest(),
                windows_table=WINDOWS,
                config=DriftConfig(),
                emit=lambda points: None,
            )
        yield client


def test_rows_carry_each_windows_statistics_and_verdict(reported: Any) -> None:
    rows = load_rows(DynamoDBAdapter(reported), WINDOWS, VERSION)
    assert [r.window_start for r in rows] == [
        (T0 + timedelta(minutes=5 * w)).isoformat().replace("+00:00", "Z") for w in range(len(PLAN))
    ]
    assert [r.events for r in rows] == [200, 200, 200, 200, 60, 5, 0]
    normal, drifted, small, empty = rows[0], rows[4], rows[5], rows[6]
    assert drifted.severity == "page"
    assert (drifted.class_mix_psi or 0.0) > 0.25
    assert drifted.worst_feature in ("length_chars", "oov_share")
    assert (drifted.worst_feature_psi or 0.0) > 0.25
    assert drifted.expected_accuracy == pytest.approx(0.3)
    assert (drifted.confidence_psi or 0.0) > 0.25
    assert drifted.accuracy is None
    assert drifted.label_coverage is None
    # Normal windows: 100 of 200 labelled, every fifth label class 1 (wrong unless predicted 1).
    assert normal.labelled == 100
    assert normal.label_coverage == pytest.approx(0.5)
    assert 0.75 <= (normal.accuracy or 0.0) <= 1.0
    assert all(r.severity in ("ok", "warn") for r in rows[:4])
    assert normal.accuracy_reference == pytest.approx(0.9)
    assert (normal.psi_warn, normal.psi_page) == (0.1, 0.25)
    assert None not in (normal.class_mix_psi, normal.confidence_psi, normal.worst_feature_psi)
    for r in (small, empty):
        assert r.severity == "insufficient_data"
        assert (r.class_mix_psi, r.confidence_psi, r.worst_feature) == (None, None, None)
    assert empty.expected_accuracy is None


def test_since_until_and_last_select_windows(reported: Any) -> None:
    store = DynamoDBAdapter(reported)
    rows = load_rows(store, WINDOWS, VERSION, since="2026-11-29T06:05:00Z", until="2026-11-29T06:15:00Z")
    assert [r.window_start for r in rows] == ["2026-11-29T06:05:00Z", "2026-11-29T06:10:00Z", "2026-11-29T06:15:00Z"]
    assert [r.events for r in load_rows(store, WINDOWS, VERSION, last=2)] == [5, 0]
    assert load_rows(store, WINDOWS, "some-other-version") == []


def test_cli_prints_the_table_and_writes_a_png(reported: Any, tmp_path: Path) -> None:
    chart = tmp_path / "chart.png"
    rows_json = tmp_path / "rows.json"
    result = CliRunner().invoke(
        harness_app,
        [
            "report",
            "--table",
            WINDOWS,
            "--model-version",
            VERSION,
            "--out",
            str(chart),
            "--json",
            str(rows_json),
        ],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    out = result.output
    for heading in ("window start (UTC)", "events", "class-mix PSI", "confidence PSI", "worst feature PSI"):
        assert heading in out
    for heading in ("expected acc.", "realised acc.", "label coverage", "verdict"):
        assert heading in out
    assert "2026-11-29T06:20:00Z" in out  # the drifted window
    assert "page: 1" in out
    assert "insufficient_data: 2" in out
    data = chart.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 20_000  # two panels, lines and legends, not an empty canvas
    rows = json.loads(rows_json.read_text(encoding="utf-8"))
    assert [r["severity"] for r in rows][4:] == ["page", "insufficient_data", "insufficient_data"]


def test_cli_exits_non_zero_without_reports(reported: Any) -> None:
    result = CliRunner().invoke(
        harness_app, ["report", "--table", WINDOWS, "--model-version", "missing"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 1
    assert "no report items" in result.output


def test_chart_refuses_nothing_to_draw(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no report items"):
        write_chart([], tmp_path / "x.png", "empty")
