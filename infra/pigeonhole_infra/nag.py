"""cdk-nag (AwsSolutions pack, v3 API): the checks and every acknowledgement, each with its reason.

Acknowledgements are scoped to the construct that raises the finding (never the whole stack), so a
new resource with the same problem still fails synthesis. They are data (`acknowledgements`) so
tests and reviews can read them in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import aws_cdk as cdk
import cdk_nag
from constructs import Construct

if TYPE_CHECKING:
    from pigeonhole_infra.stack import PigeonholeStack

XRAY_REASON = (
    "Only the X-Ray statement added by tracing=ACTIVE (xray:PutTraceSegments, xray:PutTelemetryRecords) has "
    "Resource '*': X-Ray does not support resource-level permissions for these actions. Every other statement "
    "of this role names its resource (a test checks this)."
)
RUNTIME_REASON = (
    "The runtime is pinned to the Python the runtime layer is built and tested for (python_version: 3.12 or "
    "3.13): onnxruntime, numpy and pydantic-core ship compiled CPython-version-specific wheels, and the "
    "layer is byte-compiled for that version. A newer runtime is a config change plus a layer rebuild, "
    "made deliberately rather than by a lint rule."
)
DLQ_REASON = (
    "This queue is itself a dead-letter queue: {what}. cdk-nag only recognises DLQs named in another queue's "
    "RedrivePolicy. A DLQ behind a DLQ would only hide failures; the depth alarm on this queue notifies instead."
)
ACCESS_LOG_REASON = (
    "The quarantine-bodies bucket is written only by the classifier's role (PutObject under quarantine/, "
    "TLS-only, public access blocked, KMS-encrypted) and read by operators investigating a quarantined event. "
    "Server access logs would need a second bucket that holds logs of this one; object-level access is "
    "audited with CloudTrail data events where an account enables them."
)
BODY_KEYS_REASON = (
    "s3:PutObject on quarantine/* of the one quarantine-bodies bucket: each object's key is the sha256 of a "
    "quarantined body, known only at run time. The wildcard is the object key under that prefix, nothing wider."
)
CANARY_REASON = (
    "lambda:GetProvisionedConcurrencyConfig on the versions of this one function: CodeDeploy reads the "
    "provisioned concurrency of the version it shifts traffic to, and that version is published by the same "
    "deployment, so its number is unknown at synth time. The wildcard is the version qualifier only."
)


@dataclass(frozen=True)
class Ack:
    """One acknowledged finding: where (construct path under the stack), which rule, and why."""

    path: str
    rule: str
    reason: str


def add_checks(app: cdk.App) -> None:
    """Run the AwsSolutions pack on every synthesis of `app`; an unacknowledged finding fails synthesis."""
    cdk.Validations.of(app).add_plugins(cdk_nag.AwsSolutionsChecks(app))


def acknowledgements(stack: PigeonholeStack) -> list[Ack]:
    """Every finding we accept in this stack, with its reason."""
    canary_fn = stack.get_logical_id(_cfn(stack.classifier.function))
    bodies = stack.get_logical_id(_cfn(stack.quarantine_bucket))
    acks: list[Ack] = []
    for fn in ("Classifier/Classifier", "Drift/Drift", "Feedback/Feedback", "GoldenHook/Hook"):
        if stack.config.tracing:
            acks.append(Ack(f"{fn}/Role", "AwsSolutions-IAM5[Resource::*]", XRAY_REASON))
        acks.append(Ack(f"{fn}/Function", "AwsSolutions-L1", RUNTIME_REASON))
    acks += [
        Ack(
            "Buses/InputRuleDlq",
            "AwsSolutions-SQS3",
            DLQ_REASON.format(what="the dead-letter queue of the input bus -> ingest queue rule target"),
        ),
        Ack(
            "Buses/LabelRuleDlq",
            "AwsSolutions-SQS3",
            DLQ_REASON.format(what="the dead-letter queue of the input bus (LabelFeedback) -> feedback queue target"),
        ),
        Ack(
            "Drift/Dlq",
            "AwsSolutions-SQS3",
            DLQ_REASON.format(
                what="the dead-letter queue of the drift schedule target and the drift function's on-failure "
                "destination"
            ),
        ),
        Ack("Canary/ServiceRole", f"AwsSolutions-IAM5[Resource::<{canary_fn}.Arn>:*]", CANARY_REASON),
        Ack("QuarantineBodies", "AwsSolutions-S1", ACCESS_LOG_REASON),
        Ack(
            "Classifier/Classifier/Role", f"AwsSolutions-IAM5[Resource::<{bodies}.Arn>/quarantine/*]", BODY_KEYS_REASON
        ),
    ]
    return acks


def acknowledge(stack: PigeonholeStack) -> None:
    """Record each acknowledgement on its construct."""
    for ack in acknowledgements(stack):
        construct = stack.node.find_child(ack.path.split("/")[0])
        for part in ack.path.split("/")[1:]:
            construct = construct.node.find_child(part)
        cdk.Validations.of(construct).acknowledge(cdk.Acknowledgment(id=ack.rule, reason=ack.reason))


def _cfn(construct: Construct) -> cdk.CfnElement:
    child = construct.node.default_child
    if not isinstance(child, cdk.CfnElement):
        raise TypeError(f"{construct.node.path} has no CloudFormation resource")
    return child
