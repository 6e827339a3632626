"""Dollars per million events from counted requests and measured durations, at published prices.

Why a module of plain arithmetic: the per-million and idle tables of docs/deploy.md and
docs/benchmarks.md must follow from what `make bench` counted, so the counts come in as arguments
(never constants here) and the same function is unit-tested on hand-made counts.

Prices: us-east-1, on-demand, first pricing tier, free tiers ignored. Each carries the page it comes
from; ``PRICES_CHECKED`` is when they were last compared with those pages (through the `search` tool's
stored copies of the AWS pages and of third-party pages quoting them, see docs/benchmarks.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

REGION = "us-east-1"
PRICES_CHECKED = "2026-12-04"
LAMBDA_FULL_VCPU_MB = 1769  # Lambda gives one full vCPU at 1,769 MB; CPU share is proportional below it
MONTH_S = 30 * 24 * 3600


@dataclass(frozen=True)
class Price:
    value: float
    unit: str
    source: str


PRICES: Mapping[str, Price] = {
    "lambda_request": Price(0.20 / 1e6, "per request", "aws.amazon.com/lambda/pricing"),
    "lambda_gb_s_x86_64": Price(0.0000166667, "per GB-s", "aws.amazon.com/lambda/pricing"),
    "lambda_gb_s_arm64": Price(0.0000133334, "per GB-s", "aws.amazon.com/lambda/pricing"),
    "lambda_provisioned_gb_s_x86_64": Price(0.0000041667, "per GB-s configured", "aws.amazon.com/lambda/pricing"),
    "lambda_provisioned_gb_s_arm64": Price(0.0000033334, "per GB-s configured", "aws.amazon.com/lambda/pricing"),
    "lambda_pc_duration_gb_s_x86_64": Price(
        0.0000097222, "per GB-s run on provisioned instances", "aws.amazon.com/lambda/pricing"
    ),
    "lambda_pc_duration_gb_s_arm64": Price(
        0.0000077778, "per GB-s run on provisioned instances", "aws.amazon.com/lambda/pricing"
    ),
    "sqs_request": Price(0.40 / 1e6, "per request (64 KiB chunk)", "aws.amazon.com/sqs/pricing"),
    "eventbridge_event": Price(1.00 / 1e6, "per custom event (64 KiB chunk)", "aws.amazon.com/eventbridge/pricing"),
    "dynamodb_wru": Price(
        0.625 / 1e6, "per write request unit, on demand", "aws.amazon.com/dynamodb/pricing/on-demand"
    ),
    "dynamodb_rru": Price(0.125 / 1e6, "per read request unit, on demand", "aws.amazon.com/dynamodb/pricing/on-demand"),
    "logs_ingest_gb": Price(0.50, "per GB ingested", "aws.amazon.com/cloudwatch/pricing"),
    "custom_metric_month": Price(0.30, "per metric-month (first 10,000)", "aws.amazon.com/cloudwatch/pricing"),
    "put_metric_data": Price(0.01 / 1000, "per PutMetricData request", "aws.amazon.com/cloudwatch/pricing"),
    "kms_request": Price(0.03 / 10_000, "per request", "aws.amazon.com/kms/pricing"),
    "kms_key_month": Price(1.00, "per key-month", "aws.amazon.com/kms/pricing"),
    "sagemaker_serverless_1gb_s": Price(
        0.0000200, "per second at 1,024 MB", "aws.amazon.com/sagemaker/pricing (not in the search corpus: unverified)"
    ),
    "sagemaker_data_gb": Price(0.016, "per GB in + out", "aws.amazon.com/sagemaker/pricing (unverified)"),
}


@dataclass(frozen=True)
class Usage:
    """Counted per event (at one batch size) on one path; from the end-to-end run, never typed in."""

    invocations: float  # Lambda invocations per event (1 / batch size)
    duration_ms: float  # billed duration of one invocation
    sqs_requests: float = 0.0
    eventbridge_events: float = 0.0
    wcu: float = 0.0
    rcu: float = 0.0
    log_bytes: float = 0.0
    put_metric_data: float = 0.0
    kms_requests: float = 0.0


@dataclass(frozen=True)
class Line:
    item: str
    arithmetic: str
    dollars: float
    group: str = "classification"  # "classification", "optional", "excluded", "comparison"


def billed_ms(duration_ms: float) -> int:
    """Lambda rounds each invocation's duration up to the millisecond."""
    return max(1, math.ceil(duration_ms))


