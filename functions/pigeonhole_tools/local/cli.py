"""`pigeonhole local ...`: the demo, a long-running local system, and a way to drop events into it."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console

from pigeonhole import constants as c
from pigeonhole_tools.local.emulator import (
    DEFAULT_BATCHING_WINDOW,
    DEFAULT_PORT,
    DEFAULT_REGION,
    DEFAULT_VISIBILITY_TIMEOUT,
    LOOPBACK,
    Emulator,
    apply_offline_environment,
    default_model_dir,
    provision,
)

local_app = typer.Typer(
    help="Run the whole flow on this machine: moto on loopback plays AWS, a poller plays Lambda.",
    no_args_is_help=True,
)

PrefixOpt = Annotated[str, typer.Option(help="Resource name prefix (ResourceNames); one prefix = one system.")]
HandlerOpt = Annotated[str, typer.Option(help="The Lambda handler to run, as module:function.")]
ModelDirOpt = Annotated[
    Path | None, typer.Option(help="Model package directory (default: $PIGEONHOLE_MODEL_DIR, else layers/model).")
]
WindowOpt = Annotated[
    float, typer.Option(min=0, help="The event source mapping's batching window in seconds (infra: 1).")
]
RetryOpt = Annotated[
    int,
    typer.Option(
        min=0,
        help="Seconds before a failed record is visible again (emulation shortcut; AWS waits the visibility timeout).",
    ),
]


class Via(StrEnum):
    queue = "queue"
    bus = "bus"


def _console() -> Console:
    # Bound to the terminal now: during a run the handler's stdout (logs, EMF) is redirected to a file.
    return Console(file=sys.stdout)


@local_app.command()
def demo(
    prefix: PrefixOpt = "pigeonhole",
    handler: HandlerOpt = "pigeonhole.classify.handler:handler",
    model_dir: ModelDirOpt = None,
    seed: Annotated[int, typer.Option(help="Shuffle seed for the sample stream.")] = 7,
    poison: Annotated[bool, typer.Option(help="Inject one event that fails every time, to show the DLQ.")] = True,
    retry_delay: RetryOpt = 1,
    batching_window: WindowOpt = DEFAULT_BATCHING_WINDOW,
    max_seconds: Annotated[float, typer.Option(help="Give up if the queue has not drained by then.")] = 180.0,
    log_file: Annotated[Path, typer.Option(help="Where the handler's JSON logs and EMF metrics go.")] = Path(
        ".local/demo-handler.log"
    ),
    report: Annotated[Path | None, typer.Option(help="Also write the summary as JSON here.")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Send only this many support messages.")] = None,
    drift_phase: Annotated[
        bool, typer.Option(help="Then shift the stream over two past windows, run drift, evaluate alarms.")
    ] = True,
) -> None:
    """Stream ~220 sample events through the local system and account for every one of them."""
    from pigeonhole_tools.local.demo import DemoOptions, ModelMissingError, render, run_demo

    console = _console()
    options = DemoOptions(
        prefix=prefix,
        seed=seed,
        poison=poison,
        handler=handler,
        model_dir=model_dir,
        retry_delay_seconds=retry_delay,
        batching_window_seconds=batching_window,
        max_seconds=max_seconds,
        log_file=log_file,
        report_path=report,
        limit=limit,
        drift_phase=drift_phase,
    )
    try:
        result = run_demo(options, console)
    except ModelMissingError as exc:
        console.print(f"[bold red]{exc}[/]")
        raise typer.Exit(2) from exc
    render(result, console)
    raise typer.Exit(0 if result.ok else 1)


@local_app.command()
def up(
    port: Annotated[
        int, typer.Option(min=0, max=65535, help=f"Port on {LOOPBACK} (0 = any free port).")
    ] = DEFAULT_PORT,
    prefix: PrefixOpt = "pigeonhole",
    handler: HandlerOpt = "pigeonhole.classify.handler:handler",
    model_dir: ModelDirOpt = None,
    retry_delay: RetryOpt = 1,
    batching_window: WindowOpt = DEFAULT_BATCHING_WINDOW,
    visibility_timeout: Annotated[int, typer.Option(min=1, help="Ingest queue visibility timeout.")] = (
        DEFAULT_VISIBILITY_TIMEOUT
    ),
    tail: Annotated[bool, typer.Option(help="Print (and consume) results as they land.")] = True,
    handler_log: Annotated[Path, typer.Option(help="Where the handler's JSON logs and EMF metrics go.")] = Path(
        ".local/up-handler.log"
    ),
) -> None:
    """Keep moto and the poller running; print the endpoint, ready-made AWS CLI commands and each result."""
    from pigeonhole_tools.local.demo import DEFAULT_HANDLER, ModelMissingError, load_handler, require_model
    from pigeonhole_tools.local.live import banner, print_commands, print_invocation, tail_outputs
    from pigeonhole_tools.local.poller import SqsEventSourcePoller

    console = _console()
    apply_offline_environment(os.environ, DEFAULT_REGION)
    model = model_dir or default_model_dir()
    if handler == DEFAULT_HANDLER:
        try:
            require_model(model)
        except ModelMissingError as exc:
            console.print(f"[bold red]{exc}[/]")
            raise typer.Exit(2) from exc
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    handler_log.parent.mkdir(parents=True, exist_ok=True)
    with (
        Emulator(port) as emulator,
        handler_log.open("a", encoding="utf-8") as log_fh,
        contextlib.redirect_stdout(log_fh),
    ):
        resources = provision(emulator.endpoint, prefix=prefix, visibility_timeout=visibility_timeout)
        os.environ.update(resources.lambda_environment(model))
        poller = SqsEventSourcePoller.for_resources(
            resources,
            load_handler(handler),
            retry_delay_seconds=retry_delay,
            batching_window_seconds=batching_window,
            on_invocation=print_invocation(console),
        )
        console.print(banner(resources))
        print_commands(resources, console)
        console.print(f"handler logs: {handler_log}")
        threads = [threading.Thread(target=poller.run, args=(stop,), name="poller", daemon=True)]
        if tail:
            threads.append(
                threading.Thread(target=tail_outputs, args=(resources, console, stop), name="tail", daemon=True)
            )
        for t in threads:
            t.start()
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            stop.set()
        console.print("stopping…")
        for t in threads:
            t.join(timeout=10)
    console.print(f"stopped; {len(poller.stats.invocations)} invocations, {poller.stats.records} records")


@local_app.command()
def deploy(
    port: Annotated[
        int, typer.Option(min=0, max=65535, help=f"Port on {LOOPBACK} for a new moto server (0 = any free port).")
    ] = 0,
    endpoint: Annotated[
        str | None, typer.Option(help="Use this running moto server (e.g. `local up`'s) instead of starting one.")
    ] = None,
    prefix: PrefixOpt = "rehearsal",
    model_dir: ModelDirOpt = None,
    update_batch_size: Annotated[
        int, typer.Option(min=0, max=10, help="Then update the stack with this batch size (0: no update).")
    ] = 5,
    delete: Annotated[bool, typer.Option(help="Delete the stack at the end.")] = True,
    outdir: Annotated[Path, typer.Option(help="Where the synthesized cloud assemblies go.")] = Path(".local/rehearsal"),
    handler_log: Annotated[Path, typer.Option(help="Where the handler's JSON logs and EMF metrics go.")] = Path(
        ".local/rehearsal-handler.log"
    ),
) -> None:
    """Deploy the synthesized CloudFormation template into moto's CloudFormation and check it (docs/local.md)."""
    from pigeonhole_tools.local.rehearsal.run import render_report, run_rehearsal
    from pigeonhole_tools.local.rehearsal.stack import RehearsalError
    from pigeonhole_tools.local.rehearsal.template import MotoVersionError

    console = _console()
    apply_offline_environment(os.environ, DEFAULT_REGION)
    model = model_dir or default_model_dir()
    update = {"batch_size": update_batch_size} if update_batch_size else None
    handler_log.parent.mkdir(parents=True, exist_ok=True)
    try:
        with contextlib.ExitStack() as stack:
            url = endpoint or stack.enter_context(Emulator(port)).endpoint
            console.print(f"moto endpoint: {url}; synthesizing the CDK app (bundling skipped)…")
            console.print(f"handler logs: {handler_log}")
            log_fh = stack.enter_context(handler_log.open("a", encoding="utf-8"))
            stack.enter_context(contextlib.redirect_stdout(log_fh))
            report = run_rehearsal(url, prefix=prefix, model_dir=model, outdir=outdir, update=update, delete=delete)
    except (RehearsalError, MotoVersionError, ValueError) as exc:
        console.print(f"[bold red]rehearsal failed[/]: {exc}")
        raise typer.Exit(1) from exc
    render_report(report, console)
    raise typer.Exit(0 if report.ok else 1)


