"""Warm path: the classifier handler per SQS batch with AWS answered in-process, beside its floor and rivals.

What is timed, per batch of real BANKING77 texts, interleaved call by call so machine noise hits every
variant alike:
- ``handler``: `pigeonhole.classify.handler.handler` on a Lambda SQS event, every AWS call answered by
  `fakeaws` (so the time is Pigeonhole's: envelope parsing, contract checks, inference, routing, window
  and capture bookkeeping, building the AWS requests, logging and EMF metrics, written to /dev/null);
- ``floor``: `InferenceSession.run` alone on the same texts, already normalised and in an array;
- ``int8`` / ``fp32``: `InferenceSession.run` of one training's two graphs (see `models`);
- ``sklearn_predict``: that training's scikit-learn pipeline's `predict_proba` alone;
- ``sklearn_handler``: what a scikit-learn-on-Lambda handler does per batch: parse the bodies, normalise,
  `predict_proba`, take the top label; no AWS calls (favouring it).
One thread everywhere (onnxruntime ``intra_op_num_threads=1``, BLAS limited to 1 thread), so every
variant runs in the calling thread and its **CPU time** (``time.thread_time``) is what it costs, whatever
else the machine runs; the wall time is kept beside it (it includes waiting for a core on a shared host).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from pigeonhole.model.features import normalize_batch
from pigeonhole_tools.bench import fakeaws
from pigeonhole_tools.bench.models import BenchModels
from pigeonhole_tools.bench.stats import summarize

QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:pigeonhole-ingest"
REGION = "us-east-1"


def lambda_environment(model_dir: Path) -> dict[str, str]:
    """The classifier's environment as the stack sets it; names only, every call is answered in-process."""
    return {
        "PIGEONHOLE_MODEL_DIR": str(model_dir.resolve()),
        "PIGEONHOLE_REVIEW_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/pigeonhole-review",
        "PIGEONHOLE_QUARANTINE_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/pigeonhole-quarantine",
        "PIGEONHOLE_OUTPUT_BUS_NAME": "pigeonhole-output",
        "PIGEONHOLE_WINDOWS_TABLE": "pigeonhole-windows",
        "PIGEONHOLE_PREDICTIONS_TABLE": "pigeonhole-predictions",
        "POWERTOOLS_SERVICE_NAME": "classifier",
        "POWERTOOLS_METRICS_NAMESPACE": "Pigeonhole",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "ORT_DISABLE_TELEMETRY": "1",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def sqs_event(texts: Sequence[str], first_id: int, now: datetime | None = None) -> dict[str, Any]:
    """The event Lambda's SQS event source mapping delivers for one batch of producer documents."""
    now = now or datetime.now(UTC)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    millis = str(int(now.timestamp() * 1000))
    records = []
    for i, text in enumerate(texts):
        body = json.dumps({"id": f"bench-{first_id + i}", "time": stamp, "text": text})
        records.append(
            {
                "messageId": f"00000000-0000-0000-0000-{first_id + i:012d}",
                "receiptHandle": f"rh-{first_id + i}",
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": millis,
                    "SenderId": "AIDAEXAMPLE",
                    "ApproximateFirstReceiveTimestamp": millis,
                },
                "messageAttributes": {},
                "md5OfBody": hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": QUEUE_ARN,
                "awsRegion": REGION,
            }
        )
    return {"Records": records}


