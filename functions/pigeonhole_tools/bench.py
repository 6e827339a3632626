"""Benchmarks (not tests): cold start in a fresh process and inference latency, measured here and now.

Numbers are printed, never asserted: these machines are noisy, so compare ratios from one run.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

bench_app = typer.Typer(help="Measure cold start and inference latency.", no_args_is_help=False)
console = Console()

_COLD_START = r"""
import json, os, sys, time
from pathlib import Path
from typing import Annotated
t0 = time.perf_counter()
import pigeonhole.classify.handler  # noqa: F401  (what Lambda imports at init)
t1 = time.perf_counter()
from pigeonhole.model.runtime import ModelRuntime
runtime = ModelRuntime.load(Path(sys.argv[1]), threads=1)
t2 = time.perf_counter()
runtime.predict_proba(["where is my card"])
t3 = time.perf_counter()
print(json.dumps({"import_ms": (t1 - t0) * 1e3, "load_ms": (t2 - t1) * 1e3, "first_predict_ms": (t3 - t2) * 1e3}))
"""


def cold_start(model_dir: Path, runs: int) -> list[dict[str, float]]:
    """Each run is a fresh interpreter: import the handler module, verify and load the model, predict once."""
    env = {**os.environ, "ORT_DISABLE_TELEMETRY": "1", "POWERTOOLS_TRACE_DISABLED": "true"}
    results = []
    for _ in range(runs):
        out = subprocess.run(  # noqa: S603 (our own interpreter and script)
            [sys.executable, "-c", _COLD_START, str(model_dir)], capture_output=True, text=True, check=True, env=env
        )
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return results


_INIT_MODES = r"""
import json, os, sys, time
import boto3
from moto import mock_aws
with mock_aws():
    sqs, events = boto3.client("sqs"), boto3.client("events")
    urls = {n: sqs.create_queue(QueueName=n)["QueueUrl"] for n in ("review", "quarantine", "ingest")}
    events.create_event_bus(Name="output")
    os.environ.update({"PIGEONHOLE_MODEL_DIR": sys.argv[1], "PIGEONHOLE_REVIEW_QUEUE_URL": urls["review"],
                       "PIGEONHOLE_QUARANTINE_QUEUE_URL": urls["quarantine"], "PIGEONHOLE_OUTPUT_BUS_NAME": "output",
                       "AWS_LAMBDA_INITIALIZATION_TYPE": sys.argv[2]})
    texts = [f"my card number {i} never arrived, what should i do" for i in range(10)]
    for i, text in enumerate(texts):
        sqs.send_message(QueueUrl=urls["ingest"], MessageBody=json.dumps(
            {"id": f"b-{i}", "time": "2026-11-29T07:01:00Z", "text": text}))
    got = sqs.receive_message(QueueUrl=urls["ingest"], MaxNumberOfMessages=10, AttributeNames=["All"])["Messages"]
    event = {"Records": [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
             "attributes": m["Attributes"], "messageAttributes": {}, "md5OfBody": m["MD5OfBody"],
             "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:ingest",
             "awsRegion": "us-east-1"} for m in got]}
    class Context:
        function_name, function_version, memory_limit_in_mb = "classifier", "1", 1024
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:classifier"
        aws_request_id, log_group_name, log_stream_name = "r", "g", "s"
        @staticmethod
        def get_remaining_time_in_millis(): return 30_000
    t0 = time.perf_counter()
    import pigeonhole.classify.handler as handler  # Lambda's init phase
    t1 = time.perf_counter()
    response = handler.handler(event, Context())  # the first request
    t2 = time.perf_counter()
    assert response["batchItemFailures"] == [], response
print(json.dumps({"init_ms": (t1 - t0) * 1e3, "first_batch_ms": (t2 - t1) * 1e3}))
"""

INIT_TYPES = ("on-demand", "provisioned-concurrency")


def init_modes(model_dir: Path, runs: int) -> dict[str, list[dict[str, float]]]:
    """Init and first batch of 10 in fresh processes, on demand against pre-warmed (model loaded at init).

    AWS calls go to in-process moto, the same in both modes; what differs is where the model load lands.
    """
    env = {
        **os.environ,
        "ORT_DISABLE_TELEMETRY": "1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "ERROR",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    results: dict[str, list[dict[str, float]]] = {mode: [] for mode in INIT_TYPES}
    for _ in range(runs):
        for mode in INIT_TYPES:  # interleaved, so load on the machine hits both alike
            out = subprocess.run(  # noqa: S603 (our own interpreter and script)
                [sys.executable, "-c", _INIT_MODES, str(model_dir.resolve()), mode],
                capture_output=True,
                text=True,
                check=True,
                env=env,
            )
            results[mode].append(json.loads(out.stdout.strip().splitlines()[-1]))
    return results


def latency(model_dir: Path, repeats: int) -> dict[str, float]:
    from pigeonhole.model.runtime import ModelRuntime

    runtime = ModelRuntime.load(model_dir, threads=1)
    one = ["i still have not received my card"]
    ten = [f"my card number {i} never arrived, what should i do" for i in range(10)]
    for _ in range(20):
        runtime.predict_proba(ten)

    def median_ms(texts: list[str]) -> float:
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            runtime.predict_proba(texts)
            samples.append((time.perf_counter() - start) * 1e3)
        return statistics.median(samples)

    return {"one_event_ms": median_ms(one), "ten_events_ms": median_ms(ten)}


@bench_app.callback(invoke_without_command=True)
def main(
    model_dir: Annotated[Path, typer.Option(help="model package to measure")] = Path("layers/model"),
    runs: Annotated[int, typer.Option(help="fresh processes for the cold start")] = 5,
    repeats: Annotated[int, typer.Option(help="timed runs per latency figure")] = 300,
) -> None:
    """Print cold start (import + verified model load) and inference latency at one thread."""
    cold = cold_start(model_dir, runs)
    warm = latency(model_dir, repeats)
    table = Table(title=f"Pigeonhole benchmark ({model_dir}, 1 thread, medians)")
    table.add_column("measure")
    table.add_column("ms", justify="right")
    for key in ("import_ms", "load_ms", "first_predict_ms"):
        table.add_row(f"cold start: {key[:-3]}", f"{statistics.median(r[key] for r in cold):.1f}")
    total = statistics.median(r["import_ms"] + r["load_ms"] + r["first_predict_ms"] for r in cold)
    table.add_row("cold start: total", f"{total:.1f}")
    table.add_row("inference: 1 event", f"{warm['one_event_ms']:.3f}")
    table.add_row("inference: batch of 10", f"{warm['ten_events_ms']:.3f}")
    console.print(table)
    modes = init_modes(model_dir, runs)
    table = Table(title=f"Init and first batch of 10 by init type (median of {runs} fresh processes, AWS = moto)")
    for column in ("init type", "init ms", "first batch ms", "init + first batch ms"):
        table.add_column(column, justify="right" if column != "init type" else "left")
    for mode, rows in modes.items():
        init = statistics.median(r["init_ms"] for r in rows)
        first = statistics.median(r["first_batch_ms"] for r in rows)
        both = statistics.median(r["init_ms"] + r["first_batch_ms"] for r in rows)
        table.add_row(mode, f"{init:.0f}", f"{first:.0f}", f"{both:.0f}")
    console.print(table)
