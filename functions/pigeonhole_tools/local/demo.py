"""`pigeonhole local demo`: the whole flow on loopback, with every event accounted for.

Starts moto, provisions the system, streams the project's sample support messages through both
entry points (SQS SendMessageBatch and EventBridge PutEvents on the input bus), runs the poller
(Lambda's event source mapping, emulated) with the real classifier handler until the ingest queue
drains, then reads every destination back and matches each event to where it landed: the output
bus (via the local sink queue), the review queue, the quarantine queue or a dead-letter queue.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TextIO

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pigeonhole import constants as c
from pigeonhole_tools.local.emulator import (
    DEFAULT_BATCHING_WINDOW,
    DEFAULT_REGION,
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
from pigeonhole_tools.local.poller import Handler, PollerStats, SqsEventSourcePoller, percentile
from pigeonhole_tools.local.samples import POISON_ID, DemoEvent, demo_events, envelope_id, producer_id

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

    from pigeonhole_tools.local.drift_phase import DriftPhaseReport

DEFAULT_HANDLER = "pigeonhole.classify.handler:handler"
Where = Literal["output", "review", "quarantine", "dlq"]
CHUNK = 10  # SendMessageBatch and PutEvents both take at most 10 entries


class ModelMissingError(RuntimeError):
    """The classifier needs a model package and there is none where the runtime looks."""


def require_model(model_dir: Path) -> None:
    """Fail before starting anything if the real handler would have no model to load."""
    if not (model_dir / c.MANIFEST_FILE).is_file():
        raise ModelMissingError(
            f"no model package at {model_dir} ({c.MANIFEST_FILE} missing): build it first "
            f"(see `pigeonhole model --help`) or pass --model-dir / set {c.ENV_MODEL_DIR}"
        )


# -- handler loading -----------------------------------------------------------------------------
def load_handler(spec: str) -> Handler:
    """Import `module:function` (default attribute `handler`) and start it cold if it can be reset."""
    module_name, _, attr = spec.partition(":")
    module = importlib.import_module(module_name)
    reset = getattr(module, "reset_for_tests", None)
    if callable(reset):
        reset()
    handler = getattr(module, attr or "handler")
    if not callable(handler):
        raise TypeError(f"{spec} is not callable")
    return handler


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
    """

    def __init__(
        self,
        resources: LocalResources,
        on_landing: Callable[[Landing], None] | None = None,
        max_attempts: int = 3,
    ) -> None:
        self._sqs = sqs_client(resources.endpoint, resources.region, max_attempts)
        self._places = destinations(resources)
        self._on_landing = on_landing
        self._seen: set[str] = set()
        self.landings: list[Landing] = []

    def sweep(self) -> int:
        """One receive per destination; returns how many new messages it collected."""
        collected = 0
        for where, queue in self._places:
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
            self.sweep()
            stop.wait(max(0.0, interval_seconds - (time.monotonic() - started)))


# -- accounting ----------------------------------------------------------------------------------
@dataclass
class Accounting:
    """Each event that entered, matched to every place it landed; strays are landings matching no event."""

    by_key: dict[str, list[Landing]]
    strays: list[Landing] = field(default_factory=list)

    @property
    def lost(self) -> list[str]:
        return sorted(k for k, v in self.by_key.items() if not v)

    @property
    def duplicated(self) -> list[str]:
        return sorted(k for k, v in self.by_key.items() if len(v) > 1)

    @property
    def accounted(self) -> int:
        return sum(1 for v in self.by_key.values() if v)


