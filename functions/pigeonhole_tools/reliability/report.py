"""The figures of a fault run and the invariants, as a dict (``--report``) and as a table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table

from pigeonhole.naming import MAX_RECEIVE_COUNT
from pigeonhole_tools.reliability.accounting import PLACES, report_mismatches, units_in_several_windows
from pigeonhole_tools.reliability.run import FaultRunResult


@dataclass(frozen=True)
class Invariant:
    name: str
    held: bool
    detail: str


def invariants(result: FaultRunResult) -> list[Invariant]:
    """What must hold at the end of any fault run (the test asserts each; the CLI prints them)."""
    acc = result.accounting
    windows = acc.window_mismatches(result.windows)
    several = units_in_several_windows(result.windows)
    dead_counted = acc.dead_letters_counted(result.windows)
    dead_miscounted = acc.dead_letter_miscounts(result.windows)
    reports = report_mismatches(result.windows)

    def sample(keys: list[str]) -> str:
        return ", ".join(keys[:5]) + (" …" if len(keys) > 5 else "")

    return [
        Invariant("drained", result.drained, "ingest and feedback queues empty before the time limit"),
        Invariant("nothing lost", not acc.lost, f"{len(acc.lost)} events landed nowhere {sample(acc.lost)}"),
        Invariant(
            "exactly one final place",
            not acc.unexplained_split,
            f"{len(acc.split)} events in more than one of output/review/quarantine/DLQ, of which "
            f"{len(acc.split) - len(acc.unexplained_split)} published before being dead-lettered "
            f"{sample(acc.unexplained_split)}",
        ),
        Invariant("no strays", acc.strays == 0, f"{acc.strays} landings matched no event"),
        Invariant(
            "poison dead-lettered after maxReceiveCount",
            not acc.poison_misplaced,
            f"{len(acc.poison_keys)} poison events, each in the DLQ alone after exactly {MAX_RECEIVE_COUNT} receives"
            + (f"; wrong: {sample(acc.poison_misplaced)}" if acc.poison_misplaced else ""),
        ),
        Invariant(
            "dead letters only after maxReceiveCount",
            not acc.unexpected_dead_letters,
            f"{len(acc.fault_dead_letters)} good events dead-lettered after {MAX_RECEIVE_COUNT} deliveries failed "
            f"by injected faults (redrivable); {len(acc.unexpected_dead_letters)} otherwise "
            f"{sample(acc.unexpected_dead_letters)}",
        ),
        Invariant("routed by content", not acc.misrouted, f"{len(acc.misrouted)} misrouted {sample(acc.misrouted)}"),
        Invariant(
            "window counts = distinct events",
            not windows,
            "n, rev, q equal the distinct events classified, sent to review, quarantined (a dead-lettered event "
            f"counts if a write of an earlier delivery landed: {len(dead_counted)} here)"
            + (f"; expected/got {windows}" if windows else ""),
        ),
        Invariant(
            "each event in one window",
            not several and not dead_miscounted,
            f"{several} units counted in more than one window; {len(dead_miscounted)} dead-lettered events "
            f"counted although never published, or twice {sample(dead_miscounted)}",
        ),
        Invariant(
            "labels counted once",
            result.windows.nl == result.labels_expected and result.feedback_dead_letters == 0,
            f"labelled {result.windows.nl} of {result.labels_expected} events "
            f"({result.labels_sent} label messages); feedback DLQ {result.feedback_dead_letters}",
        ),
        Invariant(
            "drift reports match the windows",
            result.drift_ok and not reports,
            f"run succeeded after {result.drift_attempts} attempt(s); {len(reports)} window(s) disagree",
        ),
        Invariant(
            "duplicates only after a retry",
            not acc.unexplained_duplicates,
            f"{len(acc.duplicated)} events with extra copies, {len(acc.unexplained_duplicates)} unexplained",
        ),
    ]


def to_dict(result: FaultRunResult) -> dict[str, Any]:
    acc = result.accounting
    return {
        "config": result.config.to_dict(),
        "seconds": round(result.seconds, 1),
        "events": {"entered": acc.entered, "rejected_at_entry": result.rejected_at_entry},
        "places": {w: len(acc.keys_in(w)) for w in PLACES},
        "lost": len(acc.lost),
        "split": len(acc.split),
        "strays": acc.strays,
        "poison": len(acc.poison_keys),
        "fault_dead_letters": len(acc.fault_dead_letters),
        "unexpected_dead_letters": acc.unexpected_dead_letters,
        "duplicates": {
            "events": len(acc.duplicated),
            "extra_copies": {w: acc.duplicates_in(w) for w in PLACES},
            "unexplained": len(acc.unexplained_duplicates),
        },
        "windows": {
            "n": result.windows.n,
            "rev": result.windows.rev,
            "q": result.windows.q,
            "nl": result.windows.nl,
            "expected": acc.expected_windows(result.windows),
            "units_in_several_windows": units_in_several_windows(result.windows),
            "dead_letters_counted": len(acc.dead_letters_counted(result.windows)),
            "reports": len(result.windows.reports),
        },
        "labels": {"messages": result.labels_sent, "events": result.labels_expected},
        "drift": {"attempts": result.drift_attempts, "ok": result.drift_ok, "failures": result.drift_failures[:5]},
        "classifier": vars(result.classifier),
        "feedback": vars(result.feedback),
        "faults": result.injection.to_dict(),
        "invariants": {i.name: i.held for i in invariants(result)},
        "anomalies": acc.anomalies(),
    }


def render(result: FaultRunResult, console: Console) -> None:
    data = to_dict(result)
    cfg = result.config
    faults = data["faults"]
    console.print(
        f"[bold]{data['events']['entered']}[/] events at fault rate {cfg.plan.rate:.0%} (seed {cfg.plan.seed}) "
        f"in {data['seconds']} s; {faults['faults']} of {faults['attempts']} AWS attempts failed on purpose "
        f"({', '.join(f'{k} {v}' for k, v in faults['by_kind'].items())}); "
        f"{faults['responses_lost_after_landing']} answers lost after the call landed"
    )
    console.print(
        "landed: "
        + ", ".join(f"{w} {n}" for w, n in data["places"].items())
        + f"; handler invocations {result.classifier.invocations}, record retries {result.classifier.record_failures}"
        + f", whole-batch errors {result.classifier.batch_errors}"
    )
    dup = data["duplicates"]
    console.print(
        f"duplicates: {dup['events']} events with extra copies ("
        + ", ".join(f"{w} +{n}" for w, n in dup["extra_copies"].items() if n)
        + f"), {dup['unexplained']} unexplained"
    )
    table = Table(title="Invariants")
    table.add_column("invariant")
    table.add_column("held")
    table.add_column("detail")
    for inv in invariants(result):
        table.add_row(inv.name, "[green]yes[/]" if inv.held else "[bold red]NO[/]", inv.detail)
    console.print(table)
