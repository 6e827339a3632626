"""The pre-traffic hook end to end in one process: golden set -> the classifier's real probe path -> verdict
-> CodeDeploy status.

moto cannot run Lambda code (NOTES.md) and has no PutLifecycleEventHookExecutionStatus (moto 5.2.5's
CodeDeploy lacks it), so: the Lambda transport is an in-process stand-in that hands the payload to the
real classifier handler (with the real model, against moto queues), and the CodeDeploy call is checked
with a botocore Stubber on a real client (operation name, parameters and status validated by botocore).
"""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_lambda_powertools import Logger
from botocore.stub import Stubber

from pigeonhole.classify import handler as handler_module
from pigeonhole.classify.probe import MAX_PROBE_EVENTS, ProbeError, answer_probe
from pigeonhole.config import HookSettings, Settings
from pigeonhole.constants import ENV_HOOK_TARGET_VERSION, ENV_MIN_GOLDEN_ACCURACY, GOLDEN_PROBE_KEY
from pigeonhole.hook.service import GoldenHook, ProbeFailedError, VersionProbe
from pigeonhole.model.golden import load_golden
from pigeonhole.model.manifest import load_manifest
from pigeonhole.model.runtime import ModelRuntime
from pigeonhole_tools.training.golden import add_golden
from pigeonhole_tools.training.package import write_manifest

from .conftest import REGION, Context, Stack

VERSION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:pigeonhole-classifier:7"
EVENT = {"DeploymentId": "d-ABCDEF123", "LifecycleEventHookExecutionId": "hook-execution-1"}


class InProcessLambda:
    """Stands in for the Lambda service: invokes the real classifier handler with the payload, counts calls."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def invoke(self, *, FunctionName: str, InvocationType: str, Payload: bytes) -> dict[str, Any]:  # noqa: N803
        self.calls.append(FunctionName)
        try:
            result = handler_module.handler(json.loads(Payload), Context())  # type: ignore[arg-type]
        except Exception as exc:  # what Lambda reports for an unhandled error
            body = json.dumps({"errorType": type(exc).__name__}).encode()
            return {"StatusCode": 200, "FunctionError": "Unhandled", "Payload": io.BytesIO(body)}
        return {"StatusCode": 200, "Payload": io.BytesIO(json.dumps(result).encode())}


def _serve(settings: Settings, model_dir: Path) -> None:
    """The classifier 'version' under test: the real service built on this package."""
    svc = handler_module.build_service(
        replace(settings, model_dir=model_dir), session=boto3.Session(region_name=REGION)
    )
    handler_module.reset_for_tests(svc)


@pytest.fixture
def codedeploy() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("codedeploy", region_name=REGION)
    with Stubber(client) as stub:
        yield client, stub
    handler_module.reset_for_tests(None)


def _expect(stub: Stubber, status: str) -> None:
    stub.add_response(
        "put_lifecycle_event_hook_execution_status",
        {"lifecycleEventHookExecutionId": EVENT["LifecycleEventHookExecutionId"]},
        {
            "deploymentId": EVENT["DeploymentId"],
            "lifecycleEventHookExecutionId": EVENT["LifecycleEventHookExecutionId"],
            "status": status,
        },
    )


def _hook(client: Any, model_dir: Path, lam: InProcessLambda, floor: float) -> GoldenHook:
    manifest = load_manifest(model_dir)
    probe = VersionProbe(client=lam, version_arn=VERSION_ARN, expected_sha256=manifest.model.sha256)  # type: ignore[arg-type]
    return GoldenHook(
        codedeploy=client,
        golden=lambda: load_golden(model_dir, manifest),
        classify=probe,
        min_accuracy_floor=floor,
        logger=Logger(service="golden-hook"),
    )


def _broken_candidate(model_dir: Path, target: Path) -> Path:
    """A package that loads but mislabels everything: its class list is rotated by one. Its build recorded
    its own (wrong) predictions as the golden set's `predicted` and wrote the low bar its accuracy allows."""
    shutil.copytree(model_dir, target)
    good = load_manifest(model_dir)
    golden = load_golden(model_dir, good)
    rotated = good.classes[1:] + good.classes[:1]
    (target / good.golden.file).unlink()  # type: ignore[union-attr]
    write_manifest(good.model_copy(update={"classes": rotated, "golden": None}), target)
    texts = [e.fields["text"] for e in golden.events]
    labels = [e.label for e in golden.events]
    add_golden(target, texts, labels, source="the good package's golden events")
    return target