def lambda_compute_ms(measured_ms: float, memory_mb: int) -> float:
    """Compute time measured on a full core, stretched to Lambda's CPU share at ``memory_mb``."""
    share = min(1.0, memory_mb / LAMBDA_FULL_VCPU_MB)
    return measured_ms / share


def per_million(
    prefix: str, usage: Usage, memory_mb: int, arch: str = "x86_64", group: str = "classification"
) -> list[Line]:
    """Every billed line of one path for 1,000,000 events."""
    n = 1_000_000
    p = PRICES
    gb = memory_mb / 1024
    invocations = usage.invocations * n
    gb_s = invocations * billed_ms(usage.duration_ms) / 1000 * gb
    lines = [
        Line(
            f"{prefix}: Lambda requests",
            f"{invocations:,.0f} × $0.20/M",
            invocations * p["lambda_request"].value,
            group,
        ),
        Line(
            f"{prefix}: Lambda duration ({arch}, {memory_mb} MB)",
            f"{invocations:,.0f} × {billed_ms(usage.duration_ms)} ms × {gb:g} GB = {gb_s:,.0f} GB-s",
            gb_s * p[f"lambda_gb_s_{arch}"].value,
            group,
        ),
    ]
    counted = (
        ("SQS requests", usage.sqs_requests, "sqs_request", "$0.40/M"),
        ("DynamoDB write units", usage.wcu, "dynamodb_wru", "$0.625/M"),
        ("DynamoDB read units", usage.rcu, "dynamodb_rru", "$0.125/M"),
        ("EventBridge events", usage.eventbridge_events, "eventbridge_event", "$1.00/M"),
        ("CloudWatch PutMetricData", usage.put_metric_data, "put_metric_data", "$0.01/1,000"),
        ("KMS requests", usage.kms_requests, "kms_request", "$0.03/10,000"),
    )
    for label, per_event, key, price_text in counted:
        if per_event:
            lines.append(
                Line(f"{prefix}: {label}", f"{per_event * n:,.0f} × {price_text}", per_event * n * p[key].value, group)
            )
    if usage.log_bytes:
        gbytes = usage.log_bytes * n / 1e9
        lines.append(
            Line(f"{prefix}: CloudWatch Logs", f"{gbytes:.3f} GB × $0.50/GB", gbytes * p["logs_ingest_gb"].value, group)
        )
    return lines


def total(lines: list[Line], group: str = "classification") -> float:
    return sum(line.dollars for line in lines if line.group == group)


def sagemaker_serverless(per_request_ms: float, bytes_per_request: float, memory_mb: int = 1024) -> Line:
    """SageMaker Serverless Inference, one request per event: compute (per ms, by memory) + data processed."""
    n = 1_000_000
    ms = billed_ms(per_request_ms)
    compute = n * ms / 1000 * PRICES["sagemaker_serverless_1gb_s"].value * (memory_mb / 1024)
    data = n * bytes_per_request / 1e9 * PRICES["sagemaker_data_gb"].value
    return Line(
        "SageMaker Serverless Inference, 1 request per event",
        f"1,000,000 × {ms} ms at {memory_mb} MB + {n * bytes_per_request / 1e9:.2f} GB data",
        compute + data,
        "comparison",
    )


def monthly_metrics(metric_count: int) -> float:
    """Custom metrics are billed per metric-month (each name × dimension set), whatever the traffic."""
    return metric_count * PRICES["custom_metric_month"].value


def as_dicts(lines: list[Line]) -> list[dict[str, Any]]:
    return [asdict(line) for line in lines]


def usage_from_counts(
    billed: Mapping[str, float], events: int, invocations: int, duration_ms: float, log_bytes: float = 0.0
) -> Usage:
    """Per-event usage from a counter's billed units over ``events`` events and ``invocations`` invocations."""
    if events <= 0:
        raise ValueError("events must be positive")
    return Usage(
        invocations=invocations / events,
        duration_ms=duration_ms,
        sqs_requests=billed.get("sqs_requests", 0.0) / events,
        eventbridge_events=billed.get("eventbridge_events", 0.0) / events,
        wcu=billed.get("dynamodb_wcu", 0.0) / events,
        rcu=billed.get("dynamodb_rcu", 0.0) / events,
        log_bytes=log_bytes / events,
        put_metric_data=billed.get("cloudwatch_put_metric_data", 0.0) / events,
    )
