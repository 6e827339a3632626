"""Replay the golden set through the NEW classifier version and report the verdict to CodeDeploy.

Why invoke the version rather than load the package here: the hook then judges exactly what will
serve (the version's code, layers, runtime, memory and its own model load), not a copy of the model
in another function. The version answers a side-effect-free probe (pigeonhole.classify.probe), so
golden events reach no consumer and no drift window. The golden set itself comes from this hook's
model layer, which is the same package the new version was published with (one deploy, one layer);
the probe's answer names the model it loaded, and a different sha256 fails the deployment.

Whatever happens (a failing version, a crash here, a malformed answer), the hook reports Failed or
Succeeded exactly once; only a failed report itself is raised (CodeDeploy then times out and fails).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from aws_lambda_powertools import Logger

from pigeonhole.constants import GOLDEN_PROBE_KEY
from pigeonhole.model.golden import GoldenSet, GoldenVerdict, evaluate_golden

if TYPE_CHECKING:
    from mypy_boto3_codedeploy import CodeDeployClient
    from mypy_boto3_lambda import LambdaClient

Status = Literal["Succeeded", "Failed"]


class ProbeFailedError(RuntimeError):
    """The new version did not answer the probe as a working classifier would."""


@dataclass(frozen=True)
class VersionProbe:
    """The golden-set classifier callable backed by synchronous invocations of one published version."""

    client: LambdaClient
    version_arn: str
    expected_sha256: str

    def __call__(self, events: Sequence[Mapping[str, str]]) -> list[str]:
        payload = json.dumps({GOLDEN_PROBE_KEY: {"events": [dict(e) for e in events]}}).encode("utf-8")
        response = self.client.invoke(FunctionName=self.version_arn, InvocationType="RequestResponse", Payload=payload)
        body = response["Payload"].read()
        if response.get("FunctionError"):
            raise ProbeFailedError(f"the new version failed the probe ({response['FunctionError']})")
        try:
            answer = json.loads(body)
            labels, model = answer["labels"], answer["model"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ProbeFailedError(f"the new version's probe answer is malformed ({type(exc).__name__})") from None
        if model.get("sha256") != self.expected_sha256:
            raise ProbeFailedError("the new version serves a different model package than the golden set's")
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise ProbeFailedError("the new version's probe answer has no list of labels")
        return labels


@dataclass
class GoldenHook:
    codedeploy: CodeDeployClient
    golden: Callable[[], GoldenSet]  # loaded lazily: a broken package is a Failed verdict, not a crash
    classify: Callable[[Sequence[Mapping[str, str]]], Sequence[str]]
    min_accuracy_floor: float
    logger: Logger

    def run(self, event: Mapping[str, Any]) -> Status:
        deployment_id = str(event["DeploymentId"])
        execution_id = str(event["LifecycleEventHookExecutionId"])
        status: Status = "Failed"
        try:
            verdict: GoldenVerdict = evaluate_golden(self.golden(), self.classify, self.min_accuracy_floor)
            status = "Succeeded" if verdict.passed else "Failed"
            self.logger.info("golden set replayed", extra={"deployment_id": deployment_id, **verdict.to_dict()})
        except Exception as exc:  # any failure to judge the version fails the deployment, never passes it
            self.logger.exception(
                "golden set could not be replayed", extra={"deployment_id": deployment_id, "error": type(exc).__name__}
            )
        self.codedeploy.put_lifecycle_event_hook_execution_status(
            deploymentId=deployment_id, lifecycleEventHookExecutionId=execution_id, status=status
        )
        return status
