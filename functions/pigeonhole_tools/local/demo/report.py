"""The demo's report: what ``--report`` writes (``to_dict``) and the summary printed on the terminal."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from pigeonhole_tools.local.demo.accounting import Accounting
from pigeonhole_tools.local.poller import PollerStats, percentile
from pigeonhole_tools.local.samples import DemoEvent
from pigeonhole_tools.local.streaming import Landing, Sent, Where

if TYPE_CHECKING:
    from pigeonhole_tools.local.drift_phase import DriftPhaseReport
    from pigeonhole_tools.local.watch import Evaluation


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
    # The live alarm evaluations around the first part's stream (watch.py) and what they notified.
    alarm_evaluations: list[Evaluation] = field(default_factory=list)
    pages: list[dict[str, Any]] = field(default_factory=list)
    tickets: list[dict[str, Any]] = field(default_factory=list)

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
            "alarms": {
                "evaluations": [
                    {"label": e.label, "at": e.at, "in_alarm": [r.suffix for r in e.results if r.state == "ALARM"]}
                    for e in self.alarm_evaluations
                ],
                "pages": self.pages,
                "tickets": self.tickets,
            },
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
            "route_reasons": dict(Counter(str(r.get("route_reason")) for r in self.results())),
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
    why = Counter(str(r.get("route_reason", "low_confidence")) for r in review)
    table.add_row(
        "review queue",
        str(len(review)),
        f"low confidence ×{why['low_confidence']}, unknown ×{why['unknown']}; "
        f"{off_topic_review}/{off_topic_total} off-topic messages",
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


def _print_alarms(report: DemoReport, console: Console) -> None:
    """The first part's alarms: which went to ALARM, why others are not evaluated, the pages read back."""
    from pigeonhole_tools.local.alarms import notification_line
    from pigeonhole_tools.local.drift_phase import print_not_evaluated

    console.print(
        "[bold]Alarms (pigeonhole.alarms) on the AWS/SQS and AWS/Lambda metrics the local runtime emits, "
        "and on the handler's EMF[/]"
    )
    for ev in report.alarm_evaluations:
        alarmed = [r.suffix for r in ev.results if r.state == "ALARM"]
        evaluated = sum(1 for r in ev.results if r.state != "NOT_EVALUATED")
        console.print(
            f"{ev.label} ({ev.at}): {evaluated} evaluated, in ALARM: {', '.join(alarmed) or 'none'}", highlight=False
        )
    print_not_evaluated(report.alarm_evaluations[-1].results, console)
    console.print("[bold]Read back from the on-call and ticket subscription queues:[/]")
    for message in report.pages + report.tickets:
        console.print(notification_line(message), markup=False, highlight=False)
    if not report.pages and not report.tickets:
        console.print("no alarm notification was published")


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
    if report.alarm_evaluations:
        _print_alarms(report, console)
    if report.drift_phase is not None:
        from pigeonhole_tools.local.drift_phase import render_drift_phase

        render_drift_phase(report.drift_phase, console)
