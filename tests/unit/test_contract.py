"""The input contract: every way an event can be invalid maps to a stable reason code."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from pigeonhole.classify.contract import InputEvent, Reason, event_model, parse_body
from pigeonhole.model.manifest import InputField, InputSpec

SPEC = InputSpec(fields=[InputField(name="text", max_chars=40)], normalization="lower-collapse-whitespace-v1")
MODEL = event_model(SPEC)


def _parse(body: str, max_bytes: int = 1024) -> InputEvent | Reason:
    return parse_body(body, SPEC, MODEL, max_bytes)


def _event(**overrides: object) -> str:
    doc: dict[str, object] = {"id": "evt-1", "time": "2026-11-29T07:00:00Z", "text": "my card has not arrived"}
    doc.update(overrides)
    return json.dumps({k: v for k, v in doc.items() if v is not None})


def test_valid_event_is_parsed() -> None:
    event = _parse(_event())
    assert isinstance(event, InputEvent)
    assert event.id == "evt-1"
    assert event.time == datetime(2026, 11, 29, 7, 0, tzinfo=UTC)
    assert event.model_input == "my card has not arrived"
    assert event.via == "sqs"


def test_extra_fields_are_kept_in_payload_but_not_fed_to_model() -> None:
    event = _parse(_event(customer_tier="gold"))
    assert isinstance(event, InputEvent)
    assert event.payload["customer_tier"] == "gold"
    assert event.model_input == "my card has not arrived"


def test_naive_time_is_taken_as_utc() -> None:
    event = _parse(_event(time="2026-11-29T07:00:00"))
    assert isinstance(event, InputEvent)
    assert event.time.tzinfo is not None
    assert event.time.utcoffset() is not None


def test_offset_time_is_normalised_to_utc() -> None:
    event = _parse(_event(time="2026-11-29T09:00:00+02:00"))
    assert isinstance(event, InputEvent)
    assert event.time == datetime(2026, 11, 29, 7, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ("{", "invalid_json", None),
        ("[" * 5000 + "]" * 5000, "invalid_json", None),
        ("[1, 2]", "not_an_object", None),
        ('"text"', "not_an_object", None),
        (_event(text=None), "missing_field", "text"),
        (_event(id=None), "missing_field", "id"),
        (_event(time=None), "missing_field", "time"),
        (_event(text=42), "wrong_type", "text"),
        (_event(id=7), "wrong_type", "id"),
        (_event(text="x" * 41), "field_too_long", "text"),
        (_event(text=""), "field_too_short", "text"),
        (_event(text="   \n\t "), "field_too_short", "text"),
        (_event(id=""), "invalid_id", "id"),
        (_event(id="x" * 257), "invalid_id", "id"),
        (_event(time="next tuesday"), "invalid_time", "time"),
        (_event(time=1764400000), "invalid_time", "time"),
    ],
)
def test_invalid_events_get_a_reason(body: str, code: str, field: str | None) -> None:
    reason = _parse(body, max_bytes=100_000)
    assert isinstance(reason, Reason), reason
    assert reason.code == code
    assert reason.field == field


def test_size_cap_is_checked_in_bytes_before_parsing() -> None:
    body = _event(text="é" * 30)  # 30 characters, 60 bytes of text
    assert isinstance(_parse(body, max_bytes=1024), InputEvent)
    reason = _parse(body, max_bytes=80)
    assert isinstance(reason, Reason)
    assert reason.code == "body_too_large"


def test_reason_never_echoes_event_text() -> None:
    secret = "my account number is 12345678"
    for body in (_event(text=secret * 3), _event(text=secret, id=5), '{"text": "' + secret + '"'):
        reason = _parse(body)
        assert isinstance(reason, Reason)
        assert "12345678" not in json.dumps(reason.to_dict())


def _envelope(detail: object) -> str:
    return json.dumps(
        {
            "version": "0",
            "id": "0d9b7b3c-0000-4000-8000-000000000001",
            "detail-type": "SupportMessage",
            "source": "acme.support",
            "account": "123456789012",
            "time": "2026-11-29T07:00:05Z",
            "region": "us-east-1",
            "resources": [],
            "detail": detail,
        }
    )


def test_eventbridge_envelope_is_unwrapped() -> None:
    event = _parse(_envelope({"id": "evt-9", "time": "2026-11-29T06:59:00Z", "text": "lost my card"}))
    assert isinstance(event, InputEvent)
    assert event.via == "eventbridge"
    assert event.id == "evt-9"  # the producer's id, not the envelope's: it stays stable across retries
    assert event.time == datetime(2026, 11, 29, 6, 59, tzinfo=UTC)


def test_eventbridge_detail_is_validated_like_a_direct_event() -> None:
    reason = _parse(_envelope({"id": "evt-9", "time": "2026-11-29T06:59:00Z"}))
    assert isinstance(reason, Reason)
    assert reason.code == "missing_field"


def test_broken_envelope_is_quarantined() -> None:
    reason = _parse(json.dumps({"detail-type": "SupportMessage", "detail": {}}))
    assert isinstance(reason, Reason)
    assert reason.code == "invalid_envelope"


def test_several_input_fields_are_joined_in_manifest_order() -> None:
    spec = InputSpec(
        fields=[InputField(name="subject"), InputField(name="text")],
        normalization="lower-collapse-whitespace-v1",
        separator=" | ",
    )
    body = json.dumps({"id": "a", "time": "2026-11-29T07:00:00Z", "text": "body", "subject": "subj"})
    event = parse_body(body, spec, event_model(spec), 1024)
    assert isinstance(event, InputEvent)
    assert event.model_input == "subj | body"


def test_envelope_without_account_region_or_resources_is_accepted() -> None:
    """Emulators (moto) leave these out; the classifier reads only detail."""
    doc = json.loads(_envelope({"id": "evt-9", "time": "2026-11-29T06:59:00Z", "text": "lost my card"}))
    for key in ("account", "region", "resources"):
        del doc[key]
    event = _parse(json.dumps(doc))
    assert isinstance(event, InputEvent)
    assert event.via == "eventbridge"
