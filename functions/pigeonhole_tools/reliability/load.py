"""Load held: many events through the real classifier handler in one warm process, memory and throughput watched.

AWS is answered in-process by a botocore ``before-call`` hook on the handler's own clients: parameters
are validated and serialised by botocore as for a real call, then a success is returned without any
I/O (SendMessageBatch and PutEvents accept every entry; TransactWriteItems succeeds). Nothing is
stored by the fake, so any memory that grows is the handler's (or its libraries'). Every
``checkpoint_every`` events, after a ``gc.collect``: RSS (``/proc/self/statm``), live Python heap
blocks (``sys.getallocatedblocks``), the traced heap (``tracemalloc``, optional: it slows this handler
about eightfold) and the throughput of the block.
"""

from __future__ import annotations

import gc
import json
import os
import random
import resource
import sys
import time
import tracemalloc
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse, HTTPHeaders

from pigeonhole import constants as c
from pigeonhole_tools.local.emulator import FAKE_CREDENTIAL, apply_offline_environment, default_model_dir
from pigeonhole_tools.local.poller import LambdaContext, build_event
from pigeonhole_tools.local.samples import load_messages
from pigeonhole_tools.reliability.injection import _Body
from pigeonhole_tools.reliability.output import handler_output

DEAD_ENDPOINT = "http://127.0.0.1:9"  # nothing listens there: a call that escaped the fake would fail at once


class InProcessAws:
    """A ``before-call`` hook that answers every call with a success, counting them by operation."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def attach(self, session: boto3.Session) -> boto3.Session:
        session.events.register("before-call", self.before_call)  # type: ignore[arg-type]
        return session

    def before_call(self, model: Any, params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        name = model.name
        self.calls[name] += 1
        raw = params.get("body")  # the serialised request (JSON protocols: a JSON document)
        try:
            body = json.loads(raw) if isinstance(raw, str | bytes) and raw else {}
        except ValueError:
            body = {}
        parsed: dict[str, Any] = {"ResponseMetadata": {"HTTPStatusCode": 200, "RequestId": "in-process"}}
        if name == "SendMessageBatch":
            entries = body.get("Entries", [])
            parsed["Successful"] = [
                {"Id": e["Id"], "MessageId": str(uuid.uuid4()), "MD5OfMessageBody": "0" * 32} for e in entries
            ]
            parsed["Failed"] = []
        elif name == "PutEvents":
            parsed["FailedEntryCount"] = 0
            parsed["Entries"] = [{"EventId": str(uuid.uuid4())} for _ in body.get("Entries", [])]
        return AWSResponse("http://in-process", 200, HTTPHeaders(), _Body(b"{}")), parsed


@dataclass(frozen=True)
class LoadConfig:
    events: int = 100_000
    batch_size: int = 10
    checkpoint_every: int = 10_000
    invalid_fraction: float = 0.02
    seed: int = 9
    model_dir: Path | None = None
    log_file: Path | None = None  # the handler's logs and EMF (default: discarded, but still produced)
    tracemalloc: bool = True  # trace the Python heap (costs ~8x throughput here); blocks and RSS are always read

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= 10 or self.events < self.checkpoint_every or self.checkpoint_every < 1:
            raise ValueError("batch_size within 1..10 and events >= checkpoint_every >= 1")


@dataclass(frozen=True)
class Checkpoint:
    events: int
    seconds: float  # since the first checkpoint's start
    events_per_second: float  # over the block since the previous checkpoint
    rss_mb: float
    traced_mb: float | None  # tracemalloc's current size, when tracing
    blocks: int  # sys.getallocatedblocks(): live Python heap blocks, cheap and always read


@dataclass
class LoadResult:
    config: LoadConfig
    checkpoints: list[Checkpoint]
    crashes: int  # invocations that raised (a function error)
    item_failures: int  # records reported as batch item failures
    calls: dict[str, int]
    peak_rss_mb: float
    first_error: str | None = None
    statuses: dict[str, int] = field(default_factory=dict)

    def slope(self, attribute: str) -> float:
        """Least-squares growth of a checkpoint attribute, in MB per 10,000 events, after the first block."""
        points = [(cp.events, float(getattr(cp, attribute) or 0.0)) for cp in self.checkpoints[1:]]
        return growth_per_10k(points)

    def throughput_ratio(self) -> float:
        """Last block's events/s over the first block's (flat is ~1; reported, never asserted)."""
        rates = [cp.events_per_second for cp in self.checkpoints]
        return rates[-1] / rates[0] if len(rates) > 1 and rates[0] else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": {**asdict(self.config), "model_dir": None, "log_file": None},
            "crashes": self.crashes,
            "item_failures": self.item_failures,
            "statuses": self.statuses,
            "calls": self.calls,
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "traced_slope_mb_per_10k": round(self.slope("traced_mb"), 4) if self.config.tracemalloc else None,
            "blocks_slope_per_10k": round(self.slope("blocks")),
            "rss_slope_mb_per_10k": round(self.slope("rss_mb"), 3),
            "throughput_ratio_last_first": round(self.throughput_ratio(), 3),
            "checkpoints": [asdict(cp) for cp in self.checkpoints],
            "first_error": self.first_error,
        }


def growth_per_10k(points: Sequence[tuple[int, float]]) -> float:
    """Slope of y over x (least squares), scaled to 10,000 x; 0 for fewer than two points."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((x - mx) ** 2 for x, _ in points)
    if var == 0:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in points) / var * 10_000


