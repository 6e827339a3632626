"""Watch the silences: every alarm is bound to a resource the template really creates, every rule and
DLQ is watched, the heartbeat fires on no data, the queues people read keep messages long enough, and
each alarm is either evaluated locally or listed with the reason it is not."""

from __future__ import annotations

from typing import Any

import pytest
from infra_helpers import FAKE_MODEL_VERSION, Synthesized

from pigeonhole import alarms as defs
from pigeonhole import metrics_catalog as mc
from pigeonhole import topology as topo
from pigeonhole.naming import ResourceNames
from pigeonhole_tools.local import alarms as local_alarms
from pigeonhole_tools.local import service_metrics


def _names_of(s: Synthesized, cfn_type: str, prop: str) -> set[str]:
    return {r["Properties"][prop] for r in s.of_type(cfn_type).values()}


def _alarm_dimension_sets(props: dict[str, Any]) -> list[tuple[str, dict[str, str]]]:
    """(namespace, dimensions) of each metric an alarm reads, single-metric or math."""
    if "MetricName" in props:
        return [(props["Namespace"], {d["Name"]: d["Value"] for d in props.get("Dimensions", [])})]
    found = []
    for m in props["Metrics"]:
        if "MetricStat" in m:
            metric = m["MetricStat"]["Metric"]
            found.append((metric["Namespace"], {d["Name"]: d["Value"] for d in metric.get("Dimensions", [])}))
    return found


@pytest.mark.parametrize("which", ["default_stack", "alternate_stack"])
def test_every_alarm_is_bound_to_a_resource_in_the_template(which: str, request: pytest.FixtureRequest) -> None:
    s: Synthesized = request.getfixturevalue(which)
    queues = _names_of(s, "AWS::SQS::Queue", "QueueName")
    functions = _names_of(s, "AWS::Lambda::Function", "FunctionName")
    aliases = {f"{fn}:{a}" for fn in functions for a in _names_of(s, "AWS::Lambda::Alias", "Name")}
    buses = _names_of(s, "AWS::Events::EventBus", "Name")
    rules = {
        r["Properties"]["Name"]: r["Properties"].get("EventBusName") for r in s.of_type("AWS::Events::Rule").values()
    }
    bus_ids = {lid: r["Properties"]["Name"] for lid, r in s.of_type("AWS::Events::EventBus").items()}
    (version_id,) = s.of_type("AWS::Lambda::Version")  # the one version this deploy publishes
    new_version = {"Fn::GetAtt": [version_id, "Version"]}
    # Version dimensions: the model's, and (the canary alarms) the function version this deploy publishes.
    pinned = {
        mc.DIM_MODEL_VERSION: FAKE_MODEL_VERSION,
        mc.DIM_FUNCTION_VERSION: new_version,
        "ExecutedVersion": new_version,
    }
    tables = _names_of(s, "AWS::DynamoDB::Table", "TableName")
    plain = {
        "QueueName": queues,
        "FunctionName": functions,
        "Resource": aliases,
        "EventBusName": buses,
        "TableName": tables,
    }
    checked = 0
    for alarm in s.of_type("AWS::CloudWatch::Alarm").values():
        name = alarm["Properties"]["AlarmName"]
        for namespace, dims in _alarm_dimension_sets(alarm["Properties"]):
            assert dims, name
            for key, value in dims.items():
                checked += 1
                if key in plain:
                    assert value in plain[key], (name, value)
                elif key == "RuleName":
                    assert value in rules, (name, value)
                    bus_ref = rules[value]
                    if "EventBusName" in dims:  # a custom bus: the rule's own bus, by name
                        assert dims["EventBusName"] in buses
                        assert isinstance(bus_ref, dict), (name, "a rule on a custom bus references it")
                        assert bus_ids[bus_ref["Ref"]] == dims["EventBusName"], name
                    else:  # the default bus
                        assert bus_ref is None, (name, value)
                elif key in pinned:
                    assert namespace == (defs.NS_LAMBDA if key == "ExecutedVersion" else mc.NAMESPACE), name
                    assert value == pinned[key], (name, key)
                else:
                    assert key == mc.DIM_SERVICE, (name, key)
                    assert namespace == mc.NAMESPACE, (name, key)
    assert checked > 60


def _by_metric(s: Synthesized) -> list[dict[str, Any]]:
    return [r["Properties"] for r in s.of_type("AWS::CloudWatch::Alarm").values()]


def test_every_rule_has_a_failed_invocations_alarm(default_stack: Synthesized) -> None:
    watched = {
        dims["RuleName"]
        for props in _by_metric(default_stack)
        for ns, dims in _alarm_dimension_sets(props)
        if ns == defs.NS_EVENTS and props.get("MetricName") == "FailedInvocations"
    }
    assert watched == {r.name for r in default_stack.stack.config.topology.rules}


