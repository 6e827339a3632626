"""The local alarm evaluator on hand-built series: the shared definitions, evaluated as CloudWatch would."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from pigeonhole import alarms as defs
from pigeonhole import metrics_catalog as mc
from pigeonhole.drift.service import MetricPoint
from pigeonhole.naming import ResourceNames
from pigeonhole_tools.local import alarms as la
from pigeonhole_tools.local.metrics import emf_datums, point_datums, read_emf_lines

VERSION = "1.0.0"
PREFIX = "unit"
T0 = 1_800_000_000 // 3600 * 3600  # aligned on an hour (and so on every period used here)


class FakeSource:
    """Series keyed by (metric name, statistic); values keyed by period start. Records what was asked."""

    def __init__(self, data: Mapping[tuple[str, str], Mapping[int, float]]) -> None:
        self.data = data
        self.asked: list[tuple[str, dict[str, str], int, int, int]] = []

    def series(
        self, query: defs.MetricQuery, dimensions: Mapping[str, str], period: int, start: int, end: int
    ) -> la.Series:
        self.asked.append((query.name, dict(dimensions), period, start, end))
        values = self.data.get((query.name, query.statistic), {})
        return {t: v for t, v in values.items() if start <= t < end}


class RecordingNotifier:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict[str, Any]]] = []

    def notify(self, result: la.AlarmResult, description: str, at: datetime) -> None:
        self.sent.append((result.severity.value, result.name, la.alarm_message(result, description, at)))


def _evaluator(data: Mapping[tuple[str, str], Mapping[int, float]], **kwargs: Any) -> tuple[la.LocalAlarms, Any]:
    notifier = RecordingNotifier()
    source = FakeSource(data)
    ev = la.LocalAlarms(
        source,
        la.local_bindings(ResourceNames(PREFIX), VERSION),
        prefix=PREFIX,
        window_seconds=300,
        notifier=notifier,
        **kwargs,
    )
    return ev, notifier


def _at(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


def _by_suffix(results: list[la.AlarmResult]) -> dict[str, la.AlarmResult]:
    return {r.suffix: r for r in results}


# -- decide: thresholds, M of N, missing data ----------------------------------------------------------
def _alarm(m: int, n: int, treat: defs.MissingData, comparison: defs.Comparison = defs.Comparison.GT) -> defs.AlarmDef:
    base = defs.by_suffix()["publish-failures"]  # GT 0, 3 of 5, notBreaching
    return replace(base, datapoints_to_alarm=m, evaluation_periods=n, treat_missing_data=treat, comparison=comparison)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([0, 0, 0, 0, 0], la.State.OK),
        ([1, 1, 0, 0, 0], la.State.OK),  # 2 of 5 < 3
        ([1, 0, 1, 0, 1], la.State.ALARM),  # 3 of 5, not consecutive: M of N counts, it does not need a run
        ([None, 1, None, 1, 1], la.State.ALARM),
        ([None, None, None, 1, 1], la.State.OK),  # missing = not breaching
        ([None] * 5, la.State.OK),
    ],
)
def test_m_of_n_with_not_breaching(values: list[float | None], expected: la.State) -> None:
    state, _ = la.decide(_alarm(3, 5, defs.MissingData.NOT_BREACHING), values)
    assert state == expected


def test_missing_as_breaching() -> None:
    alarm = _alarm(3, 5, defs.MissingData.BREACHING)
    assert la.decide(alarm, [None, None, None, 0, 0])[0] == la.State.ALARM
    assert la.decide(alarm, [None, None, 0, 0, 0])[0] == la.State.OK


def test_missing_and_ignore_judge_present_points() -> None:
    missing = _alarm(3, 3, defs.MissingData.MISSING)
    assert la.decide(missing, [None, None, None])[0] == la.State.INSUFFICIENT_DATA
    assert la.decide(missing, [None, None, 1])[0] == la.State.ALARM  # every present point breaches
    assert la.decide(missing, [0, None, 1])[0] == la.State.OK
    ignore = _alarm(3, 3, defs.MissingData.IGNORE)
    assert la.decide(ignore, [None, None, None], la.State.ALARM)[0] == la.State.ALARM  # state kept
    assert la.decide(ignore, [None, None, None], la.State.OK)[0] == la.State.OK


@pytest.mark.parametrize(
    ("comparison", "value", "breach"),
    [
        (defs.Comparison.GT, 5, False),
        (defs.Comparison.GTE, 5, True),
        (defs.Comparison.LT, 5, False),
        (defs.Comparison.LTE, 5, True),
        (defs.Comparison.LT, 4, True),
    ],
)
def test_threshold_comparisons(comparison: defs.Comparison, value: float, breach: bool) -> None:
    assert la.breaches(comparison, value, 5) is breach


def test_evaluation_periods_end_with_the_period_holding_now() -> None:
    assert la.evaluation_periods(T0 + 130, 60, 3) == [T0, T0 + 60, T0 + 120]


# -- metric math ----------------------------------------------------------------------------------------
def test_expression_subset() -> None:
    series = {"a": {0: 10.0, 60: 0.0, 120: 4.0}, "b": {0: 2.0, 60: 5.0}}
    out = la.evaluate_expression("IF(a >= 4, 100 * b / a, -1)", series)
    assert out == {0: 20.0, 60: -1.0}  # 120: b has no datapoint there
    assert la.evaluate_expression("a / b - 1", {"a": {0: 1.0}, "b": {0: 0.0}}) == {}  # division by zero
    assert la.evaluate_expression("(a + 2) * 3 > 10", {"a": {0: 2.0, 60: 1.0}}) == {0: 1.0, 60: 0.0}


def test_every_shared_expression_parses() -> None:
    for alarm in defs.ALARMS:
        if alarm.expression is not None and "DIFF(" in alarm.expression:
            # Outside the local subset (the DLQ arrival alarms): listed as not evaluated, with the reason.
            assert alarm.local_reason == defs.DIFF_LOCAL_REASON, alarm.suffix
            continue
        if alarm.expression is not None:
            node = la.parse_expression(alarm.expression)
            assert la.expression_ids(node) == {i for i, _ in alarm.metrics}, alarm.suffix


def test_bad_expressions_are_refused() -> None:
    for bad in ("a +", "IF(a, b)", "a $ b", "(a"):
        with pytest.raises(la.ExpressionError):
            la.parse_expression(bad)


def test_quarantine_rate_math_alarm_uses_the_shared_guard_and_threshold() -> None:
    minute = [T0 + 60 * k for k in range(5)]
    received = {t: 100.0 for t in minute}
    quarantined = {minute[0]: 10.0, minute[2]: 6.0, minute[4]: 5.0}  # 10 %, 6 %, 5 % (not > 5)
    ev, _ = _evaluator(
        {("EventsReceived", "Sum"): received, ("EventsQuarantined", "Sum"): quarantined},
        alarms=[defs.by_suffix()["quarantine-rate"]],
        composites=[],
    )
    result = ev.evaluate(_at(minute[4] + 30))[0]
    assert result.values == [10.0, None, 6.0, None, 5.0]
    assert result.state == la.State.OK  # 2 of 5 breaching, 3 needed
    quarantined[minute[3]] = 30.0
    assert ev.evaluate(_at(minute[4] + 30))[0].state == la.State.ALARM
    # Below MIN_EVENTS received, the expression yields 0: no page for 3 of 4 events.
    ev2, _ = _evaluator(
        {
            ("EventsReceived", "Sum"): dict.fromkeys(minute, 4.0),
            ("EventsQuarantined", "Sum"): dict.fromkeys(minute, 3.0),
        },
        alarms=[defs.by_suffix()["quarantine-rate"]],
        composites=[],
    )
    assert ev2.evaluate(_at(minute[4]))[0].state == la.State.OK


# -- drift page, bindings, severity routing ----------------------------------------------------------
def test_drift_alarms_page_and_ticket_once_per_transition_with_resolved_dimensions() -> None:
    w1, w2 = T0, T0 + 300
    data = {("DriftSeverity", "Maximum"): {w1: 0.0, w2: 2.0}}
    ev, notifier = _evaluator(data)
    first = _by_suffix(ev.evaluate(_at(w1 + 120)))
    assert first["drift-page"].state == la.State.OK
    assert first["drift-warn"].state == la.State.OK
    second = _by_suffix(ev.evaluate(_at(w2 + 120)))
    assert second["drift-page"].state == la.State.ALARM
    assert second["drift-warn"].state == la.State.ALARM
    again = _by_suffix(ev.evaluate(_at(w2 + 200)))  # still in ALARM: no second notification
    assert again["drift-page"].state == la.State.ALARM
    routed = sorted((sev, name) for sev, name, _ in notifier.sent)
    assert routed == [("page", f"{PREFIX}-drift-page"), ("ticket", f"{PREFIX}-drift-warn")]
    message = next(m for sev, _, m in notifier.sent if sev == "page")
    assert message["OldStateValue"] == "OK"
    assert message["NewStateValue"] == "ALARM"
    # The per-window period and the ModelVersion binding come from the shared definition.
    asked = next(a for a in ev.source.asked if a[0] == "DriftSeverity")  # type: ignore[attr-defined]
    assert asked[1] == {mc.DIM_SERVICE: mc.SERVICE_DRIFT, mc.DIM_MODEL_VERSION: VERSION}
    assert asked[2] == 300


def test_aws_service_alarms_are_reported_not_evaluated() -> None:
    ev, notifier = _evaluator({})
    results = _by_suffix(ev.evaluate(_at(T0)))
    for suffix in ("ingest-dlq-depth", "classifier-error-rate", "classifier-p99-duration", "ingest-oldest-message-age"):
        assert results[suffix].state == la.State.NOT_EVALUATED
        assert results[suffix].reason == la.NOT_EVALUATED_REASON
    assert results["model-load-failure"].state == la.State.OK  # ours, no data, notBreaching
    assert not notifier.sent


def test_composite_pages_only_when_both_burn_windows_alarm() -> None:
    labelled, weight = ("LabelledEvents", "Sum"), ("LabelledWeight", "Sum")
    wrong = ("MisclassifiedWeight", "Sum")  # the burn rate weighs labels by 1 / capture rate
    hour, five = T0, T0 + 3600 - 300
    # 40 % wrong over the hour (weighted: 100 labels standing for 400 events): burn 4 >= 3. The last
    # 5 minutes: nothing wrong yet.
    data: dict[tuple[str, str], dict[int, float]] = {
        labelled: {hour: 100.0, five: 50.0},
        weight: {hour: 400.0, five: 200.0},
        wrong: {hour: 160.0, five: 0.0},
    }

    class PerPeriod(FakeSource):
        def series(
            self, query: defs.MetricQuery, dimensions: Mapping[str, str], period: int, start: int, end: int
        ) -> la.Series:
            key = hour if period == 3600 else five
            value = self.data.get((query.name, query.statistic), {}).get(key)
            return {start: value} if value is not None and period in (300, 3600) else {}

    notifier = RecordingNotifier()
    ev = la.LocalAlarms(
        PerPeriod(data),
        la.local_bindings(ResourceNames(PREFIX), VERSION),
        prefix=PREFIX,
        window_seconds=300,
        notifier=notifier,
    )
    at = _at(T0 + 3600 - 1)
    first = _by_suffix(ev.evaluate(at))
    assert first["accuracy-burn-fast-long"].state == la.State.ALARM
    assert first["accuracy-burn-fast-short"].state == la.State.OK
    assert first["accuracy-burn-fast"].state == la.State.OK
    assert not [n for _, n, _ in notifier.sent if "accuracy" in n]  # the parts never notify
    data[wrong][five] = 100.0  # 50 % wrong in the last 5 minutes too
    second = _by_suffix(ev.evaluate(at))
    assert second["accuracy-burn-fast"].state == la.State.ALARM
    assert [(s, n) for s, n, _ in notifier.sent] == [("page", f"{PREFIX}-accuracy-burn-fast")]


def test_bindings_resolve_local_names() -> None:
    bindings = la.local_bindings(ResourceNames("p"), "2.0.0")
    assert bindings[defs.Binding.MODEL_VERSION] == "2.0.0"
    assert bindings[defs.Binding.INGEST_DLQ] == "p-ingest-dlq"
    assert bindings[defs.Binding.INPUT_RULE_DLQ] == "p-input-rule-dlq"
    assert bindings[defs.Binding.CLASSIFIER_FUNCTION] == "p-classifier"


def test_notification_lines() -> None:
    page = {"Severity": "page", "AlarmName": "x-drift-page", "OldStateValue": "OK", "NewStateValue": "ALARM"}
    assert la.notification_line(page).startswith("PAGE: x-drift-page OK -> ALARM")
    assert la.notification_line({**page, "Severity": "ticket"}).startswith("TICKET: x-drift-page")


# -- EMF parsing ----------------------------------------------------------------------------------------
def test_emf_lines_become_datums_per_dimension_set() -> None:
    doc = {
        "_aws": {
            "Timestamp": T0 * 1000,
            "CloudWatchMetrics": [
                {
                    "Namespace": "Pigeonhole",
                    "Dimensions": [["service", "ModelVersion"], ["service"]],
                    "Metrics": [
                        {"Name": "EventsReceived", "Unit": "Count"},
                        {"Name": "InferenceTime", "Unit": "Milliseconds"},
                    ],
                }
            ],
        },
        "service": "classifier",
        "ModelVersion": VERSION,
        "EventsReceived": 10.0,
        "InferenceTime": [3.0, 4.5],
    }
    datums = emf_datums(doc)
    assert len(datums) == 4
    received = [d for d in datums if d.name == "EventsReceived"]
    assert {d.dimensions for d in received} == {
        (("service", "classifier"), ("ModelVersion", VERSION)),
        (("service", "classifier"),),
    }
    assert next(d for d in datums if d.name == "InferenceTime").values == (3.0, 4.5)
    assert datums[0].timestamp == _at(T0)
    lines = ["plain text", '{"level": "INFO", "message": "no metrics"}', json.dumps(doc), "{broken _aws"]
    assert len(read_emf_lines(lines)) == 4


def test_drift_points_keep_their_dimensions_and_the_run_time() -> None:
    point = MetricPoint("DriftSeverity", "None", 2.0, {"service": "drift", "ModelVersion": VERSION})
    (datum,) = point_datums([point], _at(T0))
    assert datum.namespace == mc.NAMESPACE
    assert dict(datum.dimensions) == {"service": "drift", "ModelVersion": VERSION}
    assert datum.values == (2.0,)
    assert datum.timestamp == _at(T0)


# -- the demo's drift phase (pure parts) ----------------------------------------------------------------
def test_drift_phase_windows_are_closed_and_older_than_the_first_part() -> None:
    from pigeonhole_tools.local import drift_phase as dp

    now = _at(T0 + 4321)
    w1, w2 = dp.plan_windows(now, 300)
    assert w2 == w1 + 300
    assert w2 + 300 + 120 <= int(now.timestamp())  # window 2 closed (end + grace) when the phase runs
    assert w2 + 300 <= int(now.timestamp()) - 600  # the first part's event times reach 600 s back
    opts = dp.DriftPhaseOptions(stationary_events=40, shifted_events=20, shifted_share=0.5)
    events, off_domain = dp.build_events(w1, w2, 300, opts, ["how do I top up", "my card is lost"])
    assert off_domain == 10
    assert len(events) == 60
    times = [json.loads(e.body)["time"] for e in events]
    starts = [datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() // 300 * 300 for t in times]
    assert starts.count(w1) == 40
    assert starts.count(w2) == 20


def test_drift_phase_render_marks_the_fallback_and_lists_notifications() -> None:
    import io

    from rich.console import Console

    from pigeonhole_tools.local import drift_phase as dp

    ev, _ = _evaluator({("DriftSeverity", "Maximum"): {T0: 2.0}})
    report = dp.DriftPhaseReport(
        source="the demo's own banking messages",
        fallback=True,
        windows=[("2027-01-15T08:00:00Z", "stationary", 2000)],
        sent=1,
        landed=1,
        drained=True,
        drift=[{"window": "2027-01-15T08:00:00Z", "severity": "page", "events": 2000, "why": ["baseline x page: y"]}],
        evaluations=[dp.Evaluation("drift w1 run", "2027-01-15T08:07:00Z", ev.evaluate(_at(T0 + 60)))],
        pages=[{"Severity": "page", "AlarmName": "unit-drift-page", "OldStateValue": "OK", "NewStateValue": "ALARM"}],
    )
    out = io.StringIO()
    dp.render_drift_phase(report, Console(file=out, width=200))
    text = out.getvalue()
    assert "PAGE: unit-drift-page OK -> ALARM" in text
    assert "No BANKING77 test split here" in text
    assert "baseline x page: y" in text
    assert "not evaluated locally (no such metric in the emulator): ingest-dlq-depth" in text
    assert report.ok