@local_app.command()
def canary(
    candidate: Annotated[Path, typer.Option(help="The candidate model package directory (the new version).")],
    current: Annotated[
        Path | None,
        typer.Option(help="The serving package (default: $PIGEONHOLE_MODEL_DIR, else layers/model)."),
    ] = None,
    percent: Annotated[
        int, typer.Option(min=1, max=99, help="Share of batches routed to the candidate (infra: canary_percent).")
    ] = c.DEFAULT_CANARY_PERCENT,
    minutes: Annotated[
        int, typer.Option(min=1, max=60, help="Simulated canary interval in minutes (infra: canary_minutes).")
    ] = c.DEFAULT_CANARY_MINUTES,
    events: Annotated[
        int | None,
        typer.Option(min=1, help="Events in total (default: enough that the candidate gets 20 a minute)."),
    ] = None,
    pre_traffic: Annotated[
        bool, typer.Option(help="Replay the candidate's golden set before it gets traffic (the pre-traffic hook).")
    ] = True,
    golden_floor: Annotated[
        float | None,
        typer.Option(min=0.0, max=1.0, help="Golden accuracy floor (infra's min_golden_accuracy)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for the texts drawn.")] = 7,
    log_file: Annotated[Path, typer.Option(help="Where the handler's JSON logs and EMF metrics go.")] = Path(
        ".local/canary-handler.log"
    ),
    report: Annotated[Path | None, typer.Option(help="Also write the report as JSON here.")] = None,
) -> None:
    """Rehearse a canary deploy: both versions behind one alias, per-version rollback alarms, PROMOTED or ROLLED BACK.

    Exit 0: promoted; 1: rolled back by a rollback alarm; 3: rolled back before traffic (load or golden
    check); 2: could not run.
    """
    import json

    from pigeonhole_tools.local.canary import CanaryOptions, render_report, run_canary
    from pigeonhole_tools.local.canary.run import EXIT_CANNOT_RUN, CanaryInputError
    from pigeonhole_tools.local.demo import ModelMissingError

    console = _console()
    options = CanaryOptions(
        candidate=candidate,
        current=current,
        percent=percent,
        minutes=minutes,
        events=events,
        pre_traffic=pre_traffic,
        golden_floor=golden_floor,
        seed=seed,
        log_file=log_file,
    )
    try:
        result = run_canary(options, console)
    except (ModelMissingError, CanaryInputError) as exc:
        console.print(f"[bold red]{exc}[/]")
        raise typer.Exit(EXIT_CANNOT_RUN) from exc
    render_report(result, console)
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
    raise typer.Exit(result.exit_code)


