"""The events of a fault run: the project's support messages under unique ids, contract breakers and poison.

Each event has a stable key (its producer id, or for a body without a readable id the key the run
tracks it by through its SQS message id) and the kind that decides where it should end up.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from pigeonhole_tools.local.samples import OFF_TOPIC, load_messages

Kind = Literal["valid", "off_topic", "invalid", "poison"]
Via = Literal["queue", "bus"]


@dataclass(frozen=True)
class WorkEvent:
    key: str
    kind: Kind
    via: Via
    body: str  # SQS message body, or the EventBridge `detail` for events sent through the bus
    topic: str  # the author's intent (a class name), `off_topic`, or the quarantine code it should earn
    readable_id: bool = True  # False: the body carries no usable `id`, the run tracks it by message id


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _invalid(key: str, t: str, variant: int) -> tuple[str, str, bool]:
    """(body, expected reason code, readable id) for one of eight ways to break the input contract."""
    doc = {"id": key, "time": t}
    match variant % 8:
        case 0:
            return '{"id": "' + key + '", "time": "' + t + '", "text": "my card is', "invalid_json", False
        case 1:
            return json.dumps([key, "where is my card"]), "not_an_object", False
        case 2:
            return json.dumps(doc), "missing_field", True
        case 3:
            return json.dumps({**doc, "text": "my card was declined " * 120}), "field_too_long", True
        case 4:
            return json.dumps({**doc, "text": 12345}), "wrong_type", True
        case 5:
            return json.dumps({**doc, "time": "yesterday", "text": "lost my card"}), "invalid_time", True
        case 6:
            return json.dumps({**doc, "text": ""}), "field_too_short", True
        case _:
            return json.dumps({"time": t, "text": "no id on this one"}), "missing_field", False


def build_events(
    n: int,
    *,
    seed: int,
    poison: int,
    invalid_fraction: float,
    bus_fraction: float,
    prefix: str = "rel",
    now: datetime | None = None,
) -> list[WorkEvent]:
    """``n`` events in a reproducible order; poison events spread evenly through the stream."""
    now = now or datetime.now(UTC)
    rng = random.Random(seed)
    rows = load_messages()
    poison_at = {round((i + 0.5) * n / poison) for i in range(poison)} if poison else set()
    events: list[WorkEvent] = []
    for i in range(n):
        key = f"{prefix}-{i:06d}"
        t = _iso(now - timedelta(seconds=rng.randint(0, 240)))
        if i in poison_at:
            body = json.dumps({"id": key, "time": t, "text": "my card has not arrived yet"})
            events.append(WorkEvent(key, "poison", "queue", body, "dlq"))
            continue
        if rng.random() < invalid_fraction:
            body, code, readable = _invalid(key, t, rng.randrange(8))
            events.append(WorkEvent(key, "invalid", "queue", body, code, readable))
            continue
        row = rows[rng.randrange(len(rows))]
        kind: Kind = "off_topic" if row["topic"] == OFF_TOPIC else "valid"
        via: Via = "bus" if rng.random() < bus_fraction else "queue"
        body = json.dumps({"id": key, "time": t, "text": row["text"]})
        events.append(WorkEvent(key, kind, via, body, row["topic"]))
    return events