def _rss_mb() -> float:
    with open("/proc/self/statm", encoding="ascii") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def batches(cfg: LoadConfig, queue_arn: str) -> Iterator[dict[str, Any]]:
    """SQS events of ``batch_size`` records, built one at a time (the generator holds nothing back)."""
    rng = random.Random(cfg.seed)
    texts = [row["text"] for row in load_messages()]
    now = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    sent_ms = str(int(time.time() * 1000))
    for start in range(0, cfg.events, cfg.batch_size):
        messages = []
        for i in range(start, min(start + cfg.batch_size, cfg.events)):
            if rng.random() < cfg.invalid_fraction:
                body = json.dumps({"id": f"load-{i:07d}", "time": now})  # missing text: quarantined
            else:
                body = json.dumps({"id": f"load-{i:07d}", "time": now, "text": rng.choice(texts)})
            messages.append(
                {
                    "MessageId": str(uuid.uuid4()),
                    "ReceiptHandle": f"rh-{i}",
                    "Body": body,
                    "MD5OfBody": "0" * 32,
                    "Attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": sent_ms},
                }
            )
        yield build_event(messages, queue_arn, "us-east-1")


def run_load(cfg: LoadConfig, progress: Callable[[Checkpoint], None] | None = None) -> LoadResult:
    """Run the load; the caller decides what growth is acceptable (see ``slope``)."""
    from pigeonhole.classify import handler as classify_module
    from pigeonhole.config import Settings

    apply_offline_environment(os.environ, "us-east-1", DEAD_ENDPOINT)
    model_dir = cfg.model_dir or default_model_dir()
    queue = "http://127.0.0.1:9/123456789012"
    os.environ.update(
        {
            c.ENV_MODEL_DIR: str(model_dir),
            c.ENV_REVIEW_QUEUE_URL: f"{queue}/load-review",
            c.ENV_QUARANTINE_QUEUE_URL: f"{queue}/load-quarantine",
            c.ENV_OUTPUT_BUS_NAME: "load-output",
            c.ENV_WINDOWS_TABLE: "load-windows",
            c.ENV_PREDICTIONS_TABLE: "load-predictions",
            "POWERTOOLS_TRACE_DISABLED": "true",
        }
    )
    aws = InProcessAws()
    session = aws.attach(
        boto3.Session(
            aws_access_key_id=FAKE_CREDENTIAL,
            aws_secret_access_key=FAKE_CREDENTIAL,
            aws_session_token=FAKE_CREDENTIAL,
            region_name="us-east-1",
        )
    )
    classify_module.reset_for_tests(classify_module.build_service(Settings.from_env(), session))
    arn = "arn:aws:sqs:us-east-1:123456789012:load-ingest"
    checkpoints: list[Checkpoint] = []
    crashes = 0
    failures = 0
    first_error: str | None = None
    statuses: Counter[str] = Counter()
    done = 0
    tracing = tracemalloc.is_tracing()
    if cfg.tracemalloc and not tracing:
        tracemalloc.start()
    try:
        with handler_output([classify_module.logger], cfg.log_file):
            started = block_started = time.perf_counter()
            for event in batches(cfg, arn):
                context = LambdaContext.start("load-classifier", f"{arn}-function", 30.0)
                try:
                    response = classify_module.handler(event, context)
                    failed = len((response or {}).get("batchItemFailures") or [])
                    failures += failed
                    statuses["ok"] += len(event["Records"]) - failed
                except Exception as exc:  # counted: the invariant is zero
                    crashes += 1
                    first_error = first_error or f"{type(exc).__name__}: {str(exc)[:200]}"
                done += len(event["Records"])
                if done % cfg.checkpoint_every == 0:
                    gc.collect()
                    now = time.perf_counter()
                    cp = Checkpoint(
                        events=done,
                        seconds=round(now - started, 3),
                        events_per_second=round(cfg.checkpoint_every / max(now - block_started, 1e-9), 1),
                        rss_mb=round(_rss_mb(), 2),
                        traced_mb=round(tracemalloc.get_traced_memory()[0] / 2**20, 3) if cfg.tracemalloc else None,
                        blocks=sys.getallocatedblocks(),
                    )
                    checkpoints.append(cp)
                    if progress is not None:
                        progress(cp)
                    block_started = time.perf_counter()
    finally:
        if cfg.tracemalloc and not tracing:
            tracemalloc.stop()
        classify_module.reset_for_tests()
    return LoadResult(
        config=cfg,
        checkpoints=checkpoints,
        crashes=crashes,
        item_failures=failures,
        calls=dict(aws.calls),
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        first_error=first_error,
        statuses=dict(statuses),
    )
