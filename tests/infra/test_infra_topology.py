"""Contract: the synthesized stack holds exactly the deployed specs of `pigeonhole.topology`, with their settings,
and no other module defines a queue, bus, rule or table (the pattern of test_infra_alarm_contract)."""

from __future__ import annotations

import ast
import json
from typing import Any

import pytest
from infra_helpers import REPO_ROOT, Synthesized, ref_id

from pigeonhole import topology as topo

# The property holding each type's physical name.
NAME_PROPERTY = {
    "AWS::SQS::Queue": "QueueName",
    "AWS::Events::EventBus": "Name",
    "AWS::Events::Rule": "Name",
    "AWS::DynamoDB::Table": "TableName",
    "AWS::Lambda::Function": "FunctionName",
}
STACKS = ["default_stack", "alternate_stack"]


def _named(s: Synthesized, cfn_type: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """Physical name -> (logical id, properties) for every resource of a type."""
    key = NAME_PROPERTY[cfn_type]
    return {r["Properties"][key]: (lid, r["Properties"]) for lid, r in s.of_type(cfn_type).items()}


def _name_of(s: Synthesized, value: Any) -> str:
    """The physical name of the resource a Ref / Fn::GetAtt points at."""
    lid = ref_id(value)
    assert lid is not None, value
    resource = s.resources[lid]
    return str(resource["Properties"][NAME_PROPERTY[resource["Type"]]])


def _topology(s: Synthesized) -> topo.Topology:
    topology: topo.Topology = s.stack.config.topology
    return topology


@pytest.fixture(params=STACKS)
def synthesized(request: pytest.FixtureRequest) -> Synthesized:
    s: Synthesized = request.getfixturevalue(request.param)
    return s


def test_the_stack_builds_the_deployed_specs_and_nothing_else(synthesized: Synthesized) -> None:
    topology = _topology(synthesized)
    assert topology == topo.build(topology.names, synthesized.stack.config.timing).deployed()
    assert not [spec for spec in topology if spec.where is topo.Where.LOCAL]
    assert set(_named(synthesized, "AWS::SQS::Queue")) == {q.name for q in topology.queues}
    assert set(_named(synthesized, "AWS::Events::EventBus")) == {b.name for b in topology.buses}
    assert set(_named(synthesized, "AWS::Events::Rule")) == {r.name for r in topology.rules}
    assert set(_named(synthesized, "AWS::DynamoDB::Table")) == {t.name for t in topology.tables}


def test_queues_have_their_specs_settings(synthesized: Synthesized) -> None:
    built = _named(synthesized, "AWS::SQS::Queue")
    for spec in _topology(synthesized).queues:
        _, props = built[spec.name]
        assert props["MessageRetentionPeriod"] == spec.retention_s, spec.name
        assert props["VisibilityTimeout"] == spec.visibility_timeout_s, spec.name
        assert ("KmsMasterKeyId" in props) is spec.kms, spec.name
        if spec.redrive is None:
            assert "RedrivePolicy" not in props, spec.name
        else:
            redrive = props["RedrivePolicy"]
            assert redrive["maxReceiveCount"] == spec.redrive.max_receive_count, spec.name
            assert _name_of(synthesized, redrive["deadLetterTargetArn"]) == spec.redrive.dead_letter_queue


def test_visibility_follows_the_configured_function_timeouts(synthesized: Synthesized) -> None:
    config = synthesized.stack.config
    names = config.names
    built = _named(synthesized, "AWS::SQS::Queue")
    assert built[names.ingest_queue][1]["VisibilityTimeout"] == 6 * config.timeout_s + config.batching_window_s
    assert (
        built[names.feedback_queue][1]["VisibilityTimeout"]
        == 6 * config.feedback_timeout_s + config.feedback_batching_window_s
    )


def test_rules_have_their_specs_pattern_schedule_target_retry_and_dlq(synthesized: Synthesized) -> None:
    built = _named(synthesized, "AWS::Events::Rule")
    for spec in _topology(synthesized).rules:
        _, props = built[spec.name]
        assert props["Description"] == spec.description, spec.name
        assert props.get("EventPattern") == (dict(spec.pattern) if spec.pattern is not None else None), spec.name
        assert props.get("ScheduleExpression") == spec.schedule, spec.name
        if spec.bus is None:
            assert "EventBusName" not in props, spec.name
        else:
            assert _name_of(synthesized, props["EventBusName"]) == spec.bus, spec.name
        (target,) = props["Targets"]
        assert _name_of(synthesized, target["Arn"]) == spec.target.name, spec.name
        kind = synthesized.resources[ref_id(target["Arn"]) or ""]["Type"]
        assert kind == {"queue": "AWS::SQS::Queue", "function": "AWS::Lambda::Function"}[spec.target.kind]
        assert target["RetryPolicy"] == {
            "MaximumRetryAttempts": spec.target.retry.maximum_retry_attempts,
            "MaximumEventAgeInSeconds": spec.target.retry.maximum_event_age_s,
        }, spec.name
        assert _name_of(synthesized, target["DeadLetterConfig"]["Arn"]) == spec.target.dead_letter_queue


def test_drift_function_retries_like_its_schedule(synthesized: Synthesized) -> None:
    """The drift function's own async retries and on-failure queue follow the schedule's spec."""
    names = synthesized.stack.config.names
    spec = _topology(synthesized).rule(names.drift_schedule)
    (config,) = [r["Properties"] for r in synthesized.of_type("AWS::Lambda::EventInvokeConfig").values()]
    assert config["MaximumRetryAttempts"] == spec.target.retry.maximum_retry_attempts
    assert config["MaximumEventAgeInSeconds"] == spec.target.retry.maximum_event_age_s
    assert (
        _name_of(synthesized, config["DestinationConfig"]["OnFailure"]["Destination"]) == spec.target.dead_letter_queue
    )


def test_tables_have_their_specs_keys_billing_ttl_pitr_and_encryption(synthesized: Synthesized) -> None:
    built = _named(synthesized, "AWS::DynamoDB::Table")
    for spec in _topology(synthesized).tables:
        _, props = built[spec.name]
        keys = [{"AttributeName": spec.partition_key.name, "KeyType": "HASH"}]
        if spec.sort_key is not None:
            keys.append({"AttributeName": spec.sort_key.name, "KeyType": "RANGE"})
        assert props["KeySchema"] == keys, spec.name
        declared = {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]}
        expected = {k.name: k.type for k in (spec.partition_key, spec.sort_key) if k is not None}
        for index in spec.indexes:
            expected |= {k.name: k.type for k in (index.partition_key, index.sort_key) if k is not None}
        assert declared == expected, spec.name
        assert props["BillingMode"] == spec.billing_mode, spec.name
        ttl = {"AttributeName": spec.ttl_attribute, "Enabled": True} if spec.ttl_attribute else None
        assert props.get("TimeToLiveSpecification") == ttl, spec.name
        pitr = props.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled", False)
        assert pitr is spec.pitr, spec.name
        assert ("KMSMasterKeyId" in props.get("SSESpecification", {})) is spec.kms, spec.name
        indexes = {i["IndexName"]: i for i in props.get("GlobalSecondaryIndexes", [])}
        assert set(indexes) == {i.name for i in spec.indexes}, spec.name
        for index in spec.indexes:
            assert indexes[index.name]["Projection"]["ProjectionType"] == index.projection


