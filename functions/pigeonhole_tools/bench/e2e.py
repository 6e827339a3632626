"""AWS requests per event, counted: the classify, feedback and drift paths end to end against moto server.

The local runtime provisions the stack's topology on a moto server on loopback (`local.emulator`); the
real handlers run in this process with boto3 sessions that carry a `RequestCounter`, and the event
source mappings are played by `local.poller` with a counted SQS client of their own. So every call the
functions make, and every receive and delete Lambda's mappings make, is counted from botocore's hooks,
with the units AWS bills (see `counting`). DynamoDB write units use the stored item's size, read back
after each write by an uncounted client.

Per batch size, one fresh system (own prefix): N events go straight onto the ingest queue (the
producer's own send is not counted), batches of exactly ``b`` are received and handed to the
classifier, a label for every event goes through the feedback queue to the feedback handler, then the
drift function closes the windows. Logs (Powertools JSON and EMF) are captured from fd 1 and measured.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3

from pigeonhole import constants as c
from pigeonhole_tools.bench.counting import RequestCounter
from pigeonhole_tools.bench.warm import stdout_to


@dataclass
class PathCount:
    """What one path did for ``events`` events in ``invocations`` invocations."""

    events: int
    invocations: int
    calls: dict[str, float]
    billed: dict[str, float]
    log_bytes: int = 0
    wall_ms: float = 0.0  # against moto on loopback: not a Lambda duration
    metrics: list[str] = field(default_factory=list)  # distinct EMF metric name + dimension sets


def _emf_metrics(path: Path) -> tuple[int, list[str]]:
    """Bytes written to the log, and the distinct metrics (name + dimension names + values) its EMF declared."""
    size = path.stat().st_size if path.exists() else 0
    found: set[str] = set()
    if size:
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if '"_aws"' not in line:
                continue
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            for directive in doc.get("_aws", {}).get("CloudWatchMetrics", []):
                for dims in directive.get("Dimensions", [[]]):
                    dim_text = ",".join(f"{d}={doc.get(d)}" for d in dims)
                    for metric in directive.get("Metrics", []):
                        found.add(f"{directive.get('Namespace')}/{metric['Name']}[{dim_text}]")
    return size, sorted(found)


class _Reader:
    """Reads an item back (uncounted) so a write is billed at the stored item's size."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._keys: dict[str, list[str]] = {}

    def __call__(self, table: str, item: Mapping[str, Any]) -> Mapping[str, Any] | None:
        if table not in self._keys:
            schema = self._client.describe_table(TableName=table)["Table"]["KeySchema"]
            self._keys[table] = [k["AttributeName"] for k in schema]
        key = {k: item[k] for k in self._keys[table] if k in item}
        if len(key) != len(self._keys[table]):
            return None
        return self._client.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")


def window_item_kind(table: str, item: Mapping[str, Any]) -> str | None:
    """Which part of the window accounting a windows-table item is (`docs/monitoring.md`'s key layout), so
    the per-batch writes, the rare extras and the drift function's per-window merges are priced apart."""
    from pigeonhole.drift import batches, compaction
    from pigeonhole.drift import layout as keys

    if not table.endswith("windows"):
        return None
    pk = str(item.get(keys.PK, {}).get("S", ""))
    sk = str(item.get(keys.SK, {}).get("S", ""))
    if pk == keys.MODELS_PK:
        return "model_registry"
    if pk.startswith(batches.BATCH_PREFIX):
        return "late_pointer" if pk.endswith("#" + batches.LATE_SUFFIX) else "batch_item"
    if sk.startswith(compaction.COMPACTED_PREFIX):
        return "window_merge"
    if sk.startswith(keys.REPORT_PREFIX):
        return "window_report"
    return "window_other"  # label counters (feedback), summaries


def _counted(reader: _Reader) -> tuple[boto3.Session, RequestCounter]:
    session = boto3.Session()
    counter = RequestCounter(item_reader=reader, item_kind=window_item_kind)
    counter.attach(session)
    return session, counter


