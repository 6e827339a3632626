"""`pigeonhole bench` (= `make bench`): every measurement in one run, side by side, into docs/.

Order: build what Lambda gets (layers, compiled code) → train the comparison models → warm path →
cold start → counted end-to-end run → costs and targets → docs/benchmarks.json + docs/benchmarks.md.
A part whose prerequisite is missing (the BANKING77 data, a Python 3.12 interpreter, the network for
a first layer build) is skipped with the reason written into the report, never faked.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from pigeonhole_tools.bench import model_costs, report, stats
from pigeonhole_tools.bench.footprint import REPO
from pigeonhole_tools.bench.models import BenchModels

bench_app = typer.Typer(help="Measure latency, cold start, size, AWS requests and cost per million events.")
console = Console(stderr=True)

DEFAULT_DATA = REPO.parent / "shared" / "datasets" / "banking77"
WARM_SIZES = (1, 2, 5, 10, 100)
COUNT_PLAN = {1: 40, 2: 40, 5: 50, 10: 200, 100: 300}  # batch size -> events through the end-to-end run


def _docs(data_dir: Path) -> list[tuple[str, str]]:
    """(text, label) pairs from BANKING77's test split, or the demo events when the data set is absent."""
    test = data_dir / "test.csv"
    if test.is_file():
        with test.open(encoding="utf-8", newline="") as fh:
            return [(row["text"], row["category"]) for row in csv.DictReader(fh)]
    demo = REPO / "functions" / "pigeonhole_tools" / "data" / "demo_events.jsonl"
    rows = [json.loads(line) for line in demo.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [(str(r.get("text", "")), str(r.get("label", "unknown"))) for r in rows if r.get("text")]


def _infra() -> dict[str, Any]:
    """Memory, architecture and batching from the stack's own config (infra/cdk.json + InfraConfig defaults)."""
    import sys

    sys.path.insert(0, str(REPO / "infra"))
    from pigeonhole_infra.config import InfraConfig

    context = json.loads((REPO / "infra" / "cdk.json").read_text(encoding="utf-8"))["context"]
    context = {**context, "pigeonhole:oncall": "none"}
    cfg = InfraConfig.from_context(context)
    return {
        "memory_mb": cfg.memory_mb,
        "arch": cfg.architecture,
        "batch_size": cfg.batch_size,
        "batching_window_s": cfg.batching_window_s,
    }


def _step(name: str) -> float:
    console.print(f"[bold]bench:[/] {name} …")
    return time.perf_counter()


def _size(result: dict[str, Any], cache: Path, interpreter: str | None) -> None:
    from pigeonhole_tools.bench import footprint

    try:
        result["size"] = footprint.sizes(cache, interpreter)
    except (OSError, subprocess.CalledProcessError) as exc:  # a first layer build needs the package index
        result["skipped"].append(f"size and cold start: a layer build failed ({type(exc).__name__}: {exc})")


def _models(result: dict[str, Any], cache: Path, data_dir: Path) -> BenchModels | None:
    from pigeonhole_tools.bench.models import BENCH_EPOCHS, ensure_models

    if not (data_dir / "train.csv").is_file():
        result["skipped"].append(f"fp32/int8 and scikit-learn comparisons: {data_dir / 'train.csv'} is absent")
        return None
    models = ensure_models(data_dir / "train.csv", cache / "models")
    result["models"] = {"train_seconds": models.train_seconds, "n_features": models.n_features, "epochs": BENCH_EPOCHS}
    return models


def _warm(result: dict[str, Any], model_dir: Path, texts: list[str], models: BenchModels | None, repeats: int) -> None:
    from pigeonhole_tools.bench.warm import run_warm

    saved = dict(os.environ)
    try:
        result["warm"] = run_warm(
            model_dir, texts, models, WARM_SIZES, lambda size: max(20, repeats // (10 if size > 10 else 1))
        )
        result["warm_profile"] = result["warm"].pop("profile_batch_10", {})
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _cold(
    result: dict[str, Any],
    cache: Path,
    interpreter: str | None,
    model_dir: Path,
    texts: list[str],
    models: BenchModels | None,
    runs: int,
) -> None:
    from pigeonhole_tools.bench import cold, footprint
    from pigeonhole_tools.bench.warm import lambda_environment, sqs_event

    if not interpreter or "size" not in result:
        result["skipped"].append("cold start: no Python 3.12 interpreter or no runtime layer")
        return
    event_file = cache / "event10.json"
    event_file.write_text(json.dumps(sqs_event(texts[:10], 0)), encoding="utf-8")
    layer = Path(result["size"]["x86_64"]["runtime_layer"]["path"])
    function = cache / "function"
    sdk = footprint.sdk(cache, interpreter)
    env = lambda_environment(model_dir)
    env.pop("POWERTOOLS_TRACE_DISABLED")  # as deployed: tracing on
    env.update(cold.lambda_runtime_environment(function))  # as Lambda runs it (tracing needs LAMBDA_TASK_ROOT)
    result["cold"] = cold.run_cold(
        interpreter,
        function=function,
        layer=layer,
        sdk=sdk,
        sklearn_layer=Path(result["size"]["x86_64"]["sklearn_layer"]["path"]) if models else None,
        model_dir=model_dir,
        sklearn_model=models.sklearn if models else None,
        event_file=event_file,
        handler_env=env,
        runs=runs,
    )
    result["cold_runs"] = runs
    result["import_breakdown"] = cold.import_breakdown(interpreter, [function, layer / "python", sdk], env)


@bench_app.callback(invoke_without_command=True)
def main(
    out_md: Annotated[Path, typer.Option(help="the report")] = REPO / "docs" / "benchmarks.md",
    out_json: Annotated[Path, typer.Option(help="raw figures")] = REPO / "docs" / "benchmarks.json",
    model_dir: Annotated[Path, typer.Option(help="the shipped model package")] = REPO / "layers" / "model",
    data_dir: Annotated[Path, typer.Option(help="BANKING77 (train.csv, test.csv)")] = DEFAULT_DATA,
    cold_runs: Annotated[int, typer.Option(help="fresh processes per cold-start program")] = 10,
    warm_repeats: Annotated[int, typer.Option(help="timed calls per variant at batch <= 10")] = 200,
    quick: Annotated[bool, typer.Option(help="few repeats and events: a smoke run, not for the docs")] = False,
) -> None:
    """Run every benchmark and write docs/benchmarks.md and docs/benchmarks.json."""
    from pigeonhole_tools.bench import footprint
    from pigeonhole_tools.bench.e2e import run_counted

    started = time.perf_counter()
    cache = REPO / "build" / "bench"
    cache.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "git_head": stats.git_head(str(REPO)),
        "machine": stats.machine(),
        "packages": stats.package_versions(),
        "config": _infra(),
        "skipped": [],
        "timings_s": {},
    }
    if quick:
        cold_runs, warm_repeats = 2, 10
    docs = _docs(data_dir)
    texts = [t for t, _ in docs]
    interpreter = footprint.layer_builder().find_python(footprint.PYTHON_VERSION)
    result["cold_python"] = footprint.PYTHON_VERSION if interpreter else None

    t = _step("sizes: runtime layer per architecture, model, function code, scikit-learn layer")
    _size(result, cache, interpreter)
    result["timings_s"]["size"] = time.perf_counter() - t
    t = _step("models: scikit-learn, ONNX fp32, ONNX int8 (one training)")
    models = _models(result, cache, data_dir)
    result["timings_s"]["models"] = time.perf_counter() - t
    t = _step("warm path")
    _warm(result, model_dir, texts, models, warm_repeats)
    result["timings_s"]["warm"] = time.perf_counter() - t
    t = _step("cold start")
    _cold(result, cache, interpreter, model_dir, texts, models, cold_runs)
    result["timings_s"]["cold"] = time.perf_counter() - t
    t = _step("AWS requests per event, counted end to end against moto server")
    result["counts"] = run_counted(model_dir, docs, {b: (max(b, 20) if quick else n) for b, n in COUNT_PLAN.items()})
    result["per_label_option"] = result["counts"].pop("per_label_option", {})
    result["timings_s"]["counts"] = time.perf_counter() - t

    _derive(result, model_dir)
    result["seconds"] = time.perf_counter() - started
    out_json.write_text(json.dumps(result, indent=1, default=str) + "\n", encoding="utf-8")
    out_md.write_text(report.render(result), encoding="utf-8")
    console.print(f"wrote {out_md} and {out_json} in {result['seconds']:.0f} s")
    for target in result["targets"]:
        verdict = "met" if target["met"] else "NOT met"
        console.print(f"  {target['target']}: {target['text']} (goal {target['goal']}) {verdict}")


def _derive(result: dict[str, Any], model_dir: Path) -> None:
    """Costs, scaling and targets from what was measured and counted."""
    from pigeonhole.model.manifest import load_manifest

    cfg = result["config"]
    counts, warm = result["counts"], result["warm"]
    option_metrics = result.get("per_label_option", {}).get("classify", {}).get("metrics", [])
    label_metric_names = {m.split("[")[0] for m in option_metrics if "Label=" in m}
    n_classes = len(load_manifest(model_dir).classes)
    per_label = len(label_metric_names) * n_classes
    fixed = {
        m
        for size in counts.values()
        for path in ("classify", "feedback", "drift")
        for m in size.get(path, {}).get("metrics", [])
        if "Label=" not in m
    }
    result["metrics_fixed"] = sorted(fixed)
    result["per_label_metrics"] = {
        "metric_names": sorted(label_metric_names),
        "classes": n_classes,
        "metrics": per_label,
    }
    batch = cfg["batch_size"] if str(cfg["batch_size"]) in counts else 10
    result["costs"] = model_costs.cost_lines(counts, warm, cfg["memory_mb"], cfg["arch"], batch, per_label)
    scaling = []
    for size, res in counts.items():
        c = res["classify"]
        ev = c["events"]
        b = c["billed"]
        windows = sum(v for k, v in b.items() if k.startswith("dynamodb_wcu[") and "windows" in k)
        predictions = sum(v for k, v in b.items() if k.startswith("dynamodb_wcu[") and "predictions" in k)
        w = warm.get(size, {}).get("handler")
        scaling.append(
            {
                "batch": int(size),
                "events_per_s": w["events_per_s"] if w else None,
                "wcu_batch_items": b.get("dynamodb_wcu_kind[batch_item]", 0) / ev,
                "wcu_windows": windows / ev,
                "wcu_capture": predictions / ev,
                "wcu_all": b.get("dynamodb_wcu", 0) / ev,
            }
        )
    result["scaling"] = scaling
    result["targets"] = model_costs.targets(result)
