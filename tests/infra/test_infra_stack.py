"""Template assertions for the properties the issue asks for, on both configurations."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk import assertions
from infra_helpers import ALTERNATE_CONFIG, Synthesized, ref_id

from pigeonhole import alarms as defs
from pigeonhole import constants as c
from pigeonhole.naming import MAX_RECEIVE_COUNT

# -- helpers ---------------------------------------------------------------------------------------


def _refs(value: Any) -> set[str]:
    """Every logical id referenced anywhere inside an intrinsic (Ref, GetAtt, nested in Join/Split)."""
    found: set[str] = set()
    if isinstance(value, dict):
        direct = ref_id(value)
        if direct:
            found.add(direct)
        for v in value.values():
            found |= _refs(v)
    elif isinstance(value, list):
        for v in value:
            found |= _refs(v)
    return found


def _invoked(s: Synthesized, function_name_prop: Any) -> dict[str, Any]:
    """The Lambda resource (alias or function) an ESM's FunctionName refers to."""
    (target,) = _refs(function_name_prop)
    return s.resources[target]


def _queues_by_name(s: Synthesized) -> dict[str, tuple[str, dict[str, Any]]]:
    return {r["Properties"]["QueueName"]: (lid, r["Properties"]) for lid, r in s.of_type("AWS::SQS::Queue").items()}


def _function(s: Synthesized, name: str) -> tuple[str, dict[str, Any]]:
    for lid, r in s.of_type("AWS::Lambda::Function").items():
        if r["Properties"].get("FunctionName") == name:
            return lid, r["Properties"]
    raise AssertionError(f"no function {name}")


def _dlq_ids(s: Synthesized) -> set[str]:
    """Queues used as a DLQ: by a redrive policy, an EventBridge target or a Lambda destination."""
    ids: set[str] = set()
    for r in s.of_type("AWS::SQS::Queue").values():
        redrive = r["Properties"].get("RedrivePolicy")
        if redrive:
            ids.add(ref_id(redrive["deadLetterTargetArn"]) or "")
    for r in s.of_type("AWS::Events::Rule").values():
        for target in r["Properties"].get("Targets", []):
            ids.add(ref_id(target["DeadLetterConfig"]["Arn"]) or "")
    for r in s.of_type("AWS::Lambda::EventInvokeConfig").values():
        ids.add(ref_id(r["Properties"]["DestinationConfig"]["OnFailure"]["Destination"]) or "")
    return ids