def account(sent: Sequence[Sent], landings: Sequence[Landing]) -> Accounting:
    """Match landings to sent events: by SQS message id, EventBridge event id, or the producer's id."""
    entered = [s for s in sent if s.rejected is None]
    by_key: dict[str, list[Landing]] = {s.event.key: [] for s in entered}
    by_message = {s.message_id: s.event.key for s in entered if s.message_id}
    by_bus = {s.bus_event_id: s.event.key for s in entered if s.bus_event_id}

    def key_of_body(body: Any) -> str | None:
        if not isinstance(body, str):
            return None
        bus_id = envelope_id(body)
        if bus_id in by_bus:
            return by_bus[bus_id]
        pid = producer_id(body)
        return pid if pid in by_key else None

    accounting = Accounting(by_key)
    for landing in landings:
        key = by_message.get(landing.message_id)  # a DLQ keeps the ingest message id
        doc = landing.doc()
        if key is None and isinstance(doc, dict) and doc.get("schema") == c.QUARANTINE_SCHEMA:
            key = by_message.get(doc.get("message_id") or "") or key_of_body(doc.get("body"))
        if key is None:
            key = key_of_body(landing.body)
        if key is None:
            accounting.strays.append(landing)
        else:
            by_key[key].append(landing)
    return accounting


def inference_times(log_file: Path | None) -> list[float]:
    """The InferenceTime values the handler emitted as EMF metrics (one per batch) into its log file."""
    if log_file is None or not log_file.is_file():
        return []
    values: list[float] = []
    for line in log_file.read_text(encoding="utf-8").splitlines():
        if '"InferenceTime"' not in line or not line.startswith("{"):
            continue
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        value = doc.get("InferenceTime") if isinstance(doc, dict) else None
        if isinstance(value, int | float):
            values.append(float(value))
        elif isinstance(value, list):
            values.extend(float(v) for v in value if isinstance(v, int | float))
    return values


def window_totals(resources: LocalResources) -> dict[str, int]:
    """Sum the recorder's window counters (events, review, quarantined) over every window item."""
    from pigeonhole.drift.layout import REPORT_PREFIX

    dynamodb = dynamodb_client(resources.endpoint, resources.region)
    totals: Counter[str] = Counter()
    for page in dynamodb.get_paginator("scan").paginate(TableName=resources.windows_table):
        for item in page.get("Items", []):
            pk, sk = item[c.TABLE_PARTITION_KEY].get("S", ""), item[c.TABLE_SORT_KEY].get("S", "")
            if not pk.startswith("W#") or sk.startswith(REPORT_PREFIX):
                continue
            totals["items"] += 1
            for name in ("n", "rev", "q"):
                if name in item:
                    totals[name] += int(item[name].get("N", "0"))
    return dict(totals)


