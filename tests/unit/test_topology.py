"""The topology specs, and the local provisioning creating exactly the local specs (in-process moto)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, fields, replace
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto import mock_aws

from pigeonhole import alarms as defs
from pigeonhole import topology as topo
from pigeonhole.naming import ResourceNames
from pigeonhole_tools.local.emulator import provision
from pigeonhole_tools.local.provisioning import Provisioned, create_topology, with_ingest_visibility

REGION = "us-east-1"
NAMES = ResourceNames("unit")

# -- the specs --------------------------------------------------------------------------------------------


def test_names_are_one_prefix_and_distinct_per_kind() -> None:
    names = ResourceNames("p")
    values = {f.name: getattr(names, f.name) for f in fields(names) if f.name != "prefix"}
    assert all(v.startswith("p-") for v in values.values())
    # Only a queue and a table (or function) may share a name: they live in different services.
    top = topo.build(names)
    for kind in (top.queues, top.buses, top.rules, top.tables):
        assert len({s.name for s in kind}) == len(kind)
    assert names.classifier_alias_resource == "p-classifier:live"
    assert names.data_key_alias == "alias/p-data"
    # Every alarm binding is a name (infra and the local evaluator resolve them the same way).
    assert all(defs.resolve_bindings(names, "1.0.0").values())


def test_specs_are_named_by_their_id() -> None:
    for spec in topo.build(NAMES):
        assert getattr(NAMES, spec.id) == spec.name


def test_visibility_and_schedule_follow_timing() -> None:
    timing = topo.Timing(classifier_timeout_s=45, batching_window_s=5, feedback_timeout_s=20, window_seconds=600)
    top = topo.build(NAMES, timing)
    assert top.queue(NAMES.ingest_queue).visibility_timeout_s == 6 * 45 + 5
    assert top.queue(NAMES.feedback_queue).visibility_timeout_s == 6 * 20 + 1
    schedule = top.rule(NAMES.drift_schedule)
    assert schedule.schedule == "rate(10 minutes)"
    assert schedule.target.retry == topo.RetryPolicy(topo.DRIFT_RETRY_ATTEMPTS, 600)
    assert topo.rate_expression(60) == "rate(1 minute)"
    with pytest.raises(ValueError, match="whole minutes"):
        topo.rate_expression(90)


def test_every_work_queue_redrives_to_a_longer_lived_dlq() -> None:
    top = topo.build(NAMES)
    work = [q for q in top.queues if q.redrive is not None]
    assert {q.name for q in work} == {
        NAMES.ingest_queue,
        NAMES.review_queue,
        NAMES.quarantine_queue,
        NAMES.feedback_queue,
    }
    for q in work:
        assert q.redrive is not None
        dlq = top.queue(q.redrive.dead_letter_queue)
        assert dlq.dead_letter
        assert dlq.retention_s == topo.DLQ_RETENTION_S > q.retention_s
        assert q.redrive.max_receive_count == 5
    for rule in top.rules:
        assert top.queue(rule.target.dead_letter_queue).dead_letter


def test_where_splits_deployed_and_local() -> None:
    top = topo.build(NAMES)
    deployed, local = top.deployed(), top.local()
    assert {s.name for s in deployed} - {s.name for s in local} == {
        NAMES.drift_dlq,
        NAMES.drift_schedule,
    }
    assert {s.name for s in local} - {s.name for s in deployed} == {
        NAMES.output_sink,
        NAMES.output_rule_dlq,
        NAMES.output_rule,
    }
    assert all(q.kms for q in deployed.queues)


def test_inconsistent_topologies_are_refused() -> None:
    top = topo.build(NAMES)
    ingest = top.queue(NAMES.ingest_queue)
    too_long = replace(top, queues=(*top.queues[1:], replace(ingest, visibility_timeout_s=13 * 3600)))
    with pytest.raises(ValueError, match="visibility"):
        topo._check(too_long)
    twice = replace(top, tables=(*top.tables, top.tables[0]))
    with pytest.raises(ValueError, match="twice"):
        topo._check(twice)
    bad_rule = replace(top.rule(NAMES.input_rule), schedule="rate(5 minutes)")
    with pytest.raises(ValueError, match="either"):
        topo._check(replace(top, rules=(bad_rule,)))


# -- the local provisioning ---------------------------------------------------------------------------------


@dataclass
class Clients:
    sqs: Any
    events: Any
    dynamodb: Any


@pytest.fixture
def clients() -> Iterator[Clients]:
    with mock_aws():
        config = Config(retries={"max_attempts": 1})
        yield Clients(*(boto3.client(s, region_name=REGION, config=config) for s in ("sqs", "events", "dynamodb")))


def _queue_attributes(c: Clients, made: Provisioned) -> dict[str, dict[str, str]]:
    return {
        name: c.sqs.get_queue_attributes(QueueUrl=ref.url, AttributeNames=["All"])["Attributes"]
        for name, ref in made.queues.items()
    }


def test_local_provisioning_creates_exactly_the_local_specs(clients: Clients) -> None:
    top = topo.build(NAMES)
    local = top.local()
    made = create_topology(clients.sqs, clients.events, clients.dynamodb, top)

    # Queues: exactly the local specs, with their retention, visibility and redrive.
    listed = {url.rsplit("/", 1)[-1] for url in clients.sqs.list_queues()["QueueUrls"]}
    assert listed == set(made.queues) == {q.name for q in local.queues}
    attrs = _queue_attributes(clients, made)
    arn_to_name = {a["QueueArn"]: name for name, a in attrs.items()}
    for spec in local.queues:
        got = attrs[spec.name]
        assert int(got["MessageRetentionPeriod"]) == spec.retention_s, spec.name
        assert int(got["VisibilityTimeout"]) == spec.visibility_timeout_s, spec.name
        if spec.redrive is None:
            assert "RedrivePolicy" not in got, spec.name
        else:
            redrive = json.loads(got["RedrivePolicy"])
            assert arn_to_name[redrive["deadLetterTargetArn"]] == spec.redrive.dead_letter_queue
            assert int(redrive["maxReceiveCount"]) == spec.redrive.max_receive_count

    # Buses and rules: patterns, targets, retry policies and target DLQs.
    buses = {b["Name"] for b in clients.events.list_event_buses()["EventBuses"]} - {"default"}
    assert buses == set(made.buses) == {b.name for b in local.buses}
    rules: dict[str, dict[str, Any]] = {}
    for bus in buses:
        rules |= {r["Name"]: r for r in clients.events.list_rules(EventBusName=bus)["Rules"]}
    assert not clients.events.list_rules()["Rules"]  # the default bus: no drift schedule locally
    assert set(rules) == set(made.rules) == {r.name for r in local.rules}
    for spec in local.rules:
        rule = rules[spec.name]
        assert rule["EventBusName"] == spec.bus
        assert json.loads(rule["EventPattern"]) == spec.pattern
        assert rule["Description"] == spec.description
        (target,) = clients.events.list_targets_by_rule(Rule=spec.name, EventBusName=spec.bus)["Targets"]
        assert arn_to_name[target["Arn"]] == spec.target.name
        assert arn_to_name[target["DeadLetterConfig"]["Arn"]] == spec.target.dead_letter_queue
        assert target["RetryPolicy"] == {
            "MaximumRetryAttempts": spec.target.retry.maximum_retry_attempts,
            "MaximumEventAgeInSeconds": spec.target.retry.maximum_event_age_s,
        }

    # Tables: keys, billing, TTL and point-in-time recovery.
    assert set(clients.dynamodb.list_tables()["TableNames"]) == set(made.tables) == {t.name for t in local.tables}
    for spec in local.tables:
        table = clients.dynamodb.describe_table(TableName=spec.name)["Table"]
        keys = [{"AttributeName": spec.partition_key.name, "KeyType": "HASH"}]
        if spec.sort_key is not None:
            keys.append({"AttributeName": spec.sort_key.name, "KeyType": "RANGE"})
        assert table["KeySchema"] == keys
        assert {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]} == {
            k.name: k.type for k in (spec.partition_key, spec.sort_key) if k is not None
        }
        assert table["BillingModeSummary"]["BillingMode"] == spec.billing_mode
        assert not table.get("GlobalSecondaryIndexes")
        assert not spec.indexes
        ttl = clients.dynamodb.describe_time_to_live(TableName=spec.name)["TimeToLiveDescription"]
        assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": spec.ttl_attribute}
        backups = clients.dynamodb.describe_continuous_backups(TableName=spec.name)["ContinuousBackupsDescription"]
        pitr = backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"]
        assert pitr == ("ENABLED" if spec.pitr else "DISABLED")


def test_local_buckets_are_private_expiring_and_named_for_the_account() -> None:
    from pigeonhole_tools.local.provisioning import MOTO_ACCOUNT

    with mock_aws():
        config = Config(retries={"max_attempts": 1})
        s3 = boto3.client("s3", region_name=REGION, config=config)
        c = Clients(*(boto3.client(s, region_name=REGION, config=config) for s in ("sqs", "events", "dynamodb")))
        top = topo.build(NAMES)
        made = create_topology(c.sqs, c.events, c.dynamodb, top, s3=s3)
        (spec,) = top.local().buckets
        assert made.buckets == {spec.name: f"{spec.name}-{MOTO_ACCOUNT}-{REGION}"}
        name = made.buckets[spec.name]
        assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == [name]
        block = s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"]
        assert all(block.values())
        (rule,) = s3.get_bucket_lifecycle_configuration(Bucket=name)["Rules"]
        assert rule["Expiration"]["Days"] == spec.expire_after_days
        (sse,) = s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"]
        assert sse["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
        # Without an S3 client (the drift harness, table-only tests) no bucket is made.
        assert create_topology(c.sqs, c.events, c.dynamodb, topo.build(ResourceNames("other"))).buckets == {}


def test_bucket_names_must_fit_s3s_limit_and_outlive_quarantine_messages() -> None:
    top = topo.build(NAMES)
    (bucket,) = top.buckets
    with pytest.raises(ValueError, match="63"):
        topo._check(replace(top, buckets=(replace(bucket, name="x" * 40),)))
    with pytest.raises(ValueError, match="outlive"):
        topo._check(replace(top, buckets=(replace(bucket, expire_after_days=1),)))


def test_routing_follows_the_rule_specs(clients: Clients) -> None:
    """Events go to the ingest queue, labels to the feedback queue, classifications to the local sink."""
    made = create_topology(clients.sqs, clients.events, clients.dynamodb, topo.build(NAMES))
    entries = [
        {"EventBusName": NAMES.input_bus, "Source": topo.INPUT_SOURCE, "DetailType": topo.INPUT_DETAIL_TYPE},
        {"EventBusName": NAMES.input_bus, "Source": "labels", "DetailType": "LabelFeedback"},
        {"EventBusName": NAMES.output_bus, "Source": "pigeonhole.classifier", "DetailType": "EventClassified"},
    ]
    clients.events.put_events(Entries=[{**e, "Detail": json.dumps({"id": str(i)})} for i, e in enumerate(entries)])
    depth = {name: int(a["ApproximateNumberOfMessages"]) for name, a in _queue_attributes(clients, made).items()}
    assert {name for name, n in depth.items() if n} == {NAMES.ingest_queue, NAMES.feedback_queue, NAMES.output_sink}
    assert all(n == 1 for n in depth.values() if n)


def test_rules_false_provisions_no_routing(clients: Clients) -> None:
    made = create_topology(clients.sqs, clients.events, clients.dynamodb, topo.build(NAMES), rules=False)
    assert not made.rules
    assert not clients.events.list_rules(EventBusName=NAMES.input_bus)["Rules"]


def test_ingest_visibility_override_changes_only_the_ingest_queue() -> None:
    top = topo.build(NAMES)
    changed = with_ingest_visibility(top, 7)
    assert changed.queue(NAMES.ingest_queue).visibility_timeout_s == 7
    assert [q for q in changed.queues if q.name != NAMES.ingest_queue] == [
        q for q in top.queues if q.name != NAMES.ingest_queue
    ]


def test_provision_is_the_local_topology_on_a_server() -> None:
    """`provision` (the moto server's entry point) returns references to the same provisioned specs."""
    from pigeonhole_tools.local.emulator import Emulator

    with Emulator() as server:
        resources = provision(server.endpoint, prefix="unit-server", visibility_timeout=11, max_attempts=1)
    names = ResourceNames("unit-server")
    assert resources.topology == with_ingest_visibility(topo.build(names).local(), 11)
    assert set(resources.provisioned.queues) == {q.name for q in resources.topology.queues}
    assert resources.visibility_timeout == 11
    assert resources.ingest == resources.provisioned.queues[names.ingest_queue]
    assert resources.output_sink.name == names.output_sink
    assert resources.windows_table == names.windows_table