def _statements(s: Synthesized, cfn_type: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for lid, r in s.of_type(cfn_type).items():
        document = r["Properties"]["PolicyDocument"]
        out += [(lid, st) for st in document["Statement"]]
    return out


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# -- queues ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["default_stack", "alternate_stack"])
def test_every_queue_is_encrypted_tls_only_and_dead_lettered(which: str, request: pytest.FixtureRequest) -> None:
    s: Synthesized = request.getfixturevalue(which)
    queues = s.of_type("AWS::SQS::Queue")
    assert len(queues) == 11  # 4 work queues + their 4 DLQs + 3 EventBridge/drift DLQs
    dlqs = _dlq_ids(s)
    for lid, r in queues.items():
        props = r["Properties"]
        assert "KmsMasterKeyId" in props, f"{lid} is not KMS-encrypted"
        if lid in dlqs:
            assert props["MessageRetentionPeriod"] == 14 * 24 * 3600, f"DLQ {lid} keeps messages 14 days"
        else:
            assert "RedrivePolicy" in props, f"work queue {lid} has no DLQ"
    # TLS only: every queue is covered by a policy that denies aws:SecureTransport=false.
    tls_covered: set[str] = set()
    for r in s.of_type("AWS::SQS::QueuePolicy").values():
        document = r["Properties"]["PolicyDocument"]
        if any(
            st["Effect"] == "Deny" and st.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
            for st in document["Statement"]
        ):
            tls_covered |= {ref_id(q) for q in r["Properties"]["Queues"]} - {None}  # type: ignore[arg-type]
    assert tls_covered == set(queues)


def test_ingest_queue_redrives_after_max_receive_count(default_stack: Synthesized) -> None:
    queues = _queues_by_name(default_stack)
    _, ingest = queues["pigeonhole-ingest"]
    dlq_id, _ = queues["pigeonhole-ingest-dlq"]
    assert ingest["RedrivePolicy"]["maxReceiveCount"] == MAX_RECEIVE_COUNT == 5
    assert ref_id(ingest["RedrivePolicy"]["deadLetterTargetArn"]) == dlq_id


@pytest.mark.parametrize(
    ("which", "prefix"), [("default_stack", "pigeonhole"), ("alternate_stack", ALTERNATE_CONFIG["prefix"])]
)
def test_visibility_timeout_is_six_times_function_timeout_plus_batching_window(
    which: str, prefix: str, request: pytest.FixtureRequest
) -> None:
    s: Synthesized = request.getfixturevalue(which)
    queues = _queues_by_name(s)
    checked = 0
    for mapping in s.of_type("AWS::Lambda::EventSourceMapping").values():
        props = mapping["Properties"]
        queue_id = ref_id(props["EventSourceArn"])
        queue = next(q for lid, q in queues.values() if lid == queue_id)
        target = _invoked(s, props["FunctionName"])
        if target["Type"] == "AWS::Lambda::Alias":
            target = s.resources[ref_id(target["Properties"]["FunctionName"])]  # type: ignore[index]
        timeout = target["Properties"]["Timeout"]
        window = props.get("MaximumBatchingWindowInSeconds", 0)
        assert queue["VisibilityTimeout"] >= 6 * timeout + window, queue["QueueName"]
        checked += 1
    assert checked == 2  # ingest -> classifier alias, feedback -> feedback function
    if which == "alternate_stack":
        assert queues[f"{prefix}-ingest"][1]["VisibilityTimeout"] == 6 * 45 + 5


# -- the classifier: function, alias, warm capacity, event source mapping -------------------------


def test_ingest_event_source_mapping_targets_the_alias_with_partial_failures(default_stack: Synthesized) -> None:
    queues = _queues_by_name(default_stack)
    ingest_id, _ = queues["pigeonhole-ingest"]
    mapping = next(
        m["Properties"]
        for m in default_stack.of_type("AWS::Lambda::EventSourceMapping").values()
        if ref_id(m["Properties"]["EventSourceArn"]) == ingest_id
    )
    alias = _invoked(default_stack, mapping["FunctionName"])
    assert alias["Type"] == "AWS::Lambda::Alias"
    assert mapping["FunctionName"]["Fn::Join"][1][-1] == ":live"  # the alias-qualified name
    assert alias["Properties"]["Name"] == "live"
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BatchSize"] == 10
    assert mapping["MaximumBatchingWindowInSeconds"] == 1
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": 20}


def test_alternate_event_source_mapping_settings(alternate_stack: Synthesized) -> None:
    alternate_stack.template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "BatchSize": 7,
            "MaximumBatchingWindowInSeconds": 5,
            "ScalingConfig": {"MaximumConcurrency": 50},
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
        },
    )


def test_tracing_is_active_by_default_and_off_means_no_xray_anywhere(
    default_stack: Synthesized, alternate_stack: Synthesized
) -> None:
    """Default: Active tracing, X-Ray's write permission, Powertools' Tracer free to trace. `tracing=false`
    (the alternate stack): no tracing config, no X-Ray action in any policy, POWERTOOLS_TRACE_DISABLED=true
    so the handlers never import the X-Ray SDK (pigeonhole.entry.tracing)."""
    for stack, traced in ((default_stack, True), (alternate_stack, False)):
        functions = stack.template.find_resources("AWS::Lambda::Function")
        ours = {k: v for k, v in functions.items() if "POWERTOOLS_SERVICE_NAME" in _env_of(v)}
        assert len(ours) >= 3  # classifier, drift, feedback (and the golden pre-traffic hook where it exists)
        for fn in ours.values():
            props = fn["Properties"]
            assert props.get("TracingConfig") == ({"Mode": "Active"} if traced else None)
            assert ("POWERTOOLS_TRACE_DISABLED" in _env_of(fn)) is not traced
            if not traced:
                assert _env_of(fn)["POWERTOOLS_TRACE_DISABLED"] == "true"
        policies = json.dumps(stack.template.find_resources("AWS::IAM::Policy"))
        assert ("xray:PutTraceSegments" in policies) is traced


def _env_of(fn: dict[str, Any]) -> dict[str, Any]:
    env: dict[str, Any] = fn["Properties"].get("Environment", {}).get("Variables", {})
    return env


