"""Shared helpers for the monitoring tests: a small model package, moto tables, fault injection, EMF capture.

The small manifest (3 classes, two baseline features) keeps these tests fast and independent of the
committed BANKING77 model; one wiring test uses the real model through the classifier handler.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto import mock_aws

from pigeonhole import metrics_catalog as mc
from pigeonhole.classify.contract import InputEvent, Reason
from pigeonhole.classify.routing import Classification, window_start
from pigeonhole.drift import layout as keys
from pigeonhole.model.features import NORMALIZATION
from pigeonhole.model.manifest import (
    DataFingerprint,
    DriftBaseline,
    DriftThresholds,
    FileRef,
    Histogram,
    InputField,
    InputSpec,
    Manifest,
    Thresholds,
)
from pigeonhole.model.runtime import ModelRuntime
from pigeonhole.naming import ResourceNames
from pigeonhole_tools.local.provisioning import create_tables as provision_tables

REGION = "us-east-1"
NAMES = ResourceNames("test")
WINDOWS = NAMES.windows_table
PREDICTIONS = NAMES.predictions_table
FEEDBACK = NAMES.feedback_table
CLASSES = ["card_arrival", "exchange_rate", "lost_card"]
VOCABULARY = frozenset({"card", "my", "rate", "lost", "the", "when", "arrive", "exchange", "is", "what"})
VERSION = "0.1.0-test"
CONFIDENCE_EDGES = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
LENGTH_EDGES = [0.0, 10.0, 20.0, 40.0, 80.0, 10_000.0]
OOV_EDGES = [0.0, 0.1, 0.25, 0.5, 1.0001]


def manifest(min_window_events: int = 20, version: str = VERSION) -> Manifest:
    """A 3-class package whose baseline has the length and OOV features (tokens left out on purpose)."""
    return Manifest(
        name="tiny",
        version=version,
        created_at="2026-11-01T00:00:00Z",
        model=FileRef(file="model.onnx", sha256="0" * 64, size_bytes=1),
        classes=CLASSES,
        input=InputSpec(fields=[InputField(name="text")], normalization=NORMALIZATION),
        thresholds=Thresholds(review_confidence=0.5, top_k=2),
        drift_baseline=DriftBaseline(
            n_events=1000,
            class_prior=[0.5, 0.3, 0.2],
            confidence=Histogram(edges=CONFIDENCE_EDGES, counts=[0, 50, 100, 250, 600]),
            features={
                "length_chars": Histogram(edges=LENGTH_EDGES, counts=[50, 300, 450, 180, 20]),
                "oov_share": Histogram(edges=OOV_EDGES, counts=[400, 300, 200, 100]),
            },
        ),
        drift_thresholds=DriftThresholds(min_window_events=min_window_events),
        training_data=DataFingerprint(
            train_sha256="1" * 64,
            train_rows=1,
            eval_sha256="2" * 64,
            eval_rows=1,
            text_column="text",
            label_column="label",
            source="test",
        ),
        metrics={"int8": {"accuracy": 0.9}},
    )


def write_tiny_model(target: Path) -> Path:
    """A real (tiny) TF-IDF + logistic regression ONNX package with :func:`manifest`'s classes and
    baseline, so the classifier handler can run with the recorder before layers/model exists.
    Built in the test (training libraries never ship)."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import StringTensorType
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    texts = [
        "when will my card arrive",
        "my new card has not arrived",
        "what is the exchange rate",
        "exchange rate for euros",
        "i lost my card",
        "my card was stolen",
    ]
    labels = ["card_arrival", "card_arrival", "exchange_rate", "exchange_rate", "lost_card", "lost_card"]
    pipe = Pipeline(
        [("tfidf", TfidfVectorizer(lowercase=False, token_pattern=r"\b\w+\b")), ("clf", LogisticRegression(C=50))]
    )
    pipe.fit(texts, labels)
    assert list(pipe.classes_) == CLASSES
    onx = convert_sklearn(
        pipe, initial_types=[("text", StringTensorType([None, 1]))], options={id(pipe.steps[-1][1]): {"zipmap": False}}
    )
    data = onx.SerializeToString()
    target.mkdir(parents=True, exist_ok=True)
    (target / "model.onnx").write_bytes(data)
    package = manifest().model_copy(
        update={"model": FileRef(file="model.onnx", sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data))}
    )
    (target / "manifest.json").write_text(package.dump(), encoding="utf-8")
    return target


