"""The shared entry package: lazy service, client policy, model tagging, batch response, envelope parser."""

from __future__ import annotations

import json
import random
import string
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from pigeonhole import metrics_catalog as mc
from pigeonhole.entry import (
    BOTO_CONFIG,
    AwsClients,
    Document,
    Lazy,
    Rejection,
    model_load,
    parse_document,
    partial_batch_response,
    tag_model,
)
from pigeonhole.exceptions import ManifestError, PublishError
from pigeonhole.model.manifest import Manifest

# -- Lazy ------------------------------------------------------------------------------------------


def test_lazy_builds_once_on_first_use_and_not_before() -> None:
    built: list[object] = []

    def factory() -> object:
        built.append(object())
        return built[-1]

    holder: Lazy[object] = Lazy(factory)
    assert built == []
    assert holder.current is None
    first = holder.get()
    assert holder.get() is first
    assert holder.current is first
    assert len(built) == 1


def test_lazy_reset_gives_a_cold_container_or_holds_an_injected_value() -> None:
    calls = iter(range(100))
    holder: Lazy[int] = Lazy(lambda: next(calls))
    assert holder.get() == 0
    holder.reset()
    assert holder.current is None
    assert holder.get() == 1
    holder.reset(42)
    assert holder.get() == 42


def test_lazy_caches_nothing_when_the_factory_fails() -> None:
    attempts: list[int] = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("cold start failed")
        return "ok"

    holder: Lazy[str] = Lazy(flaky)
    with pytest.raises(RuntimeError):
        holder.get()
    assert holder.current is None
    assert holder.get() == "ok"


# -- clients ---------------------------------------------------------------------------------------


