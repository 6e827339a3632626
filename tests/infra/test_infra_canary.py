"""Issue 9 item 1 on the synthesized template: the canary judges the NEW version alone, its alarms can fire
inside the interval, and a pre-traffic hook replays the golden set through that version first."""

from __future__ import annotations

from typing import Any

import pytest
from infra_helpers import Synthesized, ref_id

from pigeonhole import alarms as defs
from pigeonhole import constants as c
from pigeonhole import metrics_catalog as mc
from pigeonhole_infra.config import ConfigError, InfraConfig


def _alarms(s: Synthesized) -> dict[str, dict[str, Any]]:
    return {r["Properties"]["AlarmName"]: r["Properties"] for r in s.of_type("AWS::CloudWatch::Alarm").values()}


def _version_id(s: Synthesized) -> str:
    versions = s.of_type("AWS::Lambda::Version")
    assert len(versions) == 1
    return next(iter(versions))


def _dims(metric: dict[str, Any]) -> dict[str, Any]:
    return {d["Name"]: d["Value"] for d in metric["Dimensions"]}


def _is_version_number(value: Any, version_id: str) -> bool:
    return value == {"Fn::GetAtt": [version_id, "Version"]}


@pytest.mark.parametrize("which", ["default_stack", "alternate_stack"])
def test_every_rollback_alarm_reads_the_new_version_alone(which: str, request: pytest.FixtureRequest) -> None:
    """Lambda metrics by ExecutedVersion = the version this deploy publishes; ours by model or function version."""
    s: Synthesized = request.getfixturevalue(which)
    version_id = _version_id(s)
    prefix = s.stack.config.prefix
    alarms = _alarms(s)
    rollback = [d for d in defs.ALARMS if d.rollback]
    assert {d.suffix for d in rollback} == {d.suffix for d in defs.CANARY_ALARMS}
    for definition in rollback:
        props = alarms[defs.alarm_name(prefix, definition.suffix)]
        metrics = (
            [props]
            if "MetricName" in props
            else [m["MetricStat"]["Metric"] for m in props["Metrics"] if "MetricStat" in m]
        )
        assert metrics, definition.suffix
        for metric in metrics:
            dims = _dims(metric)
            if metric["Namespace"] == "AWS/Lambda":
                assert dims["FunctionName"] == s.stack.config.names.classifier_function
                assert dims["Resource"] == s.stack.config.names.classifier_alias_resource
                assert _is_version_number(dims["ExecutedVersion"], version_id), definition.suffix
            else:
                assert metric["Namespace"] == mc.NAMESPACE
                pinned = dims.get(mc.DIM_MODEL_VERSION) or dims.get(mc.DIM_FUNCTION_VERSION)
                assert pinned is not None, f"{definition.suffix}: not pinned to a version"
                if mc.DIM_FUNCTION_VERSION in dims:
                    assert _is_version_number(dims[mc.DIM_FUNCTION_VERSION], version_id)
                else:
                    assert dims[mc.DIM_MODEL_VERSION] == s.stack.model_manifest.version
    # The alias alarms stay (they page), but no longer stop a canary: a bad OLD version must not roll back a fix.
    for suffix in ("classifier-error-rate", "classifier-p99-duration", "model-load-failure"):
        assert not defs.by_suffix()[suffix].rollback


def test_record_failure_rate_is_metric_math_over_failed_and_received(default_stack: Synthesized) -> None:
    props = _alarms(default_stack)["pigeonhole-canary-record-failure-rate"]
    expressions = [m["Expression"] for m in props["Metrics"] if "Expression" in m]
    assert expressions == [f"IF(whole >= {defs.CANARY_MIN_EVENTS}, 100 * part / whole, 0)"]
    stats = {m["Id"]: m["MetricStat"] for m in props["Metrics"] if "MetricStat" in m}
    assert stats["part"]["Metric"]["MetricName"] == mc.PUBLISH_FAILURES.name
    assert stats["whole"]["Metric"]["MetricName"] == mc.EVENTS_RECEIVED.name
    assert {st["Stat"] for st in stats.values()} == {"Sum"}
    assert props["Threshold"] == 5
    assert props["ComparisonOperator"] == "GreaterThanThreshold"


@pytest.mark.parametrize("which", ["default_stack", "alternate_stack"])
def test_the_canary_interval_fits_every_rollback_alarm(which: str, request: pytest.FixtureRequest) -> None:
    s: Synthesized = request.getfixturevalue(which)
    config: InfraConfig = s.stack.config
    for d in (d for d in defs.ALARMS if d.rollback):
        assert defs.seconds_to_fire(d) <= config.canary_minutes * 60, d.suffix
    group = next(iter(s.of_type("AWS::CodeDeploy::DeploymentGroup").values()))["Properties"]
    assert group["AlarmConfiguration"]["Enabled"] is True


def test_timing_arithmetic() -> None:
    """2 of 3 one-minute points + 3 min EMF delay + 1 min evaluation = 6 min for our metrics; 5 for Lambda's."""
    by = defs.by_suffix()
    assert defs.seconds_to_fire(by["canary-review-rate"]) == 2 * 60 + 180 + 60
    assert defs.seconds_to_fire(by["canary-error-rate"]) == 2 * 60 + 120 + 60
    assert defs.seconds_to_fire(by["canary-model-load-failure"]) == 60 + 180 + 60
    assert defs.canary_seconds_needed() == 360
    # The old shape (3 of 5 one-minute points + EMF delay) did not fit the old 5-minute canary.
    assert 3 * 60 + defs.EMF_METRIC_DELAY_S > 5 * 60


