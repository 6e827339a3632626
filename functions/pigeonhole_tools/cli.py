"""The `pigeonhole` command. Each concern registers its own sub-command group."""

from __future__ import annotations

import typer

app = typer.Typer(help="Pigeonhole: serverless event classifier for AWS.", no_args_is_help=True)


def _register() -> None:
    from pigeonhole_tools.bench.cli import bench_app
    from pigeonhole_tools.local.cli import local_app
    from pigeonhole_tools.monitoring.cli import harness_app
    from pigeonhole_tools.reliability.cli import dlq_app, reliability_app
    from pigeonhole_tools.training.cli import model_app

    app.add_typer(model_app, name="model", help="Build and inspect model packages.")
    app.add_typer(local_app, name="local", help="Run the whole flow on this machine against moto.")
    app.add_typer(harness_app, name="drift", help="Drift reports, charts and the detector-quality harness.")
    app.add_typer(
        bench_app, name="bench", help="Measure latency, cold start, size, AWS requests and cost per million events."
    )
    app.add_typer(reliability_app, name="reliability", help="Faults through moto and the poller; load held.")
    app.add_typer(dlq_app, name="dlq", help="Dead-letter queues: redrive.")


_register()

if __name__ == "__main__":
    app()