def _gather(poller: Any, size: int) -> list[Any]:
    """Receive exactly ``size`` messages (10 per receive, as the mapping does) unless the queue runs dry."""
    messages: list[Any] = []
    empty = 0
    while len(messages) < size and empty < 3:
        got = poller.receive(max_messages=min(10, size - len(messages)), wait_seconds=0)
        messages.extend(got)
        empty = 0 if got else empty + 1
    return messages


def _drive(poller: Any, total: int, size: int, log: Path) -> tuple[int, float]:
    invocations = 0
    started = time.perf_counter()
    done = 0
    with stdout_to(str(log)):
        while done < total:
            batch = _gather(poller, min(size, total - done))
            if not batch:
                break
            poller.invoke(batch)
            invocations += 1
            done += len(batch)
    return invocations, (time.perf_counter() - started) * 1e3


def _path(
    counter: RequestCounter, esm: RequestCounter, events: int, invocations: int, log: Path, ms: float
) -> PathCount:
    calls: dict[str, float] = {f"esm:{k}": float(v) for k, v in esm.calls.items()}
    calls.update({k: float(v) for k, v in counter.calls.items()})
    billed: dict[str, float] = dict(counter.billed)
    for key, value in esm.billed.items():
        billed[key] = billed.get(key, 0.0) + value
        billed[f"esm:{key}"] = value
    size, metrics = _emf_metrics(log)
    return PathCount(events, invocations, calls, billed, size, ms, metrics)


def _send(sqs: Any, url: str, bodies: Sequence[dict[str, Any]]) -> None:
    """The producer's own sends (uncounted client), 10 per request."""
    for start in range(0, len(bodies), 10):
        entries = [{"Id": str(j), "MessageBody": json.dumps(b)} for j, b in enumerate(bodies[start : start + 10])]
        sqs.send_message_batch(QueueUrl=url, Entries=entries)


def _classify(resources: Any, reader: _Reader, events: int, size: int, tmp: Path) -> dict[str, Any]:
    import pigeonhole.classify.handler as classify_handler
    from pigeonhole.config import Settings
    from pigeonhole_tools.local.poller import SqsEventSourcePoller

    session, counter = _counted(reader)
    service = classify_handler.build_service(Settings.from_env(), session=session)
    init = counter.snapshot()  # the cold start's own calls (registering the model version), apart
    counter.reset()
    classify_handler.reset_for_tests(service)
    esm = RequestCounter()
    poller = SqsEventSourcePoller.for_resources(resources, classify_handler.handler, max_attempts=1)
    esm.attach(poller._sqs)  # the mapping's own client: its receives and deletes are billed too
    log = tmp / "classify.log"
    try:
        invocations, ms = _drive(poller, events, size, log)
    finally:
        classify_handler.reset_for_tests(None)
    return {**_path(counter, esm, events, invocations, log, ms).__dict__, "init": init}


def _feedback(endpoint: str, resources: Any, reader: _Reader, events: int, size: int, tmp: Path) -> dict[str, Any]:
    import pigeonhole.feedback.handler as feedback_handler
    from pigeonhole.config import MonitorSettings
    from pigeonhole_tools.local import emulator
    from pigeonhole_tools.local.poller import SqsEventSourcePoller

    queue = resources.provisioned.queues[resources.names.feedback_queue]
    session, counter = _counted(reader)
    feedback_handler.reset_for_tests(feedback_handler.build_service(MonitorSettings.from_env(), session=session))
    counter.reset()
    esm = RequestCounter()
    poller = SqsEventSourcePoller(
        emulator.sqs_client(endpoint, max_attempts=1),
        queue_url=queue.url,
        queue_arn=queue.arn,
        region=resources.region,
        handler=feedback_handler.handler,
        batch_size=min(size, 10),
        visibility_timeout=60,
    )
    esm.attach(poller._sqs)
    log = tmp / "feedback.log"
    try:
        invocations, ms = _drive(poller, events, min(size, 10), log)
    finally:
        feedback_handler.reset_for_tests(None)
    return _path(counter, esm, events, invocations, log, ms).__dict__


