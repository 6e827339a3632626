"""The bench's cost arithmetic: per-million lines follow from per-event counts and published prices."""

from __future__ import annotations

import pytest

from pigeonhole_tools.bench import costs, model_costs


def _line(lines: list[costs.Line], fragment: str) -> costs.Line:
    (found,) = [line for line in lines if fragment in line.item]
    return found


def test_per_million_from_per_event_usage() -> None:
    usage = costs.Usage(invocations=0.1, duration_ms=49.2, sqs_requests=0.2, wcu=0.1, log_bytes=500)
    lines = costs.per_million("classify", usage, memory_mb=1024, arch="x86_64")
    assert _line(lines, "Lambda requests").dollars == pytest.approx(100_000 * 0.20 / 1e6)
    # 100,000 invocations × 50 ms (rounded up) × 1 GB = 5,000 GB-s
    assert _line(lines, "Lambda duration").dollars == pytest.approx(5_000 * 0.0000166667)
    assert _line(lines, "SQS").dollars == pytest.approx(200_000 * 0.40 / 1e6)
    assert _line(lines, "write units").dollars == pytest.approx(100_000 * 0.625 / 1e6)
    assert _line(lines, "Logs").dollars == pytest.approx(0.5 * 0.50)  # 500 MB
    assert not [line for line in lines if "EventBridge" in line.item]  # zero counts give no line
    assert costs.total(lines) == pytest.approx(sum(line.dollars for line in lines))


def test_arm64_and_memory_change_duration_only() -> None:
    usage = costs.Usage(invocations=1.0, duration_ms=10.0)
    x86 = _line(costs.per_million("p", usage, 2048, "x86_64"), "duration").dollars
    arm = _line(costs.per_million("p", usage, 2048, "arm64"), "duration").dollars
    assert x86 == pytest.approx(1e6 * 0.010 * 2 * 0.0000166667)
    assert arm == pytest.approx(x86 * 0.0000133334 / 0.0000166667)


def test_cpu_share_stretches_compute_below_one_vcpu() -> None:
    assert costs.lambda_compute_ms(10.0, 1769) == pytest.approx(10.0)
    assert costs.lambda_compute_ms(10.0, 3008) == pytest.approx(10.0)
    assert costs.lambda_compute_ms(10.0, 1024) == pytest.approx(10.0 * 1769 / 1024)


def test_usage_from_counts_divides_by_events() -> None:
    usage = costs.usage_from_counts(
        {"sqs_requests": 40, "dynamodb_wcu": 20, "eventbridge_events": 200, "dynamodb_rcu": 5},
        events=200,
        invocations=20,
        duration_ms=30.0,
        log_bytes=1000,
    )
    assert (usage.invocations, usage.sqs_requests, usage.wcu, usage.eventbridge_events) == (0.1, 0.2, 0.1, 1.0)
    assert usage.rcu == 0.025
    assert usage.log_bytes == 5
    with pytest.raises(ValueError, match="events must be positive"):
        costs.usage_from_counts({}, events=0, invocations=1, duration_ms=1)


def test_sagemaker_bills_each_request_by_the_millisecond() -> None:
    line = costs.sagemaker_serverless(per_request_ms=2.2, bytes_per_request=1000)
    assert line.dollars == pytest.approx(1e6 * 0.003 * 0.0000200 + 1e6 * 1000 / 1e9 * 0.016)