def test_classifier_function_runtime_environment_and_layers(default_stack: Synthesized) -> None:
    _, fn = _function(default_stack, "pigeonhole-classifier")
    assert fn["Runtime"] == "python3.12"
    assert fn["Architectures"] == ["x86_64"]
    assert fn["MemorySize"] == 1024
    assert fn["Timeout"] == 30
    assert fn["Handler"] == "pigeonhole.classify.handler.handler"
    assert fn["TracingConfig"] == {"Mode": "Active"}
    assert len(fn["Layers"]) == 2
    env = fn["Environment"]["Variables"]
    assert env["POWERTOOLS_SERVICE_NAME"] == "classifier"
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "Pigeonhole"
    assert env["POWERTOOLS_LOG_LEVEL"] == "INFO"
    assert env["ORT_DISABLE_TELEMETRY"] == "1"
    assert env[c.ENV_MODEL_DIR] == "/opt/model"
    assert env[c.ENV_ORT_THREADS] == "1"
    assert env[c.ENV_WINDOW_SECONDS] == "300"
    for name in (c.ENV_REVIEW_QUEUE_URL, c.ENV_QUARANTINE_QUEUE_URL, c.ENV_OUTPUT_BUS_NAME):
        assert name in env
    assert {"PIGEONHOLE_WINDOWS_TABLE", "PIGEONHOLE_PREDICTIONS_TABLE"} <= set(env)


def test_drift_and_feedback_functions(default_stack: Synthesized) -> None:
    _, drift = _function(default_stack, "pigeonhole-drift")
    _, feedback = _function(default_stack, "pigeonhole-feedback")
    assert drift["Handler"] == "pigeonhole.drift.handler.handler"
    assert feedback["Handler"] == "pigeonhole.feedback.handler.handler"
    assert drift["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"] == "drift"
    assert feedback["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"] == "feedback"
    assert {"PIGEONHOLE_WINDOWS_TABLE", "PIGEONHOLE_WINDOW_SECONDS", "PIGEONHOLE_MODEL_DIR"} <= set(
        drift["Environment"]["Variables"]
    )
    assert {
        "PIGEONHOLE_WINDOWS_TABLE",
        "PIGEONHOLE_PREDICTIONS_TABLE",
        "PIGEONHOLE_FEEDBACK_TABLE",
        "PIGEONHOLE_WINDOW_SECONDS",
        "PIGEONHOLE_MODEL_DIR",
    } <= set(feedback["Environment"]["Variables"])
    # Drift runs once per window: 5 minutes by default, 10 in the alternate config.
    default_stack.template.has_resource_properties("AWS::Events::Rule", {"ScheduleExpression": "rate(5 minutes)"})


def test_provisioned_concurrency_with_target_tracking(default_stack: Synthesized) -> None:
    t = default_stack.template
    t.has_resource_properties(
        "AWS::Lambda::Alias", {"Name": "live", "ProvisionedConcurrencyConfig": {"ProvisionedConcurrentExecutions": 1}}
    )
    t.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalableTarget",
        {"MinCapacity": 1, "MaxCapacity": 20, "ScalableDimension": "lambda:function:ProvisionedConcurrency"},
    )
    t.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalingPolicy",
        {
            "PolicyType": "TargetTrackingScaling",
            "TargetTrackingScalingPolicyConfiguration": assertions.Match.object_like(
                {
                    "TargetValue": 0.5,
                    "PredefinedMetricSpecification": {
                        "PredefinedMetricType": "LambdaProvisionedConcurrencyUtilization"
                    },
                }
            ),
        },
    )
    _, fn = _function(default_stack, "pigeonhole-classifier")
    assert "SnapStart" not in fn


