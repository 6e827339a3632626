"""The local canary's pure parts: the weighted split, per-version alarms, events per minute, restamping."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pigeonhole import alarms as defs
from pigeonhole import metrics_catalog as mc
from pigeonhole_tools.local.canary.judge import EXECUTED_VERSION, for_version, rollback_alarms, version_alarm
from pigeonhole_tools.local.canary.run import default_events_per_minute, min_events, restamp
from pigeonhole_tools.local.canary.versions import goes_to_candidate
from pigeonhole_tools.local.metrics import Datum


@pytest.mark.parametrize("percent", [1, 5, 10, 25, 30, 33, 50, 99])
def test_the_split_routes_exactly_percent_of_every_hundred_batches(percent: int) -> None:
    picks = [goes_to_candidate(k, percent) for k in range(1000)]
    for start in range(0, 1000, 100):
        assert sum(picks[start : start + 100]) == percent


def test_the_split_spreads_candidate_batches_instead_of_bunching_them() -> None:
    picks = [goes_to_candidate(k, 10) for k in range(100)]
    assert [k for k, p in enumerate(picks) if p] == [9, 19, 29, 39, 49, 59, 69, 79, 89, 99]


def test_alias_metrics_are_narrowed_to_one_version_and_ours_keep_model_version() -> None:
    error_rate = defs.by_suffix()["classifier-error-rate"]
    narrowed = version_alarm(error_rate, "2")
    for _, query in narrowed.metrics:
        assert query.dimensions[-1] == (EXECUTED_VERSION, "2")
        assert [n for n, _ in query.dimensions] == ["FunctionName", "Resource", EXECUTED_VERSION]
    review = defs.by_suffix()["review-rate-spike"]
    assert version_alarm(review, "2") == review  # ModelVersion is bound per version by the evaluator
    assert for_version(narrowed.metrics[0][1], "3") == narrowed.metrics[0][1]  # never narrowed twice


def test_rollback_alarms_keep_the_deployed_thresholds_and_periods() -> None:
    deployed = {a.suffix: a for a in defs.ALARMS if a.rollback}
    local = rollback_alarms("2")
    assert {a.suffix for a in local} == set(deployed)
    for alarm in local:
        source = deployed[alarm.suffix]
        assert (alarm.threshold, alarm.period_s, alarm.evaluation_periods, alarm.datapoints_to_alarm) == (
            source.threshold,
            source.period_s,
            source.evaluation_periods,
            source.datapoints_to_alarm,
        )


@pytest.mark.parametrize("percent", [1, 5, 10, 20, 30, 50, 99])
def test_default_traffic_gives_the_candidate_enough_events_for_the_rate_alarms(percent: int) -> None:
    per_minute = default_events_per_minute(percent)
    assert per_minute % 10 == 0  # full batches
    batches = per_minute // 10
    # The fewest candidate batches any minute can get under the split, wherever the minute starts.
    fewest = min(sum(goes_to_candidate(k, percent) for k in range(s, s + batches)) for s in range(200))
    assert fewest * 10 >= min_events()


def test_restamp_moves_every_datum_into_the_simulated_minute() -> None:
    real = datetime(2026, 12, 4, 18, 0, 7, tzinfo=UTC)
    datums = [Datum("Pigeonhole", "EventsReceived", (("service", "classifier"),), "Count", (10.0,), real)] * 3
    moved = restamp(datums, 1_700_000_030)
    assert {d.timestamp for d in moved} == {datetime.fromtimestamp(1_700_000_030, tz=UTC)}
    assert [d.values for d in moved] == [d.values for d in datums]


def test_every_rollback_alarm_resolves_to_the_judged_version_only() -> None:
    from types import SimpleNamespace
    from typing import Any

    from pigeonhole.naming import ResourceNames
    from pigeonhole_tools.local.canary.judge import version_evaluator

    version: Any = SimpleNamespace(model_version="9.9.9-candidate", executed_version="2")
    evaluator = version_evaluator(source=None, version=version, names=ResourceNames("pigeonhole"), window_seconds=300)  # type: ignore[arg-type]
    assert evaluator.alarms
    for alarm in evaluator.alarms:
        for query in alarm.queries():
            dims = query.resolve(evaluator.bindings)
            if query.namespace == defs.NS_LAMBDA:
                assert dims[EXECUTED_VERSION] == "2", alarm.suffix
            elif query.name != mc.MODEL_LOAD_FAILURES.name or len(dims) > 1:
                assert "9.9.9-candidate" in dims.values() or "2" in dims.values(), alarm.suffix
            # else: a model-load failure counted by service alone carries no version; locally a candidate that
            # cannot load is rolled back before traffic (run.py), so this alarm never has to tell versions apart.
