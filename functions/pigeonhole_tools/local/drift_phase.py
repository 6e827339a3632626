"""The demo's second phase: the stream shifts, the drift function judges two windows, an alarm pages.

Events are sent with event times in two past drift windows, through the real poller and handler (so
the real window recorder counts them): window 1 is stationary (drawn from the BANKING77 test set when
`../shared/datasets/banking77/test.csv` is present, else from the project's own demo messages), window 2
is shifted (off-domain text from the project's generator, mixed into the same stationary draw). Then
`run_drift` runs as the schedule would, once after each window closes; its metrics and the handler's
EMF metrics are forwarded to the emulator's CloudWatch; the shared alarm definitions are evaluated
after each run and at the end; notifications are read back from the on-call and ticket queues.
"""

from __future__ import annotations

import csv
import json
import os
import random
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger
from rich.console import Console
from rich.table import Table

from pigeonhole import constants as c
from pigeonhole import metrics_catalog as mc
from pigeonhole.adapters.dynamodb import DynamoDBAdapter
from pigeonhole.drift.service import DriftConfig, MetricPoint, run_drift
from pigeonhole.model.manifest import load_manifest
from pigeonhole_tools.local import alarms as local_alarms
from pigeonhole_tools.local.emulator import LocalResources, dynamodb_client, sqs_client
from pigeonhole_tools.local.metrics import MetricForwarder, cloudwatch_client
from pigeonhole_tools.local.poller import Handler, SqsEventSourcePoller
from pigeonhole_tools.local.samples import OFF_TOPIC, DemoEvent, load_messages
from pigeonhole_tools.local.streaming import Collector, Sent, stream_events, wait_drained
from pigeonhole_tools.local.watch import Evaluation, LocalWatch
from pigeonhole_tools.monitoring.sandbox import fast_transactions
from pigeonhole_tools.monitoring.synthetic import off_domain_texts
from pigeonhole_tools.monitoring.window_report import load_rows, render_table

# Window sizes, measured (docs/local.md). A stationary draw of n events over 77 classes has sampling
# noise in its class mix: PSI median 0.165 at n = 500 (1-2 % of windows page, ~all warn), 0.08 at 1000;
# Jensen-Shannon distance median 0.119 at 1000 (98 % warn at the 0.1 threshold), 0.096 at 1500 (32 %),
# 0.082 at 2000 (0.3 %). So the stationary window gets 2000 events. The shifted window pages by a wide
# margin (confidence and feature PSI > 2), so 500 events are enough there.
DEFAULT_STATIONARY_EVENTS = 2000
DEFAULT_SHIFTED_EVENTS = 500
DEFAULT_SHIFTED_SHARE = 0.6  # share of off-domain text in the shifted window
FIRST_PART_LOOKBACK_SECONDS = 15 * 60  # the first part's event times reach 10 min back; 5 min margin
DATASET_ENV = "PIGEONHOLE_DEMO_DATASET"
DATASET_RELATIVE = Path("..") / "shared" / "datasets" / "banking77" / "test.csv"


@dataclass
class DriftPhaseOptions:
    stationary_events: int = DEFAULT_STATIONARY_EVENTS
    shifted_events: int = DEFAULT_SHIFTED_EVENTS
    shifted_share: float = DEFAULT_SHIFTED_SHARE
    seed: int = 11
    dataset: Path | None = None  # default: $PIGEONHOLE_DEMO_DATASET ("none": fallback), else ../shared/datasets/...
    max_seconds: float = 300.0
    pause_seconds: float = 0.02


@dataclass
class DriftPhaseReport:
    source: str
    fallback: bool  # no dataset: the "stationary" texts are the demo's own, not distributed like the baseline
    windows: list[tuple[str, str, int]]  # (window start, kind, events sent)
    sent: int = 0
    landed: int = 0
    drained: bool = False
    stream_seconds: float = 0.0
    seconds: float = 0.0
    forwarded: int = 0
    drift: list[dict[str, Any]] = field(default_factory=list)  # per window: start, severity, events
    rows: list[Any] = field(default_factory=list)  # window_report.WindowRow
    evaluations: list[Evaluation] = field(default_factory=list)
    pages: list[dict[str, Any]] = field(default_factory=list)
    tickets: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.drained and self.landed == self.sent

    def severity_of(self, kind: str) -> str | None:
        starts = {start for start, k, _ in self.windows if k == kind}
        return next((d["severity"] for d in self.drift if d["window"] in starts), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "fallback": self.fallback,
            "windows": [{"start": s, "kind": k, "events": n} for s, k, n in self.windows],
            "sent": self.sent,
            "landed": self.landed,
            "stream_seconds": round(self.stream_seconds, 2),
            "seconds": round(self.seconds, 2),
            "metrics_forwarded": self.forwarded,
            "drift": self.drift,
            "pages": self.pages,
            "tickets": self.tickets,
        }


