"""Into the system and back out: the producer, the destinations and their collector, the drain check.

Shared by the demo (``local/demo/run.py``), its drift phase (``local/drift_phase.py``) and ``local up``
(``local/live.py``): each imports this module, none imports another (they did when this lived in demo.py).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pigeonhole_tools.local.emulator import (
    INPUT_DETAIL_TYPE,
    INPUT_SOURCE,
    LocalResources,
    QueueRef,
    events_client,
    queue_depth,
    sqs_client,
)
from pigeonhole_tools.local.samples import DemoEvent

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef


Where = Literal["output", "review", "quarantine", "dlq"]
CHUNK = 10  # SendMessageBatch and PutEvents both take at most 10 entries


# -- sending -------------------------------------------------------------------------------------
@dataclass
class Sent:
    """One demo event and how the system took it in (or why it refused it)."""

    event: DemoEvent
    message_id: str | None = None  # SQS message id, for events sent straight to the queue
    bus_event_id: str | None = None  # EventBridge event id, for events put on the input bus
    rejected: str | None = None  # refused at the door (never entered the system)


def _send_queue_chunk(sqs: SQSClient, queue_url: str, chunk: Sequence[DemoEvent]) -> list[Sent]:
    entries: list[SendMessageBatchRequestEntryTypeDef] = [
        {
            "Id": str(i),
            "MessageBody": ev.body,
            "MessageAttributes": {"producer": {"DataType": "String", "StringValue": "pigeonhole-demo"}},
        }
        for i, ev in enumerate(chunk)
    ]
    result = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
    sent = [Sent(ev) for ev in chunk]
    for ok in result.get("Successful", []):
        sent[int(ok["Id"])].message_id = ok["MessageId"]
    for failed in result.get("Failed", []):
        sent[int(failed["Id"])].rejected = f"SQS {failed['Code']}: {failed.get('Message', '')}"
    return sent


def _send_bus_chunk(events: EventBridgeClient, bus: str, chunk: Sequence[DemoEvent]) -> list[Sent]:
    entries: list[PutEventsRequestEntryTypeDef] = [
        {"EventBusName": bus, "Source": INPUT_SOURCE, "DetailType": INPUT_DETAIL_TYPE, "Detail": ev.body}
        for ev in chunk
    ]
    result = events.put_events(Entries=entries)
    sent = []
    for ev, entry in zip(chunk, result["Entries"], strict=True):
        if "EventId" in entry:
            sent.append(Sent(ev, bus_event_id=entry["EventId"]))
        else:
            sent.append(Sent(ev, rejected=f"EventBridge {entry.get('ErrorCode')}: {entry.get('ErrorMessage')}"))
    return sent


def stream_events(
    resources: LocalResources,
    events: Sequence[DemoEvent],
    sent: list[Sent],
    pause_seconds: float = 0.02,
    max_attempts: int = 3,
    max_backlog: int | None = 40,
) -> None:
    """Send events in their order, ten at a time per entry point, like a live producer.

    With `max_backlog`, the producer waits while the ingest queue holds more than that many messages:
    moto's SQS calls cost O(queue length), and a short queue is also what a healthy system looks like.
    """
    sqs = sqs_client(resources.endpoint, resources.region, max_attempts)
    bus = events_client(resources.endpoint, resources.region, max_attempts)
    pending: dict[str, list[DemoEvent]] = {"queue": [], "bus": []}

    def flush(via: str) -> None:
        chunk, pending[via] = pending[via], []
        if not chunk:
            return
        while max_backlog is not None and queue_depth(sqs, resources.ingest.url) > max_backlog:
            time.sleep(0.25)
        if via == "queue":
            sent.extend(_send_queue_chunk(sqs, resources.ingest.url, chunk))
        else:
            sent.extend(_send_bus_chunk(bus, resources.input_bus_name, chunk))
        if pause_seconds:
            time.sleep(pause_seconds)

    for ev in events:
        pending[ev.via].append(ev)
        if len(pending[ev.via]) == CHUNK:
            flush(ev.via)
    flush("queue")
    flush("bus")


# -- reading back --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Landing:
    """A message found in one of the destinations."""

    where: Where
    queue: str
    message_id: str
    body: str

    def doc(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


def destinations(resources: LocalResources) -> list[tuple[Where, QueueRef]]:
    """Every queue an event can end up in, with its role in the accounting."""
    places: list[tuple[Where, QueueRef]] = [
        ("output", resources.output_sink),
        ("review", resources.review),
        ("quarantine", resources.quarantine),
    ]
    places += [("dlq", q) for q in resources.dead_letter_queues]
    return places


class Collector:
    """Consumes every destination queue as results land: keeps what it read, then deletes it.

    Reading continuously keeps moto's queues short (its SQS calls cost O(queue length)) and gives
    the demo an exact progress count; `local up` uses it to print each result once.

    `defer_dead_letters`: `run` leaves the dead-letter queues alone (only `drain` reads them), so a
    dead-lettered message stays visible while the stream runs, as it would in AWS until someone looks:
    that is what the DLQ depth alarm sees (the demo's service metrics sample the queues meanwhile).
    """

    def __init__(
        self,
        resources: LocalResources,
        on_landing: Callable[[Landing], None] | None = None,
        max_attempts: int = 3,
        defer_dead_letters: bool = False,
    ) -> None:
        self._sqs = sqs_client(resources.endpoint, resources.region, max_attempts)
        self._places = destinations(resources)
        self._on_landing = on_landing
        self._seen: set[str] = set()
        self.landings: list[Landing] = []
        self.defer_dead_letters = defer_dead_letters

    def sweep(self, dead_letters: bool = True) -> int:
        """One receive per destination (the DLQs only if `dead_letters`); returns how many new messages it collected."""
        collected = 0
        for where, queue in self._places:
            if where == "dlq" and not dead_letters:
                continue
            messages = self._sqs.receive_message(
                QueueUrl=queue.url, MaxNumberOfMessages=10, VisibilityTimeout=60, WaitTimeSeconds=0
            ).get("Messages", [])
            if not messages:
                continue
            for m in messages:
                if m["MessageId"] in self._seen:
                    continue  # a delete that did not take: SQS gave it back, it is not a new landing
                self._seen.add(m["MessageId"])
                landing = Landing(where, queue.name, m["MessageId"], m["Body"])
                self.landings.append(landing)
                collected += 1
                if self._on_landing is not None:
                    self._on_landing(landing)
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
            self._sqs.delete_message_batch(QueueUrl=queue.url, Entries=entries)  # type: ignore[arg-type]
        return collected

    def drain(self) -> None:
        """Sweep until every destination is empty."""
        while self.sweep():
            pass

    def run(self, stop: threading.Event, interval_seconds: float = 0.5) -> None:
        """Sweep every `interval_seconds` (every call to moto costs the handler CPU: one process, one GIL)."""
        while not stop.is_set():
            started = time.monotonic()
            self.sweep(dead_letters=not self.defer_dead_letters)
            stop.wait(max(0.0, interval_seconds - (time.monotonic() - started)))


# -- draining ------------------------------------------------------------------------------------
def wait_drained(
    producer: threading.Thread,
    sqs: SQSClient,
    resources: LocalResources,
    deadline: float,
    on_tick: Callable[[], None],
) -> bool:
    """Drained = the producer is done and the ingest queue holds nothing (visible, in flight or in backoff)."""
    while time.monotonic() < deadline:
        on_tick()
        if not producer.is_alive() and queue_depth(sqs, resources.ingest.url) == 0:
            return True
        time.sleep(0.5)
    return False
