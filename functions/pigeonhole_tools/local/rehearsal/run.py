"""The whole rehearsal in order (used by `pigeonhole local deploy`) and its report."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pigeonhole_tools.local.rehearsal.compare import (
    Comparison,
    Difference,
    compare,
    environment_differences,
    function_environment,
    local_mapping_shape,
    read_system,
    strip_prefix,
    template_only_settings,
)
from pigeonhole_tools.local.rehearsal.drive import Classified, drive_classifier
from pigeonhole_tools.local.rehearsal.stack import (
    DEFAULT_PREFIX,
    Deployment,
    Moto,
    bootstrap,
    rehearsal_config,
    synthesize,
)
from pigeonhole_tools.local.rehearsal.template import check_moto_version

if TYPE_CHECKING:
    from rich.console import Console

# -- the whole rehearsal (used by `pigeonhole local deploy`) -------------------------------------------


@dataclass
class Report:
    """What one rehearsal found; `ok` is what the CLI exits on."""

    stack_name: str
    rewrites: dict[str, int] = field(default_factory=dict)
    not_created: dict[str, str] = field(default_factory=dict)
    comparison: Comparison | None = None
    environment: list[Difference] = field(default_factory=list)
    classified: Classified | None = None
    updated: dict[str, Any] = field(default_factory=dict)
    deleted: bool = False
    steps: list[tuple[str, float]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.classified and self.classified.landed)


def run_rehearsal(
    endpoint: str,
    *,
    prefix: str = DEFAULT_PREFIX,
    model_dir: Path,
    outdir: Path,
    text: str = "I lost my card yesterday, please block it",
    update: Mapping[str, Any] | None = None,
    delete: bool = True,
) -> Report:
    """Synthesize, bootstrap, create, compare with a locally provisioned system, classify, update, delete."""
    from pigeonhole_tools.local.emulator import provision

    check_moto_version()
    moto = Moto(endpoint)
    config = rehearsal_config(prefix, model_dir)
    report = Report(stack_name=str(config["stack_name"]))

    def step(name: str, started: float) -> None:
        report.steps.append((name, time.perf_counter() - started))

    t = time.perf_counter()
    template = synthesize(config, outdir / "create")
    step("synthesize", t)
    t = time.perf_counter()
    bootstrap(moto)
    deployment = Deployment(moto, report.stack_name)
    deployment.create(template)
    report.rewrites = deployment.rewrites
    report.not_created = deployment.not_created()
    step("create", t)

    t = time.perf_counter()
    local_prefix = f"local-{prefix}"  # not `<prefix>-…`: read_system lists by prefix
    local = provision(endpoint, prefix=local_prefix, region=moto.region, max_attempts=1)
    function_name = f"{prefix}-classifier"
    deployed_shape = template_only_settings(read_system(moto, prefix, function_name), deployment.template, prefix)
    local_shape = read_system(moto, local_prefix)
    local_shape[f"mapping:{strip_prefix(local.ingest.name, local_prefix)}"] = local_mapping_shape(local)
    report.comparison = compare(deployed_shape, local_shape)
    report.environment = environment_differences(
        function_environment(moto, function_name), prefix, local.lambda_environment(model_dir), local_prefix
    )
    step("compare", t)

    t = time.perf_counter()
    report.classified = drive_classifier(moto, prefix, model_dir, text)
    step("classify", t)

    if update:
        t = time.perf_counter()
        changed = synthesize({**config, **update}, outdir / "update")
        deployment.update(changed)
        report.updated = read_system(moto, prefix, function_name)
        step("update", t)
    if delete:
        t = time.perf_counter()
        report.deleted = deployment.delete() == "DELETE_COMPLETE"
        step("delete", t)
    return report


def render_report(report: Report, console: Console) -> None:
    """The rehearsal's findings for a terminal."""
    from rich.table import Table

    table = Table(title=f"template rewrites applied for moto (stack {report.stack_name})")
    table.add_column("rewrite")
    table.add_column("places", justify="right")
    for name, count in report.rewrites.items():
        table.add_row(name, str(count))
    console.print(table)
    skipped: dict[str, int] = {}
    for resource_type in report.not_created.values():
        skipped[resource_type] = skipped.get(resource_type, 0) + 1
    console.print("not created by moto: " + ", ".join(f"{t} x{n}" for t, n in sorted(skipped.items())))
    if report.comparison is not None:
        comparison = report.comparison
        console.print(f"deployed only: {', '.join(comparison.only_deployed) or '-'}")
        console.print(f"local only:    {', '.join(comparison.only_local) or '-'}")
        for difference in [*comparison.differences, *report.environment]:
            console.print(f"[yellow]differs[/] {difference}")
        if not comparison.differences and not report.environment:
            console.print("[green]every shared queue, rule, table, mapping and setting matches[/]")
    if report.classified is not None:
        outcome = report.classified
        where = "output bus" if outcome.output else "review queue" if outcome.review else "nowhere"
        landed = (outcome.output or outcome.review or [{}])[0]
        label = landed.get("detail", {}).get("label", "-") if outcome.output else "-"
        style = "green" if outcome.landed else "red"
        console.print(f"[{style}]classified[/] {outcome.event_id} → {where} (label {label})")
    if report.updated:
        mapping: dict[str, Any] = report.updated.get("mapping:ingest", {})
        console.print(f"updated in place: ingest mapping batch size {mapping.get('batch_size')}")
    if report.deleted:
        console.print("deleted: DELETE_COMPLETE (tables and the key are retained, as their DeletionPolicy says)")
    console.print("steps: " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in report.steps))
