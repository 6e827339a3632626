"""What moto's CloudFormation needs from the synthesized template: every adjustment, in one place.

The deploy rehearsal (this package) deploys the template `cdk synth` writes into moto's
CloudFormation. moto does not implement every resource type or property, so a few template
rewrites are applied first. Each one is a named `Rewrite` with the reason it exists; nothing else
in the rehearsal changes the template. `adjust` reports how many places each rewrite changed, so a
rewrite that stops matching (the template or CDK changed) is noticed by the rehearsal test, and
`MOTO_VERSION` pins the moto they were written for (checked by `check_moto_version`).

No CDK or boto3 imports: the template is plain JSON.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Final

# The moto release these rewrites and SKIPPED_TYPES were written for and checked against.
MOTO_VERSION: Final = "5.2.5"

# Resource types moto 5.2.5's CloudFormation does not create ("No Moto CloudFormation support for
# <type>" in its log): the stack still reaches CREATE_COMPLETE, the resource simply does not exist.
SKIPPED_TYPES: Final = frozenset(
    {
        "AWS::ApplicationAutoScaling::ScalableTarget",
        "AWS::ApplicationAutoScaling::ScalingPolicy",
        "AWS::CloudWatch::Alarm",
        "AWS::CloudWatch::CompositeAlarm",
        "AWS::CodeDeploy::Application",
        "AWS::CodeDeploy::DeploymentGroup",
        "AWS::Lambda::Alias",
        "AWS::Lambda::EventInvokeConfig",
        "AWS::S3::BucketPolicy",
        "AWS::SNS::TopicPolicy",
        "AWS::SQS::QueuePolicy",
    }
)

Template = dict[str, Any]


class MotoVersionError(RuntimeError):
    """The installed moto is not the one the template rewrites were written for."""


def installed_moto_version() -> str | None:
    try:
        return metadata.version("moto")
    except metadata.PackageNotFoundError:
        return None


def check_moto_version(installed: str | None = None) -> None:
    """Refuse a moto other than MOTO_VERSION: its CloudFormation may need different rewrites."""
    found = installed if installed is not None else installed_moto_version()
    if found != MOTO_VERSION:
        raise MotoVersionError(
            f"the deploy rehearsal's template rewrites were written for moto {MOTO_VERSION}, but moto {found} "
            "is installed. Run tests/e2e/test_deploy_rehearsal.py, check which rewrites still apply and which "
            "resource types moto now skips (REWRITES, SKIPPED_TYPES in pigeonhole_tools/local/rehearsal/template.py), "
            "then update MOTO_VERSION."
        )


@dataclass(frozen=True)
class Rewrite:
    """One adjustment: `apply` edits the template in place and returns how many places it changed."""

    name: str
    why: str
    apply: Callable[[Template], int]


def _resources(template: Template, *types: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for logical_id, resource in template.get("Resources", {}).items():
        if not types or resource.get("Type") in types:
            yield logical_id, resource


def _ids_of(template: Template, *types: str) -> set[str]:
    return {logical_id for logical_id, _ in _resources(template, *types)}


def _replace(node: Any, match: Callable[[Any], Any | None]) -> tuple[Any, int]:
    """Walk `node`; where `match` returns a replacement, use it. Returns (new node, replacements)."""
    replacement = match(node)
    if replacement is not None:
        return replacement, 1
    count = 0
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out[key], n = _replace(value, match)
            count += n
        return out, count
    if isinstance(node, list):
        items = []
        for value in node:
            item, n = _replace(value, match)
            items.append(item)
            count += n
        return items, count
    return node, 0


def _ref_target(node: Any) -> str | None:
    if isinstance(node, dict) and len(node) == 1 and isinstance(node.get("Ref"), str):
        return str(node["Ref"])
    return None


def _replace_in_resources(template: Template, match: Callable[[Any], Any | None]) -> int:
    total = 0
    for section in ("Resources", "Outputs"):
        if section in template:
            template[section], n = _replace(template[section], match)
            total += n
    return total


# -- the rewrites -------------------------------------------------------------------------------------


def kms_key_tags(template: Template) -> int:
    count = 0
    for _, resource in _resources(template, "AWS::KMS::Key"):
        tags = resource.get("Properties", {}).get("Tags")
        if tags and all("Key" in t for t in tags):
            resource["Properties"]["Tags"] = [{"TagKey": t["Key"], "TagValue": t["Value"]} for t in tags]
            count += 1
    return count


def kms_key_policy_as_string(template: Template) -> int:
    count = 0
    for _, resource in _resources(template, "AWS::KMS::Key"):
        policy = resource.get("Properties", {}).get("KeyPolicy")
        if isinstance(policy, dict) and "Fn::ToJsonString" not in policy:
            resource["Properties"]["KeyPolicy"] = {"Fn::ToJsonString": policy}
            count += 1
    return count


def event_bus_refs_to_names(template: Template) -> int:
    names = {
        logical_id: resource["Properties"]["Name"]
        for logical_id, resource in _resources(template, "AWS::Events::EventBus")
        if isinstance(resource.get("Properties", {}).get("Name"), str)
    }

    def match(node: Any) -> Any | None:
        target = _ref_target(node)
        return names.get(target) if target is not None else None

    return _replace_in_resources(template, match)


def mappings_on_function_not_alias(template: Template) -> int:
    aliases = {
        logical_id: resource["Properties"]["FunctionName"]
        for logical_id, resource in _resources(template, "AWS::Lambda::Alias")
    }
    count = 0
    for _, resource in _resources(template, "AWS::Lambda::EventSourceMapping"):
        props = resource.get("Properties", {})
        text = json.dumps(props.get("FunctionName"))
        for alias_id, function_name in aliases.items():
            if json.dumps({"Ref": alias_id}) in text:
                props["FunctionName"] = copy.deepcopy(function_name)
                count += 1
                break
    return count


def disable_event_source_mappings(template: Template) -> int:
    count = 0
    for _, resource in _resources(template, "AWS::Lambda::EventSourceMapping"):
        props = resource.setdefault("Properties", {})
        if props.get("Enabled", True) is not False:
            props["Enabled"] = False
            count += 1
    return count


def getatt_on_skipped_types(template: Template) -> int:
    skipped = {logical_id: resource["Type"] for logical_id, resource in _resources(template, *SKIPPED_TYPES)}

    def match(node: Any) -> Any | None:
        if isinstance(node, dict) and len(node) == 1 and isinstance(node.get("Fn::GetAtt"), list):
            logical_id, attribute = node["Fn::GetAtt"][0], node["Fn::GetAtt"][1]
            if logical_id in skipped:
                # A well-formed ARN: moto parses ARNs it finds in IAM policies (the dashboard's role, CodeDeploy).
                service = skipped[logical_id].split("::")[1].lower()
                return {
                    "Fn::Sub": f"arn:${{AWS::Partition}}:{service}:${{AWS::Region}}:${{AWS::AccountId}}:"
                    f"moto-skipped/{logical_id}/{attribute}"
                }
        return None

    return _replace_in_resources(template, match)


def version_refs_to_arns(template: Template) -> int:
    versions = {
        logical_id: resource.get("Properties", {}).get("FunctionName")
        for logical_id, resource in _resources(template, "AWS::Lambda::Version")
    }

    def match(node: Any) -> Any | None:
        target = _ref_target(node)
        if target is None or target not in versions:
            return None
        function = _ref_target(versions[target])
        base: Any = {"Fn::GetAtt": [function, "Arn"]} if function is not None else versions[target]
        return {"Fn::Join": ["", [base, ":moto-version"]]}

    return _replace_in_resources(template, match)


def drop_function_layers(template: Template) -> int:
    count = 0
    for _, resource in _resources(template, "AWS::Lambda::Function"):
        if resource.get("Properties", {}).pop("Layers", None) is not None:
            count += 1
    return count


REWRITES: Final[tuple[Rewrite, ...]] = (
    Rewrite(
        "kms-key-tags",
        "moto's AWS::KMS::Key reads tags as TagKey/TagValue (KMS's API shape), not CloudFormation's Key/Value: "
        "unpatched, create_stack fails with a 500 (KeyError 'TagKey').",
        kms_key_tags,
    ),
    Rewrite(
        "kms-key-policy-as-json-string",
        "moto stores KeyPolicy as given; a JSON object (CloudFormation's shape) makes DescribeKey/GetKeyPolicy fail "
        "after the stack is created. Fn::ToJsonString hands moto the string KMS's API uses.",
        kms_key_policy_as_string,
    ),
    Rewrite(
        "event-bus-ref-to-name",
        "moto resolves a Ref to an AWS::Events::EventBus to its model object instead of the bus name: put_rule "
        "fails (AttributeError) and the function's output-bus variable would hold an object. The literal Name "
        "is what Ref returns in AWS.",
        event_bus_refs_to_names,
    ),
    Rewrite(
        "event-source-mapping-on-function",
        "moto skips AWS::Lambda::Alias, so a Ref to the alias is None and the mapping cannot be created. The "
        "mapping is pointed at the function itself (the alias's FunctionName); every mapping setting is kept.",
        mappings_on_function_not_alias,
    ),
    Rewrite(
        "disable-event-source-mappings",
        "An enabled mapping makes moto invoke the function on every SendMessage to its queue, which needs Docker "
        "(absent): messages would bounce. The rehearsal drives the real handler itself, so mappings are created "
        "disabled (Enabled is the only mapping setting the comparison ignores).",
        disable_event_source_mappings,
    ),
    Rewrite(
        "getatt-on-skipped-types",
        "Fn::GetAtt on a resource moto skipped (alarm ARNs in composite alarm rules and the dashboard body, the "
        "alias's version) fails with 'undefined resource'. The value becomes a labelled placeholder string.",
        getatt_on_skipped_types,
    ),
    Rewrite(
        "version-ref-to-arn",
        "moto resolves a Ref to an AWS::Lambda::Version to its model object instead of the version ARN: an IAM "
        "policy naming it (the golden hook may invoke only the new version) fails create_stack with a 500 "
        "(TypeError: LambdaVersion is not JSON serializable). The value becomes the function ARN with a "
        "labelled placeholder qualifier; the rehearsal never invokes the hook.",
        version_refs_to_arns,
    ),
    Rewrite(
        "function-layers-dropped",
        "moto does not attach layers to functions (it creates the layer versions) and update_stack touching a "
        "function with Layers fails half-applied, with no rollback. Layers are not compared.",
        drop_function_layers,
    ),
)


def adjust(template: Mapping[str, Any]) -> tuple[Template, dict[str, int]]:
    """A copy of `template` with every rewrite applied, and how many places each changed."""
    adjusted: Template = copy.deepcopy(dict(template))
    counts = {rewrite.name: rewrite.apply(adjusted) for rewrite in REWRITES}
    return adjusted, counts


def skipped_resources(template: Mapping[str, Any]) -> dict[str, str]:
    """Logical id -> type of the resources moto will not create."""
    return {
        logical_id: resource["Type"]
        for logical_id, resource in template.get("Resources", {}).items()
        if resource.get("Type") in SKIPPED_TYPES
    }
