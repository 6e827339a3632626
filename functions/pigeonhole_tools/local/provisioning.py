"""Provisioning from `pigeonhole.topology`: the local specs created on any set of boto3 clients.

The moto server of `local up` and the demo (`emulator.provision`), in-process moto in the functional
tests and the drift harness's sandbox all call `create_topology` (or `create_tables`), so every local
queue, bus, rule, table and bucket is made here, from its spec. What is not applied: KMS (moto does
not encrypt and there is no key locally; buckets get S3-managed encryption instead) and the
deployed-only specs (the drift schedule and its DLQ).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from pigeonhole import topology as topo
from pigeonhole.naming import ResourceNames

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import (
        AttributeDefinitionTypeDef,
        GlobalSecondaryIndexTypeDef,
        KeySchemaElementTypeDef,
    )
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_events.type_defs import TargetTypeDef
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.literals import QueueAttributeNameType


@dataclass(frozen=True)
class QueueRef:
    name: str
    url: str
    arn: str


def _queue_policy(queue_arn: str, source_arn: str) -> str:
    # EventBridge needs this to deliver to SQS in AWS; moto does not check it, we set it for fidelity.
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "AllowEventBridgeRule",
                    "Effect": "Allow",
                    "Principal": {"Service": "events.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": source_arn}},
                }
            ],
        }
    )


@dataclass(frozen=True)
class Provisioned:
    """What `create_topology` made, by physical name: queues, bus ARNs, rule ARNs, tables and buckets."""

    queues: dict[str, QueueRef] = field(default_factory=dict)
    buses: dict[str, str] = field(default_factory=dict)
    rules: dict[str, str] = field(default_factory=dict)
    tables: list[str] = field(default_factory=list)
    buckets: dict[str, str] = field(default_factory=dict)  # spec (base) name -> physical bucket name


def _queue_attributes(spec: topo.QueueSpec, made: Mapping[str, QueueRef]) -> dict[QueueAttributeNameType, str]:
    """The spec's settings as SQS attributes (KMS is not applied: moto does not encrypt, there is no key)."""
    attrs: dict[QueueAttributeNameType, str] = {
        "MessageRetentionPeriod": str(spec.retention_s),
        "VisibilityTimeout": str(spec.visibility_timeout_s),
    }
    if spec.redrive is not None:
        redrive = {
            "deadLetterTargetArn": made[spec.redrive.dead_letter_queue].arn,
            "maxReceiveCount": spec.redrive.max_receive_count,
        }
        attrs["RedrivePolicy"] = json.dumps(redrive)
    return attrs