def test_every_client_gets_the_one_timeout_and_retry_policy() -> None:
    aws = AwsClients(boto3.Session(region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"))
    for client in (aws.sqs(), aws.events(), aws.dynamodb()):
        config = client.meta.config
        assert config.connect_timeout == BOTO_CONFIG.connect_timeout == 2
        assert config.read_timeout == BOTO_CONFIG.read_timeout == 5
        assert config.retries == {"mode": "standard", "total_max_attempts": 3}  # three tries in all, not four


def test_handlers_build_no_client_of_their_own() -> None:
    """One policy: no handler creates a botocore Config or a client except through AwsClients."""
    root = Path(__file__).resolve().parents[2] / "functions" / "pigeonhole"
    for handler in ("classify", "drift", "feedback"):
        source = (root / handler / "handler.py").read_text(encoding="utf-8")
        assert "botocore" not in source, handler
        assert ".client(" not in source, handler


# -- model tagging and the load-failure metric -------------------------------------------------------


def _manifest() -> Any:
    class _Model:
        sha256 = "ab" * 32

    class _Manifest:
        name = "banking77"
        version = "1.2.3"
        model = _Model()

    return _Manifest()


def test_model_tagging_names_the_model_on_every_log_line_and_metric(capsys: pytest.CaptureFixture[str]) -> None:
    logger = Logger(service="test-entry")
    metrics = Metrics(namespace=mc.NAMESPACE, service="test-entry")
    manifest: Manifest = _manifest()
    tag_model(manifest, logger, metrics)
    logger.info("hello")
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (line["model_name"], line["model_version"], line["model_sha256"]) == ("banking77", "1.2.3", "ab" * 32)
    assert metrics.default_dimensions[mc.DIM_MODEL_VERSION] == "1.2.3"
    metrics.clear_default_dimensions()


@pytest.mark.parametrize(
    "metric", [mc.MODEL_LOAD_FAILURES, mc.DRIFT_MODEL_LOAD_FAILURES, mc.FEEDBACK_MODEL_LOAD_FAILURES]
)
def test_a_failed_model_load_emits_its_services_metric_and_reraises(
    metric: mc.MetricDef, capsys: pytest.CaptureFixture[str]
) -> None:
    logger = Logger(service=metric.service)
    with pytest.raises(ManifestError), model_load(metric, logger, Path("/nowhere")):
        raise ManifestError("manifest.json is missing")
    out = capsys.readouterr().out
    emf = [json.loads(line) for line in out.splitlines() if '"_aws"' in line]
    assert len(emf) == 1
    directive = emf[0]["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == mc.NAMESPACE
    assert directive["Dimensions"] == [list(metric.dimensions)]
    assert directive["Metrics"] == [{"Name": metric.name, "Unit": metric.unit}]
    assert emf[0][mc.DIM_SERVICE] == metric.service
    assert emf[0][metric.name] == [1.0] or emf[0][metric.name] == 1.0


def test_a_failed_model_load_is_also_counted_under_the_lambda_version(capsys: pytest.CaptureFixture[str]) -> None:
    """The canary's model-load alarm reads ModelLoadFailures by FunctionVersion: the new version alone."""
    env = {"AWS_LAMBDA_FUNCTION_VERSION": "42"}
    logger = Logger(service=mc.SERVICE_CLASSIFIER)
    with (
        pytest.raises(ManifestError),
        model_load(mc.MODEL_LOAD_FAILURES, logger, Path("/m"), by_version=mc.MODEL_LOAD_FAILURES_BY_VERSION, env=env),
    ):
        raise ManifestError("tampered")
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    dimension_sets = [doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"] for doc in emf]
    assert dimension_sets == [[[mc.DIM_SERVICE]], [[mc.DIM_SERVICE, mc.DIM_FUNCTION_VERSION]]]
    assert emf[1][mc.DIM_FUNCTION_VERSION] == "42"
    assert emf[1][mc.DIM_SERVICE] == mc.SERVICE_CLASSIFIER
    # Outside Lambda (no version in the environment) only the per-service datapoint is emitted.
    with (
        pytest.raises(ManifestError),
        model_load(mc.MODEL_LOAD_FAILURES, logger, Path("/m"), by_version=mc.MODEL_LOAD_FAILURES_BY_VERSION, env={}),
    ):
        raise ManifestError("tampered")
    assert capsys.readouterr().out.count('"_aws"') == 1


def test_a_successful_model_load_emits_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    with model_load(mc.MODEL_LOAD_FAILURES, Logger(service="classifier"), Path("/m")):
        pass
    assert '"_aws"' not in capsys.readouterr().out


def test_model_load_refuses_a_metric_with_the_wrong_shape() -> None:
    with pytest.raises(ValueError, match="service dimension"), model_load(mc.EVENTS_RECEIVED, Logger(), Path("/m")):
        pass


def test_every_services_load_metric_is_in_the_catalog() -> None:
    load = [m for m in mc.ALL_METRICS if m.name == mc.MODEL_LOAD_FAILURES.name]
    by_service = [m for m in load if m is not mc.MODEL_LOAD_FAILURES_BY_VERSION]
    assert {m.service for m in by_service} == {mc.SERVICE_CLASSIFIER, mc.SERVICE_DRIFT, mc.SERVICE_FEEDBACK}
    assert all(m.dimensions == (mc.DIM_SERVICE,) and m.unit == "Count" for m in by_service)
    # The classifier's failures once more by Lambda version: the canary judges its new version alone.
    assert mc.MODEL_LOAD_FAILURES_BY_VERSION in load
    assert mc.MODEL_LOAD_FAILURES_BY_VERSION.dimensions == (mc.DIM_SERVICE, mc.DIM_FUNCTION_VERSION)


# -- the partial batch response --------------------------------------------------------------------


def _sqs_event(n: int) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"m{i}",
                "receiptHandle": f"r{i}",
                "body": "{}",
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
                "awsRegion": "us-east-1",
            }
            for i in range(n)
        ]
    }


def _fail(record: Any) -> None:
    raise PublishError(f"throttled writing {record.message_id}")


def _ok(record: Any) -> str:
    return "ok"


@pytest.mark.parametrize("n", [1, 3])
def test_an_all_failed_batch_returns_every_record_and_does_not_raise(n: int) -> None:
    response = partial_batch_response(_sqs_event(n), _fail, None)
    assert response == {"batchItemFailures": [{"itemIdentifier": f"m{i}"} for i in range(n)]}


def test_a_partly_failed_batch_returns_only_the_failed_records() -> None:
    def every_other(record: Any) -> str:
        if record.message_id in {"m1", "m3"}:
            raise PublishError("throttled")
        return "ok"

    response = partial_batch_response(_sqs_event(4), every_other, None)
    assert response == {"batchItemFailures": [{"itemIdentifier": "m1"}, {"itemIdentifier": "m3"}]}
    assert partial_batch_response(_sqs_event(2), _ok, None) == {"batchItemFailures": []}


def test_a_crash_on_every_record_is_still_a_function_error() -> None:
    def broken(record: Any) -> str:
        raise KeyError("a bug, not the environment")

    with pytest.raises(BatchProcessingError):
        partial_batch_response(_sqs_event(2), broken, None)

    # One bad record among good ones stays that record's failure, as Powertools reports it.
    def one_broken(record: Any) -> str:
        if record.message_id == "m0":
            raise KeyError("a bug")
        return "ok"

    assert partial_batch_response(_sqs_event(2), one_broken, None) == {"batchItemFailures": [{"itemIdentifier": "m0"}]}


# -- the envelope parser ---------------------------------------------------------------------------


def _envelope(detail: object, **overrides: object) -> str:
    doc: dict[str, object] = {
        "version": "0",
        "id": "0d9b7b3c-0000-4000-8000-000000000001",
        "detail-type": "SupportMessage",
        "source": "acme.support",
        "account": "123456789012",
        "time": "2026-11-29T09:00:05+02:00",
        "region": "us-east-1",
        "resources": [],
        "detail": detail,
    }
    doc.update(overrides)
    return json.dumps({k: v for k, v in doc.items() if v is not None})


def test_a_direct_document_is_returned_as_is() -> None:
    parsed = parse_document('{"id": "e1", "n": 1.5}', 1024)
    assert parsed == Document({"id": "e1", "n": 1.5})
    assert parsed.via == "sqs"
    assert parsed.time is None


def test_an_envelope_is_unwrapped_with_its_detail_type_and_utc_time() -> None:
    parsed = parse_document(_envelope({"id": "e1"}), 1024)
    assert isinstance(parsed, Document)
    assert (parsed.doc, parsed.via, parsed.detail_type) == ({"id": "e1"}, "eventbridge", "SupportMessage")
    assert parsed.time == datetime(2026, 11, 29, 7, 0, 5, tzinfo=UTC)


def test_an_emulators_envelope_without_account_region_or_resources_is_accepted() -> None:
    parsed = parse_document(_envelope({"id": "e1"}, account=None, region=None, resources=None))
    assert isinstance(parsed, Document)
    assert parsed.via == "eventbridge"


DEEP = "[" * 100_000 + "]" * 100_000
HUGE_INT = '{"n": ' + "9" * 5000 + "}"


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ("", "invalid_json", None),
        ("{", "invalid_json", None),
        ("\ufeff{}", "invalid_json", None),  # a BOM
        (DEEP, "invalid_json", None),
        ('{"a": ' * 100_000 + "1" + "}" * 100_000, "invalid_json", None),
        (HUGE_INT, "invalid_json", None),  # json.loads raises a plain ValueError here
        ('{"x": NaN}', "invalid_json", None),
        ('{"x": Infinity}', "invalid_json", None),
        ('{"x": -Infinity}', "invalid_json", None),
        ('{"x": 1e999}', "invalid_json", None),  # parses to inf without parse_float
        ('{"x": "\\ud800"}', "invalid_json", None),  # an escaped lone surrogate
        ('{"x": "\ud800"}', "invalid_json", None),  # a raw one (non-UTF-8 bytes, as the runtime decodes them)
        (b"\xff\xfe{}", "invalid_json", None),
        (None, "invalid_json", None),
        (42, "invalid_json", None),
        ("[1, 2]", "not_an_object", None),
        ('"text"', "not_an_object", None),
        ("null", "not_an_object", None),
        (_envelope([1, 2]), "invalid_envelope", None),  # the envelope model wants an object
        (_envelope("text"), "invalid_envelope", None),
        (json.dumps({"detail-type": "X", "detail": {}}), "invalid_envelope", None),
        (_envelope({}, time="yesterday"), "invalid_envelope", None),
        (_envelope({}, time="0001-01-01T00:00:00+01:00"), "invalid_envelope", "time"),  # overflows once in UTC
        (_envelope({}, **{"detail-type": 7}), "invalid_envelope", None),
    ],
    ids=lambda v: v[:40] if isinstance(v, str) else repr(v)[:40],
)
def test_every_way_a_body_is_not_a_document_has_its_code(body: Any, code: str, field: str | None) -> None:
    parsed = parse_document(body, 1_000_000)
    assert isinstance(parsed, Rejection), parsed
    assert (parsed.code, parsed.field) == (code, field)


