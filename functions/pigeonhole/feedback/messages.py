"""A label message: one SQS record (a plain body or an EventBridge ``LabelFeedback`` envelope) parsed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pigeonhole.classify.contract import MAX_ID_CHARS
from pigeonhole.constants import FEEDBACK_DETAIL_TYPE
from pigeonhole.entry.envelope import Rejection, parse_document

MAX_LABEL_CHARS = 256


class _LabelBody(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True, frozen=True)

    id: str = Field(min_length=1, max_length=MAX_ID_CHARS)
    label: str = Field(min_length=1, max_length=MAX_LABEL_CHARS)


@dataclass(frozen=True)
class LabelMessage:
    event_id: str
    label: str
    arrived: datetime  # when the label reached us: the envelope's time, else the queue's SentTimestamp
    first_received: datetime | None = None  # SQS ApproximateFirstReceiveTimestamp (else SentTimestamp)
    receive_count: int = 1  # SQS ApproximateReceiveCount


def parse_label(record: dict[str, Any], now: datetime) -> LabelMessage | str:
    """One SQS record → a label, or a reason (short, never the body) why it is not one."""
    parsed = parse_document(record.get("body") or "")
    if isinstance(parsed, Rejection):
        return parsed.detail
    doc, arrived = parsed.doc, parsed.time
    if parsed.via == "eventbridge" and parsed.detail_type != FEEDBACK_DETAIL_TYPE:
        return f"unexpected detail-type {str(parsed.detail_type)[:64]!r}, expected {FEEDBACK_DETAIL_TYPE!r}"
    try:
        label = _LabelBody.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in err["loc"]) or "body"
        return f"{where}: {err['msg']}"
    attributes = record.get("attributes") or {}
    sent = _epoch_ms(attributes.get("SentTimestamp"))
    first = _epoch_ms(attributes.get("ApproximateFirstReceiveTimestamp")) or sent
    try:
        receives = max(int(attributes.get("ApproximateReceiveCount") or 1), 1)
    except (TypeError, ValueError):
        receives = 1
    return LabelMessage(
        event_id=label.id,
        label=label.label,
        arrived=arrived or sent or now,
        first_received=first,
        receive_count=receives,
    )


def _epoch_ms(value: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(value) / 1000.0, tz=UTC) if value else None
    except (TypeError, ValueError, OverflowError, OSError):
        return None