@local_app.command()
def send(
    text: Annotated[str | None, typer.Option(help="The support message (builds a valid event around it).")] = None,
    endpoint: Annotated[
        str, typer.Option(help="The moto endpoint of `local up`.")
    ] = f"http://{LOOPBACK}:{DEFAULT_PORT}",
    via: Annotated[Via, typer.Option(help="queue: SQS SendMessage; bus: PutEvents on the input bus.")] = Via.queue,
    event_id: Annotated[str | None, typer.Option("--id", help="Event id (default: a fresh cli-… id).")] = None,
    body: Annotated[str | None, typer.Option(help="Send this raw body instead (e.g. to try an invalid event).")] = None,
    prefix: PrefixOpt = "pigeonhole",
) -> None:
    """Drop one event into a running local system (`pigeonhole local up`)."""
    import json

    from pigeonhole_tools.local.live import example_event, send_event

    console = _console()
    if (text is None) == (body is None):
        console.print("[red]give exactly one of --text or --body[/]")
        raise typer.Exit(2)
    apply_offline_environment(os.environ, DEFAULT_REGION)
    payload = body if body is not None else json.dumps(example_event(text or "", event_id))
    try:
        result = send_event(endpoint, prefix=prefix, region=DEFAULT_REGION, body=payload, via=via.value)
    except Exception as exc:
        console.print(f"[bold red]send failed[/]: {exc}")
        raise typer.Exit(1) from exc
    where = "message" if result.via == "queue" else "EventBridge event"
    console.print(f"sent {result.event_id or '(no id)'} via {result.via}: {where} {result.transport_id}")


if __name__ == "__main__":
    local_app()