def runtime(m: Manifest | None = None) -> ModelRuntime:
    """Only manifest and vocabulary matter to the recorder; no ONNX session is needed."""
    return ModelRuntime(manifest=m or manifest(), session=None, vocabulary=VOCABULARY)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def classification(
    event_id: str,
    label_index: int,
    confidence: float,
    when: str = "2026-11-29T07:01:00Z",
    text: str = "when will my card arrive",
    window_seconds: int = 300,
) -> Classification:
    t = at(when)
    event = InputEvent(id=event_id, time=t, model_input=text, payload={"id": event_id})
    label = CLASSES[label_index]
    return Classification(
        event=event,
        label_index=label_index,
        label=label,
        confidence=confidence,
        top_k=[(label, confidence)],
        route="auto" if confidence >= 0.5 else "review",
        window=window_start(t, window_seconds),
    )


def quarantine_reason(event_id: str | None = None) -> Reason:
    return Reason("missing_field", "text is missing", "text", event_id)


def create_tables(client: Any) -> None:
    """The tables as the stack creates them, by the local runtime's provisioning (pigeonhole.topology specs)."""
    provision_tables(client, NAMES)


@contextmanager
def moto_dynamodb() -> Iterator[Any]:
    """A moto DynamoDB client with the three tables (use it as a fixture body)."""
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION, config=Config(retries={"max_attempts": 1}))
        create_tables(client)
        yield client