def create_queue(sqs: SQSClient, spec: topo.QueueSpec, made: Mapping[str, QueueRef]) -> QueueRef:
    """One queue from its spec; `made` must already hold the DLQ its redrive names."""
    url = sqs.create_queue(QueueName=spec.name, Attributes=_queue_attributes(spec, made))["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return QueueRef(name=spec.name, url=url, arn=arn)


def _create_bus(events: EventBridgeClient, name: str) -> str:
    try:
        return events.create_event_bus(Name=name)["EventBusArn"]
    except events.exceptions.ResourceAlreadyExistsException:
        return events.describe_event_bus(Name=name)["Arn"]


def create_rule(events: EventBridgeClient, sqs: SQSClient, spec: topo.RuleSpec, queues: Mapping[str, QueueRef]) -> str:
    """A queue-targeted rule from its spec: pattern, the queue's policy for EventBridge, retry policy, target DLQ."""
    if spec.target.kind != "queue" or spec.bus is None or spec.pattern is None:
        raise ValueError(f"{spec.name}: the local runtime provisions only event rules that target a queue")
    target = queues[spec.target.name]
    rule_arn = events.put_rule(
        Name=spec.name,
        EventBusName=spec.bus,
        EventPattern=json.dumps(spec.pattern),
        State="ENABLED",
        Description=spec.description,
    )["RuleArn"]
    sqs.set_queue_attributes(QueueUrl=target.url, Attributes={"Policy": _queue_policy(target.arn, rule_arn)})
    queue_target: TargetTypeDef = {
        "Id": f"{target.name}-target",
        "Arn": target.arn,
        "RetryPolicy": {
            "MaximumRetryAttempts": spec.target.retry.maximum_retry_attempts,
            "MaximumEventAgeInSeconds": spec.target.retry.maximum_event_age_s,
        },
        "DeadLetterConfig": {"Arn": queues[spec.target.dead_letter_queue].arn},
    }
    events.put_targets(Rule=spec.name, EventBusName=spec.bus, Targets=[queue_target])
    return rule_arn


def _key_schema(
    partition: topo.KeySpec, sort: topo.KeySpec | None
) -> tuple[list[KeySchemaElementTypeDef], list[AttributeDefinitionTypeDef]]:
    keys: list[KeySchemaElementTypeDef] = [{"AttributeName": partition.name, "KeyType": "HASH"}]
    attrs: list[AttributeDefinitionTypeDef] = [{"AttributeName": partition.name, "AttributeType": partition.type}]
    if sort is not None:
        keys.append({"AttributeName": sort.name, "KeyType": "RANGE"})
        attrs.append({"AttributeName": sort.name, "AttributeType": sort.type})
    return keys, attrs


def create_table(dynamodb: DynamoDBClient, spec: topo.TableSpec) -> None:
    """One table from its spec: keys, billing, indexes, TTL and PITR (moto stores TTL but never expires items).

    An existing table of that name is left as it is (provisioning twice on one server is harmless).
    """
    keys, attrs = _key_schema(spec.partition_key, spec.sort_key)
    indexes: list[GlobalSecondaryIndexTypeDef] = []
    for index in spec.indexes:
        index_keys, index_attrs = _key_schema(index.partition_key, index.sort_key)
        attrs += [a for a in index_attrs if a not in attrs]
        indexes.append(
            {"IndexName": index.name, "KeySchema": index_keys, "Projection": {"ProjectionType": index.projection}}
        )
    extra: dict[str, Any] = {"GlobalSecondaryIndexes": indexes} if indexes else {}
    try:
        dynamodb.create_table(
            TableName=spec.name,
            KeySchema=keys,
            AttributeDefinitions=attrs,
            BillingMode=spec.billing_mode,
            **extra,
        )
    except dynamodb.exceptions.ResourceInUseException:
        return
    if spec.ttl_attribute is not None:
        dynamodb.update_time_to_live(
            TableName=spec.name, TimeToLiveSpecification={"Enabled": True, "AttributeName": spec.ttl_attribute}
        )
    if spec.pitr:
        dynamodb.update_continuous_backups(
            TableName=spec.name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
        )


# moto's default account: what `sts get-caller-identity` answers for the local runtime's fake credentials.
MOTO_ACCOUNT = "123456789012"


def create_bucket(s3: S3Client, spec: topo.BucketSpec, account: str = MOTO_ACCOUNT) -> str:
    """A private bucket whose objects expire as the spec says; returns its physical name."""
    name = spec.physical_name(account, s3.meta.region_name)
    if s3.meta.region_name == "us-east-1":
        s3.create_bucket(Bucket=name)
    else:
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": s3.meta.region_name})  # type: ignore[typeddict-item]
    s3.put_public_access_block(
        Bucket=name,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    s3.put_bucket_encryption(
        Bucket=name,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    s3.put_bucket_lifecycle_configuration(
        Bucket=name,
        LifecycleConfiguration={
            "Rules": [
                {
                    "ID": "expire",
                    "Status": "Enabled",
                    "Filter": {"Prefix": ""},
                    "Expiration": {"Days": spec.expire_after_days},
                    "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
                }
            ]
        },
    )
    return name


def create_tables(dynamodb: DynamoDBClient, names: ResourceNames) -> list[str]:
    """Only the tables of the topology (the drift harness and monitoring tests need no queues)."""
    specs = topo.build(names).local().tables
    for spec in specs:
        create_table(dynamodb, spec)
    return [spec.name for spec in specs]


def create_topology(
    sqs: SQSClient,
    events: EventBridgeClient,
    dynamodb: DynamoDBClient,
    topology: topo.Topology,
    *,
    rules: bool = True,
    s3: S3Client | None = None,
) -> Provisioned:
    """Provision every spec that exists locally (`topology.local()`), dead-letter queues before their sources.

    `rules=False` leaves the buses without rules, so nothing is routed (a simulation that discards outputs).
    Buckets are made only when an S3 client is given (the drift harness and table-only tests need none).
    """
    local = topology.local()
    made = Provisioned()
    for queue in sorted(local.queues, key=lambda q: q.redrive is not None):
        made.queues[queue.name] = create_queue(sqs, queue, made.queues)
    for bus in local.buses:
        made.buses[bus.name] = _create_bus(events, bus.name)
    for rule in local.rules if rules else ():
        made.rules[rule.name] = create_rule(events, sqs, rule, made.queues)
    for table in local.tables:
        create_table(dynamodb, table)
        made.tables.append(table.name)
    if s3 is not None:
        for bucket in local.buckets:
            made.buckets[bucket.name] = create_bucket(s3, bucket)
    return made


def with_ingest_visibility(topology: topo.Topology, seconds: int) -> topo.Topology:
    """The same topology with another ingest visibility timeout (`local up --visibility-timeout`)."""
    ingest = topology.names.ingest_queue
    queues = tuple(replace(q, visibility_timeout_s=seconds) if q.name == ingest else q for q in topology.queues)
    return replace(topology, queues=queues)
