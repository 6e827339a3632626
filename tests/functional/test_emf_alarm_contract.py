"""The classifier's real EMF output, read back, against the alarm definitions: every alarm on our
namespace watches a metric the running code emits, with the same unit and exactly the same dimension
set (CloudWatch matches an alarm to a metric only on the full dimension set)."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from pigeonhole import alarms
from pigeonhole import metrics_catalog as mc
from pigeonhole.classify import handler as handler_module
from pigeonhole.config import Settings

from .conftest import NAMES, REGION, Context, Stack
from .monitoring_support import emf, write_tiny_model


def _classifier_queries() -> list[alarms.MetricQuery]:
    return [
        q
        for a in alarms.ALARMS
        for q in a.queries()
        if q.namespace == mc.NAMESPACE and q.catalog is not None and q.catalog.service == mc.SERVICE_CLASSIFIER
    ]


def test_every_classifier_alarm_matches_the_emitted_metrics(
    stack: Stack,
    tmp_path: Path,
    context: Context,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    package = write_tiny_model(tmp_path / "model")
    settings = Settings(
        model_dir=package,
        review_queue_url=stack.review_url,
        quarantine_queue_url=stack.quarantine_url,
        output_bus_name=NAMES.output_bus,
    )
    service = handler_module.build_service(settings, session=boto3.Session(region_name=REGION))
    version = service.runtime.manifest.version
    handler_module.reset_for_tests(service)
    now = datetime.now(UTC).isoformat()
    bodies = [
        json.dumps({"id": "a", "time": now, "text": "when will my card arrive"}),
        json.dumps({"id": "b", "time": now, "text": "zzz qqq"}),
        "{broken",
    ]
    try:
        capsys.readouterr()
        stack.send(bodies)
        handler_module.handler(stack.receive_event(), context)
        # and a container whose model fails its checks (ModelLoadFailures)
        broken = tmp_path / "broken"
        shutil.copytree(package, broken)
        (broken / "model.onnx").write_bytes(b"\0" + (broken / "model.onnx").read_bytes()[1:])
        # Lambda sets the version the environment runs: the canary's model-load alarm reads it.
        monkeypatch.setenv("AWS_LAMBDA_FUNCTION_VERSION", "7")
        with pytest.raises(Exception, match="sha256"):
            handler_module.build_service(
                Settings(**{**settings.__dict__, "model_dir": broken}), session=boto3.Session(region_name=REGION)
            )
    finally:
        handler_module.reset_for_tests(None)
    points = emf(capsys.readouterr().out)
    emitted: dict[str, list[dict[str, Any]]] = {}
    for p in points:
        emitted.setdefault(p["name"], []).append(p)

    queries = _classifier_queries()
    assert queries, "the alarm set watches classifier metrics"
    bindings = {alarms.Binding.MODEL_VERSION: version, alarms.Binding.CLASSIFIER_VERSION: "7"}
    for q in queries:
        assert q.name in emitted, f"alarm metric {q.name} is never emitted"
        expected = q.resolve(bindings)
        matching = [p for p in emitted[q.name] if p["dimensions"] == expected]
        assert matching, f"{q.name}: emitted with {[p['dimensions'] for p in emitted[q.name]]}, alarm wants {expected}"
        for p in matching:
            assert p["namespace"] == q.namespace
            assert p["unit"] == q.catalog.unit  # type: ignore[union-attr]
            # CloudWatch matches the dimension *set*; the order EMF lists them in is not part of the identity.
            assert set(p["dimensions"]) == {name for name, _ in q.dimensions}
