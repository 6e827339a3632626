"""The demo's traffic: the project's own banking support messages, plus invalid and poison events.

`data/demo_events.jsonl` holds ~200 support messages written for this project (one JSON object a
line: `topic`, `text`); `topic` is the intent the author had in mind, in BANKING77's label names,
or `off_topic`. Invalid events are built here because each breaks the input contract in one way.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any, Literal

Kind = Literal["valid", "off_topic", "invalid", "poison"]
Via = Literal["queue", "bus"]
DATA_FILE = "demo_events.jsonl"
OFF_TOPIC = "off_topic"
POISON_ID = "demo-poison-0001"


@dataclass(frozen=True)
class DemoEvent:
    """One event the demo sends; `body` is the SQS message body or the EventBridge `detail`."""

    key: str  # stable demo id; equals the producer's `id` whenever the body has a valid one
    kind: Kind
    via: Via
    body: str
    topic: str  # intended intent, `off_topic`, or the quarantine code the event should earn


def load_messages() -> list[dict[str, str]]:
    """The packaged support messages (`topic`, `text`)."""
    text = resources.files("pigeonhole_tools").joinpath("data", DATA_FILE).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def invalid_events(now: datetime) -> list[tuple[str, Via, str, str]]:
    """(key, via, body, expected reason code): one contract violation each. Bad JSON can only go via SQS."""
    t = _iso(now)

    def doc(key: str, **fields: Any) -> str:
        return json.dumps({"id": key, "time": t, **fields})

    return [
        ("demo-bad-0001", "queue", '{"id": "demo-bad-0001", "time": "' + t + '", "text": "my card is', "invalid_json"),
        ("demo-bad-0002", "queue", json.dumps(["demo-bad-0002", "where is my card"]), "not_an_object"),
        ("demo-bad-0003", "bus", json.dumps({"id": "demo-bad-0003", "time": t}), "missing_field"),
        ("demo-bad-0004", "bus", doc("demo-bad-0004", text="my card was declined " * 120), "field_too_long"),
        ("demo-bad-0005", "queue", doc("demo-bad-0005", text=12345), "wrong_type"),
        ("demo-bad-0006", "bus", json.dumps({"id": 6, "time": t, "text": "top up failed"}), "wrong_type"),
        ("demo-bad-0007", "queue", doc("demo-bad-0007", text="lost my card").replace(t, "yesterday"), "invalid_time"),
        ("demo-bad-0008", "bus", doc("demo-bad-0008", text=""), "field_too_short"),
        ("demo-bad-0009", "queue", doc("demo-bad-0009", text="x", padding="p" * 20_000), "body_too_large"),
        ("demo-bad-0010", "queue", json.dumps({"time": t, "text": "no id on this one"}), "missing_field"),
        ("demo-bad-0011", "bus", doc("demo-bad-0011", text=None), "wrong_type"),
    ]


def demo_events(
    seed: int = 7, poison: bool = True, now: datetime | None = None, limit: int | None = None
) -> list[DemoEvent]:
    """Every demo event in a reproducible shuffled order, about a third of them via the input bus.

    `limit` keeps that many support messages, evenly spread over the file (so some off-topic ones
    stay in); the invalid events and the poison one are always added.
    """
    now = now or datetime.now(UTC)
    rng = random.Random(seed)
    rows = load_messages()
    if limit is not None and 0 < limit < len(rows):
        rows = [rows[i * len(rows) // limit] for i in range(limit)]
    events: list[DemoEvent] = []
    for i, row in enumerate(rows, start=1):
        key = f"demo-{i:04d}"
        when = now - timedelta(seconds=rng.randint(0, 600))
        body = json.dumps({"id": key, "time": _iso(when), "text": row["text"]})
        kind: Kind = "off_topic" if row["topic"] == OFF_TOPIC else "valid"
        via: Via = "bus" if rng.random() < 0.35 else "queue"
        events.append(DemoEvent(key=key, kind=kind, via=via, body=body, topic=row["topic"]))
    for key, via, body, code in invalid_events(now):
        events.append(DemoEvent(key=key, kind="invalid", via=via, body=body, topic=code))
    rng.shuffle(events)
    if poison:
        # Early in the stream, so its five failing attempts ride along with the traffic behind it.
        body = json.dumps({"id": POISON_ID, "time": _iso(now), "text": "my card has not arrived yet"})
        events.insert(min(3, len(events)), DemoEvent(key=POISON_ID, kind="poison", via="queue", body=body, topic="dlq"))
    return events


def producer_id(body: str | None) -> str | None:
    """The producer's `id` in a record body (plain event or EventBridge envelope), if there is one."""
    if not body:
        return None
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    if isinstance(doc, dict) and "detail-type" in doc and isinstance(doc.get("detail"), dict):
        doc = doc["detail"]
    if isinstance(doc, dict) and isinstance(doc.get("id"), str):
        return doc["id"]
    return None


def envelope_id(body: str | None) -> str | None:
    """The EventBridge event id when `body` is an envelope (what the bus rule puts on the queue)."""
    if not body:
        return None
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    if isinstance(doc, dict) and "detail-type" in doc and isinstance(doc.get("id"), str):
        return doc["id"]
    return None