def test_every_dlq_notifies_on_each_new_arrival(default_stack: Synthesized) -> None:
    topology = default_stack.stack.config.topology
    dlqs = {q.name for q in topology.queues if q.dead_letter}
    redriven = {q.redrive.dead_letter_queue for q in topology.queues if q.redrive is not None}
    arrivals: dict[str, dict[str, Any]] = {}
    for props in _by_metric(default_stack):
        if not props["AlarmName"].endswith("-dlq-arrivals"):
            continue
        ((_, dims),) = _alarm_dimension_sets(props)
        arrivals[dims["QueueName"]] = props
    assert set(arrivals) == dlqs
    for queue, props in arrivals.items():
        assert props["AlarmActions"], queue  # ALARM notifies ...
        assert not props.get("OKActions"), queue  # ... "no new arrival this period" does not
        assert props["Threshold"] == 0
        assert props["ComparisonOperator"] == "GreaterThanThreshold"
        if queue in redriven:  # SQS does not count a redrive move in NumberOfMessagesSent: depth increase
            assert [m["Expression"] for m in props["Metrics"] if "Expression" in m] == ["DIFF(visible)"], queue
        else:  # EventBridge target DLQs and the on-failure destination use SendMessage
            assert (props["MetricName"], props["Statistic"]) == ("NumberOfMessagesSent", "Sum"), queue


def test_traffic_heartbeat_fires_on_silence(default_stack: Synthesized) -> None:
    (props,) = [p for p in _by_metric(default_stack) if p["AlarmName"] == "pigeonhole-traffic-heartbeat"]
    assert props["TreatMissingData"] == "breaching"  # no traffic publishes no datapoint at all
    assert (props["ComparisonOperator"], props["Threshold"]) == ("LessThanThreshold", 1)
    assert props["EvaluationPeriods"] == props["DatapointsToAlarm"] == defs.HEARTBEAT_PERIODS
    assert (props["Namespace"], props["MetricName"], props["Statistic"]) == (defs.NS_LAMBDA, "Invocations", "Sum")


def test_people_read_queues_keep_messages_and_warn_before_expiry(default_stack: Synthesized) -> None:
    names = default_stack.stack.config.names
    retention = {
        r["Properties"]["QueueName"]: r["Properties"]["MessageRetentionPeriod"]
        for r in default_stack.of_type("AWS::SQS::Queue").values()
    }
    for queue in (names.review_queue, names.quarantine_queue):
        assert retention[queue] == topo.HUMAN_QUEUE_RETENTION_S == 13 * topo.DAY_S
    for queue in (names.review_dlq, names.quarantine_dlq, names.ingest_dlq, names.drift_dlq):
        assert retention[queue] == 14 * topo.DAY_S
    ages = {
        p["AlarmName"]: p["Threshold"]
        for p in _by_metric(default_stack)
        if p.get("MetricName") == "ApproximateAgeOfOldestMessage"
    }
    for kind in ("review", "quarantine"):
        ticket, page = ages[f"pigeonhole-{kind}-oldest-message-age"], ages[f"pigeonhole-{kind}-message-expiry"]
        assert ticket < page < topo.HUMAN_QUEUE_RETENTION_S
        assert f"pigeonhole-{kind}-backlog" in {p["AlarmName"] for p in _by_metric(default_stack)}


def test_feedback_unmatched_rate_reads_what_feedback_emits(default_stack: Synthesized) -> None:
    (props,) = [p for p in _by_metric(default_stack) if p["AlarmName"] == "pigeonhole-feedback-unmatched-rate"]
    names = {m["MetricStat"]["Metric"]["MetricName"] for m in props["Metrics"] if "MetricStat" in m}
    assert names == {mc.FEEDBACK_UNMATCHED.name, mc.LABELLED_EVENTS.name}


def test_every_alarm_is_evaluated_locally_or_listed_with_its_reason() -> None:
    """The local evaluator's list: evaluated, or "not evaluated locally" with a reason. An alarm whose
    definition says it cannot be evaluated locally (DIFF, EventBridge, NumberOfMessagesSent, the
    heartbeat) is listed with that reason, also where the local runtime emits AWS/SQS and AWS/Lambda."""
    names = ResourceNames("local-check")
    local = topo.build(names).local()
    skipped = service_metrics.not_evaluated(
        defs.ALARMS,
        local_alarms.local_bindings(names, "1.0.0"),
        queues=[q.name for q in local.queues],
        functions=[names.classifier_function],
    )
    for alarm in defs.ALARMS:
        if alarm.local_reason is not None:
            assert alarm.local_reason.startswith("not evaluated locally: "), alarm.suffix
            assert skipped[alarm.suffix] == alarm.local_reason, alarm.suffix
            assert not local_alarms.evaluable(alarm), alarm.suffix  # nor by the evaluator's own default
        if alarm.expression is not None and "DIFF(" in alarm.expression:
            assert alarm.local_reason == defs.DIFF_LOCAL_REASON, alarm.suffix
    # The silence alarms the local runtime can evaluate: the SQS age/backlog ones and the unmatched rate.
    evaluated = {a.suffix for a in defs.SILENCE_ALARMS} - set(skipped)
    assert evaluated == {
        "review-oldest-message-age",
        "review-message-expiry",
        "review-backlog",
        "quarantine-oldest-message-age",
        "quarantine-message-expiry",
        "quarantine-backlog",
        "feedback-unmatched-rate",
    }