# -- the stream --------------------------------------------------------------------------------------
def dataset_path(explicit: Path | None = None) -> Path | None:
    """BANKING77's test split if this machine has it (never copied into the repo), else None."""
    setting = os.environ.get(DATASET_ENV)
    if setting == "none":  # force the fallback (to measure it)
        return None
    candidates = [explicit] if explicit else []
    if setting:
        candidates.append(Path(setting))
    repo = Path(__file__).resolve().parents[3]
    candidates += [Path.cwd() / DATASET_RELATIVE, repo / DATASET_RELATIVE]
    return next((p for p in candidates if p is not None and p.is_file()), None)


def stationary_pool(path: Path | None) -> tuple[list[str], str]:
    """Texts to draw the stationary stream from, and where they came from.

    The model's drift baseline was computed on BANKING77's test split, so a draw from it is stationary
    with respect to the baseline; the fallback (the demo's own messages) is not, and pages too.
    """
    if path is not None:
        with path.open(encoding="utf-8", newline="") as fh:
            texts = [row["text"] for row in csv.DictReader(fh) if row.get("text")]
        if texts:
            return texts, f"BANKING77 test split ({path}, {len(texts)} texts, drawn with replacement)"
    texts = [m["text"] for m in load_messages() if m["topic"] != OFF_TOPIC]
    return texts, f"the demo's own banking messages ({len(texts)} texts, drawn with replacement; dataset absent)"


def pool_is_fallback(source: str) -> bool:
    return not source.startswith("BANKING77")