def serialize_moto(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make moto's DynamoDB as atomic per request as DynamoDB is.

    moto runs requests from several threads without a lock, and a cancelled transaction restores a
    snapshot of the whole table, which would undo other threads' writes. Real DynamoDB serializes
    per item; one lock around every backend call emulates that (our code still runs concurrently).
    """
    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.RLock()
    for name in ("put_item", "update_item", "get_item", "transact_write_items", "query", "batch_get_item"):
        original = getattr(DynamoDBBackend, name)

        def locked(self: Any, *args: Any, __original: Callable[..., Any] = original, **kwargs: Any) -> Any:
            with lock:
                return __original(self, *args, **kwargs)

        monkeypatch.setattr(DynamoDBBackend, name, locked)


class CrashError(Exception):
    """The function dying (timeout, out of memory) at a chosen point."""


class FaultyClient:
    """Wraps a DynamoDB client to crash before or after chosen TransactWriteItems calls or plain writes
    (PutItem, BatchWriteItem; counted separately), or to answer with a chosen error; everything else
    passes through."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls = 0
        self.crash_before: set[int] = set()  # 1-based call numbers
        self.crash_after: set[int] = set()
        self.errors: dict[int, ClientError] = {}
        self.transactions: list[list[dict[str, Any]]] = []
        self.write_calls = 0
        self.write_crash_before: set[int] = set()
        self.write_crash_after: set[int] = set()
        self.write_errors: dict[int, ClientError] = {}
        self.writes: list[tuple[str, dict[str, Any]]] = []

    def transact_write_items(self, **kwargs: Any) -> Any:
        self.calls += 1
        n = self.calls
        if n in self.crash_before:
            raise CrashError(f"crash before transaction {n}")
        if n in self.errors:
            raise self.errors[n]
        out = self.inner.transact_write_items(**kwargs)
        self.transactions.append(kwargs["TransactItems"])
        if n in self.crash_after:
            raise CrashError(f"crash after transaction {n}")
        return out

    # Plain writes (the classifier's batch items, late pointers and captures) have their own call count.
    def put_item(self, **kwargs: Any) -> Any:
        return self._write("put_item", kwargs)

    def batch_write_item(self, **kwargs: Any) -> Any:
        return self._write("batch_write_item", kwargs)

    def _write(self, op: str, kwargs: dict[str, Any]) -> Any:
        self.write_calls += 1
        n = self.write_calls
        if n in self.write_crash_before:
            raise CrashError(f"crash before write {n}")
        if n in self.write_errors:
            raise self.write_errors[n]
        out = getattr(self.inner, op)(**kwargs)
        self.writes.append((op, kwargs))
        if n in self.write_crash_after:
            raise CrashError(f"crash after write {n}")
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def cancelled(*codes: str) -> ClientError:
    """A TransactionCanceledException as botocore raises it."""
    return ClientError(
        {
            "Error": {"Code": "TransactionCanceledException", "Message": "Transaction cancelled"},
            "CancellationReasons": [{"Code": c} for c in codes],
        },
        "TransactWriteItems",
    )


def emf(out: str) -> list[dict[str, Any]]:
    """EMF blobs printed to stdout: [{name, value, namespace, dimensions: {name: value}}]."""
    points = []
    for line in out.splitlines():
        if '"_aws"' not in line:
            continue
        blob = json.loads(line)
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            dims = {d: blob[d] for d in directive["Dimensions"][0]}
            for metric in directive["Metrics"]:
                values = blob[metric["Name"]]
                for v in values if isinstance(values, list) else [values]:
                    points.append(
                        {
                            "name": metric["Name"],
                            "unit": metric.get("Unit"),
                            "value": v,
                            "namespace": directive["Namespace"],
                            "dimensions": dims,
                        }
                    )
    return points


def assert_in_catalog(points: list[dict[str, Any]]) -> None:
    """Every point is a catalog metric with exactly its dimension names, service and unit."""
    catalog = {(m.name, m.service): m for m in mc.ALL_METRICS}  # ModelLoadFailures exists once per service
    for p in points:
        definition = catalog[(p["name"], p["dimensions"].get(mc.DIM_SERVICE))]
        assert p["namespace"] == mc.NAMESPACE
        assert tuple(p["dimensions"]) == definition.dimensions, p
        assert p["dimensions"][mc.DIM_SERVICE] == definition.service
        assert p["unit"] == definition.unit


def get_window(client: Any, start: str, version: str = VERSION, shards: int = 4) -> dict[str, Any]:
    """A window as it stands, as plain numbers: its batch items merged (each unit once) plus every
    attribute of its window items (label counters, weighted-label sums), shards summed. Reads
    ``shards`` batch partitions (a recorder with fewer uses a subset of them)."""
    from boto3.dynamodb.types import TypeDeserializer

    from pigeonhole.adapters.dynamodb import DynamoDBAdapter
    from pigeonhole.drift import batches
    from pigeonhole.drift.compaction import read_batch_items

    d = TypeDeserializer()
    items = client.query(
        TableName=WINDOWS,
        KeyConditionExpression="pk = :p AND begins_with(sk, :s)",
        ExpressionAttributeValues={":p": {"S": f"W#{version}"}, ":s": {"S": start}},
        ConsistentRead=True,
    )["Items"]
    merged: dict[str, Any] = {}
    for raw in items:
        for k, v in raw.items():
            value = d.deserialize(v)
            if k in ("pk", "sk", "model_version", "window_start", "expires_at"):
                merged.setdefault(k, value)
            else:
                merged[k] = merged.get(k, 0) + float(value)
    layout = keys.counter_layout(manifest(version=version))
    found = read_batch_items(DynamoDBAdapter(client), WINDOWS, version, start, start, shards).get(start, [])
    for k, v in batches.counters_from_records(layout, batches.merged_records(found)).to_item_updates().items():
        merged[k] = merged.get(k, 0) + v
    return merged


def scan(client: Any, table: str) -> list[dict[str, Any]]:
    from boto3.dynamodb.types import TypeDeserializer

    d = TypeDeserializer()
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": table}
    while True:
        page = client.scan(**kwargs)
        items += [{k: d.deserialize(v) for k, v in i.items()} for i in page["Items"]]
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
