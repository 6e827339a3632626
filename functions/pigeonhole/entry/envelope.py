"""One parser for every record body a function receives: the JSON document, or a coded reason.

A body is either the producer's document itself (sent straight to the queue) or an EventBridge envelope
whose ``detail`` is that document (a bus rule forwarding the whole event). This module owns the part of
the contract that is the same for every function: size, strict JSON, an object, the envelope. What the
document must contain is each function's own contract (``classify.contract``, ``feedback.service``).

Hostile input cannot make it raise. Bodies arrive as ``str`` (the Lambda runtime decodes the event), so
bytes that were never UTF-8 show up as lone surrogates: those, ``NaN``/``Infinity`` and numbers that
overflow a float are refused as ``invalid_json`` (I-JSON, RFC 7493: what we forward must stay readable
by strict parsers), as are integers longer than Python's 4,300-digit limit (``json.loads`` raises a plain
ValueError for those, not a JSONDecodeError) and nesting deep enough to exhaust the stack. The detail of
a reason never quotes the body.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import ValidationError

EnvelopeReasonCode = Literal["body_too_large", "invalid_json", "not_an_object", "invalid_envelope"]
Via = Literal["sqs", "eventbridge"]


@dataclass(frozen=True)
class Rejection:
    """Why a body is not a document; ``code`` is stable, ``detail`` is for humans and never holds body text."""

    code: EnvelopeReasonCode
    detail: str
    field: str | None = None


@dataclass(frozen=True)
class Document:
    """The producer's JSON object, and what the envelope said about it when there was one."""

    doc: dict[str, Any] = field(repr=False)  # never logged
    via: Via = "sqs"
    detail_type: str | None = None  # the envelope's, when via == "eventbridge"
    time: datetime | None = None  # the envelope's, in UTC, when via == "eventbridge"


class _Envelope(EventBridgeModel):
    """EventBridge's envelope, tolerant of emulators that leave out account, region or resources."""

    account: str | None = None  # type: ignore[assignment]
    region: str | None = None  # type: ignore[assignment]
    resources: list[str] = []  # noqa: RUF012 (pydantic copies defaults)


class _NotStrictJsonError(ValueError):
    """A constant or number that JSON (RFC 8259) has no place for."""


def _refuse_constant(name: str) -> Any:
    raise _NotStrictJsonError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotStrictJsonError("a number overflows a 64-bit float")
    return value


def _text(body: object) -> str | Rejection:
    if isinstance(body, str):
        return body
    if isinstance(body, bytes | bytearray):
        try:
            return bytes(body).decode("utf-8")
        except UnicodeDecodeError as exc:
            return Rejection("invalid_json", f"body is not UTF-8 (byte {exc.start})")
    return Rejection("invalid_json", f"body is a {type(body).__name__}, not text")


def _decode(text: str) -> Any | Rejection:
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        return Rejection("invalid_json", f"body is not JSON: {exc.msg} at position {exc.pos}")
    except _NotStrictJsonError as exc:
        return Rejection("invalid_json", f"body is not strict JSON: {exc}")
    except RecursionError:
        return Rejection("invalid_json", "body nests too deeply to parse")
    except ValueError:  # e.g. an integer literal over sys.get_int_max_str_digits() digits
        return Rejection("invalid_json", "body holds a number too long to parse")


def _encodable(doc: dict[str, Any]) -> bool:
    """False when a string holds a lone surrogate (from a ``\\udXXX`` escape): it cannot be sent on as UTF-8."""
    try:
        json.dumps(doc, ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, RecursionError, ValueError):
        return False
    return True


def parse_document(body: object, max_bytes: int | None = None) -> Document | Rejection:
    """One record body → its JSON object (unwrapped from an EventBridge envelope), or the reason it is not one.

    ``max_bytes`` bounds the body's UTF-8 size before any parsing. Never raises on any input.
    """
    text = _text(body)
    if isinstance(text, Rejection):
        return text
    raw = text.encode("utf-8", "surrogatepass")  # counts lone surrogates instead of failing on them
    if max_bytes is not None and len(raw) > max_bytes:
        return Rejection("body_too_large", f"body is {len(raw)} bytes; the limit is {max_bytes}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return Rejection("invalid_json", f"body is not valid Unicode (a lone surrogate at character {exc.start})")
    doc = _decode(text)
    if isinstance(doc, Rejection):
        return doc
    if not isinstance(doc, dict):
        return Rejection("not_an_object", f"body is a JSON {type(doc).__name__}, expected an object")
    if "\\u" in text and not _encodable(doc):
        return Rejection("invalid_json", "body escapes a lone surrogate (not valid Unicode)")
    if "detail-type" in doc and "detail" in doc:
        return _unwrap(doc)
    return Document(doc)


def _unwrap(doc: dict[str, Any]) -> Document | Rejection:
    try:
        envelope = _Envelope.model_validate(doc)
    except ValidationError as exc:
        return Rejection("invalid_envelope", f"EventBridge envelope is invalid: {exc.error_count()} error(s)")
    if not isinstance(envelope.detail, dict):
        return Rejection("not_an_object", "EventBridge detail is not an object", "detail")
    when = envelope.time if envelope.time.tzinfo else envelope.time.replace(tzinfo=UTC)
    try:
        when = when.astimezone(UTC)
    except (OverflowError, ValueError):
        return Rejection("invalid_envelope", "EventBridge envelope time is out of range once in UTC", "time")
    return Document(dict(envelope.detail), via="eventbridge", detail_type=envelope.detail_type, time=when)
