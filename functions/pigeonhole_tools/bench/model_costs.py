"""From one run's counts and timings to the cost lines and the issue's targets (no measuring here).

Kept apart from `costs` (prices and arithmetic) so that module stays a pure, unit-tested calculator,
and from `report` (markdown) so the numbers in the JSON and in the tables are the same objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pigeonhole_tools.bench import costs

AWS_CALL_MS = 10.0  # assumed round trip of one in-region AWS call from Lambda (not measurable here)
FEEDBACK_COMPUTE_MS = 5.0  # assumed: the feedback handler's own work per batch (no inference; not timed here)
PLATFORM_LOG_BYTES = 300  # Lambda's START, END and REPORT lines per invocation (approximate)


def _table_units(billed: Mapping[str, float], kind: str, fragment: str) -> float:
    return sum(v for k, v in billed.items() if k.startswith(f"dynamodb_{kind}[") and fragment in k)


def _kind(billed: Mapping[str, float], what: str, kind: str) -> float:
    """Write units (``what`` = "wcu") or items (``what`` = "items") of one kind of windows-table item."""
    return float(billed.get(f"dynamodb_{what}_kind[{kind}]", 0.0))


def window_accounting(count: Mapping[str, Any]) -> dict[str, float]:
    """The window accounting's write units, split so the amortized figure is arithmetic a reader can follow.

    Per event (classify path): the batch items (1 unit per batch and window while an item stays under
    1 KB) and the late pointers. Per window (drift path): the merge the drift function stores when it
    closes a window, and its report. Per container and day: the model registry entry. The counted run
    has few events per window, so its merges weigh far more per event than at production volume.
    """
    classify = count["classify"]
    events = classify["events"]
    billed = classify["billed"]
    out = {
        "batch_items_wcu_per_event": _kind(billed, "wcu", "batch_item") / events,
        "late_pointers_wcu_per_event": _kind(billed, "wcu", "late_pointer") / events,
        "registry_wcu_per_event": _kind(billed, "wcu", "model_registry") / events,
        "classify_windows_wcu_per_event": _table_units(billed, "wcu", "windows") / events,
    }
    out["per_event_wcu"] = out["batch_items_wcu_per_event"] + out["late_pointers_wcu_per_event"]
    drift = count.get("drift")
    if drift:
        merges = _kind(drift["billed"], "items", "window_merge")
        reports = _kind(drift["billed"], "items", "window_report")
        if merges:
            out["windows_merged"] = merges
            out["events_per_window"] = events / merges
            out["merge_wcu_per_window"] = _kind(drift["billed"], "wcu", "window_merge") / merges
            out["merges_wcu_per_event"] = out["merge_wcu_per_window"] / out["events_per_window"]
        if reports:
            out["report_wcu_per_window"] = _kind(drift["billed"], "wcu", "window_report") / reports
        out["counted_run_wcu_per_event"] = (
            out["classify_windows_wcu_per_event"] + _kind(drift["billed"], "wcu", "window_merge") / events
        )
    return out


def classify_usage(
    count: Mapping[str, Any], warm_batch_ms: float, memory_mb: int, aws_call_ms: float = AWS_CALL_MS
) -> dict[str, Any]:
    """Per-event usage of the classify path, split into the base and each optional feature."""
    events, invocations = count["events"], count["invocations"]
    billed: Mapping[str, float] = count["billed"]
    own_calls = sum(v for k, v in count["calls"].items() if not k.startswith("esm:") and ":error" not in k)
    calls_per_invocation = own_calls / invocations
    duration = costs.lambda_compute_ms(warm_batch_ms, memory_mb) + calls_per_invocation * aws_call_ms
    wcu_windows = _table_units(billed, "wcu", "windows")
    # The window accounting writes no marker per event (one batch item per batch and window): every item in
    # the predictions table is a capture, an optional feature priced on its own line.
    wcu_capture = _table_units(billed, "wcu", "predictions")
    base = costs.Usage(
        invocations=invocations / events,
        duration_ms=duration,
        sqs_requests=billed.get("sqs_requests", 0.0) / events,
        wcu=(billed.get("dynamodb_wcu", 0.0) - wcu_capture) / events,
        rcu=billed.get("dynamodb_rcu", 0.0) / events,
        log_bytes=(count["log_bytes"] + PLATFORM_LOG_BYTES * invocations) / events,
        put_metric_data=billed.get("cloudwatch_put_metric_data", 0.0) / events,
    )
    return {
        "base": base,
        "capture_wcu_per_event": wcu_capture / events,
        "windows_wcu_per_event": wcu_windows / events,
        "output_events_per_event": billed.get("eventbridge_events", 0.0) / events,
        "calls_per_invocation": calls_per_invocation,
        "duration_ms": duration,
    }


def cost_lines(
    counts: Mapping[str, Any], warm: Mapping[str, Any], memory_mb: int, arch: str, batch: int, per_label_metrics: int
) -> dict[str, Any]:
    """Per-million lines at the stack's batch size: base classification, each option, feedback, comparison."""
    count = counts[str(batch)]
    handler_ms = warm[str(batch)]["handler"]["median"]
    usage = classify_usage(count["classify"], handler_ms, memory_mb)
    lines = costs.per_million("classify", usage["base"], memory_mb, arch)
    p = costs.PRICES
    n = 1_000_000
    capture = usage["capture_wcu_per_event"] * n
    lines.append(
        costs.Line(
            "option: prediction capture (one plain put per captured event)",
            f"{capture:,.0f} WCU × $0.625/M",
            capture * p["dynamodb_wru"].value,
            "optional",
        )
    )
    output = usage["output_events_per_event"] * n
    lines.append(
        costs.Line(
            "option: output bus (EventClassified)",
            f"{output:,.0f} events × $1.00/M",
            output * p["eventbridge_event"].value,
            "optional",
        )
    )
    lines.append(
        costs.Line(
            "option: per-label metrics (per month, not per event)",
            f"{per_label_metrics} metrics × $0.30/month",
            costs.monthly_metrics(per_label_metrics),
            "optional",
        )
    )
    lines.append(
        costs.Line(
            "excluded: the producer's own send (e.g. PutEvents on the input bus + rule → ingest SendMessage)",
            "1,000,000 × $1.00/M + 1,000,000 × $0.40/M",
            1.0 + 0.4,
            "excluded",
        )
    )
    fb = count["feedback"]
    fb_calls = sum(v for k, v in fb["calls"].items() if not k.startswith("esm:") and ":error" not in k)
    fb_ms = FEEDBACK_COMPUTE_MS + fb_calls / max(1, fb["invocations"]) * AWS_CALL_MS
    fb_usage = costs.usage_from_counts(
        fb["billed"], fb["events"], fb["invocations"], fb_ms, fb["log_bytes"] + PLATFORM_LOG_BYTES * fb["invocations"]
    )
    lines += costs.per_million("feedback (per million labels)", fb_usage, 512, arch, group="feedback")
    one = warm.get("1", {}).get("floor")
    if one is not None:
        lines.append(costs.sagemaker_serverless(one["median"], 1_000))
    base_total = costs.total(lines)
    sensitivity = {}
    for call_ms in (5.0, 20.0):
        alt = classify_usage(count["classify"], handler_ms, memory_mb, aws_call_ms=call_ms)
        sensitivity[f"aws_call_{call_ms:g}ms"] = costs.total(
            costs.per_million("classify", alt["base"], memory_mb, arch)
        )
    duration_line = next(line for line in lines if "Lambda duration" in line.item and line.group == "classification")
    rate = costs.PRICES[f"lambda_pc_duration_gb_s_{arch}"].value / costs.PRICES[f"lambda_gb_s_{arch}"].value
    sensitivity["duration_on_provisioned_instances"] = base_total - duration_line.dollars * (1 - rate)
    return {
        "batch_size": batch,
        "memory_mb": memory_mb,
        "arch": arch,
        "classify_duration_ms": usage["duration_ms"],
        "calls_per_invocation": usage["calls_per_invocation"],
        "windows_wcu_per_event": usage["windows_wcu_per_event"],
        "window_accounting": window_accounting(count),
        "capture_wcu_per_event": usage["capture_wcu_per_event"],
        "lines": costs.as_dicts(lines),
        "classification_total": base_total,
        "sensitivity": sensitivity,
    }