def test_valid_surrogate_pairs_and_big_but_legal_numbers_are_documents() -> None:
    parsed = parse_document('{"emoji": "\\ud83d\\ude00", "n": ' + "9" * 4000 + ', "f": 1e308}', 100_000)
    assert isinstance(parsed, Document)
    assert parsed.doc["emoji"] == "\U0001f600"


def test_size_is_checked_in_utf8_bytes_before_parsing() -> None:
    body = json.dumps({"t": "é" * 30}, ensure_ascii=False)  # 30 characters, 60 bytes
    assert isinstance(parse_document(body, len(body.encode()) + 0), Document)
    rejected = parse_document(body, len(body.encode()) - 1)
    assert isinstance(rejected, Rejection)
    assert rejected.code == "body_too_large"
    # Too large is decided before JSON: an oversized non-JSON body is body_too_large, not invalid_json.
    assert parse_document("x" * 2000, 1000) == Rejection("body_too_large", "body is 2000 bytes; the limit is 1000")
    assert parse_document("\ud800" * 400, 1000).code == "body_too_large"  # type: ignore[union-attr]


def test_no_reason_quotes_the_body() -> None:
    secret = "card 4111111111111111"
    bodies = [secret, '{"t": "' + secret, f'["{secret}"]', _envelope(secret), '{"t": "' + secret + '", "x": NaN}']
    for body in bodies:
        parsed = parse_document(body, 100_000)
        assert isinstance(parsed, Rejection)
        assert "4111" not in parsed.detail