def test_snapstart_replaces_provisioned_concurrency_and_arm64(alternate_stack: Synthesized) -> None:
    _, fn = _function(alternate_stack, "ph-alt-classifier")
    assert fn["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    assert fn["Architectures"] == ["arm64"]
    assert fn["MemorySize"] == 2048
    aliases = alternate_stack.of_type("AWS::Lambda::Alias")
    assert all("ProvisionedConcurrencyConfig" not in a["Properties"] for a in aliases.values())
    assert not alternate_stack.of_type("AWS::ApplicationAutoScaling::ScalableTarget")
    layers = alternate_stack.of_type("AWS::Lambda::LayerVersion")
    runtime_layers = [r for r in layers.values() if "CompatibleArchitectures" in r["Properties"]]
    assert [r["Properties"]["CompatibleArchitectures"] for r in runtime_layers] == [["arm64"]]
    alternate_stack.template.has_resource_properties("AWS::Events::Rule", {"ScheduleExpression": "rate(10 minutes)"})


# -- EventBridge ----------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["default_stack", "alternate_stack"])
def test_every_eventbridge_target_has_retry_policy_and_dlq(which: str, request: pytest.FixtureRequest) -> None:
    s: Synthesized = request.getfixturevalue(which)
    rules = s.of_type("AWS::Events::Rule")
    assert len(rules) == 3  # input -> ingest, labels -> feedback, drift schedule
    queue_ids = set(s.of_type("AWS::SQS::Queue"))
    for lid, rule in rules.items():
        for target in rule["Properties"]["Targets"]:
            assert target["RetryPolicy"]["MaximumRetryAttempts"] >= 1, lid
            assert "MaximumEventAgeInSeconds" in target["RetryPolicy"], lid
            assert ref_id(target["DeadLetterConfig"]["Arn"]) in queue_ids, lid


def test_buses_and_routing(default_stack: Synthesized) -> None:
    t = default_stack.template
    t.resource_count_is("AWS::Events::EventBus", 2)
    t.has_resource_properties("AWS::Events::EventBus", {"Name": "pigeonhole-input"})
    t.has_resource_properties("AWS::Events::EventBus", {"Name": "pigeonhole-output"})
    t.has_resource_properties(
        "AWS::Events::Rule",
        {"Name": "pigeonhole-input-to-ingest", "EventPattern": {"detail-type": [{"anything-but": ["LabelFeedback"]}]}},
    )
    t.has_resource_properties(
        "AWS::Events::Rule",
        {"Name": "pigeonhole-labels-to-feedback", "EventPattern": {"detail-type": ["LabelFeedback"]}},
    )


# -- tables, topics, key --------------------------------------------------------------------------


def test_tables_pitr_encryption_ttl_and_keys(default_stack: Synthesized) -> None:
    tables = {
        r["Properties"]["TableName"]: r["Properties"] for r in default_stack.of_type("AWS::DynamoDB::Table").values()
    }
    expected_keys = {
        "pigeonhole-windows": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        "pigeonhole-predictions": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "pigeonhole-feedback": [{"AttributeName": "pk", "KeyType": "HASH"}],
    }
    assert set(tables) == set(expected_keys)
    for name, props in tables.items():
        assert props["KeySchema"] == expected_keys[name]
        assert all(a["AttributeType"] == "S" for a in props["AttributeDefinitions"])
        assert props["BillingMode"] == "PAY_PER_REQUEST"
        assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
        assert props["SSESpecification"]["SSEEnabled"] is True
        assert props["SSESpecification"]["SSEType"] == "KMS"
        assert "KMSMasterKeyId" in props["SSESpecification"]
        assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}


