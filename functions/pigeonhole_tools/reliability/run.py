"""A fault run: moto (server mode on loopback), the emulated event source mapping and the real handlers.

One thread drives everything in a fixed order (produce, poll the ingest queue, sweep the
destinations), so a seed replays the same faults and moto's DynamoDB transactions never run
concurrently. Phases: the event stream through the classifier; labels for some classified events
through the feedback function; drift runs until one succeeds. Every AWS call those three functions
make goes through the fault injector (botocore ``before-send`` on their sessions). The producer, the
poller (Lambda's ESM) and the read-back are the platform, not the functions: they are not faulted.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import boto3

from pigeonhole import constants as c
from pigeonhole_tools.local.emulator import (
    FAKE_CREDENTIAL,
    INPUT_DETAIL_TYPE,
    INPUT_SOURCE,
    Emulator,
    LocalResources,
    QueueRef,
    apply_offline_environment,
    default_model_dir,
    dynamodb_client,
    events_client,
    provision,
    queue_depth,
    sqs_client,
)
from pigeonhole_tools.local.faults import fail_records
from pigeonhole_tools.local.poller import Handler, SqsEventSourcePoller
from pigeonhole_tools.local.samples import producer_id
from pigeonhole_tools.reliability.accounting import (
    Accounting,
    Landing,
    Sent,
    Where,
    WindowTotals,
    account,
    merge_windows,
)
from pigeonhole_tools.reliability.config import RunConfig
from pigeonhole_tools.reliability.injection import FaultInjector, InjectionStats, compressed_backoff
from pigeonhole_tools.reliability.moto_speed import prechecked_transactions
from pigeonhole_tools.reliability.output import handler_output, quiet
from pigeonhole_tools.reliability.workload import WorkEvent, build_events

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger(__name__)
CHUNK = 10
SWEEP_EVERY = 5  # ingest polls between two sweeps of the destination queues (moto's SQS is O(queue length))


@dataclass
class FeedbackResources:
    queue: QueueRef
    dlq: QueueRef
    table: str


@dataclass
class PhaseStats:
    invocations: int = 0
    records: int = 0
    record_failures: int = 0
    batch_errors: int = 0
    first_error: str | None = None


@dataclass
class FaultRunResult:
    """Everything the report needs; the invariants are properties of ``accounting`` and ``windows``."""

    config: RunConfig
    endpoint: str
    drained: bool
    seconds: float
    accounting: Accounting
    windows: WindowTotals
    injection: InjectionStats
    classifier: PhaseStats
    feedback: PhaseStats
    labels_sent: int
    labels_expected: int
    feedback_dead_letters: int
    drift_attempts: int
    drift_failures: list[str] = field(default_factory=list)
    drift_ok: bool = False
    rejected_at_entry: int = 0


def _session(region: str) -> boto3.Session:
    return boto3.Session(
        aws_access_key_id=FAKE_CREDENTIAL,
        aws_secret_access_key=FAKE_CREDENTIAL,
        aws_session_token=FAKE_CREDENTIAL,
        region_name=region,
    )


def provision_feedback(resources: LocalResources) -> FeedbackResources:
    """The feedback queue, its DLQ and the feedback table, as the topology provisions them locally."""
    sqs = sqs_client(resources.endpoint, resources.region, 1)

    def queue(name: str) -> QueueRef:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return QueueRef(name, url, arn)

    main = queue(resources.names.feedback_queue)
    dlq = queue(f"{resources.names.feedback_queue}-dlq")
    return FeedbackResources(main, dlq, resources.names.feedback_table)


# -- producing -------------------------------------------------------------------------------------
class Producer:
    """Sends the events ten at a time (SQS SendMessageBatch, or PutEvents on the input bus)."""

    def __init__(self, resources: LocalResources, events: Sequence[WorkEvent]) -> None:
        self._res = resources
        self._sqs = sqs_client(resources.endpoint, resources.region)
        self._bus = events_client(resources.endpoint, resources.region)
        self._pending = list(events)
        self._next = 0
        self.sent: list[Sent] = []
        self.by_message: dict[str, str] = {}  # SQS message id -> event key, for events sent to the queue

    @property
    def done(self) -> bool:
        return self._next >= len(self._pending)

    def send_chunk(self) -> int:
        """Send the next ten events of one entry point; returns how many entered."""
        first = self._pending[self._next]
        chunk = [first]
        i = self._next + 1
        while len(chunk) < CHUNK and i < len(self._pending) and self._pending[i].via == first.via:
            chunk.append(self._pending[i])
            i += 1
        self._next = i
        out = self._queue(chunk) if first.via == "queue" else self._put(chunk)
        self.sent.extend(out)
        return sum(1 for s in out if s.rejected is None)

    def _queue(self, chunk: Sequence[WorkEvent]) -> list[Sent]:
        result = self._sqs.send_message_batch(
            QueueUrl=self._res.ingest.url,
            Entries=[{"Id": str(i), "MessageBody": ev.body} for i, ev in enumerate(chunk)],
        )
        sent = [Sent(ev) for ev in chunk]
        for ok in result.get("Successful", []):
            sent[int(ok["Id"])].message_id = ok["MessageId"]
            self.by_message[ok["MessageId"]] = chunk[int(ok["Id"])].key
        for bad in result.get("Failed", []):
            sent[int(bad["Id"])].rejected = f"SQS {bad['Code']}"
        return sent

    def _put(self, chunk: Sequence[WorkEvent]) -> list[Sent]:
        result = self._bus.put_events(
            Entries=[
                {
                    "EventBusName": self._res.input_bus_name,
                    "Source": INPUT_SOURCE,
                    "DetailType": INPUT_DETAIL_TYPE,
                    "Detail": ev.body,
                }
                for ev in chunk
            ]
        )
        return [
            Sent(ev, bus_event_id=r["EventId"]) if "EventId" in r else Sent(ev, rejected=str(r.get("ErrorCode")))
            for ev, r in zip(chunk, result["Entries"], strict=True)
        ]


# -- reading back ----------------------------------------------------------------------------------
class Sweeper:
    """Empties every destination queue, keeping what it read (each message once)."""

    def __init__(self, sqs: SQSClient, places: Sequence[tuple[Where, QueueRef]]) -> None:
        self._sqs = sqs
        self._places = places
        self._seen: set[str] = set()
        self.landings: list[Landing] = []

    def sweep(self) -> int:
        collected = 0
        for where, queue in self._places:
            while True:
                messages = self._sqs.receive_message(
                    QueueUrl=queue.url, MaxNumberOfMessages=10, VisibilityTimeout=120, WaitTimeSeconds=0
                ).get("Messages", [])
                for m in messages:
                    if m["MessageId"] not in self._seen:
                        self._seen.add(m["MessageId"])
                        self.landings.append(Landing(where, m["MessageId"], m["Body"]))
                        collected += 1
                if messages:
                    entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
                    self._sqs.delete_message_batch(QueueUrl=queue.url, Entries=entries)  # type: ignore[arg-type]
                if len(messages) < 10:
                    break
        return collected


def destinations(resources: LocalResources) -> list[tuple[Where, QueueRef]]:
    places: list[tuple[Where, QueueRef]] = [
        ("output", resources.output_sink),
        ("review", resources.review),
        ("quarantine", resources.quarantine),
    ]
    return places + [("dlq", q) for q in resources.dead_letter_queues]


def tracking(handler: Handler, key_of: Callable[[dict[str, Any]], str | None], receives: Counter[str]) -> Handler:
    """Count each delivery of each event (what SQS's ApproximateReceiveCount counts) before invoking."""

    def wrapped(event: dict[str, Any], context: Any) -> Any:
        for record in event.get("Records", []):
            key = key_of(record)
            if key is not None:
                receives[key] += 1
        return handler(event, context)

    return wrapped


def _phase_stats(poller: SqsEventSourcePoller) -> PhaseStats:
    st = poller.stats
    first = next((i.error for i in st.invocations if i.error is not None), None)
    return PhaseStats(len(st.invocations), st.records, st.failed_records, st.batch_errors, first and first[:300])


def _poller(resources: LocalResources, handler: Handler, queue: QueueRef, name: str) -> SqsEventSourcePoller:
    """The ESM, made fast: no batching window, no long poll, failed records visible again at once."""
    return SqsEventSourcePoller(
        sqs_client(resources.endpoint, resources.region, 1),
        queue_url=queue.url,
        queue_arn=queue.arn,
        region=resources.region,
        handler=handler,
        visibility_timeout=resources.visibility_timeout,
        retry_delay_seconds=0,
        wait_time_seconds=0,
        function_name=name,
    )


# -- the phases ------------------------------------------------------------------------------------
def _stream(
    cfg: RunConfig,
    resources: LocalResources,
    producer: Producer,
    poller: SqsEventSourcePoller,
    sweeper: Sweeper,
    deadline: float,
    progress: Callable[[str], None],
) -> bool:
    sqs = sqs_client(resources.endpoint, resources.region)
    entered = 0
    polls = 0
    while time.monotonic() < deadline:
        while not producer.done and entered - poller.stats.deleted < cfg.max_backlog:
            entered += producer.send_chunk()
        invocation = poller.poll_once()
        polls += 1
        if polls % SWEEP_EVERY == 0:
            sweeper.sweep()
        if polls % 200 == 0:
            progress(f"sent {len(producer.sent)}, invocations {polls}, landed {len(sweeper.landings)}")
        if invocation is None and producer.done and queue_depth(sqs, resources.ingest.url) == 0:
            sweeper.sweep()
            return True
    return False


def _feed(
    cfg: RunConfig,
    sqs: SQSClient,
    url: str,
    labels: Sequence[tuple[str, str]],
    poller: SqsEventSourcePoller,
    deadline: float,
) -> bool:
    """Send the labels while the feedback function consumes them (a short queue: moto's SQS is O(length))."""
    sent = 0
    while time.monotonic() < deadline:
        while sent < len(labels) and sent - poller.stats.deleted < cfg.max_backlog:
            _send_labels(sqs, url, labels[sent : sent + CHUNK])
            sent += len(labels[sent : sent + CHUNK])
        if poller.poll_once() is None and sent >= len(labels) and queue_depth(sqs, url) == 0:
            return True
    return False


def _choose_labels(
    cfg: RunConfig, accounting: Accounting, events: dict[str, WorkEvent], classes: set[str]
) -> tuple[list[tuple[str, str]], int]:
    """(id, label) messages for some classified events (a few twice); and how many distinct events."""
    rng = random.Random(cfg.plan.seed + 1)
    chosen: list[tuple[str, str]] = []
    for key in sorted(k for k in accounting.places if accounting.place_of(k) in ("output", "review")):
        ev = events[key]
        if ev.kind == "valid" and ev.topic in classes and rng.random() < cfg.label_fraction:
            chosen.append((key, ev.topic))
    messages = list(chosen)
    messages += [m for m in chosen if rng.random() < cfg.duplicate_label_fraction]
    rng.shuffle(messages)
    return messages, len(chosen)


def _send_labels(sqs: SQSClient, url: str, labels: Sequence[tuple[str, str]]) -> None:
    for start in range(0, len(labels), CHUNK):
        chunk = labels[start : start + CHUNK]
        entries = [{"Id": str(i), "MessageBody": json.dumps({"id": k, "label": v})} for i, (k, v) in enumerate(chunk)]
        result = sqs.send_message_batch(QueueUrl=url, Entries=entries)  # type: ignore[arg-type]
        if result.get("Failed"):
            raise RuntimeError(f"labels refused by the feedback queue: {result['Failed']}")


def _scan(resources: LocalResources) -> WindowTotals:
    from pigeonhole.adapters.dynamodb import deserialize_item

    dynamodb = dynamodb_client(resources.endpoint, resources.region)
    items = [
        deserialize_item(item)
        for page in dynamodb.get_paginator("scan").paginate(TableName=resources.windows_table)
        for item in page.get("Items", [])
    ]
    return merge_windows(items)


def _drift(service: Any, max_attempts: int) -> tuple[int, list[str], bool]:
    """Run drift (an hour ahead: every window closed) until a run succeeds; (attempts, failures, ok)."""
    now = datetime.now(UTC) + timedelta(hours=1)
    failures: list[str] = []
    for attempt in range(1, max_attempts + 1):
        try:
            service.run(now)
        except Exception as exc:  # a transient fault fails the run; the next schedule retries it
            failures.append(f"{type(exc).__name__}: {str(exc)[:160]}")
            continue
        return attempt, failures, True
    return max_attempts, failures, False


def run_faults(cfg: RunConfig, progress: Callable[[str], None] | None = None) -> FaultRunResult:
    """Run the whole fault scenario; the caller asserts or prints (see ``report``)."""
    from pigeonhole.classify import handler as classify_module
    from pigeonhole.config import MonitorSettings, Settings
    from pigeonhole.drift import handler as drift_module
    from pigeonhole.feedback import handler as feedback_module
    from pigeonhole.model.manifest import load_manifest

    say = progress or (lambda _: None)
    started = time.monotonic()
    deadline = started + cfg.max_seconds
    region = os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    apply_offline_environment(os.environ, region)
    model_dir = cfg.model_dir or default_model_dir()
    manifest = load_manifest(model_dir)
    events = build_events(
        cfg.events,
        seed=cfg.plan.seed,
        poison=cfg.poison,
        invalid_fraction=cfg.invalid_fraction,
        bus_fraction=cfg.bus_fraction,
        prefix=cfg.prefix,
    )
    by_key = {ev.key: ev for ev in events}
    loggers = [classify_module.logger, feedback_module.logger, drift_module.logger]
    injector = FaultInjector(cfg.plan)
    with (
        Emulator() as emulator,
        prechecked_transactions(),
        compressed_backoff(cfg.plan.backoff_scale),
        handler_output(loggers, cfg.log_file),
        quiet(["pigeonhole_tools.local.poller"]),
    ):
        resources = provision(emulator.endpoint, prefix=cfg.prefix, region=region, max_attempts=1)
        feedback = provision_feedback(resources)
        os.environ.update(resources.lambda_environment(model_dir))
        os.environ[c.ENV_FEEDBACK_TABLE] = feedback.table
        # "Labels counted once" needs every labelled event joinable: capture them all (the default policy
        # samples auto-routed events; its sampling and weighting are tested on their own).
        os.environ[c.ENV_CAPTURE_REVIEW_RATE] = os.environ[c.ENV_CAPTURE_AUTO_RATE] = "1.0"
        sqs = sqs_client(resources.endpoint, region)

        # The functions, built cold from their environment, with faulty clients.
        classify_module.reset_for_tests(
            classify_module.build_service(Settings.from_env(), injector.attach(_session(region)))
        )
        feedback_module.reset_for_tests(
            feedback_module.build_service(MonitorSettings.from_env(), injector.attach(_session(region)))
        )
        drift_service = drift_module.build_service(MonitorSettings.from_env(), injector.attach(_session(region)))

        producer = Producer(resources, events)
        receives: Counter[str] = Counter()

        def key_of(record: dict[str, Any]) -> str | None:
            key = producer.by_message.get(record.get("messageId", ""))
            if key is None:
                key = producer_id(record.get("body"))
            return key if key in by_key else None

        poison = [ev.key for ev in events if ev.kind == "poison"]
        classifier = tracking(fail_records(classify_module.handler, poison), key_of, receives)
        ingest = _poller(resources, classifier, resources.ingest, resources.function_name)
        sweeper = Sweeper(sqs, destinations(resources))
        say(f"moto on {resources.endpoint}; {len(events)} events, fault rate {cfg.plan.rate:.0%}")
        drained = _stream(cfg, resources, producer, ingest, sweeper, deadline, say)
        sweeper.sweep()
        accounting = account(producer.sent, sweeper.landings, receives, injector.stats.lost)

        # Labels for some classified events, through the feedback function.
        labels, expected = _choose_labels(cfg, accounting, by_key, set(manifest.classes))
        feedback_poller = _poller(resources, feedback_module.handler, feedback.queue, "pigeonhole-feedback")
        drained = _feed(cfg, sqs, feedback.queue.url, labels, feedback_poller, deadline) and drained
        say(f"labels: {len(labels)} sent for {expected} events")

        # Drift, as the schedule would run it once every window is closed; a failed run is retried.
        attempts, failures, ok = _drift(drift_service, cfg.drift_attempts)
        injector.enabled = False
        windows = _scan(resources)
        classify_module.reset_for_tests()
        feedback_module.reset_for_tests()
        return FaultRunResult(
            config=cfg,
            endpoint=resources.endpoint,
            drained=drained,
            seconds=time.monotonic() - started,
            accounting=accounting,
            windows=windows,
            injection=injector.stats,
            classifier=_phase_stats(ingest),
            feedback=_phase_stats(feedback_poller),
            labels_sent=len(labels),
            labels_expected=expected,
            feedback_dead_letters=queue_depth(sqs, feedback.dlq.url),
            drift_attempts=attempts,
            drift_failures=failures,
            drift_ok=ok,
            rejected_at_entry=sum(1 for s in producer.sent if s.rejected),
        )
