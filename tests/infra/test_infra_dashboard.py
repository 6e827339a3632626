"""The synthesized dashboard and alarms, read as an on-call engineer would: every alarm links its runbook
entry, and the canary, DynamoDB, EventBridge and event-source-mapping widgets watch real metrics of the
resources this template creates."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from infra_helpers import Synthesized

from pigeonhole import alarms as defs

# The AWS metrics the dashboard may draw, per namespace: AWS's published names (Lambda "Types of
# metrics" incl. event source mapping EventCount metrics; DynamoDB "Metrics and dimensions";
# EventBridge "Monitoring"; SQS "Available CloudWatch metrics"). A typo draws an empty graph silently.
REAL_METRICS: dict[str, set[str]] = {
    "AWS/Lambda": {
        "Invocations",
        "Errors",
        "Throttles",
        "Duration",
        "ConcurrentExecutions",
        "ProvisionedConcurrencyUtilization",
        "ProvisionedConcurrencySpilloverInvocations",
        "PolledEventCount",
        "InvokedEventCount",
        "FilteredOutEventCount",
        "FailedInvokeEventCount",
        "DroppedEventCount",
        "DeletedEventCount",
        "OnFailureDestinationDeliveredEventCount",
    },
    "AWS/DynamoDB": {
        "ConsumedReadCapacityUnits",
        "ConsumedWriteCapacityUnits",
        "ReadThrottleEvents",
        "WriteThrottleEvents",
        "ThrottledRequests",
        "TransactionConflict",
        "ConditionalCheckFailedRequests",
    },
    "AWS/Events": {"Invocations", "FailedInvocations", "InvocationsSentToDlq", "InvocationsFailedToBeSentToDlq"},
    "AWS/SQS": {"ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage", "NumberOfMessagesSent"},
}


def _body(s: Synthesized) -> dict[str, Any]:
    """The dashboard body as JSON, each reference replaced by `<Ref:LogicalId>` / `<GetAtt:LogicalId.Attr>`."""
    (dashboard,) = s.of_type("AWS::CloudWatch::Dashboard").values()
    raw = dashboard["Properties"]["DashboardBody"]
    parts = raw["Fn::Join"][1] if isinstance(raw, dict) else [raw]
    text = "".join(p if isinstance(p, str) else _token(p) for p in parts)
    return json.loads(text)


def _token(intrinsic: dict[str, Any]) -> str:
    if "Ref" in intrinsic:
        return f"<Ref:{intrinsic['Ref']}>"
    return f"<GetAtt:{'.'.join(intrinsic['Fn::GetAtt'])}>"


def _widgets(s: Synthesized) -> dict[str, dict[str, Any]]:
    return {w["properties"]["title"]: w["properties"] for w in _body(s)["widgets"] if "title" in w["properties"]}


def _metrics(widget: dict[str, Any]) -> list[tuple[str, str, dict[str, str]]]:
    """(namespace, name, dimensions) of each plain metric line of a graph."""
    found = []
    for line in widget.get("metrics", []):
        if isinstance(line[0], str):
            namespace, name, *rest = line
            dims = [x for x in rest if isinstance(x, str)]
            found.append((namespace, name, dict(zip(dims[::2], dims[1::2], strict=True))))
    return found


def _expressions(widget: dict[str, Any]) -> list[str]:
    return [line[0]["expression"] for line in widget.get("metrics", []) if isinstance(line[0], dict)]


def _names(s: Synthesized, cfn_type: str, prop: str) -> set[str]:
    return {r["Properties"][prop] for r in s.of_type(cfn_type).values()}


@pytest.mark.parametrize("which", ["default_stack", "alternate_stack"])
def test_every_alarm_description_links_its_runbook_entry(which: str, request: pytest.FixtureRequest) -> None:
    s: Synthesized = request.getfixturevalue(which)
    prefix = s.stack.config.prefix
    suffixes = [a.suffix for a in defs.ALARMS] + [c.suffix for c in defs.COMPOSITES]
    expected = {defs.alarm_name(prefix, suffix): suffix for suffix in suffixes}
    alarms = {**s.of_type("AWS::CloudWatch::Alarm"), **s.of_type("AWS::CloudWatch::CompositeAlarm")}
    assert alarms
    for lid, alarm in alarms.items():
        props = alarm["Properties"]
        name = props.get("AlarmName")
        assert name in expected, f"{lid}: alarm {name!r} is not defined in pigeonhole.alarms"
        description = props["AlarmDescription"]
        assert description.endswith(f"Runbook: docs/runbook.md#{expected[name]}"), f"{name}: {description}"
        assert len(description) <= defs.DESCRIPTION_LIMIT


def test_a_hosted_runbook_url_is_used(tmp_path_factory: pytest.TempPathFactory, fake_model_dir: Any) -> None:
    from infra_helpers import DEFAULT_CONFIG, synthesize

    url = "https://git.example.com/pigeonhole/blob/v1.2.3/docs/runbook.md"
    s = synthesize(
        tmp_path_factory.mktemp("synth-runbook"),
        {**DEFAULT_CONFIG, "model_dir": str(fake_model_dir), "runbook_url": url},
    )
    descriptions = [a["Properties"]["AlarmDescription"] for a in s.of_type("AWS::CloudWatch::Alarm").values()]
    assert descriptions
    assert all(re.search(rf"Runbook: {re.escape(url)}#[a-z0-9-]+$", d) for d in descriptions)


@pytest.mark.parametrize("which", ["default_stack", "alternate_stack"])
def test_dashboard_draws_only_real_aws_metrics(which: str, request: pytest.FixtureRequest) -> None:
    s: Synthesized = request.getfixturevalue(which)
    for title, widget in _widgets(s).items():
        for namespace, name, _ in _metrics(widget):
            if namespace.startswith("AWS/"):
                assert name in REAL_METRICS.get(namespace, set()), f"{title!r}: {namespace} {name} is not an AWS metric"
        for expression in _expressions(widget):
            for namespace, name in re.findall(r"\{(AWS/[A-Za-z]+)[^}]*\} MetricName=\"(\w+)\"", expression):
                assert name in REAL_METRICS[namespace], f"{title!r}: {namespace} {name} is not an AWS metric"


@pytest.mark.parametrize("which", ["default_stack", "alternate_stack"])
def test_canary_view_splits_the_live_alias_by_version(which: str, request: pytest.FixtureRequest) -> None:
    s: Synthesized = request.getfixturevalue(which)
    names = s.stack.config.names
    widgets = _widgets(s)
    assert names.classifier_function in _names(s, "AWS::Lambda::Function", "FunctionName")
    assert "live" in _names(s, "AWS::Lambda::Alias", "Name")
    for title, metric in (
        ("Invocations by version", "Invocations"),
        ("Errors by version", "Errors"),
        ("Duration p99 by version (ms)", "Duration"),
    ):
        (expression,) = _expressions(widgets[title])
        assert "{AWS/Lambda,FunctionName,Resource,ExecutedVersion}" in expression, title
        assert f'MetricName="{metric}"' in expression
        assert f'FunctionName="{names.classifier_function}"' in expression
        assert f'Resource="{names.classifier_alias_resource}"' in expression
    for title in ("Review rate by model version (%)", "Quarantine rate by model version (%)"):
        (expression,) = _expressions(widgets[title])
        # One line per model version: the ModelVersion dimension is in the schema and pinned to no value.
        assert "{Pigeonhole,service,ModelVersion}" in expression
        assert "ModelVersion=" not in expression


@pytest.mark.parametrize("which", ["default_stack", "alternate_stack"])
def test_dynamodb_widgets_watch_the_windows_table(which: str, request: pytest.FixtureRequest) -> None:
    s: Synthesized = request.getfixturevalue(which)
    names = s.stack.config.names
    tables = _names(s, "AWS::DynamoDB::Table", "TableName")
    widgets = _widgets(s)
    drawn: dict[str, set[str]] = {}
    for title in (
        "Windows table: consumed capacity (units / min)",
        "DynamoDB throttles",
        "Windows table: conflicts",
    ):
        for namespace, name, dims in _metrics(widgets[title]):
            assert namespace == "AWS/DynamoDB", title
            assert set(dims) == {"TableName"}, title
            assert dims["TableName"] in tables, f"{title}: {dims['TableName']} is not a table of this stack"
            drawn.setdefault(name, set()).add(dims["TableName"])
    for metric in ("ConsumedWriteCapacityUnits", "ConsumedReadCapacityUnits", "TransactionConflict"):
        assert drawn[metric] == {names.windows_table}, metric
    assert drawn["WriteThrottleEvents"] == tables  # every table the functions write


@pytest.mark.parametrize("which", ["default_stack", "alternate_stack"])
def test_eventbridge_widgets_watch_every_rule(which: str, request: pytest.FixtureRequest) -> None:
    s: Synthesized = request.getfixturevalue(which)
    rules = {
        r["Properties"]["Name"]: r["Properties"].get("EventBusName") for r in s.of_type("AWS::Events::Rule").values()
    }
    bus_names = {lid: r["Properties"]["Name"] for lid, r in s.of_type("AWS::Events::EventBus").items()}
    widgets = _widgets(s)
    for title, metrics in (
        ("Rule invocations", {"Invocations"}),
        (
            "Rule deliveries that failed",
            {"FailedInvocations", "InvocationsSentToDlq", "InvocationsFailedToBeSentToDlq"},
        ),
    ):
        seen: dict[str, set[str]] = {}
        for namespace, name, dims in _metrics(widgets[title]):
            assert namespace == "AWS/Events"
            rule = dims["RuleName"]
            assert rule in rules, f"{title}: {rule} is not a rule of this stack"
            bus_ref = rules[rule]
            if bus_ref is None:  # the default bus: RuleName alone
                assert set(dims) == {"RuleName"}, (title, rule)
            else:  # a custom bus: EventBusName + RuleName, the bus this rule is on
                bus = bus_names[bus_ref["Ref"]] if isinstance(bus_ref, dict) else bus_ref
                assert dims.get("EventBusName") == bus, (title, rule)
            seen.setdefault(name, set()).add(rule)
        assert set(seen) == metrics, title
        assert all(found == set(rules) for found in seen.values()), f"{title}: not every rule is drawn"


@pytest.mark.parametrize("which", ["default_stack", "alternate_stack"])
def test_event_source_mapping_widgets_use_the_mappings_uuids(which: str, request: pytest.FixtureRequest) -> None:
    s: Synthesized = request.getfixturevalue(which)
    config = s.stack.config
    queues = {lid: r["Properties"]["QueueName"] for lid, r in s.of_type("AWS::SQS::Queue").items()}
    mappings = s.of_type("AWS::Lambda::EventSourceMapping")
    source_of = {lid: queues[m["Properties"]["EventSourceArn"]["Fn::GetAtt"][0]] for lid, m in mappings.items()}
    assert sorted(source_of.values()) == sorted([config.names.ingest_queue, config.names.feedback_queue])
    widgets = _widgets(s)
    for title, queue in (
        ("Ingest mapping (events / min)", config.names.ingest_queue),
        ("Feedback mapping (events / min)", config.names.feedback_queue),
    ):
        lines = _metrics(widgets[title])
        assert {name for _, name, _ in lines} == {
            "PolledEventCount",
            "InvokedEventCount",
            "FailedInvokeEventCount",
            "DeletedEventCount",
        }
        for namespace, _, dims in lines:
            assert namespace == "AWS/Lambda"
            assert set(dims) == {"EventSourceMappingUUID"}
            ref = re.fullmatch(r"<Ref:(\w+)>", dims["EventSourceMappingUUID"])
            assert ref is not None, (title, dims)
            assert source_of.get(ref.group(1)) == queue, (title, dims)
            # The mapping publishes these metrics only when asked to.
            assert mappings[ref.group(1)]["Properties"]["MetricsConfig"] == {"Metrics": ["EventCount"]}
    cap = widgets["Classifier concurrency and the mapping's cap"]
    assert [a["value"] for a in cap["annotations"]["horizontal"]] == [config.max_concurrency]
    (ingest_lid,) = [lid for lid, q in source_of.items() if q == config.names.ingest_queue]
    assert mappings[ingest_lid]["Properties"]["ScalingConfig"] == {"MaximumConcurrency": config.max_concurrency}