@pytest.mark.parametrize("minutes", [1, 5])
def test_a_canary_shorter_than_its_alarms_need_is_refused(minutes: int) -> None:
    with pytest.raises(ConfigError, match=r"canary_minutes: \d+ min is shorter than the 6 min the rollback alarms"):
        InfraConfig(canary_minutes=minutes)
    InfraConfig(canary_minutes=minutes, canary_percent=0)  # all at once: no canary interval to fit
    assert InfraConfig().canary_minutes * 60 >= defs.canary_seconds_needed()


def test_the_hook_is_the_alias_before_allow_traffic_hook(default_stack: Synthesized) -> None:
    names = default_stack.stack.config.names
    alias_id, alias = next(iter(default_stack.of_type("AWS::Lambda::Alias").items()))
    update = alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]
    assert update["BeforeAllowTrafficHook"] == names.golden_hook_function
    group_id = next(iter(default_stack.of_type("AWS::CodeDeploy::DeploymentGroup")))
    assert ref_id(update["DeploymentGroupName"]) == group_id
    # The deployment starts with the alias update: hook, its policy and the re-bound alarms exist first.
    functions = {
        r["Properties"]["FunctionName"]: lid for lid, r in default_stack.of_type("AWS::Lambda::Function").items()
    }
    hook_id = functions[names.golden_hook_function]
    depends = set(alias["DependsOn"])
    assert hook_id in depends
    policy_ids = {lid for lid in default_stack.of_type("AWS::IAM::Policy") if lid.startswith("GoldenHookRole")}
    assert policy_ids <= depends
    alarm_ids = {
        lid
        for lid, r in default_stack.of_type("AWS::CloudWatch::Alarm").items()
        if "canary-" in r["Properties"]["AlarmName"]
    }
    assert alarm_ids
    assert alarm_ids <= depends
    assert alias_id not in depends


def test_the_hook_targets_the_new_version_with_the_stack_floor(default_stack: Synthesized) -> None:
    names = default_stack.stack.config.names
    hook = next(
        r
        for r in default_stack.of_type("AWS::Lambda::Function").values()
        if r["Properties"]["FunctionName"] == names.golden_hook_function
    )
    props = hook["Properties"]
    env = props["Environment"]["Variables"]
    assert env[c.ENV_HOOK_TARGET_VERSION] == {"Ref": _version_id(default_stack)}  # the version's qualified ARN
    assert env[c.ENV_MIN_GOLDEN_ACCURACY] == str(default_stack.stack.config.min_golden_accuracy)
    assert props["Handler"] == "pigeonhole.hook.handler.handler"
    assert props["ReservedConcurrentExecutions"] == 1
    assert len(props["Layers"]) == 2  # runtime + the same model layer the classifier version gets (golden set)
    # Its log group is its own, with the stack's retention.
    log_groups = [r["Properties"] for r in default_stack.of_type("AWS::Logs::LogGroup").values()]
    mine = [g for g in log_groups if g.get("LogGroupName") == f"/aws/lambda/{names.golden_hook_function}"]
    assert mine
    assert mine[0]["RetentionInDays"] == default_stack.stack.config.log_retention_days


def _policy_of(s: Synthesized, prefix: str) -> list[dict[str, Any]]:
    return [
        st
        for lid, r in s.of_type("AWS::IAM::Policy").items()
        if lid.startswith(prefix)
        for st in r["Properties"]["PolicyDocument"]["Statement"]
    ]


def test_hook_permissions_are_least_privilege(default_stack: Synthesized) -> None:
    statements = _policy_of(default_stack, "GoldenHookRole")
    by_action: dict[str, Any] = {}
    for st in statements:
        for action in st["Action"] if isinstance(st["Action"], list) else [st["Action"]]:
            by_action[action] = st["Resource"]
    # Invoke exactly the published version (its qualified ARN), not the function, not a wildcard.
    assert by_action["lambda:InvokeFunction"] == {"Ref": _version_id(default_stack)}
    # Report only on this deployment group.
    group_arn = str(by_action["codedeploy:PutLifecycleEventHookExecutionStatus"])
    group_id = next(iter(default_stack.of_type("AWS::CodeDeploy::DeploymentGroup")))
    app_id = next(iter(default_stack.of_type("AWS::CodeDeploy::Application")))
    assert ":deploymentgroup:" in group_arn
    assert group_id in group_arn
    assert app_id in group_arn
    assert "*" not in group_arn
    allowed = {
        "lambda:InvokeFunction",
        "codedeploy:PutLifecycleEventHookExecutionStatus",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "xray:PutTelemetryRecords",
        "xray:PutTraceSegments",
    }
    assert set(by_action) == allowed
    # CodeDeploy's service role may invoke the one hook function (not CodeDeployHook_*).
    canary = _policy_of(default_stack, "CanaryServiceRole")
    invoke = [st for st in canary if st["Action"] == "lambda:InvokeFunction"]
    assert len(invoke) == 1
    assert str(invoke[0]["Resource"]).endswith(":function:pigeonhole-golden-hook']]}")
