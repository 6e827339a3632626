"""Both systems read back with describe calls, reduced to one shape, and compared."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from pigeonhole_tools.local.emulator import (
    LocalResources,
)
from pigeonhole_tools.local.rehearsal.stack import LOCAL_OVERRIDES, Moto

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

# -- reading a system back ---------------------------------------------------------------------------

# The shape both sides are reduced to: resource key (name without the prefix) -> settings.
Shape = dict[str, dict[str, Any]]


def strip_prefix(name: str, prefix: str) -> str:
    return name.removeprefix(f"{prefix}-")


def _arn_name(arn: str) -> str:
    return arn.rsplit(":", 1)[-1].rsplit("/", 1)[-1]


def _queue_shape(sqs: SQSClient, url: str, prefix: str) -> dict[str, Any]:
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    shape: dict[str, Any] = {
        "visibility_timeout": int(attrs["VisibilityTimeout"]),
        "retention": int(attrs["MessageRetentionPeriod"]),
    }
    if "RedrivePolicy" in attrs:
        redrive = json.loads(attrs["RedrivePolicy"])
        shape["dead_letter_queue"] = strip_prefix(_arn_name(redrive["deadLetterTargetArn"]), prefix)
        shape["max_receive_count"] = int(redrive["maxReceiveCount"])
    return shape


def target_shape(arn: str, dead_letter_arn: str, retry: Mapping[str, Any], prefix: str) -> tuple[str, str, str]:
    """A rule target as (target name, its DLQ's name, retry policy JSON), names without the prefix."""
    return (
        strip_prefix(_arn_name(arn), prefix),
        strip_prefix(_arn_name(dead_letter_arn), prefix),
        json.dumps(dict(retry), sort_keys=True),
    )


def read_system(moto: Moto, prefix: str, function_name: str | None = None) -> Shape:
    """Every queue, bus, rule (pattern, targets), table and mapping named `<prefix>-…`, via describe calls."""
    sqs = moto.client("sqs")
    events = moto.client("events")
    dynamodb = moto.client("dynamodb")
    shape: Shape = {}
    for url in sqs.list_queues(QueueNamePrefix=f"{prefix}-").get("QueueUrls", []):
        shape[f"queue:{strip_prefix(url.rsplit('/', 1)[-1], prefix)}"] = _queue_shape(sqs, url, prefix)
    bus_names = [b["Name"] for b in events.list_event_buses(NamePrefix=f"{prefix}-")["EventBuses"]]
    for bus_name in bus_names:
        shape[f"bus:{strip_prefix(bus_name, prefix)}"] = {}
    for bus_name in [*bus_names, "default"]:  # schedules (the drift rule) live on the default bus
        for rule in events.list_rules(EventBusName=bus_name, NamePrefix=f"{prefix}-")["Rules"]:
            targets = events.list_targets_by_rule(Rule=rule["Name"], EventBusName=bus_name)["Targets"]
            shape[f"rule:{strip_prefix(rule['Name'], prefix)}"] = {
                "bus": strip_prefix(bus_name, prefix),
                "pattern": json.loads(rule["EventPattern"]) if rule.get("EventPattern") else None,
                "schedule": rule.get("ScheduleExpression"),
                "targets": sorted(
                    target_shape(
                        t["Arn"], t.get("DeadLetterConfig", {}).get("Arn", "-"), t.get("RetryPolicy", {}), prefix
                    )
                    for t in targets
                ),
            }
    for name in dynamodb.list_tables()["TableNames"]:
        if not name.startswith(f"{prefix}-"):
            continue
        table = dynamodb.describe_table(TableName=name)["Table"]
        ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        shape[f"table:{strip_prefix(name, prefix)}"] = {
            "keys": sorted((k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]),
            "attributes": sorted((a["AttributeName"], a["AttributeType"]) for a in table["AttributeDefinitions"]),
            "billing": table.get("BillingModeSummary", {}).get("BillingMode", "PROVISIONED"),
            "ttl": ttl.get("AttributeName") if ttl.get("TimeToLiveStatus") == "ENABLED" else None,
        }
    if function_name is not None:
        lam = moto.client("lambda")
        for mapping in lam.list_event_source_mappings(FunctionName=function_name)["EventSourceMappings"]:
            queue = strip_prefix(_arn_name(mapping["EventSourceArn"]), prefix)
            shape[f"mapping:{queue}"] = mapping_shape(mapping, prefix)
    return shape


def mapping_shape(mapping: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """The event source mapping settings the local poller plays (Enabled is the rehearsal's, see the rewrites)."""
    return {
        "function": strip_prefix(_arn_name(mapping["FunctionArn"]), prefix),
        "batch_size": mapping["BatchSize"],
        "batching_window_s": mapping.get("MaximumBatchingWindowInSeconds", 0),
        "report_batch_item_failures": "ReportBatchItemFailures" in mapping.get("FunctionResponseTypes", []),
    }


def local_mapping_shape(resources: LocalResources) -> dict[str, Any]:
    """What `local up`'s poller does, in the same shape (it has no mapping resource to describe)."""
    from pigeonhole.naming import MAX_BATCH_SIZE
    from pigeonhole_tools.local.emulator import DEFAULT_BATCHING_WINDOW

    return {
        "function": strip_prefix(resources.function_name, resources.names.prefix),
        "batch_size": MAX_BATCH_SIZE,
        "batching_window_s": DEFAULT_BATCHING_WINDOW,
        "report_batch_item_failures": True,  # the poller reads partial batch responses (poller.failed_message_ids)
    }


@dataclass(frozen=True)
class Difference:
    key: str
    field: str
    deployed: Any
    local: Any

    def __str__(self) -> str:
        return f"{self.key} {self.field}: deployed {self.deployed!r}, local {self.local!r}"


@dataclass(frozen=True)
class Comparison:
    """Deployed vs. locally provisioned: resources on one side only, and settings that differ."""

    only_deployed: list[str]
    only_local: list[str]
    differences: list[Difference]


def compare(deployed: Shape, local: Shape) -> Comparison:
    differences = []
    for key in sorted(deployed.keys() & local.keys()):
        for name in sorted(deployed[key].keys() | local[key].keys()):
            a, b = deployed[key].get(name), local[key].get(name)
            if a != b:
                differences.append(Difference(key, name, a, b))
    return Comparison(
        only_deployed=sorted(deployed.keys() - local.keys()),
        only_local=sorted(local.keys() - deployed.keys()),
        differences=differences,
    )


def function_environment(moto: Moto, function_name: str) -> dict[str, str]:
    """The deployed function's environment variables, as Lambda would hand them to the handler."""
    config = moto.client("lambda").get_function_configuration(FunctionName=function_name)
    variables: dict[str, str] = config.get("Environment", {}).get("Variables", {})
    return dict(variables)


# Powertools' own defaults: a variable the local runtime leaves unset means this value.
POWERTOOLS_DEFAULTS: Final = {"POWERTOOLS_LOG_LEVEL": "INFO"}


def _as_dict(settings: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(settings) and not isinstance(settings, type):
        return dataclasses.asdict(settings)
    dump = getattr(settings, "model_dump", None)
    return dict(dump()) if callable(dump) else dict(vars(settings))


def _neutral(value: Any, prefix: str) -> Any:
    """A name or URL with its system's prefix replaced, so two systems' names compare (URLs by queue name)."""
    if not isinstance(value, str):
        return value
    if "://" in value:
        value = value.rsplit("/", 1)[-1]
    return value.replace(f"{prefix}-", "<prefix>-")


def environment_differences(
    deployed: Mapping[str, str], deployed_prefix: str, local: Mapping[str, str], local_prefix: str
) -> list[Difference]:
    """What the classifier would see, deployed vs. local: its effective Settings and the Powertools variables.

    Settings are compared after parsing (a variable left unset locally that defaults to the deployed
    value is no difference); names compare without their prefix and queue URLs by queue name (moto's
    CloudFormation names the real SQS host, the local runtime its loopback endpoint).
    """
    from pigeonhole.config import Settings

    differences = []
    settings = (_as_dict(Settings.from_env(dict(deployed))), _as_dict(Settings.from_env(dict(local))))
    for name in sorted(settings[0].keys() | settings[1].keys()):
        if name == "model_dir":  # a LOCAL_OVERRIDES entry: /opt/model is the model layer's path
            continue
        a, b = _neutral(settings[0].get(name), deployed_prefix), _neutral(settings[1].get(name), local_prefix)
        if a != b:
            differences.append(Difference("function:settings", name, a, b))
    names = {n for n in deployed.keys() | local.keys() if n.startswith(("POWERTOOLS_", "ORT_"))}
    for name in sorted(names - set(LOCAL_OVERRIDES)):
        a = deployed.get(name, POWERTOOLS_DEFAULTS.get(name))
        b = local.get(name, POWERTOOLS_DEFAULTS.get(name))
        if a != b:
            differences.append(Difference("function:environment", name, a, b))
    return differences


def template_only_settings(shape: Shape, template: Mapping[str, Any], prefix: str) -> Shape:
    """Settings moto's CloudFormation accepts but does not apply, taken from the template instead.

    moto 5.2.5 ignores a table's TimeToLiveSpecification (DescribeTimeToLive says DISABLED), so the
    deployed side's TTL attribute is read from the template; everything else is read from moto.
    """
    out = {key: dict(value) for key, value in shape.items()}
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") != "AWS::DynamoDB::Table":
            continue
        props = resource.get("Properties", {})
        ttl = props.get("TimeToLiveSpecification", {})
        key = f"table:{strip_prefix(str(props.get('TableName')), prefix)}"
        if key in out and ttl.get("Enabled"):
            out[key]["ttl"] = ttl.get("AttributeName")
    return out


def spec_shape(topology: Any, prefix: str) -> Shape:
    """`pigeonhole.topology` specs (a `Topology`, or its `deployed()`/`local()` part) in the same shape.

    Typed loosely on purpose: the rehearsal reads the specs' fields and imports nothing from the
    module, so it keeps working while the specs grow fields it does not compare.
    """
    shape: Shape = {}
    for queue in topology.queues:
        entry: dict[str, Any] = {"visibility_timeout": queue.visibility_timeout_s, "retention": queue.retention_s}
        if queue.redrive is not None:
            entry["dead_letter_queue"] = strip_prefix(queue.redrive.dead_letter_queue, prefix)
            entry["max_receive_count"] = queue.redrive.max_receive_count
        shape[f"queue:{strip_prefix(queue.name, prefix)}"] = entry
    for bus in topology.buses:
        shape[f"bus:{strip_prefix(bus.name, prefix)}"] = {}
    for rule in topology.rules:
        retry = {
            "MaximumRetryAttempts": rule.target.retry.maximum_retry_attempts,
            "MaximumEventAgeInSeconds": rule.target.retry.maximum_event_age_s,
        }
        shape[f"rule:{strip_prefix(rule.name, prefix)}"] = {
            "bus": strip_prefix(rule.bus, prefix) if rule.bus is not None else "default",
            "pattern": json.loads(json.dumps(rule.pattern)) if rule.pattern is not None else None,
            "schedule": rule.schedule,
            "targets": [target_shape(rule.target.name, rule.target.dead_letter_queue, retry, prefix)],
        }
    for table in topology.tables:
        keys = [(table.partition_key.name, "HASH")]
        attributes = [(table.partition_key.name, table.partition_key.type)]
        if table.sort_key is not None:
            keys.append((table.sort_key.name, "RANGE"))
            attributes.append((table.sort_key.name, table.sort_key.type))
        shape[f"table:{strip_prefix(table.name, prefix)}"] = {
            "keys": sorted(keys),
            "attributes": sorted(attributes),
            "billing": table.billing_mode,
            "ttl": table.ttl_attribute,
        }
    return shape
