"""The rehearsal: two versions behind one emulated alias, a simulated canary interval, a verdict.

Order, as a CodeDeploy canary with a pre-traffic hook runs it: load both versions (a candidate that
cannot load never gets traffic), replay the candidate's golden set (pre-traffic), then send traffic
minute by minute with ``percent`` % of the batches routed to the candidate, evaluate each version's
rollback alarms after every minute, and roll back at the first candidate alarm in ALARM, else promote.

The clock is simulated: the interval is ``minutes`` one-minute steps, each a burst of real traffic
through moto and the poller (seconds of wall time). Every datapoint a step produced, the handler's
EMF and the Lambda metrics of its invocations, is stamped into that step's simulated minute before
it is put into the emulator's CloudWatch, and the alarms are evaluated at the minute's last second.
So periods, evaluation periods and datapoints-to-alarm are the deployed alarms' own, and five
simulated minutes take seconds. The simulated minutes lie in the recent past (never the future),
and the emulator is fresh, so nothing else shares them. Not modelled: EMF ingestion delay and
CloudWatch's evaluation lag (an alarm here sees a minute as soon as it ends).
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.table import Table

from pigeonhole import alarms as defs
from pigeonhole import constants as c
from pigeonhole_tools.local import alarms as la
from pigeonhole_tools.local.canary.judge import (
    DEFAULT_GOLDEN_FLOOR,
    PreTraffic,
    firing,
    pre_traffic,
    rollback_alarms,
    version_evaluator,
)
from pigeonhole_tools.local.canary.versions import (
    CANDIDATE,
    CANDIDATE_EXECUTED_VERSION,
    CURRENT,
    CURRENT_EXECUTED_VERSION,
    ClassifierVersion,
    SplitHandler,
    VersionLoadError,
    load_version,
    manifest_version,
)
from pigeonhole_tools.local.demo.run import _handler_output, require_model
from pigeonhole_tools.local.drift_phase import dataset_path, stationary_pool
from pigeonhole_tools.local.emulator import (
    DEFAULT_REGION,
    Emulator,
    LocalResources,
    apply_offline_environment,
    default_model_dir,
    provision,
    sqs_client,
)
from pigeonhole_tools.local.metrics import Datum, DatumLedger, MetricForwarder, cloudwatch_client, read_emf_lines
from pigeonhole_tools.local.poller import Invocation, SqsEventSourcePoller
from pigeonhole_tools.local.service_metrics import invocation_datums

MINUTE = 60
DEFAULT_PERCENT = c.DEFAULT_CANARY_PERCENT  # infra's InfraConfig.canary_percent
DEFAULT_MINUTES = c.DEFAULT_CANARY_MINUTES  # infra's InfraConfig.canary_minutes
BATCH = 10  # the event source mapping's batch size


class Outcome(StrEnum):
    PROMOTED = "PROMOTED"
    ROLLED_BACK = "ROLLED BACK"


# Exit codes of `pigeonhole local canary` (docs/local.md).
EXIT_PROMOTED = 0
EXIT_ROLLED_BACK_ALARM = 1  # a rollback alarm of the candidate fired during the canary interval
EXIT_CANNOT_RUN = 2  # bad input: a package missing, the same model version twice, ...
EXIT_ROLLED_BACK_PRE_TRAFFIC = 3  # the candidate failed to load or failed the golden check: it got no traffic


class CanaryInputError(ValueError):
    """The rehearsal cannot run as asked (exit 2)."""


def min_events() -> int:
    """Events a version needs in a minute before its rate alarms judge it (the definitions' own guard)."""
    return int(getattr(defs, "CANARY_MIN_EVENTS", defs.MIN_EVENTS))


def default_events_per_minute(percent: int) -> int:
    """Enough full batches a minute that the candidate's share holds `min_events` (the rate alarms' guard:
    with fewer, its review and quarantine rates are not judged at all), and never fewer than the alias
    alarms' 20: a rate over 10 events moves in steps of 10 %, so a good model's ~15 % review share
    would cross a 30 % line in about one minute in twenty by chance alone (binomial, n = 10, p = 0.15)."""
    wanted = max(min_events(), defs.MIN_EVENTS)
    batches = math.ceil(wanted * 100 / (percent * BATCH))
    return BATCH * batches


@dataclass
class CanaryOptions:
    candidate: Path
    current: Path | None = None  # default: $PIGEONHOLE_MODEL_DIR, else layers/model
    percent: int = DEFAULT_PERCENT
    minutes: int = DEFAULT_MINUTES
    events: int | None = None  # total; default minutes * default_events_per_minute(percent)
    pre_traffic: bool = True
    golden_floor: float | None = None  # default: DEFAULT_GOLDEN_FLOOR (the stack's min_golden_accuracy)
    seed: int = 7
    prefix: str = "pigeonhole"
    region: str = DEFAULT_REGION
    log_file: Path = Path(".local/canary-handler.log")
    dataset: Path | None = None  # default: BANKING77's test split if present, else the demo's messages
    max_seconds_per_minute: float = 120.0  # safety net for a stuck poller, not a timing assertion


@dataclass
class MinuteRow:
    """One simulated minute: traffic, the split, and each version's rollback alarms at its end."""

    minute: int  # 1-based
    at: str  # simulated evaluation time
    events: int
    batches: dict[str, int]
    records: dict[str, int]
    results: dict[str, list[la.AlarmResult]]


@dataclass
class CanaryReport:
    current_model: str
    candidate_model: str
    percent: int
    minutes: int
    events_per_minute: int
    source: str
    outcome: Outcome = Outcome.PROMOTED
    exit_code: int = EXIT_PROMOTED
    reason: str = ""
    pre_traffic: PreTraffic | None = None
    rows: list[MinuteRow] = field(default_factory=list)
    decided_by: list[la.AlarmResult] = field(default_factory=list)
    simulated_start: str = ""
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        def result(r: la.AlarmResult) -> dict[str, Any]:
            return {"alarm": r.name, "state": r.state.value, "values": r.values, "reason": r.reason}

        return {
            "outcome": self.outcome.value,
            "exit_code": self.exit_code,
            "reason": self.reason,
            "current": {"model_version": self.current_model, "executed_version": CURRENT_EXECUTED_VERSION},
            "candidate": {"model_version": self.candidate_model, "executed_version": CANDIDATE_EXECUTED_VERSION},
            "percent": self.percent,
            "minutes": self.minutes,
            "events_per_minute": self.events_per_minute,
            "source": self.source,
            "pre_traffic": None if self.pre_traffic is None else vars(self.pre_traffic),
            "decided_by": [result(r) for r in self.decided_by],
            "minutes_run": [
                {
                    "minute": row.minute,
                    "at": row.at,
                    "events": row.events,
                    "batches": row.batches,
                    "records": row.records,
                    "alarms": {role: [result(r) for r in rs] for role, rs in row.results.items()},
                }
                for row in self.rows
            ],
            "simulated_start": self.simulated_start,
            "seconds": round(self.seconds, 2),
            "warnings": self.warnings,
        }


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def restamp(datums: list[Datum], epoch: int) -> list[Datum]:
    """Every datum of one step moved into its simulated minute (order inside a minute does not matter to alarms)."""
    when = datetime.fromtimestamp(epoch, tz=UTC)
    return [replace(d, timestamp=when) for d in datums]


class _LogTail:
    """New complete lines of the handler's log since the last read (the handler writes through `sink`)."""

    def __init__(self, path: Path, sink: IO[str] | None) -> None:
        self._sink = sink
        self._reader = path.open(encoding="utf-8")
        self._partial = ""

    def lines(self) -> list[str]:
        if self._sink is not None:
            self._sink.flush()
        text = self._partial + self._reader.read()
        parts = text.split("\n")
        self._partial = parts.pop()
        return parts

    def close(self) -> None:
        self._reader.close()


def _send(sqs: Any, queue_url: str, bodies: list[str]) -> None:
    for i in range(0, len(bodies), BATCH):
        entries = [{"Id": str(j), "MessageBody": b} for j, b in enumerate(bodies[i : i + BATCH])]
        result = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
        if result.get("Failed"):
            raise RuntimeError(f"SendMessageBatch failed for {len(result['Failed'])} entries")


def _bodies(pool: list[str], count: int, minute: int, rng: random.Random) -> list[str]:
    now = _iso(time.time())
    return [
        json.dumps({"id": f"canary-{minute:02d}-{i:04d}", "time": now, "text": rng.choice(pool)})
        for i in range(1, count + 1)
    ]


def _check_inputs(options: CanaryOptions, current_dir: Path) -> tuple[str, str]:
    if not 1 <= options.percent <= 99:
        raise CanaryInputError("--percent must be within 1..99 (0 is not a canary, 100 is a full shift)")
    if options.minutes < 1:
        raise CanaryInputError("--minutes must be at least 1")
    for path in (current_dir, options.candidate):
        require_model(path)
    current_v, candidate_v = manifest_version(current_dir), manifest_version(options.candidate)
    if current_v is not None and current_v == candidate_v:
        raise CanaryInputError(
            f"the candidate has the current package's model version {current_v!r}: per-version metrics "
            "(ModelVersion) could not tell them apart; build it with another --version"
        )
    return current_v or "?", candidate_v or "?"


def run_canary(options: CanaryOptions, console: Console) -> CanaryReport:
    """Run the whole rehearsal; the caller prints the report and exits with `report.exit_code`."""
    started = time.perf_counter()
    apply_offline_environment(os.environ, options.region)
    current_dir = options.current or default_model_dir()
    current_model, candidate_model = _check_inputs(options, current_dir)
    per_minute = (
        default_events_per_minute(options.percent)
        if options.events is None
        else max(1, math.ceil(options.events / options.minutes))
    )
    pool, source = stationary_pool(dataset_path(options.dataset))
    report = CanaryReport(current_model, candidate_model, options.percent, options.minutes, per_minute, source)
    if per_minute * options.percent // 100 < min_events():
        report.warnings.append(
            f"{per_minute} events a minute give the candidate about {per_minute * options.percent // 100}, fewer "
            f"than the {min_events()} the rate alarms need: its review and quarantine rates are not judged"
        )
    try:
        with (
            Emulator() as emulator,
            _handler_output(options.log_file) as sink,
        ):
            resources = provision(emulator.endpoint, prefix=options.prefix, region=options.region)
            os.environ.update(resources.lambda_environment(current_dir))
            _rehearse(options, resources, report, pool, sink, console)
    finally:
        report.seconds = time.perf_counter() - started
    return report


def _load(options: CanaryOptions, current_dir: Path, report: CanaryReport) -> tuple[ClassifierVersion, ...] | None:
    from pigeonhole.classify import handler as handler_module

    handler_module.reset_for_tests()
    current = load_version(CURRENT, CURRENT_EXECUTED_VERSION, current_dir)  # the serving version must load
    try:
        candidate = load_version(CANDIDATE, CANDIDATE_EXECUTED_VERSION, options.candidate)
    except VersionLoadError as exc:
        report.outcome, report.exit_code = Outcome.ROLLED_BACK, EXIT_ROLLED_BACK_PRE_TRAFFIC
        report.reason = f"the candidate never got traffic: {exc}"
        return None
    if options.pre_traffic:
        floor = DEFAULT_GOLDEN_FLOOR if options.golden_floor is None else options.golden_floor
        report.pre_traffic = pre_traffic(candidate, floor)
        if not report.pre_traffic.passed:
            report.outcome, report.exit_code = Outcome.ROLLED_BACK, EXIT_ROLLED_BACK_PRE_TRAFFIC
            report.reason = f"pre-traffic check failed, the candidate never got traffic: {report.pre_traffic.note}"
            return None
    return current, candidate


def _rehearse(
    options: CanaryOptions,
    resources: LocalResources,
    report: CanaryReport,
    pool: list[str],
    sink: IO[str] | None,
    console: Console,
) -> None:
    current_dir = options.current or default_model_dir()
    versions = _load(options, current_dir, report)
    if versions is None:
        return
    current, candidate = versions
    console.print(
        f"moto on [bold]{resources.endpoint}[/]; alias [bold]{resources.function_name}[/] -> version "
        f"{CURRENT_EXECUTED_VERSION} (model {current.model_version}) and version {CANDIDATE_EXECUTED_VERSION} "
        f"(model {candidate.model_version}) at {options.percent} %"
    )
    if report.pre_traffic is not None:
        console.print(f"pre-traffic: {report.pre_traffic.note}")
    window = int(os.environ.get(c.ENV_WINDOW_SECONDS, c.DEFAULT_WINDOW_SECONDS))
    cloudwatch = cloudwatch_client(resources.endpoint, resources.region)
    forwarder = MetricForwarder(cloudwatch, DatumLedger())
    source = la.CloudWatchSource(cloudwatch, forwarder.ledger)
    evaluators = {v.role: version_evaluator(source, v, resources.names, window) for v in versions}
    split = SplitHandler(current, candidate, options.percent)
    lambda_datums: list[Datum] = []
    batches = {CURRENT: 0, CANDIDATE: 0}
    records = {CURRENT: 0, CANDIDATE: 0}

    def on_invocation(invocation: Invocation) -> None:
        version = split.last or current
        batches[version.role] += 1
        records[version.role] += invocation.records
        lambda_datums.extend(
            invocation_datums(invocation, resources.function_name, executed_version=version.executed_version)
        )

    poller = SqsEventSourcePoller.for_resources(resources, split, on_invocation=on_invocation)
    sqs = sqs_client(resources.endpoint, resources.region)
    rng = random.Random(options.seed)
    tail = _LogTail(options.log_file, sink)
    simulated_start = (int(time.time()) // MINUTE - options.minutes - 1) * MINUTE
    report.simulated_start = _iso(simulated_start)
    try:
        for minute in range(1, options.minutes + 1):
            before_b, before_r = dict(batches), dict(records)
            _send(sqs, resources.ingest.url, _bodies(pool, report.events_per_minute, minute, rng))
            poller.run(until_drained=True, max_seconds=options.max_seconds_per_minute)
            minute_start = simulated_start + (minute - 1) * MINUTE
            emf = read_emf_lines(tail.lines())
            forwarder.put(restamp(emf + lambda_datums, minute_start + MINUTE // 2))
            lambda_datums.clear()
            at = datetime.fromtimestamp(minute_start + MINUTE - 1, tz=UTC)
            row = MinuteRow(
                minute=minute,
                at=_iso(at.timestamp()),
                events=report.events_per_minute,
                batches={k: batches[k] - before_b[k] for k in batches},
                records={k: records[k] - before_r[k] for k in records},
                results={role: evaluator.evaluate(at) for role, evaluator in evaluators.items()},
            )
            report.rows.append(row)
            console.print(_minute_line(row))
            fired = firing(row.results[CANDIDATE])
            if fired:
                report.outcome, report.exit_code = Outcome.ROLLED_BACK, EXIT_ROLLED_BACK_ALARM
                report.decided_by = fired
                names = ", ".join(r.name for r in fired)
                report.reason = (
                    f"version {CANDIDATE_EXECUTED_VERSION} (model {candidate.model_version}): {names} in ALARM "
                    f"at simulated minute {minute} of {options.minutes}"
                )
                return
    finally:
        tail.close()
    judged = len(rollback_alarms(CANDIDATE_EXECUTED_VERSION))
    report.reason = (
        f"none of the {judged} rollback alarms of version {CANDIDATE_EXECUTED_VERSION} "
        f"(model {candidate.model_version}) fired in {options.minutes} simulated minutes"
    )


# -- output ------------------------------------------------------------------------------------------
def _short(result: la.AlarmResult) -> str:
    last = next((v for v in reversed(result.values) if v is not None), None)
    value = "-" if last is None else f"{last:.4g}"
    return f"{result.state.value} ({value})"


def _minute_line(row: MinuteRow) -> str:
    fired = [r.suffix for r in firing(row.results[CANDIDATE])]
    verdict = f"ALARM: {', '.join(fired)}" if fired else "no rollback alarm"
    return (
        f"minute {row.minute} ({row.at}): {row.events} events, batches current {row.batches[CURRENT]} / "
        f"candidate {row.batches[CANDIDATE]} ({row.records[CANDIDATE]} records); candidate: {verdict}"
    )


def render_report(report: CanaryReport, console: Console) -> None:
    """The candidate's rollback alarms per simulated minute, then the verdict and what decided it."""
    for warning in report.warnings:
        console.print(f"[yellow]warning[/]: {warning}")
    if report.rows:
        table = Table(title=f"version {CANDIDATE_EXECUTED_VERSION} (candidate) rollback alarms: state (last value)")
        table.add_column("alarm")
        for row in report.rows:
            table.add_column(f"min {row.minute}")
        for i, first in enumerate(report.rows[0].results[CANDIDATE]):
            table.add_row(first.suffix, *[_short(row.results[CANDIDATE][i]) for row in report.rows])
        console.print(table)
        current_fired = sorted({r.name for row in report.rows for r in firing(row.results[CURRENT])})
        console.print(
            f"current version {CURRENT_EXECUTED_VERSION} (model {report.current_model}): "
            + (f"in ALARM: {', '.join(current_fired)}" if current_fired else "no rollback alarm fired")
        )
    if report.pre_traffic is not None:
        verdict = "passed" if report.pre_traffic.passed else "FAILED"
        console.print(f"pre-traffic golden check: {verdict if report.pre_traffic.ran else 'not run'}")
    colour = "green" if report.outcome == Outcome.PROMOTED else "red"
    console.print(f"[bold {colour}]{report.outcome.value}[/]: {report.reason}")
    for r in report.decided_by:
        console.print(f"  {r.name}: {r.reason}")
    if report.rows:
        traffic = (
            f"simulated clock from {report.simulated_start}, {report.events_per_minute} events a minute from "
            f"{report.source.split(' (')[0]}; "
        )
    else:
        traffic = "no traffic sent; "
    console.print(f"({traffic}{report.seconds:.1f} s wall time; exit {report.exit_code})")