def targets(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each with the measured value and whether it is met (None: not measured)."""
    out: list[dict[str, Any]] = []

    def add(name: str, goal: str, value: float | None, met: bool | None, text: str) -> None:
        out.append({"target": name, "goal": goal, "measured": value, "met": met, "text": text})

    w10 = result.get("warm", {}).get("10", {})
    if "handler" in w10 and "floor" in w10:
        r = w10["handler"]["median"] / w10["floor"]["median"]
        add("handler vs floor, batch of 10 (CPU time)", "≤ 1.3×", r, r <= 1.3, f"{r:.2f}×")
    if "int8" in w10 and "fp32" in w10:
        r = w10["int8"]["median"] / w10["fp32"]["median"]
        add("int8 vs fp32 time, batch of 10 (CPU time)", "≤ 0.5×", r, r <= 0.5, f"{r:.2f}×")
    if "sklearn_handler" in w10 and "handler" in w10:
        r = w10["sklearn_handler"]["median"] / w10["handler"]["median"]
        add("faster than the scikit-learn handler, batch of 10 (CPU time)", "≥ 5×", r, r >= 5, f"{r:.2f}×")
    cold = result.get("cold", {})
    if "sklearn" in cold and "pigeonhole" in cold:
        r = cold["sklearn"]["total_cpu_ms"]["median"] / cold["pigeonhole"]["total_cpu_ms"]["median"]
        wall = cold["sklearn"]["total_ms"]["median"] / cold["pigeonhole"]["total_ms"]["median"]
        add("faster cold start than scikit-learn (CPU time)", "≥ 3×", r, r >= 3, f"{r:.2f}× (wall {wall:.2f}×)")
    size = result.get("size", {})
    if "x86_64" in size:
        mb = size["x86_64"]["runtime_layer"]["unzipped_bytes"] / 1e6
        add("runtime layer unzipped (x86_64)", "≤ 120 MB", mb, mb <= 120, f"{mb:.1f} MB")
    money = result.get("costs")
    if money:
        acc = money["window_accounting"]
        w = acc["per_event_wcu"]
        text = f"{w:.3f} WCU per event (batch items {acc['batch_items_wcu_per_event']:.3f} + late pointers " + (
            f"{acc['late_pointers_wcu_per_event']:.3f})"
        )
        if "merge_wcu_per_window" in acc:
            text += f" + {acc['merge_wcu_per_window']:.1f} WCU per window for its merge"
        add("window accounting write units per event, batch of 10", "≤ 0.1", w, w <= 0.1, text)
        t = money["classification_total"]
        add("classification with windows, per million events", "< $1", t, t < 1.0, f"${t:.2f}")
    return out
