"""`pigeonhole reliability faults|load` and `pigeonhole dlq redrive`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

reliability_app = typer.Typer(
    help="Fault injection through moto and the poller; load in one warm process.", no_args_is_help=True
)
dlq_app = typer.Typer(help="Dead-letter queues: move dead letters back once the cause is fixed.", no_args_is_help=True)

ReportOpt = Annotated[Path | None, typer.Option(help="Also write the figures as JSON here.")]


def _console() -> Console:
    return Console(file=sys.stdout)


@reliability_app.command()
def faults(
    events: Annotated[int, typer.Option(min=1, help="Events to send.")] = 10_000,
    rate: Annotated[
        list[float], typer.Option(help="Fault rate per AWS attempt (repeat for several runs, e.g. 0.1 and 0.3).")
    ] = [0.1, 0.3],  # noqa: B006 (typer reads the default)
    seed: Annotated[int, typer.Option(help="Seed of the faults and the workload.")] = 8,
    poison: Annotated[int | None, typer.Option(min=0, help="Events that always fail (default: 1 per 1,000).")] = None,
    model_dir: Annotated[Path | None, typer.Option(help="Model package (default: layers/model).")] = None,
    log_file: Annotated[Path | None, typer.Option(help="Keep the handlers' logs and EMF here.")] = None,
    report: ReportOpt = None,
) -> None:
    """Events through moto and the poller with transient faults injected into every AWS call of the functions."""
    from pigeonhole_tools.reliability.config import FaultPlan, RunConfig
    from pigeonhole_tools.reliability.report import invariants, render, to_dict
    from pigeonhole_tools.reliability.run import run_faults

    console = _console()
    results = []
    held = True
    for r in rate:
        cfg = RunConfig(
            events=events,
            plan=FaultPlan(rate=r, seed=seed),
            poison=max(1, events // 1000) if poison is None else poison,
            prefix=f"faults-{int(r * 100)}",
            model_dir=model_dir,
            log_file=log_file,
        )
        result = run_faults(cfg, progress=lambda m: console.print(f"[dim]{m}[/]"))
        render(result, console)
        results.append(to_dict(result))
        held = held and all(i.held for i in invariants(result))
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    raise typer.Exit(0 if held else 1)


@reliability_app.command()
def load(
    events: Annotated[int, typer.Option(min=1, help="Events through the handler.")] = 100_000,
    checkpoint_every: Annotated[int, typer.Option(min=1, help="Read memory and throughput every N events.")] = 10_000,
    tracemalloc: Annotated[bool, typer.Option(help="Trace the Python heap too (about 8x slower here).")] = True,
    max_blocks_per_10k: Annotated[
        float, typer.Option(help="Fail if live Python heap blocks grow faster than this per 10,000 events.")
    ] = 20_000.0,
    report: ReportOpt = None,
) -> None:
    """One warm process, batches of 10, AWS answered in-process: memory and throughput every N events."""
    from pigeonhole_tools.reliability.load import LoadConfig, run_load

    console = _console()
    cfg = LoadConfig(events=events, checkpoint_every=checkpoint_every, tracemalloc=tracemalloc)
    result = run_load(
        cfg,
        progress=lambda cp: console.print(
            f"{cp.events:>8} events  {cp.events_per_second:>7.1f}/s  RSS {cp.rss_mb:.1f} MB  "
            f"blocks {cp.blocks}" + (f"  traced {cp.traced_mb:.2f} MB" if cp.traced_mb is not None else "")
        ),
    )
    data = result.to_dict()
    console.print(
        f"crashes {result.crashes}, item failures {result.item_failures}; growth per 10,000 events after the "
        f"first block: RSS {data['rss_slope_mb_per_10k']} MB, heap blocks {data['blocks_slope_per_10k']}"
        + (f", traced {data['traced_slope_mb_per_10k']} MB" if tracemalloc else "")
        + f"; throughput last/first block {data['throughput_ratio_last_first']}"
    )
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    ok = result.crashes == 0 and result.slope("blocks") <= max_blocks_per_10k
    raise typer.Exit(0 if ok else 1)


@dlq_app.command()
def redrive(
    queue: Annotated[str, typer.Argument(help="The dead-letter queue (name or URL).")],
    to: Annotated[str | None, typer.Option(help="Destination queue (default: the DLQ's one source queue).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count and say what would move; move nothing.")] = False,
    method: Annotated[
        str, typer.Option(help="auto (AWS: StartMessageMoveTask; local runtime: copy), move-task or copy.")
    ] = "auto",
    endpoint: Annotated[
        str | None, typer.Option(help="The local runtime's moto endpoint (loopback only), e.g. http://127.0.0.1:4747.")
    ] = None,
    region: Annotated[str | None, typer.Option(help="AWS region (default: from the environment).")] = None,
    max_messages: Annotated[int | None, typer.Option("--max", min=1, help="Copy method: move at most N.")] = None,
    max_per_second: Annotated[int | None, typer.Option(min=1, help="Move task: rate limit.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Move dead letters back to their source queue, keeping message attributes; safe to run twice."""
    from pigeonhole_tools.reliability.redrive import RedriveError
    from pigeonhole_tools.reliability.redrive import redrive as do_redrive

    if method not in ("auto", "move-task", "copy"):
        raise typer.BadParameter("method must be auto, move-task or copy")
    if endpoint is not None:
        from pigeonhole_tools.local.emulator import DEFAULT_REGION, sqs_client

        sqs = sqs_client(endpoint, region or DEFAULT_REGION)
    else:
        import boto3

        sqs = boto3.client("sqs", region_name=region)
    try:
        result = do_redrive(
            sqs,
            queue,
            to=to,
            method=method,  # type: ignore[arg-type]
            local=endpoint is not None,
            dry_run=dry_run,
            max_messages=max_messages,
            max_per_second=max_per_second,
        )
    except RedriveError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        typer.echo(f"{result.method}: {result.waiting} waiting; {result.note}")
        for error in result.errors[:5]:
            typer.echo(f"  {error}")
    raise typer.Exit(1 if result.failed else 0)