def test_the_committed_package_passes_its_hook(
    stack: Stack, settings: Settings, model_dir: Path, codedeploy: tuple[Any, Stubber]
) -> None:
    client, stub = codedeploy
    _serve(settings, model_dir)
    _expect(stub, "Succeeded")
    lam = InProcessLambda()
    assert _hook(client, model_dir, lam, floor=0.8).run(EVENT) == "Succeeded"
    stub.assert_no_pending_responses()
    golden = load_golden(model_dir)
    # One invocation of the published version per run of the build's batch size, nothing else.
    assert lam.calls == [VERSION_ARN] * -(-golden.spec.n_events // golden.spec.scored_in_runs_of)
    # The probe has no side effect: nothing was routed, reviewed or quarantined.
    for url in (stack.sink_url, stack.review_url, stack.quarantine_url):
        assert stack.drain(url) == []


def test_a_mislabelling_candidate_is_failed_by_the_floor_not_by_its_own_manifest(
    stack: Stack, settings: Settings, model_dir: Path, codedeploy: tuple[Any, Stubber], tmp_path: Path
) -> None:
    broken = _broken_candidate(model_dir, tmp_path / "broken")
    spec = load_manifest(broken).golden
    assert spec is not None
    assert spec.accuracy_int8 < 0.05  # it mislabels nearly everything ...
    assert spec.min_accuracy == 0.0  # ... and its own manifest sets no bar at all
    _serve(settings, broken)
    client, stub = codedeploy
    # Against its own predictions it agrees perfectly; against the true labels it fails the stack's floor.
    _expect(stub, "Failed")
    assert _hook(client, broken, InProcessLambda(), floor=0.8).run(EVENT) == "Failed"
    # With no floor, its own manifest would have let it through: the floor is what stops it.
    _expect(stub, "Succeeded")
    assert _hook(client, broken, InProcessLambda(), floor=0.0).run(EVENT) == "Succeeded"
    stub.assert_no_pending_responses()


def test_a_version_serving_another_package_fails(
    stack: Stack, settings: Settings, model_dir: Path, codedeploy: tuple[Any, Stubber], tmp_path: Path
) -> None:
    """The hook's golden set and the version's model must be the same package (same deploy, same layer)."""
    _serve(settings, model_dir)
    client, stub = codedeploy
    manifest = load_manifest(model_dir)
    probe = VersionProbe(client=InProcessLambda(), version_arn=VERSION_ARN, expected_sha256="0" * 64)  # type: ignore[arg-type]
    with pytest.raises(ProbeFailedError, match="different model package"):
        probe([{"text": "where is my card"}])
    _expect(stub, "Failed")
    hook = GoldenHook(client, lambda: load_golden(model_dir, manifest), probe, 0.8, Logger(service="golden-hook"))
    assert hook.run(EVENT) == "Failed"


def test_a_crashing_version_or_a_missing_golden_set_fails_and_still_reports(
    stack: Stack, settings: Settings, model_dir: Path, codedeploy: tuple[Any, Stubber], tmp_path: Path
) -> None:
    client, stub = codedeploy
    handler_module.reset_for_tests(None)  # no service: the handler builds from the (absent) environment and raises
    _expect(stub, "Failed")
    assert _hook(client, model_dir, InProcessLambda(), floor=0.8).run(EVENT) == "Failed"
    bare = tmp_path / "bare"
    shutil.copytree(model_dir, bare)
    write_manifest(load_manifest(model_dir).model_copy(update={"golden": None}), bare)
    _serve(settings, bare)
    _expect(stub, "Failed")
    assert _hook(client, bare, InProcessLambda(), floor=0.8).run(EVENT) == "Failed"
    stub.assert_no_pending_responses()


def test_the_probe_refuses_malformed_payloads(model_dir: Path) -> None:
    runtime = ModelRuntime.load(model_dir)
    for bad in (
        {GOLDEN_PROBE_KEY: {}},
        {GOLDEN_PROBE_KEY: {"events": []}},
        {GOLDEN_PROBE_KEY: {"events": [{"text": 3}]}},
        {GOLDEN_PROBE_KEY: {"events": [{"text": "x"}] * (MAX_PROBE_EVENTS + 1)}},
    ):
        with pytest.raises(ProbeError):
            answer_probe(runtime, bad)
    answer = answer_probe(runtime, {GOLDEN_PROBE_KEY: {"events": [{"text": "I lost my card", "extra": "ignored"}]}})
    assert answer["labels"] == ["lost_or_stolen_card"]
    assert answer["model"]["sha256"] == runtime.manifest.model.sha256


def test_hook_settings_come_from_the_environment(model_dir: Path) -> None:
    env = {ENV_HOOK_TARGET_VERSION: VERSION_ARN, ENV_MIN_GOLDEN_ACCURACY: "0.8", "PIGEONHOLE_MODEL_DIR": str(model_dir)}
    settings = HookSettings.from_env(env)
    assert (settings.target_version_arn, settings.min_golden_accuracy, settings.model_dir) == (
        VERSION_ARN,
        0.8,
        model_dir,
    )
    from pigeonhole.exceptions import ConfigurationError

    with pytest.raises(ConfigurationError, match=ENV_MIN_GOLDEN_ACCURACY):
        HookSettings.from_env({ENV_HOOK_TARGET_VERSION: VERSION_ARN})
