"""The run: start moto, provision, stream through both entry points, drain, account (then the drift phase)."""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pigeonhole import constants as c
from pigeonhole_tools.local.demo.accounting import account, inference_times, window_totals
from pigeonhole_tools.local.demo.report import DemoReport
from pigeonhole_tools.local.emulator import (
    DEFAULT_BATCHING_WINDOW,
    DEFAULT_REGION,
    Emulator,
    LocalResources,
    apply_offline_environment,
    default_model_dir,
    provision,
    sqs_client,
)
from pigeonhole_tools.local.faults import fail_records
from pigeonhole_tools.local.poller import Handler, SqsEventSourcePoller
from pigeonhole_tools.local.samples import POISON_ID, demo_events
from pigeonhole_tools.local.streaming import Collector, Sent, stream_events, wait_drained
from pigeonhole_tools.local.watch import LocalWatch

if TYPE_CHECKING:
    from pigeonhole_tools.local.drift_phase import DriftPhaseReport


DEFAULT_HANDLER = "pigeonhole.classify.handler:handler"


class ModelMissingError(RuntimeError):
    """The classifier needs a model package and there is none where the runtime looks."""


def require_model(model_dir: Path) -> None:
    """Fail before starting anything if the real handler would have no model to load."""
    if not (model_dir / c.MANIFEST_FILE).is_file():
        raise ModelMissingError(
            f"no model package at {model_dir} ({c.MANIFEST_FILE} missing): build it first "
            f"(see `pigeonhole model --help`) or pass --model-dir / set {c.ENV_MODEL_DIR}"
        )


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


def _drift_phase(
    options: DemoOptions,
    resources: LocalResources,
    handler: Handler,
    model_dir: Path,
    console: Console,
    watch: LocalWatch,
) -> DriftPhaseReport | None:
    if not options.drift_phase:
        return None
    from pigeonhole_tools.local.drift_phase import run_drift_phase

    return run_drift_phase(resources, handler, model_dir, console, log_file=options.log_file, watch=watch)


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
        # CloudWatch's part: AWS/Lambda and AWS/SQS metrics from the poller and the queues, alarms evaluated
        # before the stream (every alarm OK, as in a running account) and after it (the poison event's page).
        watch = LocalWatch.start(resources, model_dir)
        watch.evaluate("before")
        poller = SqsEventSourcePoller.for_resources(
            resources,
            handler,
            retry_delay_seconds=options.retry_delay_seconds,
            batching_window_seconds=options.batching_window_seconds,
            on_invocation=watch.service.lambda_metrics.record,
        )
        sent: list[Sent] = []
        stop = threading.Event()
        collector = Collector(resources, defer_dead_letters=True)  # the DLQ alarm must see the poison event
        drain_started = time.perf_counter()
        threads = [
            threading.Thread(
                target=stream_events, args=(resources, events, sent, options.pause_seconds), name="producer"
            ),
            threading.Thread(target=poller.run, args=(stop,), name="poller"),
            threading.Thread(target=collector.run, args=(stop,), name="collector"),
            threading.Thread(target=watch.service.run, args=(stop,), name="service-metrics"),
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
            drained = wait_drained(threads[0], sqs, resources, time.monotonic() + options.max_seconds, tick)
            stop.set()
            for t in threads:
                t.join(timeout=30)
            watch.evaluate("after stream")  # before the DLQs are read (and emptied) for the accounting
            collector.drain()  # whatever landed after the collector's last sweep, and the dead letters
            progress.update(task, total=sum(1 for s in sent if s.rejected is None))
            tick()
        drain_seconds = time.perf_counter() - drain_started
        first_evaluations, pages, tickets = list(watch.evaluations), list(watch.pages), list(watch.tickets)
        landings = collector.landings
        totals = window_totals(resources)
        phase = _drift_phase(options, resources, handler, model_dir, console, watch)
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
            alarm_evaluations=first_evaluations,
            pages=pages,
            tickets=tickets,
        )
    report.runtime_seconds = time.perf_counter() - started
    report.inference_ms = inference_times(options.log_file)
    if options.report_path is not None:
        options.report_path.parent.mkdir(parents=True, exist_ok=True)
        options.report_path.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    return report