# -- the report ----------------------------------------------------------------------------------
@dataclass
class DemoReport:
    """Everything the summary shows; `to_dict` is what `--report` writes."""

    endpoint: str
    events: list[DemoEvent]
    sent: list[Sent]
    accounting: Accounting
    stats: PollerStats
    drained: bool
    runtime_seconds: float
    drain_seconds: float
    log_file: str | None = None
    window_totals: dict[str, int] = field(default_factory=dict)  # summed window counters (DynamoDB)
    inference_ms: list[float] = field(default_factory=list)  # the handler's own InferenceTime metric (EMF)
    drift_phase: DriftPhaseReport | None = None  # the shifted stream, drift runs and alarms (drift_phase.py)

    @property
    def entered(self) -> int:
        return sum(1 for s in self.sent if s.rejected is None)

    def landings(self, where: Where) -> list[Landing]:
        return [ln for v in self.accounting.by_key.values() for ln in v if ln.where == where]

    def results(self) -> list[dict[str, Any]]:
        """Classification results (auto from the sink, review from the review queue)."""
        out = []
        for ln in self.landings("output"):
            doc = ln.doc()
            if isinstance(doc, dict) and isinstance(doc.get("detail"), dict):
                out.append(doc["detail"])
        for ln in self.landings("review"):
            doc = ln.doc()
            if isinstance(doc, dict):
                out.append(doc)
        return out

    def quarantine_reasons(self) -> Counter[str]:
        reasons: Counter[str] = Counter()
        for ln in self.landings("quarantine"):
            doc = ln.doc()
            reason = doc.get("reason") if isinstance(doc, dict) else None
            reasons[reason.get("code", "?") if isinstance(reason, dict) else "?"] += 1
        return reasons

    @property
    def unexpected_dead_letters(self) -> list[str]:
        """Events in a DLQ that were not injected to fail: the handler broke on real traffic."""
        kinds = {ev.key: ev.kind for ev in self.events}
        return sorted(
            k
            for k, v in self.accounting.by_key.items()
            if kinds.get(k) != "poison" and any(ln.where == "dlq" for ln in v)
        )

    @property
    def first_error(self) -> str | None:
        return next((i.error for i in self.stats.invocations if i.error is not None), None)

    @property
    def ok(self) -> bool:
        """Drained, nothing lost, and only the injected poison event dead-lettered."""
        phase_ok = self.drift_phase is None or self.drift_phase.ok
        return self.drained and not self.accounting.lost and not self.unexpected_dead_letters and phase_ok

    def to_dict(self) -> dict[str, Any]:
        inv = self.stats.invocations
        warm = PollerStats(inv[1:])
        kinds = Counter(s.event.kind for s in self.sent if s.rejected is None)
        return {
            "drift_phase": self.drift_phase.to_dict() if self.drift_phase is not None else None,
            "ok": self.ok,
            "runtime_seconds": round(self.runtime_seconds, 2),
            "drain_seconds": round(self.drain_seconds, 2),
            "events": {
                "generated": len(self.events),
                "entered": self.entered,
                "rejected_at_entry": [s.event.key for s in self.sent if s.rejected],
                "via_queue": sum(1 for s in self.sent if s.message_id),
                "via_bus": sum(1 for s in self.sent if s.bus_event_id),
                "by_kind": dict(kinds),
            },
            "landed": {w: len(self.landings(w)) for w in ("output", "review", "quarantine", "dlq")},
            "accounted": self.accounting.accounted,
            "lost": self.accounting.lost,
            "duplicated": self.accounting.duplicated,
            "strays": len(self.accounting.strays),
            "unexpected_dead_letters": self.unexpected_dead_letters,
            "first_handler_error": self.first_error,
            "quarantine_reasons": dict(self.quarantine_reasons()),
            "window_counters": self.window_totals,
            "labels": dict(Counter(r.get("label") for r in self.results() if r.get("route") == "auto")),
            "handler": {
                "invocations": len(inv),
                "records": self.stats.records,
                "record_failures": self.stats.failed_records,
                "batch_errors": self.stats.batch_errors,
                "cold_first_ms": round(inv[0].duration_ms, 2) if inv else None,
                "p50_ms": round(self.stats.handler_ms(50), 2) if inv else None,
                "p99_ms": round(self.stats.handler_ms(99), 2) if inv else None,
                "warm_p50_ms": round(warm.handler_ms(50), 2) if inv[1:] else None,
                "warm_p99_ms": round(warm.handler_ms(99), 2) if inv[1:] else None,
                "inference_p50_ms": round(percentile(self.inference_ms, 50), 2) if self.inference_ms else None,
                "inference_p99_ms": round(percentile(self.inference_ms, 99), 2) if self.inference_ms else None,
            },
        }


def _fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms" if value >= 100 else f"{value:.1f} ms"


