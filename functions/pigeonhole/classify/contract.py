"""The input contract: what a valid event is, and a machine-readable reason when it is not.

A record body is either the producer's event itself (sent straight to the queue) or an EventBridge
envelope whose `detail` is that event (the input bus rule forwards the whole envelope). Which fields
feed the model comes from the manifest's input spec, never from code.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from pigeonhole.entry.envelope import Rejection, parse_document
from pigeonhole.model.manifest import InputSpec

MAX_ID_CHARS = 256

ReasonCode = Literal[
    "body_too_large",
    "invalid_json",
    "not_an_object",
    "invalid_envelope",
    "missing_field",
    "wrong_type",
    "field_too_long",
    "field_too_short",
    "invalid_id",
    "invalid_time",
    "invalid_field",
    "unprocessable",  # any other failure caused by the record's content, at any step (detail: the step)
]


@dataclass(frozen=True)
class Reason:
    """Why an event was quarantined; `code` is stable, `detail` is for humans and never holds event text."""

    code: ReasonCode
    detail: str
    field: str | None = None
    event_id: str | None = None  # the producer's id, when the body had a usable one

    def to_dict(self) -> dict[str, str | None]:
        return {"code": self.code, "field": self.field, "detail": self.detail}


@dataclass(frozen=True)
class InputEvent:
    """A validated event, ready for the model."""

    id: str
    time: datetime
    model_input: str = field(repr=False)  # the manifest's input fields, joined; never in a repr or a log
    payload: dict[str, Any] = field(repr=False)  # the producer's event (for review), never logged
    via: Literal["sqs", "eventbridge"] = "sqs"


class _Base(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True, frozen=True)

    id: str = Field(min_length=1, max_length=MAX_ID_CHARS)
    time: datetime


def event_model(spec: InputSpec) -> type[BaseModel]:
    """The pydantic model of a valid event for this manifest's input spec."""
    fields: dict[str, Any] = {f.name: (str, Field(min_length=f.min_chars, max_length=f.max_chars)) for f in spec.fields}
    return create_model("InputEventModel", __base__=_Base, **fields)


_ERROR_CODES: dict[str, ReasonCode] = {
    "missing": "missing_field",
    "string_type": "wrong_type",
    "string_too_long": "field_too_long",
    "string_too_short": "field_too_short",
}


def _reason_from(exc: ValidationError) -> Reason:
    err = exc.errors(include_url=False, include_input=False)[0]
    top = str(err["loc"][0]) if err["loc"] else ""
    loc = top or None
    etype = err["type"]
    if top == "time" and etype != "missing":
        return Reason("invalid_time", "time must be an ISO-8601 timestamp", loc)
    if top == "id" and etype not in ("missing", "string_type"):
        return Reason("invalid_id", f"id must be 1 to {MAX_ID_CHARS} characters", loc)
    code = _ERROR_CODES.get(etype, "invalid_field")
    return Reason(code, err["msg"], loc)


def parse_body(body: str, spec: InputSpec, model: type[BaseModel], max_bytes: int) -> InputEvent | Reason:
    """Validate one record body; return the event or the reason it is invalid. Never raises on bad input.

    Size, JSON and the EventBridge envelope are the shared parser's (``pigeonhole.entry.envelope``); the
    fields and their types are this contract's.
    """
    parsed = parse_document(body, max_bytes)
    if isinstance(parsed, Rejection):
        return Reason(parsed.code, parsed.detail, parsed.field)
    doc, via = parsed.doc, parsed.via
    return validate_document(doc, spec, model, via)


def validate_document(
    doc: dict[str, Any], spec: InputSpec, model: type[BaseModel], via: Literal["sqs", "eventbridge"] = "sqs"
) -> InputEvent | Reason:
    """The event's fields (after the envelope): the model's schema, then what every later step needs
    (an id that can be a key, text the model can read, a time that converts to UTC)."""
    raw_id = doc.get("id")
    known_id = raw_id if isinstance(raw_id, str) and 0 < len(raw_id) <= MAX_ID_CHARS and _sendable(raw_id) else None
    try:
        event = model.model_validate(_coerce_time(doc))
    except ValidationError as exc:
        return replace(_reason_from(exc), event_id=known_id)
    values = [getattr(event, f.name) for f in spec.fields]
    for f, value in zip(spec.fields, values, strict=True):
        if not value.strip():
            return Reason("field_too_short", f"{f.name} is blank", f.name, known_id)
        if _UNENCODABLE.search(value):
            return Reason("invalid_field", f"{f.name} holds characters that cannot be encoded", f.name, known_id)
    if not _sendable(event.id):  # type: ignore[attr-defined]
        return Reason("invalid_id", "id holds characters that cannot be stored or sent", "id")
    when: datetime = event.time  # type: ignore[attr-defined]
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:
        utc = when.astimezone(UTC)
    except OverflowError:
        return Reason("invalid_time", "time is out of range once converted to UTC", "time", known_id)
    return InputEvent(
        id=event.id,  # type: ignore[attr-defined]
        time=utc,
        model_input=spec.separator.join(values),
        payload=doc,
        via=via,
    )


def _coerce_time(doc: dict[str, Any]) -> dict[str, Any]:
    """Strict mode refuses strings for datetimes; parse ISO-8601 here (a trailing Z included)."""
    raw = doc.get("time")
    if not isinstance(raw, str):
        return doc
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        return doc  # leave it for pydantic to reject with a clear error
    return {**doc, "time": parsed}


# Lone surrogates (legal in a JSON escape, not in UTF-8) and control characters other than tab and
# newlines: an id holding them cannot be a DynamoDB key or a log correlation id, a text cannot be fed
# to the model. Refused by the contract so no later step meets them.
_UNSENDABLE = re.compile("[\ud800-\udfff\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_UNENCODABLE = re.compile("[\ud800-\udfff]")  # in model input: not UTF-8 (onnxruntime raises UnicodeEncodeError)


def _sendable(text: str) -> bool:
    return _UNSENDABLE.search(text) is None


def check_time(event: InputEvent, arrival: datetime, max_age: timedelta, max_lead: timedelta) -> Reason | None:
    """A plausible event time lies within [arrival - max_age, arrival + max_lead]; else `invalid_time`.

    Why: an event time decides the event's window; a time years away is a producer bug that would open
    a window nobody monitors (or one past the calendar's end), so it is refused like any invalid field.
    `arrival` is when SQS first saw the message (SentTimestamp), the same on every redelivery.
    """
    if arrival - max_age <= event.time <= arrival + max_lead:
        return None
    return Reason(
        "invalid_time",
        f"time is outside the accepted window ({_span(max_age)} before to {_span(max_lead)} after arrival)",
        "time",
        event.id,
    )


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    return f"{seconds // 86400} d" if seconds % 86400 == 0 else f"{seconds} s"


def arrival(record: Mapping[str, Any], clock: Callable[[], float]) -> datetime:
    """When SQS first had the message: SentTimestamp (the same on every redelivery), else the clock."""
    attributes = record.get("attributes") or {}
    for name in ("SentTimestamp", "ApproximateFirstReceiveTimestamp"):
        raw = attributes.get(name) if isinstance(attributes, dict) else None
        if isinstance(raw, str) and raw.isdigit() and len(raw) <= 15:
            try:
                return datetime.fromtimestamp(int(raw) / 1000.0, tz=UTC)
            except (ValueError, OverflowError, OSError):  # past datetime's range: not a usable time
                continue
    return datetime.fromtimestamp(clock(), tz=UTC)