@contextlib.contextmanager
def stdout_to(path: str) -> Iterator[None]:
    """Send file descriptor 1 (Powertools' logs and EMF) to ``path`` while timing, then restore it."""
    import sys

    sys.stdout.flush()
    saved = os.dup(1)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(fd, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(fd)
        os.close(saved)


class LambdaContext:
    function_name = "pigeonhole-classifier"
    function_version = "1"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:pigeonhole-classifier:live"
    aws_request_id = "bench"
    log_group_name = "/aws/lambda/pigeonhole-classifier"
    log_stream_name = "bench"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 30_000


def sklearn_handler(event: dict[str, Any], pipeline: Any) -> list[dict[str, Any]]:
    """A minimal scikit-learn-on-Lambda handler: bodies → normalised texts → predict_proba → top label."""
    docs = [json.loads(r["body"]) for r in event["Records"]]
    probs = pipeline.predict_proba(normalize_batch([d["text"] for d in docs]))
    top = probs.argmax(axis=1)
    classes = pipeline.classes_
    return [
        {"id": d["id"], "label": str(classes[k]), "confidence": float(probs[i, k])}
        for i, (d, k) in enumerate(zip(docs, top, strict=True))
    ]


def _ort_session(path_or_bytes: Path | bytes) -> Any:
    from pigeonhole.model.session import make_session

    data = path_or_bytes.read_bytes() if isinstance(path_or_bytes, Path) else path_or_bytes
    return make_session(data, threads=1)


def _timers(
    handler: Callable[..., object],
    events: Sequence[dict[str, Any]],
    array: np.ndarray,
    floor: Any,
    io: tuple[str, str],
    variants: dict[str, Any],
) -> dict[str, Callable[[int], object]]:
    """One callable per variant; call ``k`` uses the ``k``-th event (fresh ids) where the variant reads events."""
    feed = {io[0]: array}
    timers: dict[str, Callable[[int], object]] = {
        "handler": lambda k: handler(events[k], LambdaContext()),
        "floor": lambda _k: floor.run([io[1]], feed),
    }
    if variants:
        texts = list(array[:, 0])
        timers["fp32"] = lambda _k: variants["fp32"].run([io[1]], feed)
        timers["int8"] = lambda _k: variants["int8"].run([io[1]], feed)
        timers["sklearn_predict"] = lambda _k: variants["sklearn"].predict_proba(texts)
        timers["sklearn_handler"] = lambda k: sklearn_handler(events[k], variants["sklearn"])
    return timers


def run_warm(
    model_dir: Path,
    texts: Sequence[str],
    models: BenchModels | None,
    batch_sizes: Sequence[int],
    repeats: Callable[[int], int],
) -> dict[str, Any]:
    """Time every variant at every batch size; returns per-variant summaries in ms and events/s."""
    from threadpoolctl import threadpool_limits

    os.environ.update(lambda_environment(model_dir))
    from pigeonhole.classify import handler
    from pigeonhole.config import Settings

    service = handler.build_service(Settings.from_env(), session=fakeaws.make_session())
    handler.reset_for_tests(service)
    manifest = service.runtime.manifest
    io = (manifest.input.onnx_input, manifest.input.onnx_probabilities_output)
    floor = service.runtime.session
    variants: dict[str, Any] = {}
    if models is not None:
        import joblib  # type: ignore[import-untyped]

        variants = {
            "fp32": _ort_session(models.fp32),
            "int8": _ort_session(models.int8),
            "sklearn": joblib.load(models.sklearn),
        }
    results: dict[str, Any] = {}
    next_id = 0
    with threadpool_limits(limits=1), stdout_to(os.devnull):
        for size in batch_sizes:
            n = repeats(size)
            batch_texts = [texts[(size * 7 + i) % len(texts)] for i in range(size)]
            array = np.array(normalize_batch(batch_texts), dtype=object).reshape(-1, 1)
            events = []
            for _ in range(n + 3):
                events.append(sqs_event(batch_texts, next_id))
                next_id += size
            timers = _timers(handler.handler, events, array, floor, io, variants)
            cpu: dict[str, list[float]] = {name: [] for name in timers}
            wall: dict[str, list[float]] = {name: [] for name in timers}
            for k in range(n + 3):
                for name, fn in timers.items():
                    start, start_cpu = time.perf_counter(), time.thread_time()
                    fn(k)
                    if k >= 3:  # the first three calls warm caches
                        cpu[name].append((time.thread_time() - start_cpu) * 1e3)
                        wall[name].append((time.perf_counter() - start) * 1e3)
            results[str(size)] = {
                name: {
                    **summarize(cpu[name]),
                    "events_per_s": size / (summarize(cpu[name])["median"] / 1e3),
                    "wall": summarize(wall[name]),
                }
                for name in timers
            }
        results["profile_batch_10"] = _profile(handler.handler, sqs_event, texts)
    handler.reset_for_tests(None)
    return results


def _owner(filename: str, function: str) -> str:
    """Which package a profiled function belongs to (Pigeonhole's sub-packages kept apart)."""
    if filename == "~":  # a built-in: name it by what it is a method of
        if "onnxruntime" in function or "InferenceSession" in function or function.strip("<>") == "run":
            return "onnxruntime (native)"
        return "builtins"
    parts = Path(filename).parts
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1]
    if "pigeonhole" in parts:
        i = parts.index("pigeonhole")
        return ".".join(parts[i : i + 2]).removesuffix(".py")
    return "stdlib"


def _profile(
    fn: Callable[..., object], make_event: Callable[..., dict[str, Any]], texts: Sequence[str]
) -> dict[str, float]:
    """Where the handler's time goes at a batch of 10: cProfile self time summed by owning package, ms per batch."""
    import cProfile
    import pstats

    calls = 30
    events = [
        make_event([texts[(i * 10 + j) % len(texts)] for j in range(10)], 10_000_000 + i * 10) for i in range(calls)
    ]
    profiler = cProfile.Profile()
    profiler.enable()
    for event in events:
        fn(event, LambdaContext())
    profiler.disable()
    totals: dict[str, float] = {}
    for (filename, _line, function), row in pstats.Stats(profiler).stats.items():  # type: ignore[attr-defined]
        owner = _owner(filename, function)
        totals[owner] = totals.get(owner, 0.0) + row[2] * 1e3 / calls
    return dict(sorted(totals.items(), key=lambda kv: -kv[1]))