def test_the_parser_never_raises_on_arbitrary_text() -> None:
    """Seeded random bodies: mutations of valid documents and envelopes, and raw noise."""
    rng = random.Random(20261129)
    seeds = ['{"id": "e1", "n": [1, 2.5, {"k": null}]}', _envelope({"id": "e1"}), "[]", '"s"']
    alphabet = string.printable + '{}[]",:\\' + "\ud800\udfff\u200b\u202e\x00\ufeff" + "é€𝄞"
    outcomes = {"document": 0, "rejection": 0}
    for _ in range(3000):
        text = rng.choice(seeds)
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(text) + 1)
            action = rng.random()
            if action < 0.4:
                text = text[:at] + "".join(rng.choices(alphabet, k=rng.randint(1, 6))) + text[at:]
            elif action < 0.7:
                text = text[:at] + text[at + rng.randint(1, 5) :]
            else:
                text = (
                    text[:at] + rng.choice(["NaN", "1e999", "9" * 4400, "\\ud800", "-Infinity", "[" * 50]) + text[at:]
                )
        parsed = parse_document(text, 4096)
        assert isinstance(parsed, Document | Rejection)
        outcomes["document" if isinstance(parsed, Document) else "rejection"] += 1
        if isinstance(parsed, Document):
            json.dumps(parsed.doc, allow_nan=False, ensure_ascii=False).encode("utf-8")  # strict and encodable
    assert outcomes["document"] > 0
    assert outcomes["rejection"] > 0


# -- the parser's users ----------------------------------------------------------------------------


def test_feedback_labels_go_through_the_same_parser() -> None:
    from pigeonhole.feedback.service import LabelMessage, parse_label

    now = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
    hostile = parse_label({"body": '{"id": "e1", "label": "card_arrival", "score": NaN}'}, now)
    assert isinstance(hostile, str)
    assert "strict JSON" in hostile
    assert isinstance(parse_label({"body": '{"id": "e1", "label": "x", "n": ' + "9" * 5000 + "}"}, now), str)
    # An emulator's envelope (no account) is accepted, as the classifier always did; its time is the arrival.
    envelope = _envelope({"id": "e1", "label": "card_arrival"}, account=None, **{"detail-type": "LabelFeedback"})
    label = parse_label({"body": envelope}, now)
    assert label == LabelMessage("e1", "card_arrival", datetime(2026, 11, 29, 7, 0, 5, tzinfo=UTC))
    wrong = parse_label({"body": _envelope({"id": "e1", "label": "card_arrival"})}, now)
    assert isinstance(wrong, str)
    assert "detail-type" in wrong