# -- one source ------------------------------------------------------------------------------------------

# The only modules that may construct these resources: each builds from a spec it is handed.
# (boto3's create_queue is not listed: the local alarm topics' subscriber queues are not topology.)
BUILDERS = {
    "sqs.Queue": {"infra/pigeonhole_infra/constructs/queues.py"},
    "dynamodb.Table": {"infra/pigeonhole_infra/constructs/tables.py"},
    "events.EventBus": {"infra/pigeonhole_infra/constructs/buses.py"},
    "events.Rule": {"infra/pigeonhole_infra/constructs/buses.py", "infra/pigeonhole_infra/constructs/companions.py"},
    "create_table": {"functions/pigeonhole_tools/local/provisioning.py"},
    "create_event_bus": {"functions/pigeonhole_tools/local/provisioning.py"},
    "put_rule": {
        "functions/pigeonhole_tools/local/provisioning.py",
        # The deploy rehearsal's read-back: a capture rule (outside the stack's prefix) on the deployed
        # output bus, standing in for the bus's consumers the way the local output sink does.
        "functions/pigeonhole_tools/local/rehearsal/drive.py",
    },
}
SCANNED = ["functions", "infra/pigeonhole_infra", "tests/functional", "tests/e2e"]


def _calls(path: str) -> list[tuple[str, int]]:
    tree = ast.parse((REPO_ROOT / path).read_text(encoding="utf-8"))
    out = []
    for node in ast.walk(tree):
        # Attribute calls only: a CDK constructor or a boto3 client method, not the emulator's own
        # spec-driven `create_table(client, spec)`.
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            func = ast.unparse(node.func)
            for name in BUILDERS:
                if func == name or func.endswith(f".{name}"):
                    out.append((name, node.lineno))
    return out


def test_tables_buses_and_rules_are_built_only_from_specs() -> None:
    """No module but the spec builders (infra constructs, the local provisioning) creates a table, bus or rule."""
    offenders = []
    for root in SCANNED:
        for path in sorted((REPO_ROOT / root).rglob("*.py")):
            relative = path.relative_to(REPO_ROOT).as_posix()
            offenders += [
                f"{relative}:{line} calls {name}" for name, line in _calls(relative) if relative not in BUILDERS[name]
            ]
    assert not offenders, offenders


def test_buckets_have_their_specs_name_encryption_expiry_and_tls(synthesized: Synthesized) -> None:
    buckets = synthesized.of_type("AWS::S3::Bucket")
    specs = _topology(synthesized).buckets
    assert len(buckets) == len(specs) == 1
    (spec,) = specs
    ((lid, bucket),) = buckets.items()
    props = bucket["Properties"]
    # S3 names are global: the spec's base name plus this account and region.
    assert props["BucketName"] == {
        "Fn::Join": ["", [f"{spec.name}-", {"Ref": "AWS::AccountId"}, "-", {"Ref": "AWS::Region"}]]
    }
    (sse,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert sse["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == ("aws:kms" if spec.kms else "AES256")
    assert ("KMSMasterKeyID" in sse["ServerSideEncryptionByDefault"]) is spec.kms
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    (rule,) = props["LifecycleConfiguration"]["Rules"]
    assert rule["ExpirationInDays"] == spec.expire_after_days
    assert rule["Status"] == "Enabled"
    (policy,) = synthesized.of_type("AWS::S3::BucketPolicy").values()
    assert ref_id(policy["Properties"]["Bucket"]) == lid
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in statements
    )


def test_only_the_classifier_writes_quarantined_bodies_under_their_prefix(synthesized: Synthesized) -> None:
    (lid,) = synthesized.of_type("AWS::S3::Bucket")
    writers = []
    for policy in synthesized.of_type("AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            if any(lid in json.dumps(r) for r in resources):
                writers.append((policy["Properties"]["Roles"], statement))
    assert len(writers) == 1
    ((roles, statement),) = writers
    assert statement["Action"] == "s3:PutObject"
    assert statement["Resource"] == {"Fn::Join": ["", [{"Fn::GetAtt": [lid, "Arn"]}, "/quarantine/*"]]}
    assert "Classifier" in json.dumps(roles)