def test_classify_usage_prices_captures_apart_from_the_window_accounting() -> None:
    count = {
        "events": 100,
        "invocations": 10,
        "calls": {
            "esm:sqs.ReceiveMessage": 10,
            "esm:sqs.DeleteMessageBatch": 10,
            "events.PutEvents": 10,
            "dynamodb.PutItem": 10,
        },
        "billed": {
            "sqs_requests": 20,
            "eventbridge_events": 100,
            "dynamodb_wcu": 30,
            "dynamodb_wcu[p-windows]": 10,
            "dynamodb_wcu[p-predictions]": 20,  # captures: one plain put each
        },
        "log_bytes": 10_000,
    }
    usage = model_costs.classify_usage(count, warm_batch_ms=5.0, memory_mb=1769)
    base = usage["base"]
    assert usage["windows_wcu_per_event"] == pytest.approx(0.1)
    assert usage["capture_wcu_per_event"] == pytest.approx(0.2)
    assert base.wcu == pytest.approx(0.1)  # the accounting is in the base; captures are their own line
    assert usage["output_events_per_event"] == pytest.approx(1.0)
    assert base.eventbridge_events == 0
    # 5 ms of compute at a full vCPU + 2 own calls per invocation × the assumed round trip
    assert usage["duration_ms"] == pytest.approx(5.0 + 2 * model_costs.AWS_CALL_MS)
    assert base.log_bytes == pytest.approx((10_000 + 10 * model_costs.PLATFORM_LOG_BYTES) / 100)


def test_window_accounting_splits_per_event_items_from_per_window_merges() -> None:
    count = {
        "classify": {
            "events": 200,
            "billed": {
                "dynamodb_wcu[b-windows]": 23,
                "dynamodb_wcu_kind[batch_item]": 20,
                "dynamodb_items_kind[batch_item]": 20,
                "dynamodb_wcu_kind[model_registry]": 3,
            },
        },
        "drift": {
            "events": 200,
            "billed": {
                "dynamodb_wcu_kind[window_merge]": 2,
                "dynamodb_items_kind[window_merge]": 1,
                "dynamodb_wcu_kind[window_report]": 22,
                "dynamodb_items_kind[window_report]": 1,
            },
        },
    }
    acc = model_costs.window_accounting(count)
    assert acc["batch_items_wcu_per_event"] == pytest.approx(0.1)
    assert acc["late_pointers_wcu_per_event"] == 0
    assert acc["per_event_wcu"] == pytest.approx(0.1)
    assert acc["registry_wcu_per_event"] == pytest.approx(0.015)
    assert acc["classify_windows_wcu_per_event"] == pytest.approx(0.115)
    assert acc["events_per_window"] == pytest.approx(200)
    assert acc["merge_wcu_per_window"] == pytest.approx(2)
    assert acc["merges_wcu_per_event"] == pytest.approx(0.01)
    assert acc["report_wcu_per_window"] == pytest.approx(22)
    assert acc["counted_run_wcu_per_event"] == pytest.approx(0.125)  # windows table on both paths, reports apart


def test_targets_report_met_and_not_met() -> None:
    result = {
        "warm": {
            "10": {
                n: {"median": m}
                for n, m in {"handler": 2.6, "floor": 2.0, "int8": 1.0, "fp32": 3.0, "sklearn_handler": 10.0}.items()
            }
        },
        "size": {"x86_64": {"runtime_layer": {"unzipped_bytes": 145e6}}},
        "costs": {
            "window_accounting": {
                "per_event_wcu": 0.1,
                "batch_items_wcu_per_event": 0.1,
                "late_pointers_wcu_per_event": 0.0,
                "merge_wcu_per_window": 2.0,
            },
            "classification_total": 1.2,
        },
    }
    got = {t["target"]: t["met"] for t in model_costs.targets(result)}
    assert got["handler vs floor, batch of 10 (CPU time)"] is True  # 1.3×
    assert got["int8 vs fp32 time, batch of 10 (CPU time)"] is True
    assert got["faster than the scikit-learn handler, batch of 10 (CPU time)"] is False  # 3.8×
    assert got["runtime layer unzipped (x86_64)"] is False
    assert got["window accounting write units per event, batch of 10"] is True  # 0.1, the limit itself
    text = next(t["text"] for t in model_costs.targets(result) if t["target"].startswith("window accounting"))
    assert "marker" not in text
    assert "2.0 WCU per window for its merge" in text
    assert got["classification with windows, per million events"] is False
