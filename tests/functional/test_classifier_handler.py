"""The real handler over real moto queues and buses: routing, quarantine, partial failures, telemetry."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import shutil
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest

from pigeonhole.classify import handler as handler_module
from pigeonhole.classify.service import ClassifierService
from pigeonhole.config import Settings
from pigeonhole.exceptions import ManifestError, ModelIntegrityError

from .conftest import REGION, Context, Stack

CONFIDENT = {
    "I still have not received my new card, when will it arrive?": "card_arrival",
    "My card has been stolen, block it please": "lost_or_stolen_card",
    "What is the exchange rate you use when I pay in euros?": "exchange_rate",
}
OFF_TOPIC = "qwzx plorb vantablack trombone sunrise"


def _body(i: int, text: str, **extra: Any) -> str:
    return json.dumps({"id": f"evt-{i}", "time": "2026-11-29T07:01:00Z", "text": text, **extra})


def _ids(response: dict[str, Any]) -> list[str]:
    return [item["itemIdentifier"] for item in response["batchItemFailures"]]


def test_confident_events_reach_the_output_bus(stack: Stack, service: ClassifierService, context: Context) -> None:
    stack.send([_body(i, text) for i, text in enumerate(CONFIDENT)])
    response = handler_module.handler(stack.receive_event(), context)
    assert _ids(response) == []

    outputs = stack.drain(stack.sink_url)
    assert len(outputs) == len(CONFIDENT)
    manifest = service.runtime.manifest
    by_id = {o["detail"]["id"]: o for o in outputs}
    for i, expected in enumerate(CONFIDENT.values()):
        envelope = by_id[f"evt-{i}"]
        assert envelope["detail-type"] == "EventClassified"
        assert envelope["source"] == "pigeonhole.classifier"
        detail = envelope["detail"]
        assert detail["label"] == expected
        assert detail["route"] == "auto"
        assert detail["confidence"] >= service.threshold
        assert detail["model"] == {
            "name": manifest.name,
            "version": manifest.version,
            "sha256": manifest.model.sha256,
        }
        assert detail["top_k"][0] == {"label": expected, "score": detail["confidence"]}
        assert len(detail["top_k"]) == manifest.thresholds.top_k
        assert detail["window"] == "2026-11-29T07:00:00Z"
    assert stack.drain(stack.review_url) == []
    assert stack.drain(stack.quarantine_url) == []


def test_low_confidence_goes_to_review_with_its_input(
    stack: Stack, service: ClassifierService, context: Context
) -> None:
    confidence = float(service.runtime.predict_proba([OFF_TOPIC]).max())
    assert confidence < service.threshold, "the off-topic sample must be below the review threshold"
    stack.send([_body(1, OFF_TOPIC, channel="chat")])
    assert _ids(handler_module.handler(stack.receive_event(), context)) == []

    (review,) = stack.drain(stack.review_url)
    assert review["route"] == "review"
    assert review["id"] == "evt-1"
    assert review["confidence"] == pytest.approx(confidence, abs=1e-6)
    assert review["input"] == {"id": "evt-1", "time": "2026-11-29T07:01:00Z", "text": OFF_TOPIC, "channel": "chat"}
    assert review["model"]["version"] == service.runtime.manifest.version
    assert stack.drain(stack.sink_url) == []


def test_threshold_override_routes_everything_to_review(stack: Stack, settings: Settings, context: Context) -> None:
    strict = Settings(**{**settings.__dict__, "review_threshold": 1.0})
    service = handler_module.build_service(strict, session=boto3.Session(region_name=REGION))
    handler_module.reset_for_tests(service)
    try:
        stack.send([_body(i, text) for i, text in enumerate(CONFIDENT)])
        handler_module.handler(stack.receive_event(), context)
    finally:
        handler_module.reset_for_tests(None)
    routed = stack.drain(stack.review_url)
    assert {r["route"] for r in routed} == {"review"}
    assert len(routed) + len(stack.drain(stack.sink_url)) == len(CONFIDENT)


def test_invalid_events_are_quarantined_not_retried(stack: Stack, service: ClassifierService, context: Context) -> None:
    bad = {
        "not json": "{oops",
        "missing text": json.dumps({"id": "evt-x", "time": "2026-11-29T07:01:00Z"}),
        "wrong type": json.dumps({"id": "evt-y", "time": "2026-11-29T07:01:00Z", "text": 12}),
        "too long": _body(7, "card " * 1000),
    }
    stack.send([*bad.values(), _body(1, next(iter(CONFIDENT)))])
    response = handler_module.handler(stack.receive_event(), context)
    assert _ids(response) == [], "invalid events must not fail the batch"

    quarantined = stack.drain(stack.quarantine_url)
    assert len(quarantined) == len(bad)
    assert {q["reason"]["code"] for q in quarantined} == {
        "invalid_json",
        "missing_field",
        "wrong_type",
        "field_too_long",
    }
    assert sorted(q["body"] for q in quarantined) == sorted(bad.values()), "the untouched body is kept"
    for q in quarantined:
        assert q["schema"] == "pigeonhole.quarantine/v1"
        assert q["source_arn"] == stack.ingest_arn
        assert q["receive_count"] == "1"
    assert len(stack.drain(stack.sink_url)) == 1


def test_failed_publish_becomes_a_batch_item_failure(
    stack: Stack, service: ClassifierService, context: Context
) -> None:
    """The review queue disappears: its records are retried by SQS, the rest of the batch succeeds."""
    stack.send([_body(1, OFF_TOPIC), _body(2, next(iter(CONFIDENT))), "{broken"])
    event = stack.receive_event()
    stack.sqs.delete_queue(QueueUrl=stack.review_url)

    response = handler_module.handler(event, context)

    off_topic_message = next(r["messageId"] for r in event["Records"] if '"evt-1"' in r["body"])
    assert _ids(response) == [off_topic_message]
    assert len(stack.drain(stack.sink_url)) == 1
    assert len(stack.drain(stack.quarantine_url)) == 1


def test_whole_batch_failing_returns_every_record_for_retry_without_a_function_error(
    stack: Stack, service: ClassifierService, context: Context
) -> None:
    """Issue 8: a transient failure of every record is not a crash (it used to raise BatchProcessingError,
    which Lambda counted as a function error); SQS still delivers every record again."""
    stack.send([_body(1, OFF_TOPIC), _body(2, OFF_TOPIC + " again")])
    event = stack.receive_event()
    stack.sqs.delete_queue(QueueUrl=stack.review_url)
    response = handler_module.handler(event, context)
    assert sorted(_ids(response)) == sorted(r["messageId"] for r in event["Records"])
    assert len(event["Records"]) == 2


def test_one_model_run_per_batch(stack: Stack, service: ClassifierService, context: Context) -> None:
    calls: list[int] = []
    real = service.runtime
    original = real.predict

    class Spy:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def predict(self, texts: list[str]) -> Any:
            calls.append(len(texts))
            return original(texts)

    service.runtime = Spy()  # type: ignore[assignment]
    stack.send([_body(i, f"my card number {i} has not arrived yet") for i in range(10)])
    assert _ids(handler_module.handler(stack.receive_event(), context)) == []
    assert calls == [10]


def test_poison_input_is_isolated_from_its_batch(stack: Stack, service: ClassifierService, context: Context) -> None:
    """If the model raises on one input, the others are still classified and that one is quarantined
    (issue 8: a failure caused by a record's content is its quarantine reason, not a retry that ends in
    the DLQ after republishing its neighbours)."""
    real = service.runtime
    original = real.predict

    class Flaky:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def predict(self, texts: list[str]) -> Any:
            if any("POISON" in t for t in texts):
                raise RuntimeError("simulated onnxruntime failure")
            return original(texts)

    service.runtime = Flaky()  # type: ignore[assignment]
    stack.send([_body(1, "card still not here"), _body(2, "POISON pill"), _body(3, "where is my refund")])
    event = stack.receive_event()
    response = handler_module.handler(event, context)
    assert _ids(response) == []
    (quarantined,) = stack.drain(stack.quarantine_url)
    assert quarantined["event_id"] == "evt-2"
    assert quarantined["reason"] == {
        "code": "unprocessable",
        "field": None,
        "detail": "inference failed (RuntimeError)",
    }
    delivered = stack.drain(stack.sink_url) + stack.drain(stack.review_url)
    assert sorted(d.get("detail", d)["id"] for d in delivered) == ["evt-1", "evt-3"]


def test_a_model_that_breaks_its_contract_retries_instead_of_quarantining(
    stack: Stack, service: ClassifierService, context: Context
) -> None:
    """A wrong output shape is the model's fault, not the records': they go back to SQS, none quarantined."""
    real = service.runtime

    class WrongShape:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def predict(self, texts: list[str]) -> Any:
            raise ModelIntegrityError("model returned probabilities of shape (1, 3)")

    service.runtime = WrongShape()  # type: ignore[assignment]
    stack.send([_body(1, "card still not here"), "{broken"])
    event = stack.receive_event()
    outcomes = service.classify_batch(event["Records"])
    assert sorted(o.status for o in outcomes.values()) == ["failed", "quarantined"]
    assert stack.drain(stack.sink_url) + stack.drain(stack.review_url) == []


def test_eventbridge_events_reach_the_queue_and_get_classified(
    stack: Stack, service: ClassifierService, context: Context
) -> None:
    text = next(iter(CONFIDENT))
    stack.events.put_events(
        Entries=[
            {
                "EventBusName": "test-input",
                "Source": "acme.support",
                "DetailType": "SupportMessage",
                "Detail": json.dumps({"id": "evt-eb", "time": "2026-11-29T07:02:00Z", "text": text}),
            }
        ]
    )
    event = stack.receive_event()
    assert len(event["Records"]) == 1
    assert '"detail-type"' in event["Records"][0]["body"], "the bus forwards the whole envelope"
    assert _ids(handler_module.handler(event, context)) == []
    (out,) = stack.drain(stack.sink_url)
    assert out["detail"]["id"] == "evt-eb"
    assert out["detail"]["label"] == CONFIDENT[text]


def test_direct_invocation_is_refused(service: ClassifierService, context: Context) -> None:
    with pytest.raises(ValueError, match="SQS event source mapping events only"):
        handler_module.handler({"id": "x", "time": "2026-11-29T07:00:00Z", "text": "hi"}, context)


def test_metrics_carry_the_model_version(
    stack: Stack, service: ClassifierService, context: Context, capsys: pytest.CaptureFixture[str]
) -> None:
    stack.send([_body(1, next(iter(CONFIDENT))), _body(2, OFF_TOPIC), "{bad"])
    capsys.readouterr()
    handler_module.handler(stack.receive_event(), context)
    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    version = service.runtime.manifest.version
    names: dict[str, Any] = {}
    for blob in blobs:
        directive = blob["_aws"]["CloudWatchMetrics"][0]
        assert directive["Namespace"] == "Pigeonhole"
        assert blob["ModelVersion"] == version
        assert blob["service"] == "classifier"
        for metric in directive["Metrics"]:
            value = blob[metric["Name"]]
            names[metric["Name"]] = sum(value) if isinstance(value, list) else value
    assert names["EventsReceived"] == 3.0
    assert names["EventsClassified"] == 2.0
    assert names["EventsQuarantined"] == 1.0
    assert names["EventsRoutedToReview"] == 1.0
    assert names["LowConfidenceRate"] == 50.0
    assert "ClassPredicted" not in names  # per-label metrics are an option, off by default
    assert "InferenceTime" in names


def test_per_label_metrics_are_emitted_only_when_enabled(
    stack: Stack, settings: Settings, context: Context, capsys: pytest.CaptureFixture[str]
) -> None:
    enabled = dataclasses.replace(settings, per_label_metrics=True)
    svc = handler_module.build_service(enabled, session=boto3.Session(region_name=REGION))
    handler_module.reset_for_tests(svc)
    try:
        texts = [*CONFIDENT, OFF_TOPIC]
        stack.send([_body(i, t) for i, t in enumerate(texts)] + ["{bad"])
        capsys.readouterr()
        handler_module.handler(stack.receive_event(), context)
    finally:
        handler_module.reset_for_tests(None)
    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    per_label = {}
    for blob in blobs:
        directive = blob["_aws"]["CloudWatchMetrics"][0]
        if [m["Name"] for m in directive["Metrics"]] == ["ClassPredicted"]:
            assert set(directive["Dimensions"][0]) == {"service", "ModelVersion", "Label"}
            value = blob["ClassPredicted"]
            per_label[blob["Label"]] = sum(value) if isinstance(value, list) else value
    assert sum(per_label.values()) == len(texts)  # every classified event, once, under its label
    assert set(per_label) >= {CONFIDENT[t] for t in CONFIDENT}


def test_logs_carry_ids_and_version_never_text(stack: Stack, service: ClassifierService, context: Context) -> None:
    stream = io.StringIO()
    handler_module.logger.registered_handler.setStream(stream)  # type: ignore[attr-defined]
    secret = "my card 4111 1111 1111 1111 has not arrived"
    stack.send(
        [_body(42, secret), json.dumps({"id": "evt-43", "time": "2026-11-29T07:01:00Z", "text": 5, "pii": secret})]
    )
    try:
        handler_module.handler(stack.receive_event(), context)
    finally:
        handler_module.logger.registered_handler.setStream(sys.stdout)  # type: ignore[attr-defined]
    out = stream.getvalue()
    assert "4111" not in out
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    records = [r for r in lines if r["message"] == "record done"]  # one per quarantined or failed record
    assert [(r["correlation_id"], r["status"]) for r in records] == [("evt-43", "quarantined")]
    assert records[0]["reason"]["code"]  # the reason stays on the record's own line
    (summary,) = [r for r in lines if r["message"] == "batch done"]  # the successes, once per batch
    assert (summary["records"], summary["auto"] + summary["review"], summary["quarantined"], summary["failed"]) == (
        2,
        1,
        1,
        0,
    )
    assert summary["event_ids"] == ["evt-42"]
    assert "correlation_id" not in summary
    assert {r["model_version"] for r in lines} == {service.runtime.manifest.version}  # on every line


def _copy_package(model_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "model"
    shutil.copytree(model_dir, target)
    return target


def test_tampered_model_refuses_to_load(
    settings: Settings, model_dir: Path, tmp_path: Path, context: Context, capsys: pytest.CaptureFixture[str]
) -> None:
    package = _copy_package(model_dir, tmp_path)
    data = bytearray((package / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped bit pattern, same size
    (package / "model.onnx").write_bytes(bytes(data))
    tampered = Settings(**{**settings.__dict__, "model_dir": package})

    with pytest.raises(ModelIntegrityError, match="sha256"):
        handler_module.build_service(tampered, session=boto3.Session(region_name=REGION))
    out = capsys.readouterr().out
    assert '"ModelLoadFailures"' in out


def test_truncated_model_and_broken_manifest_refuse_to_load(
    settings: Settings, model_dir: Path, tmp_path: Path
) -> None:
    package = _copy_package(model_dir, tmp_path)
    (package / "model.onnx").write_bytes((package / "model.onnx").read_bytes()[:-10])
    truncated = Settings(**{**settings.__dict__, "model_dir": package})
    with pytest.raises(ModelIntegrityError, match="bytes"):
        handler_module.build_service(truncated, session=boto3.Session(region_name=REGION))

    shutil.copy(model_dir / "model.onnx", package / "model.onnx")
    manifest = json.loads((package / "manifest.json").read_text())
    manifest["classes"] = manifest["classes"][:-1]
    (package / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ManifestError):
        handler_module.build_service(truncated, session=boto3.Session(region_name=REGION))


def test_handler_builds_its_service_lazily_from_the_environment(
    stack: Stack, settings: Settings, monkeypatch: pytest.MonkeyPatch, context: Context, caplog: Any
) -> None:
    handler_module.reset_for_tests(None)
    monkeypatch.setenv("PIGEONHOLE_MODEL_DIR", str(settings.model_dir))
    monkeypatch.setenv("PIGEONHOLE_REVIEW_QUEUE_URL", settings.review_queue_url)
    monkeypatch.setenv("PIGEONHOLE_QUARANTINE_QUEUE_URL", settings.quarantine_queue_url)
    monkeypatch.setenv("PIGEONHOLE_OUTPUT_BUS_NAME", settings.output_bus_name)
    caplog.set_level(logging.INFO)
    try:
        stack.send([_body(1, next(iter(CONFIDENT)))])
        assert _ids(handler_module.handler(stack.receive_event(), context)) == []
        first = handler_module.service.current
        assert first is not None
        stack.send([_body(2, next(iter(CONFIDENT)))])
        handler_module.handler(stack.receive_event(), context)
        assert handler_module.service.current is first, "the model is loaded once per container"
    finally:
        handler_module.reset_for_tests(None)
    assert len(stack.drain(stack.sink_url)) == 2