def _labels_table(results: Sequence[dict[str, Any]], top: int) -> Table:
    table = Table(title="Classified: EventClassified on the output bus (read back from the sink queue)")
    table.add_column("label")
    table.add_column("events", justify="right")
    table.add_column("mean confidence", justify="right")
    by_label: dict[str, list[float]] = {}
    for r in results:
        if r.get("route") == "auto":
            by_label.setdefault(str(r.get("label")), []).append(float(r.get("confidence", 0.0)))
    ranked = sorted(by_label.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    for label, confs in ranked[:top]:
        table.add_row(label, str(len(confs)), f"{sum(confs) / len(confs):.2f}")
    if len(ranked) > top:
        rest = ranked[top:]
        table.add_row(f"… {len(rest)} more labels", str(sum(len(v) for _, v in rest)), "")
    return table


def _routing_table(report: DemoReport, results: Sequence[dict[str, Any]]) -> Table:
    topics = {ev.key: ev.topic for ev in report.events}
    auto = [r for r in results if r.get("route") == "auto"]
    review = [r for r in results if r.get("route") == "review"]
    off_topic_review = sum(1 for r in review if topics.get(str(r.get("id"))) == "off_topic")
    off_topic_total = sum(1 for s in report.sent if s.rejected is None and s.event.kind == "off_topic")
    reasons = report.quarantine_reasons()
    dlq = report.landings("dlq")
    dlq_keys = sorted({k for k, v in report.accounting.by_key.items() for ln in v if ln.where == "dlq"})
    table = Table(title="Routing")
    table.add_column("destination")
    table.add_column("events", justify="right")
    table.add_column("notes")
    table.add_row("output bus (auto)", str(len(auto)), f"{len({r.get('label') for r in auto})} distinct labels")
    table.add_row(
        "review queue", str(len(review)), f"low confidence; {off_topic_review}/{off_topic_total} off-topic messages"
    )
    table.add_row(
        "quarantine queue",
        str(sum(reasons.values())),
        ", ".join(f"{code}×{n}" for code, n in sorted(reasons.items())) or "-",
    )
    table.add_row("dead-letter queues", str(len(dlq)), ", ".join(dlq_keys) or "-")
    return table


def _agreement(report: DemoReport, results: Sequence[dict[str, Any]]) -> str | None:
    topics = {ev.key: ev.topic for ev in report.events if ev.kind == "valid"}
    known = [r for r in results if str(r.get("id")) in topics]
    if not known:
        return None
    agree = sum(1 for r in known if topics[str(r.get("id"))] == r.get("label"))
    return (
        f"Labels matching the intent the sample's author had in mind: {agree}/{len(known)} "
        f"({100.0 * agree / len(known):.0f} %); a sanity check, not an evaluation."
    )


def _timing_table(handler: dict[str, Any]) -> Table:
    table = Table(title="Handler: the real classifier, invoked by the emulated event source mapping")
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_column("what it is")
    rows = [
        ("invocations", str(handler["invocations"]), "batches of at most 10 records"),
        ("records", str(handler["records"]), "deliveries, retries included"),
        ("retried", str(handler["record_failures"]), "records reported failed (SQS delivered them again)"),
        ("failed batches", str(handler["batch_errors"]), "whole-batch failures (exception, bad response)"),
        ("cold", _fmt_ms(handler["cold_first_ms"]), "the first invocation: model load + first batch"),
        ("p50 / p99", f"{_fmt_ms(handler['p50_ms'])} / {_fmt_ms(handler['p99_ms'])}", "whole invocations"),
        ("warm p99", _fmt_ms(handler["warm_p99_ms"]), "without the first invocation"),
        (
            "model p50 / p99",
            f"{_fmt_ms(handler['inference_p50_ms'])} / {_fmt_ms(handler['inference_p99_ms'])}",
            "the handler's own InferenceTime metric (EMF)",
        ),
    ]
    for row in rows:
        table.add_row(*row)
    table.caption = "Invocation time is mostly moto over HTTP, in the same Python process as the handler."
    return table


def _accounting_panel(report: DemoReport, data: dict[str, Any]) -> Panel:
    ev = data["events"]
    landed = data["landed"]
    acc = report.accounting
    lines = [
        f"events in: {report.entered} ({ev['via_queue']} via SQS SendMessageBatch, {ev['via_bus']} via PutEvents)"
        + (f"; {len(ev['rejected_at_entry'])} refused at entry" if ev["rejected_at_entry"] else ""),
        f"accounted: {acc.accounted} = output {landed['output']} + review {landed['review']} + "
        f"quarantine {landed['quarantine']} + DLQ {landed['dlq']}"
        + (f"  (duplicates: {len(acc.duplicated)})" if acc.duplicated else ""),
        f"runtime: {report.runtime_seconds:.1f} s (drain {report.drain_seconds:.1f} s); moto at {report.endpoint}",
    ]
    totals = report.window_totals
    if totals:
        classified = landed["output"] + landed["review"]
        agree = totals.get("n") == classified and totals.get("q") == landed["quarantine"]
        mark = "[green]match[/]" if agree else "[yellow]differ from what landed[/]"
        lines.append(
            f"window counters (DynamoDB): events {totals.get('n', 0)}, review {totals.get('rev', 0)}, "
            f"quarantined {totals.get('q', 0)} in {totals.get('items', 0)} item(s): {mark}"
        )
    if report.log_file:
        lines.append(f"handler logs and EMF metrics: {report.log_file}")
    if acc.lost:
        lines.append(f"[bold red]UNACCOUNTED: {len(acc.lost)}: {', '.join(acc.lost[:10])}[/]")
    if acc.strays:
        lines.append(f"[yellow]landings matching no event: {len(acc.strays)}[/]")
    if not report.drained:
        lines.append("[bold red]the ingest queue did not drain before the time limit[/]")
    if report.unexpected_dead_letters:
        lines.append(
            f"[bold red]{len(report.unexpected_dead_letters)} event(s) dead-lettered that should not have been[/]"
        )
    if report.first_error:
        lines.append(f"first failed batch: {escape(report.first_error[:300])}")
    if report.ok:
        verdict = "[bold green]every event accounted for[/]"
    elif acc.lost or not report.drained:
        verdict = "[bold red]events unaccounted for[/]"
    else:
        verdict = "[bold red]accounted for, but the handler failed on real traffic[/]"
    return Panel("\n".join(lines), title=verdict, expand=False)


def render(report: DemoReport, console: Console, top: int = 12) -> None:
    """The summary: labels, routing (review, quarantine reasons, DLQ), handler time, the accounting."""
    data = report.to_dict()
    results = report.results()
    console.print(_labels_table(results, top))
    console.print(_routing_table(report, results))
    agreement = _agreement(report, results)
    if agreement:
        console.print(agreement)
    console.print(_timing_table(data["handler"]))
    console.print(_accounting_panel(report, data))
    if report.drift_phase is not None:
        from pigeonhole_tools.local.drift_phase import render_drift_phase

        render_drift_phase(report.drift_phase, console)


# -- the run -------------------------------------------------------------------------------------
@dataclass
class DemoOptions:
    prefix: str = "pigeonhole"
    seed: int = 7
    poison: bool = True
    handler: str | Handler = DEFAULT_HANDLER  # module:function, or the callable itself (tests)
    model_dir: Path | None = None
    retry_delay_seconds: int = 1
    batching_window_seconds: float = DEFAULT_BATCHING_WINDOW
    max_seconds: float = 180.0
    pause_seconds: float = 0.1
    log_file: Path | None = None
    report_path: Path | None = None
    region: str = DEFAULT_REGION
    limit: int | None = None  # support messages to send (default: all of them)
    drift_phase: bool = False  # then stream two past windows (stationary, shifted), run drift, evaluate alarms


@contextlib.contextmanager
def _handler_output(log_file: Path | None) -> Iterator[TextIO | None]:
    """Send the handler's stdout (Powertools JSON logs, EMF metrics) to a file, keeping the terminal readable.

    Powertools' Logger binds sys.stdout when the handler module is imported; loggers left pointing at
    the file are pointed back at the terminal when the file closes, so later logging still works.
    """
    if log_file is None:
        yield None
        return
    log_file.parent.mkdir(parents=True, exist_ok=True)
    terminal = sys.stdout
    with log_file.open("w", encoding="utf-8") as fh:
        try:
            with contextlib.redirect_stdout(fh):
                yield fh
        finally:
            _unbind_stream(fh, terminal)


def _unbind_stream(stream: TextIO, replacement: TextIO) -> None:
    loggers = [logging.getLogger()] + [
        lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    for lg in loggers:
        for h in lg.handlers:
            if isinstance(h, logging.StreamHandler) and h.stream is stream:
                h.setStream(replacement)


def _wait_drained(
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


def run_demo(options: DemoOptions, console: Console) -> DemoReport:
    """Run the whole demo and return its report (the caller prints it and chooses the exit code)."""
    started = time.perf_counter()
    apply_offline_environment(os.environ, options.region)
    model_dir = options.model_dir or default_model_dir()
    if options.handler == DEFAULT_HANDLER:
        require_model(model_dir)
    with Emulator() as emulator, _handler_output(options.log_file):
        resources = provision(emulator.endpoint, prefix=options.prefix, region=options.region)
        os.environ.update(resources.lambda_environment(model_dir))
        handler = load_handler(options.handler) if isinstance(options.handler, str) else options.handler
        if options.poison:
            handler = fail_records(handler, [POISON_ID])
        events = demo_events(seed=options.seed, poison=options.poison, limit=options.limit)
        console.print(
            f"moto on [bold]{resources.endpoint}[/]; sending {len(events)} events "
            f"(SQS and the [bold]{resources.input_bus_name}[/] bus) to [bold]{resources.ingest.name}[/]"
        )
        sqs = sqs_client(resources.endpoint, resources.region)
        poller = SqsEventSourcePoller.for_resources(
            resources,
            handler,
            retry_delay_seconds=options.retry_delay_seconds,
            batching_window_seconds=options.batching_window_seconds,
        )
        sent: list[Sent] = []
        stop = threading.Event()
        collector = Collector(resources)
        drain_started = time.perf_counter()
        threads = [
            threading.Thread(
                target=stream_events, args=(resources, events, sent, options.pause_seconds), name="producer"
            ),
            threading.Thread(target=poller.run, args=(stop,), name="poller"),
            threading.Thread(target=collector.run, args=(stop,), name="collector"),
        ]
        progress = Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        with progress:
            task = progress.add_task("events landed", total=len(events), detail="")

            def tick() -> None:
                st = poller.stats
                detail = f"invocations {len(st.invocations)}, record retries {st.failed_records}"
                progress.update(task, completed=len(collector.landings), detail=detail)

            for t in threads:
                t.daemon = True
                t.start()
            drained = _wait_drained(threads[0], sqs, resources, time.monotonic() + options.max_seconds, tick)
            stop.set()
            for t in threads:
                t.join(timeout=30)
            collector.drain()  # whatever landed after the collector's last sweep
            progress.update(task, total=sum(1 for s in sent if s.rejected is None))
            tick()
        drain_seconds = time.perf_counter() - drain_started
        landings = collector.landings
        totals = window_totals(resources)
        phase = None
        if options.drift_phase:
            from pigeonhole_tools.local.drift_phase import run_drift_phase

            phase = run_drift_phase(resources, handler, model_dir, console, log_file=options.log_file)
        report = DemoReport(
            endpoint=resources.endpoint,
            events=events,
            sent=sent,
            accounting=account(sent, landings),
            stats=poller.stats,
            drained=drained,
            runtime_seconds=0.0,
            drain_seconds=drain_seconds,
            log_file=str(options.log_file) if options.log_file else None,
            window_totals=totals,
            drift_phase=phase,
        )
    report.runtime_seconds = time.perf_counter() - started
    report.inference_ms = inference_times(options.log_file)
    if options.report_path is not None:
        options.report_path.parent.mkdir(parents=True, exist_ok=True)
        options.report_path.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    return report