def test_key_rotation_and_topics(default_stack: Synthesized, alternate_stack: Synthesized) -> None:
    t = default_stack.template
    t.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})
    topics = default_stack.of_type("AWS::SNS::Topic")
    assert {r["Properties"]["TopicName"] for r in topics.values()} == {"pigeonhole-oncall", "pigeonhole-tickets"}
    assert all("KmsMasterKeyId" in r["Properties"] for r in topics.values())
    for policy in default_stack.of_type("AWS::SNS::TopicPolicy").values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert any(
            st["Effect"] == "Deny" and st["Condition"]["Bool"]["aws:SecureTransport"] == "false" for st in statements
        )
        assert any(st.get("Principal") == {"Service": "cloudwatch.amazonaws.com"} for st in statements)
    t.has_resource_properties("AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "oncall@example.com"})
    alternate_stack.template.has_resource_properties(
        "AWS::SNS::Subscription", {"Protocol": "https", "Endpoint": "https://pager.example.com/hook"}
    )


# -- alarms and the canary ------------------------------------------------------------------------


@pytest.mark.parametrize(("which", "provisioned"), [("default_stack", True), ("alternate_stack", False)])
def test_alarms_are_exactly_the_shared_definitions(
    which: str, provisioned: bool, request: pytest.FixtureRequest
) -> None:
    s: Synthesized = request.getfixturevalue(which)
    prefix = s.stack.config.prefix
    window = s.stack.config.window_seconds
    built = {r["Properties"]["AlarmName"]: r["Properties"] for r in s.of_type("AWS::CloudWatch::Alarm").values()}
    expected = {defs.alarm_name(prefix, d.suffix): d for d in defs.applicable(provisioned_concurrency=provisioned)}
    assert set(built) == set(expected)
    assert ("classifier-pc-spillover" in {d.suffix for d in expected.values()}) is provisioned
    for name, definition in expected.items():
        props = built[name]
        assert props["Threshold"] == definition.threshold, name
        assert props["ComparisonOperator"] == definition.comparison.value, name
        assert props["EvaluationPeriods"] == definition.evaluation_periods, name
        assert props["DatapointsToAlarm"] == definition.datapoints_to_alarm, name
        assert props["TreatMissingData"] == definition.treat_missing_data.value, name
        if definition.metric is not None:
            assert props["MetricName"] == definition.metric.name, name
            assert props["Namespace"] == definition.metric.namespace, name
            assert props["Period"] == definition.metric.period(window), name
            stat_key = "ExtendedStatistic" if definition.metric.statistic.startswith("p") else "Statistic"
            assert props[stat_key] == definition.metric.statistic, name
            assert {d["Name"] for d in props["Dimensions"]} == {n for n, _ in definition.metric.dimensions}
        else:
            expressions = [m for m in props["Metrics"] if "Expression" in m]
            assert [m["Expression"] for m in expressions] == [definition.expression], name
            stats = {m["Id"]: m["MetricStat"] for m in props["Metrics"] if "MetricStat" in m}
            for mid, query in definition.metrics:
                assert stats[mid]["Metric"]["MetricName"] == query.name
                assert stats[mid]["Period"] == query.period(window)
                assert stats[mid]["Stat"] == query.statistic
        actions = props.get("AlarmActions", [])
        assert bool(actions) is definition.notify, name
    composites = {r["Properties"]["AlarmName"] for r in s.of_type("AWS::CloudWatch::CompositeAlarm").values()}
    assert composites == {defs.alarm_name(prefix, cd.suffix) for cd in defs.COMPOSITES}


def test_alarm_actions_route_by_severity(default_stack: Synthesized) -> None:
    topics = {r["Properties"]["TopicName"]: lid for lid, r in default_stack.of_type("AWS::SNS::Topic").items()}
    by_name: dict[str, defs.AlarmDef | defs.CompositeAlarmDef] = {d.suffix: d for d in defs.ALARMS}
    by_name |= {cd.suffix: cd for cd in defs.COMPOSITES}
    kinds = ("AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm")
    for kind in kinds:
        for r in default_stack.of_type(kind).values():
            props = r["Properties"]
            suffix = props["AlarmName"].removeprefix("pigeonhole-")
            definition = by_name[suffix]
            if not getattr(definition, "notify", True):
                continue
            topic = "pigeonhole-oncall" if definition.severity is defs.Severity.PAGE else "pigeonhole-tickets"
            assert [ref_id(a) for a in props["AlarmActions"]] == [topics[topic]], suffix


def test_canary_rolls_back_on_error_duration_and_model_alarms(default_stack: Synthesized) -> None:
    groups = default_stack.of_type("AWS::CodeDeploy::DeploymentGroup")
    assert len(groups) == 1
    group = next(iter(groups.values()))["Properties"]
    # 10 minutes: the rollback alarms need up to 7 (tests/infra/test_infra_canary.py, docs/deploy.md).
    assert group["DeploymentConfigName"] == "CodeDeployDefault.LambdaCanary10Percent10Minutes"
    assert group["AutoRollbackConfiguration"]["Enabled"] is True
    assert "DEPLOYMENT_STOP_ON_ALARM" in group["AutoRollbackConfiguration"]["Events"]
    assert group["AlarmConfiguration"]["Enabled"] is True
    alarm_ids = {
        lid: r["Properties"]["AlarmName"] for lid, r in default_stack.of_type("AWS::CloudWatch::Alarm").items()
    }
    watched = {alarm_ids[ref_id(a["Name"])] for a in group["AlarmConfiguration"]["Alarms"]}  # type: ignore[index]
    expected = {f"pigeonhole-{d.suffix}" for d in defs.ALARMS if d.rollback}
    assert watched == expected
    assert {
        "pigeonhole-canary-error-rate",
        "pigeonhole-canary-record-failure-rate",
        "pigeonhole-canary-quarantine-rate",
        "pigeonhole-canary-review-rate",
        "pigeonhole-canary-p99-duration",
        "pigeonhole-canary-model-load-failure",
    } == watched
    alias = next(iter(default_stack.template.find_resources("AWS::Lambda::Alias").values()))
    assert "CodeDeployLambdaAliasUpdate" in alias["UpdatePolicy"]


def test_custom_canary_config(alternate_stack: Synthesized) -> None:
    alternate_stack.template.has_resource_properties(
        "AWS::CodeDeploy::DeploymentConfig",
        {
            "TrafficRoutingConfig": {
                "Type": "TimeBasedCanary",
                "TimeBasedCanary": {"CanaryPercentage": 20, "CanaryInterval": 7},
            }
        },
    )


def test_dashboard_covers_the_operators_view(default_stack: Synthesized) -> None:
    dashboards = default_stack.of_type("AWS::CloudWatch::Dashboard")
    assert len(dashboards) == 1
    body = str(next(iter(dashboards.values()))["Properties"]["DashboardBody"])
    for title in ("Throughput", "duration", "Errors", "Class mix", "Confidence", "Drift", "Accuracy", "Alarms"):
        assert title in body, title
    assert "UnknownRate" in body, "the unknown route's rate is on the dashboard"


# -- IAM ------------------------------------------------------------------------------------------

XRAY_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}


