"""Progress output for the build: a spinner per step and a bar over training epochs.

A build takes minutes; silence looks like a hang. Everything goes to one rich Console (stderr in
the CLI), so tests can hand in a Console writing to a buffer.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from pigeonhole_tools.training.train import EpochCallback, EpochReport


class Reporter:
    """Step spinners, an epoch bar and plain messages, on one console."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)

    @contextmanager
    def step(self, title: str) -> Iterator[None]:
        """Show a spinner while the block runs, then a line with its duration."""
        started = time.perf_counter()
        with self.console.status(f"{title}…"):
            yield
        self.console.print(f"[green]✓[/green] {title} [dim]({time.perf_counter() - started:.1f} s)[/dim]")

    @contextmanager
    def epochs(self, total: int, title: str = "training") -> Iterator[EpochCallback]:
        """A progress bar advanced by the returned callback once per finished epoch."""
        columns = (
            TextColumn(escape(title)),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=self.console, transient=False) as bar:
            task = bar.add_task("epochs", total=total, detail="")

            def advance(report: EpochReport) -> None:
                detail = f"loss {report.loss:.4f}"
                if report.monitor_accuracy is not None:
                    detail += f"  validation accuracy {report.monitor_accuracy:.4f}"
                bar.update(task, advance=1, detail=detail)

            yield advance

    def info(self, message: str) -> None:
        self.console.print(escape(message), soft_wrap=True)

    def warn(self, message: str) -> None:
        self.console.print(f"[yellow]warning:[/yellow] {escape(message)}", soft_wrap=True)
