"""`pigeonhole drift ...`: measure the drift detectors (`harness`) and look at the windows (`report`).

Registered in the root CLI as ``app.add_typer(harness_app, name="drift")``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from pigeonhole import constants as c

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

harness_app = typer.Typer(
    help="Drift monitoring: measure the detectors on simulated streams, and look at the windows.",
    no_args_is_help=True,
)

DEFAULT_TABLE = "pigeonhole-windows"  # infra's and the local runtime's name for the default prefix


@harness_app.callback()
def _group() -> None:
    """Drift monitoring tools (a group, so each tool keeps its own sub-command name)."""


def _dynamodb_client(endpoint_url: str | None, region: str) -> DynamoDBClient:
    """A client for the moto server on loopback (fake credentials) or, without an endpoint, real AWS."""
    import boto3
    from botocore.config import Config

    config = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=3, read_timeout=10)
    if endpoint_url:
        from pigeonhole_tools.local.emulator import FAKE_CREDENTIAL, require_loopback

        try:
            url = require_loopback(endpoint_url)
        except ValueError:
            url = endpoint_url  # e.g. a VPC endpoint: the caller's own credentials apply
        else:
            return boto3.Session(
                aws_access_key_id=FAKE_CREDENTIAL, aws_secret_access_key=FAKE_CREDENTIAL, region_name=region
            ).client("dynamodb", endpoint_url=url, config=config)
        return boto3.Session(region_name=region).client("dynamodb", endpoint_url=url, config=config)
    return boto3.Session(region_name=region).client("dynamodb", config=config)


def _model_version(model_version: str | None, model_dir: Path | None) -> str:
    if model_version:
        return model_version
    from pigeonhole.model.manifest import load_manifest
    from pigeonhole_tools.local.emulator import default_model_dir

    return load_manifest(model_dir or default_model_dir()).version


@harness_app.command()
def report(
    endpoint_url: Annotated[
        str | None, typer.Option(help="DynamoDB endpoint, e.g. the local moto server http://127.0.0.1:4747.")
    ] = None,
    table: Annotated[
        str | None, typer.Option(help=f"Windows table (default: ${c.ENV_WINDOWS_TABLE}, else {DEFAULT_TABLE}).")
    ] = None,
    model_version: Annotated[
        str | None, typer.Option(help="Model version whose windows to show (default: the model dir's manifest).")
    ] = None,
    model_dir: Annotated[
        Path | None,
        typer.Option(
            help="Model package to read the version from (default: $PIGEONHOLE_MODEL_DIR, else layers/model)."
        ),
    ] = None,
    region: Annotated[str, typer.Option(help="AWS region.")] = os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
    since: Annotated[str | None, typer.Option(help="First window start, ISO-8601 UTC (2026-11-29T07:00:00Z).")] = None,
    until: Annotated[str | None, typer.Option(help="Last window start, ISO-8601 UTC.")] = None,
    last: Annotated[int | None, typer.Option(min=1, help="Only the last N windows.")] = None,
    out: Annotated[Path | None, typer.Option(help="Write a PNG chart of PSI and accuracy per window here.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the rows as JSON here.")] = None,
) -> None:
    """Print the drift function's per-window reports as a table; optionally chart them (PNG)."""
    from dataclasses import asdict

    from pigeonhole.adapters.dynamodb import DynamoDBAdapter
    from pigeonhole_tools.monitoring.window_report import load_rows, print_report, write_chart

    console = Console()
    version = _model_version(model_version, model_dir)
    table_name = table or os.environ.get(c.ENV_WINDOWS_TABLE) or DEFAULT_TABLE
    store = DynamoDBAdapter(_dynamodb_client(endpoint_url, region))
    rows = load_rows(store, table_name, version, since=since, until=until, last=last)
    title = f"Drift reports: {table_name}, model version {version}"
    print_report(rows, console, title)
    if not rows:
        console.print("[yellow]no report items: has the drift function run for this model version?[/]")
        raise typer.Exit(code=1)
    if out is not None:
        write_chart(rows, out, title)
        console.print(f"chart written to {out}")
    if json_out is not None:
        json_out.write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n", encoding="utf-8")
        console.print(f"rows written to {json_out}")
