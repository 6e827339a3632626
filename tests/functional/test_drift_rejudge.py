"""Drift waits for retries (the grace derives from the queue settings) and judges a window again when
events land after its report: the report keeps the count it judged and is overwritten only upwards."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import pytest

from pigeonhole import constants as c
from pigeonhole.adapters.dynamodb import DynamoDBAdapter
from pigeonhole.config import MonitorSettings, drift_grace_seconds
from pigeonhole.drift import layout as keys
from pigeonhole.drift.recorder import WindowRecorder
from pigeonhole.drift.service import DriftConfig, MetricPoint, run_drift

from .monitoring_support import WINDOWS, at, classification, manifest, moto_dynamodb, runtime, scan

W0700 = "2026-11-29T07:00:00Z"
TEXTS = ["when will my card arrive", "what is the exchange rate", "my card is lost"]


def observe(client: Any, prefix: str, n: int, when: float, predicted: int | None = None) -> None:
    rng = random.Random(prefix)
    events = [
        classification(
            f"{prefix}{i}",
            rng.choice([0, 0, 1, 2]) if predicted is None else predicted,
            rng.uniform(0.7, 1.0),
            "2026-11-29T07:02:00Z",
            rng.choice(TEXTS),
        )
        for i in range(n)
    ]
    rec = WindowRecorder(DynamoDBAdapter(client), WINDOWS, "test-predictions", clock=lambda: when)
    for i in range(0, n, 10):
        assert rec.observe([(e.event.id, e) for e in events[i : i + 10]], [], runtime()) == {}


class Sink:
    def __init__(self) -> None:
        self.points: list[MetricPoint] = []

    def __call__(self, points: Sequence[MetricPoint]) -> None:
        self.points.extend(points)


def drift(client: Any, now: datetime, grace: int = 212) -> tuple[Any, Sink]:
    sink = Sink()
    config = DriftConfig(window_seconds=300, grace_seconds=grace, reference_windows=0)
    result = run_drift(
        now, store=DynamoDBAdapter(client), manifest=manifest(), windows_table=WINDOWS, config=config, emit=sink
    )
    return result, sink


def report(client: Any) -> dict[str, Any]:
    items = [i for i in scan(client, WINDOWS) if i["sk"] == keys.report_sk(W0700)]
    assert len(items) == 1
    return items[0]


@pytest.fixture
def ddb() -> Iterator[Any]:
    with moto_dynamodb() as client:
        yield client


def test_a_window_that_grew_after_its_report_is_judged_again(ddb: Any) -> None:
    observe(ddb, "a", 30, at("2026-11-29T07:03:00Z").timestamp())
    first, _ = drift(ddb, at("2026-11-29T07:08:40Z"))  # 07:05 + 212 s grace: closed
    assert [w.window_start for w in first.windows] == [W0700]
    assert (report(ddb)["n"], report(ddb).get("rejudged")) == (30, None)

    # A retried batch lands after the report: 25 more events, all one class.
    observe(ddb, "late", 25, at("2026-11-29T07:09:00Z").timestamp(), predicted=2)
    second, sink = drift(ddb, at("2026-11-29T07:10:00Z"))
    assert [w.window_start for w in second.rejudged] == [W0700]
    item = report(ddb)
    assert (item["n"], item["previous_n"], item["rejudged"]) == (55, 30, 1)
    assert json.loads(item["report"])["metrics"]["events"] == 55
    events = [p.value for p in sink.points if p.name == "WindowEvents"]
    assert events == [55.0]  # the metrics are emitted again with the new count
    assert second.rejudged[0].severity == json.loads(item["report"])["severity"]

    # Nothing new: the next run changes nothing (idempotent).
    third, _ = drift(ddb, at("2026-11-29T07:15:00Z"))
    assert third.rejudged == []
    assert [w.window_start for w in third.windows] == ["2026-11-29T07:05:00Z"]  # only the next window
    assert report(ddb)["rejudged"] == 1


def test_a_stale_rejudge_cannot_overwrite_a_larger_count(ddb: Any) -> None:
    observe(ddb, "a", 30, at("2026-11-29T07:03:00Z").timestamp())
    drift(ddb, at("2026-11-29T07:08:40Z"))
    observe(ddb, "b", 10, at("2026-11-29T07:09:00Z").timestamp())
    drift(ddb, at("2026-11-29T07:10:00Z"))
    store = DynamoDBAdapter(ddb)
    stale = {**report(ddb), "n": 35, "severity": "ok"}
    assert store.put_if_greater(WINDOWS, stale, "n") is False  # a run that read fewer events loses
    assert store.put_if_greater(WINDOWS, {**stale, "n": 40}, "n") is False  # equal: no rewrite
    assert report(ddb)["n"] == 40


def test_the_grace_holds_a_window_back_until_a_retry_can_have_landed(ddb: Any) -> None:
    observe(ddb, "a", 30, at("2026-11-29T07:03:00Z").timestamp())
    grace = drift_grace_seconds(visibility_timeout_s=181, batching_window_s=1, function_timeout_s=30)
    assert grace == 212
    early, _ = drift(ddb, at("2026-11-29T07:08:31Z"), grace)  # 07:05 + 211 s
    assert early.windows == []
    on_time, _ = drift(ddb, at("2026-11-29T07:08:32Z"), grace)
    assert [w.window_start for w in on_time.windows] == [W0700]


def test_the_settings_read_the_derived_grace() -> None:
    env = {c.ENV_WINDOWS_TABLE: WINDOWS, c.ENV_DRIFT_GRACE_SECONDS: str(drift_grace_seconds(181, 1, 30))}
    assert MonitorSettings.from_env(env).grace_seconds == 212
    env[c.ENV_FEEDBACK_RETRY_SECONDS] = "900"
    assert MonitorSettings.from_env(env).feedback_retry_seconds == 900
    assert MonitorSettings.from_env({c.ENV_WINDOWS_TABLE: WINDOWS}).feedback_retry_seconds == 600
    with pytest.raises(ValueError, match="durations"):
        drift_grace_seconds(-1, 1)