@pytest.mark.parametrize("which", ["default_stack", "alternate_stack"])
def test_iam_least_privilege(which: str, request: pytest.FixtureRequest) -> None:
    s: Synthesized = request.getfixturevalue(which)
    statements = _statements(s, "AWS::IAM::Policy")
    assert statements
    for lid, st in statements:
        actions = _as_list(st["Action"])
        for action in actions:
            assert "*" not in action, f"{lid}: wildcard action {action}"
        resources = _as_list(st["Resource"])
        if "*" in resources:
            assert set(actions) <= XRAY_ACTIONS, f"{lid}: Resource '*' outside X-Ray: {actions}"
    # No managed policies anywhere: every role is built from inline, scoped grants.
    for lid, role in s.of_type("AWS::IAM::Role").items():
        assert "ManagedPolicyArns" not in role["Properties"], lid


def test_function_grants_name_their_tables(default_stack: Synthesized) -> None:
    """The DynamoDB actions each function's code performs, on the tables it touches, and nothing more."""
    tables = {r["Properties"]["TableName"]: lid for lid, r in default_stack.of_type("AWS::DynamoDB::Table").items()}
    roles = {
        "pigeonhole-classifier": {
            "pigeonhole-windows": {"dynamodb:PutItem", "dynamodb:UpdateItem"},  # batch items; M#models
            "pigeonhole-predictions": {"dynamodb:BatchWriteItem"},  # captures
        },
        "pigeonhole-drift": {"pigeonhole-windows": {"dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem"}},
        "pigeonhole-feedback": {
            "pigeonhole-windows": {"dynamodb:UpdateItem", "dynamodb:Query"},  # Query: the M#models registry
            "pigeonhole-predictions": {"dynamodb:BatchGetItem"},
            "pigeonhole-feedback": {"dynamodb:PutItem"},
        },
    }
    for function_name, expected in roles.items():
        _, fn = _function(default_stack, function_name)
        role_id = ref_id(fn["Role"])
        granted: dict[str, set[str]] = {}
        for r in default_stack.of_type("AWS::IAM::Policy").values():
            if role_id not in [ref_id(x) for x in r["Properties"]["Roles"]]:
                continue
            for st in r["Properties"]["PolicyDocument"]["Statement"]:
                for resource in _as_list(st["Resource"]):
                    target = ref_id(resource)
                    for name, lid in tables.items():
                        if target == lid:
                            granted.setdefault(name, set()).update(
                                a for a in _as_list(st["Action"]) if a.startswith("dynamodb:")
                            )
        assert granted == expected, function_name


def test_code_asset_is_the_pigeonhole_package_only(default_stack: Synthesized) -> None:
    """Training and local tooling never ship: the functions' asset holds `pigeonhole/` and no caches."""
    assets = json.loads((default_stack.outdir / "Pigeonhole.assets.json").read_text())["files"]
    staged = [default_stack.outdir / a["source"]["path"] for a in assets.values()]
    (code,) = [p for p in staged if (p / "pigeonhole" / "__init__.py").is_file()]
    assert sorted(p.name for p in code.iterdir()) == ["pigeonhole"]
    files = [p.relative_to(code).as_posix() for p in code.rglob("*") if p.is_file()]
    assert "pigeonhole/alarms.py" in files
    assert not [f for f in files if "__pycache__" in f or f.endswith(".pyc") or "pigeonhole_tools" in f]