def _drift(reader: _Reader, events: int, now: datetime, tmp: Path) -> dict[str, Any]:
    """One scheduled run of the drift function after the windows closed."""
    import pigeonhole.drift.handler as drift_handler
    from pigeonhole.config import MonitorSettings

    session, counter = _counted(reader)
    settings = MonitorSettings.from_env()
    drift = drift_handler.build_service(settings, session=session)
    counter.reset()
    later = now + timedelta(seconds=2 * settings.window_seconds + settings.grace_seconds + 60)
    log = tmp / "drift.log"
    started = time.perf_counter()
    with stdout_to(str(log)):
        run = drift.run(later)
    ms = (time.perf_counter() - started) * 1e3
    return {**_path(counter, RequestCounter(), events, 1, log, ms).__dict__, "summary": _jsonable(run.summary())}


def run_system(
    endpoint: str,
    model_dir: Path,
    docs: Sequence[tuple[str, str]],
    size: int,
    prefix: str,
    all_paths: bool,
    extra_env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """One fresh system at batch size ``size``: classify, and (``all_paths``) feedback and drift, each counted."""
    from pigeonhole_tools.local import emulator

    resources = emulator.provision(endpoint, prefix=prefix, max_attempts=1)
    os.environ.update(
        {
            **resources.lambda_environment(model_dir),
            c.ENV_FEEDBACK_TABLE: resources.names.feedback_table,
            "POWERTOOLS_METRICS_DISABLED": "false",
            **(extra_env or {}),
        }
    )
    plain_sqs = emulator.sqs_client(endpoint, max_attempts=1)
    reader = _Reader(emulator.dynamodb_client(endpoint, max_attempts=1))
    now = datetime.now(UTC)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    ids = [f"{prefix}-{i}" for i in range(len(docs))]
    _send(
        plain_sqs,
        resources.ingest.url,
        [{"id": i, "time": stamp, "text": d[0]} for i, d in zip(ids, docs, strict=True)],
    )
    out: dict[str, Any] = {"batch_size": size, "events": len(docs)}
    with tempfile.TemporaryDirectory() as tmp:
        out["classify"] = _classify(resources, reader, len(docs), size, Path(tmp))
        if all_paths:
            feedback_url = resources.provisioned.queues[resources.names.feedback_queue].url
            _send(plain_sqs, feedback_url, [{"id": i, "label": d[1]} for i, d in zip(ids, docs, strict=True)])
            out["feedback"] = _feedback(endpoint, resources, reader, len(docs), size, Path(tmp))
            out["drift"] = _drift(reader, len(docs), now, Path(tmp))
    return out


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def run_counted(
    model_dir: Path, docs: Sequence[tuple[str, str]], plan: Mapping[int, int], all_paths: Sequence[int] = (1, 10)
) -> dict[str, Any]:
    """Start moto on loopback, then one system per batch size in ``plan`` (batch size -> events).

    Feedback and drift run at the sizes in ``all_paths``; the others count the classify path only.
    """
    from pigeonhole_tools.local import emulator

    saved = dict(os.environ)
    results: dict[str, Any] = {}
    try:
        with emulator.Emulator() as emu:
            emulator.apply_offline_environment(os.environ, endpoint=emu.endpoint)
            for size, events in plan.items():
                chosen = [docs[i % len(docs)] for i in range(events)]
                results[str(size)] = run_system(
                    emu.endpoint, model_dir, chosen, size, prefix=f"bench{size}", all_paths=size in all_paths
                )
            # The per-label class-mix metrics are an option (off by default): one small run with it on,
            # to count which metrics it adds.
            per_label = [docs[i % len(docs)] for i in range(20)]
            results["per_label_option"] = run_system(
                emu.endpoint,
                model_dir,
                per_label,
                10,
                prefix="benchlabels",
                all_paths=False,
                extra_env={c.ENV_PER_LABEL_METRICS: "true"},
            )
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return results
