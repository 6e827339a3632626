"""Windows that scale, on the synthesized template: one shard count for every function (from the stack
config), and DynamoDB throttle and transaction-conflict alarms bound to the real tables."""

from __future__ import annotations

from typing import Any

import pytest
from infra_helpers import ALTERNATE_CONFIG, Synthesized

from pigeonhole import alarms as defs
from pigeonhole import constants as c


def _functions(s: Synthesized) -> dict[str, dict[str, Any]]:
    return {lid: r["Properties"] for lid, r in s.of_type("AWS::Lambda::Function").items()}


@pytest.mark.parametrize(
    ("which", "shards"), [("default_stack", 1), ("alternate_stack", ALTERNATE_CONFIG["window_shards"])]
)
def test_every_function_gets_the_configured_shard_count(
    which: str, shards: int, request: pytest.FixtureRequest
) -> None:
    s: Synthesized = request.getfixturevalue(which)
    assert s.stack.config.window_shards == shards
    ours = {
        lid: props["Environment"]["Variables"]
        for lid, props in _functions(s).items()
        if "POWERTOOLS_SERVICE_NAME" in props.get("Environment", {}).get("Variables", {})
    }
    services = {env["POWERTOOLS_SERVICE_NAME"] for env in ours.values()}
    assert {"classifier", "drift", "feedback"} <= services
    # Every function of ours (not only the three above) names the same batch partitions.
    assert {lid: env.get(c.ENV_WINDOW_SHARDS) for lid, env in ours.items()} == dict.fromkeys(ours, str(shards))


def _table_alarms(s: Synthesized) -> dict[str, dict[str, Any]]:
    return {
        p["AlarmName"]: p
        for p in (r["Properties"] for r in s.of_type("AWS::CloudWatch::Alarm").values())
        if p.get("Namespace") == defs.NS_DYNAMODB
    }


@pytest.mark.parametrize("which", ["default_stack", "alternate_stack"])
def test_throttle_and_conflict_alarms_watch_the_real_tables(which: str, request: pytest.FixtureRequest) -> None:
    s: Synthesized = request.getfixturevalue(which)
    names = s.stack.config.names
    tables = {r["Properties"]["TableName"] for r in s.of_type("AWS::DynamoDB::Table").values()}
    watched = {
        name.removeprefix(f"{names.prefix}-"): (
            p["MetricName"],
            {d["Name"]: d["Value"] for d in p["Dimensions"]},
            p["Statistic"],
        )
        for name, p in _table_alarms(s).items()
    }
    assert watched == {
        "windows-write-throttles": ("WriteThrottleEvents", {"TableName": names.windows_table}, "Sum"),
        "windows-read-throttles": ("ReadThrottleEvents", {"TableName": names.windows_table}, "Sum"),
        "predictions-write-throttles": ("WriteThrottleEvents", {"TableName": names.predictions_table}, "Sum"),
        "feedback-write-throttles": ("WriteThrottleEvents", {"TableName": names.feedback_table}, "Sum"),
        "windows-transaction-conflicts": ("TransactionConflict", {"TableName": names.windows_table}, "Sum"),
    }
    assert {dims["TableName"] for _, dims, _ in watched.values()} <= tables  # tables the template creates
    for name, p in _table_alarms(s).items():
        assert p["AlarmActions"], name  # they notify (a ticket)
        assert (p["EvaluationPeriods"], p["DatapointsToAlarm"], p["Period"]) == (3, 2, 300), name
        assert p["TreatMissingData"] == "notBreaching", name  # DynamoDB sends these only when non-zero
        assert p["ComparisonOperator"] == "GreaterThanThreshold", name