def window_events(
    start: int, window_seconds: int, texts: Sequence[str], tag: str, rng: random.Random
) -> list[DemoEvent]:
    """One event per text, with event times spread over the window, in time order (ids `drift-<tag>-NNNN`)."""
    times = sorted(start + rng.uniform(0, window_seconds - 1) for _ in texts)
    out = []
    for i, (text, t) in enumerate(zip(texts, times, strict=True), start=1):
        key = f"drift-{tag}-{i:04d}"
        when = datetime.fromtimestamp(t, tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        body = json.dumps({"id": key, "time": when, "text": text})
        out.append(DemoEvent(key=key, kind="valid", via="queue", body=body, topic=tag))
    return out


def verdict_reasons(body: Mapping[str, Any]) -> list[str]:
    """`signal: reason` for every signal of a drift report that warned or paged (baseline, then reference)."""
    out: list[str] = []
    for group, tag in (("signals", "baseline"), ("reference_signals", "reference")):
        for name, signal in (body.get(group) or {}).items():
            if isinstance(signal, Mapping) and signal.get("severity") in ("warn", "page"):
                reasons = [str(r) for r in signal.get("reasons") or []]
                out.append(f"{tag} {name} {signal['severity']}: {reasons[0] if reasons else '?'}")
    return out


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# -- the phase ---------------------------------------------------------------------------------------
def plan_windows(now: datetime, window_seconds: int) -> tuple[int, int]:
    """Starts of the two past windows: both closed, and older than every event of the demo's first part
    (whose event times reach back `samples.demo_events`' 10 minutes), so no other event lands in them."""
    w1 = (int(now.timestamp()) - FIRST_PART_LOOKBACK_SECONDS) // window_seconds * window_seconds - 2 * window_seconds
    return w1, w1 + window_seconds


def build_events(
    w1: int, w2: int, window_seconds: int, opts: DriftPhaseOptions, pool: Sequence[str]
) -> tuple[list[DemoEvent], int]:
    """Window 1: a stationary draw; window 2: off-domain text mixed into the same draw. Returns (events, off-domain)."""
    rng = random.Random(opts.seed)
    stationary = [rng.choice(pool) for _ in range(opts.stationary_events)]
    off_domain = round(opts.shifted_events * opts.shifted_share)
    shifted = off_domain_texts(off_domain, seed=opts.seed) + [
        rng.choice(pool) for _ in range(opts.shifted_events - off_domain)
    ]
    rng.shuffle(shifted)
    events = window_events(w1, window_seconds, stationary, "w1", rng) + window_events(
        w2, window_seconds, shifted, "w2", rng
    )
    return events, off_domain


def _stream(
    resources: LocalResources,
    handler: Handler,
    events: Sequence[DemoEvent],
    opts: DriftPhaseOptions,
    console: Console,
    report: DriftPhaseReport,
    watch: LocalWatch | None = None,
) -> None:
    """Producer, poller (the event source mapping) and collector, as in the first part, until drained."""
    sqs = sqs_client(resources.endpoint, resources.region)
    sent: list[Sent] = []
    stop = threading.Event()
    collector = Collector(resources)
    record = watch.service.lambda_metrics.record if watch is not None else None
    poller = SqsEventSourcePoller.for_resources(resources, handler, retry_delay_seconds=1, on_invocation=record)
    threads = [
        threading.Thread(
            target=stream_events, args=(resources, events, sent, opts.pause_seconds), name="drift-producer"
        ),
        threading.Thread(target=poller.run, args=(stop,), name="drift-poller"),
        threading.Thread(target=collector.run, args=(stop,), name="drift-collector"),
    ]
    if watch is not None:
        threads.append(threading.Thread(target=watch.service.run, args=(stop,), name="drift-service-metrics"))
    started = time.perf_counter()
    for t in threads:
        t.daemon = True
        t.start()
    with console.status("streaming the drift phase") as status:

        def tick() -> None:
            status.update(f"drift phase: {len(collector.landings)}/{len(events)} events landed")

        report.drained = wait_drained(threads[0], sqs, resources, time.monotonic() + opts.max_seconds, tick)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    collector.drain()
    report.stream_seconds = time.perf_counter() - started
    report.sent = sum(1 for s in sent if s.rejected is None)
    report.landed = len(collector.landings)


def run_drift_phase(
    resources: LocalResources,
    handler: Handler,
    model_dir: Path,
    console: Console,
    *,
    options: DriftPhaseOptions | None = None,
    log_file: Path | None = None,
    watch: LocalWatch | None = None,
) -> DriftPhaseReport:
    """Stream two past windows (stationary, then shifted), judge them, forward metrics, evaluate alarms.

    With the demo's `watch`, its topics, forwarder and live alarm states are used: the past drift runs are
    judged by a replay evaluator, the final evaluation (now) by the live one, so an alarm already in ALARM
    (the ingest DLQ) does not page twice."""
    opts = options or DriftPhaseOptions()
    started = time.perf_counter()
    ws = int(os.environ.get(c.ENV_WINDOW_SECONDS, c.DEFAULT_WINDOW_SECONDS))
    grace = int(os.environ.get(c.ENV_DRIFT_GRACE_SECONDS, c.DEFAULT_DRIFT_GRACE_SECONDS))
    w1, w2 = plan_windows(datetime.now(UTC), ws)
    pool, source = stationary_pool(dataset_path(opts.dataset))
    events, off_domain = build_events(w1, w2, ws, opts, pool)
    report = DriftPhaseReport(
        source=source,
        fallback=pool_is_fallback(source),
        windows=[(_iso(w1), "stationary", opts.stationary_events), (_iso(w2), "shifted", opts.shifted_events)],
    )
    console.print(
        f"\n[bold]Drift phase[/]: {opts.stationary_events} stationary events in window {_iso(w1)}, then "
        f"{opts.shifted_events} shifted ones ({off_domain} off-domain) in window {_iso(w2)}; "
        f"stationary texts: {source}"
    )
    sqs = sqs_client(resources.endpoint, resources.region)
    sns = local_alarms.sns_client(resources.endpoint, resources.region)
    already_pages = already_tickets = 0
    if watch is None:
        topics = local_alarms.provision_alarm_topics(sns, sqs, resources.names)  # before anything can alarm
    else:
        topics = watch.topics
        watch.read_notifications()  # whatever the first part left, so the phase reports only its own
        already_pages, already_tickets = len(watch.pages), len(watch.tickets)
    # moto snapshots the whole table once per *item* of a transaction (50 per batch of markers): with a
    # few thousand markers that grows quadratic and, past the client's read timeout, a retried
    # transaction races the first. The drift harness's patch (one snapshot per table) fixes both here,
    # where the moto server runs in this process.
    with fast_transactions():
        _stream(resources, handler, events, opts, console, report, watch)

    # The handler's EMF into CloudWatch (flushed first: stdout is the log file during the demo) ...
    cloudwatch = cloudwatch_client(resources.endpoint, resources.region)
    forwarder = MetricForwarder(cloudwatch) if watch is None else watch.forwarder
    forwarded_before = forwarder.sent
    sys.stdout.flush()
    if log_file is not None:
        forwarder.put_log(log_file)
    # ... then the drift schedule: one run after each window closes, each followed by an alarm evaluation.
    manifest = load_manifest(model_dir)
    store = DynamoDBAdapter(dynamodb_client(resources.endpoint, resources.region))
    evaluator = (
        local_alarms.LocalAlarms(
            local_alarms.CloudWatchSource(cloudwatch),
            local_alarms.local_bindings(resources.names, manifest.version),
            prefix=resources.names.prefix,
            window_seconds=ws,
            notifier=local_alarms.SnsNotifier(sns, topics),
        )
        if watch is None
        else watch.replay_evaluator()
    )
    config = DriftConfig(window_seconds=ws, grace_seconds=grace)
    logger = Logger(service=mc.SERVICE_DRIFT)  # bound to the current stdout: the handler log file
    for label, run_at in (("w1 run", w1 + ws + grace), ("w2 run", w2 + ws + grace)):
        at = datetime.fromtimestamp(run_at, tz=UTC)

        def emit(points: Sequence[MetricPoint], at: datetime = at) -> None:
            forwarder.put_points(points, at)

        run = run_drift(
            at,
            store=store,
            manifest=manifest,
            windows_table=resources.windows_table,
            config=config,
            logger=logger,
            emit=emit,
        )
        report.drift.extend(
            {"window": w.window_start, "severity": w.severity, "events": w.events, "why": verdict_reasons(w.report)}
            for w in run.windows
        )
        report.evaluations.append(Evaluation(f"drift {label}", _iso(run_at), evaluator.evaluate(at)))
    end = datetime.now(UTC)
    if watch is None:
        report.evaluations.append(Evaluation("end", _iso(int(end.timestamp())), evaluator.evaluate(end)))
        report.pages = local_alarms.read_notifications(sqs, topics.oncall_queue_url)
        report.tickets = local_alarms.read_notifications(sqs, topics.ticket_queue_url)
    else:
        report.evaluations.append(watch.evaluate("end", end))
        report.pages = watch.pages[already_pages:]
        report.tickets = watch.tickets[already_tickets:]
    report.forwarded = forwarder.sent - forwarded_before
    report.rows = load_rows(store, resources.windows_table, manifest.version)
    report.seconds = time.perf_counter() - started
    return report


# -- printing ----------------------------------------------------------------------------------------
def _alarm_table(report: DriftPhaseReport) -> Table:
    """States of the locally evaluated alarms (name = `<prefix>-<suffix>`) at each evaluation."""
    table = Table(title="Alarms from pigeonhole.alarms, evaluated locally", header_style="bold")
    table.add_column("alarm (suffix)", no_wrap=True)
    table.add_column("sev")
    for ev in report.evaluations:
        table.add_column(f"{ev.label}\n{ev.at[11:16]}Z")
    colours = {"ALARM": "bold red", "OK": "green", "INSUFFICIENT_DATA": "yellow"}
    first = report.evaluations[0].results if report.evaluations else []
    for i, r in enumerate(first):
        if r.state == local_alarms.State.NOT_EVALUATED:
            continue
        cells = [
            f"[{colours.get(ev.results[i].state.value, '')}]{ev.results[i].state.value}[/]" for ev in report.evaluations
        ]
        table.add_row(r.suffix, r.severity.value, *cells)
    return table


def print_not_evaluated(results: Sequence[local_alarms.AlarmResult], console: Console) -> None:
    """`not evaluated locally: <reason>: a, b` per reason."""
    by_reason: dict[str, list[str]] = {}
    for r in results:
        if r.state == local_alarms.State.NOT_EVALUATED:
            by_reason.setdefault(r.reason, []).append(r.suffix)
    for reason, suffixes in by_reason.items():
        head = reason if reason.startswith("not evaluated locally") else f"not evaluated locally ({reason})"
        console.print(f"{head}: {', '.join(suffixes)}", highlight=False, markup=False)


def render_drift_phase(report: DriftPhaseReport, console: Console) -> None:
    """The per-window drift table, the alarm states, then the notifications read back from the queues."""
    kinds = {start: kind for start, kind, _ in report.windows}
    rows = [r for r in report.rows if r.window_start in kinds]
    console.print(render_table(rows, "Drift reports of the phase's windows (pigeonhole drift report)"))
    why = {d["window"]: d.get("why") or [] for d in report.drift}
    for start, kind, n in report.windows:
        console.print(f"window {start}: {kind}, {n} events sent -> drift verdict {report.severity_of(kind)}")
        for reason in [r for r in why.get(start, []) if r.startswith("baseline")]:  # all of them: --report
            console.print(f"    {reason}", markup=False, highlight=False)
    if report.fallback:
        console.print(
            "[yellow]No BANKING77 test split here: the 'stationary' window was drawn from the demo's own "
            "messages, which are not distributed like the model's baseline (longer texts, another class mix), "
            f"so it is expected to page as well. Set {DATASET_ENV} to test.csv for the real comparison.[/]"
        )
    console.print(_alarm_table(report))
    last = report.evaluations[-1].results if report.evaluations else []
    print_not_evaluated(last, console)
    console.print("[bold]Read back from the on-call and ticket subscription queues:[/]")
    for message in report.pages + report.tickets:
        console.print(local_alarms.notification_line(message), markup=False, highlight=False)
    if not report.pages and not report.tickets:
        console.print("no alarm notification was published")
    console.print(
        f"drift phase: {report.landed}/{report.sent} events landed, {report.forwarded} metric datums forwarded "
        f"to CloudWatch, {report.stream_seconds:.1f} s streaming, {report.seconds:.1f} s in all"
    )
