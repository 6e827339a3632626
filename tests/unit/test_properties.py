"""Property-based tests (Hypothesis) over the parser and the classifier service, with in-process fakes.

Inputs: arbitrary text and bytes; JSON with hostile leaves (huge integer literals, NaN/Infinity, deep
nesting, lone surrogates, NUL, BOM, zero-width and bidi characters, strings at and one past every
limit, duplicate keys, wrong types); EventBridge envelopes with odd details; and transient faults
injected into every AWS call (SQS, EventBridge, DynamoDB through the real window recorder).

Invariants: the batch call never raises; every record ends in exactly one of auto, review, quarantine,
or a retry caused by an injected fault; everything written is strict JSON that fits its destination;
no synthetic personal data reaches the logs. Case counts: the `ci` profile tries 10,300 cases in all
(see `examples`); PIGEONHOLE_HYPOTHESIS_PROFILE=soak tries ten times as many.
"""

from __future__ import annotations

import io
import json
import math
import os
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from aws_lambda_powertools import Logger, Metrics
from botocore.exceptions import ClientError
from hypothesis import given, settings
from hypothesis import strategies as st

from pigeonhole.adapters.dynamodb import DynamoDBAdapter
from pigeonhole.adapters.eventbridge import EventBusPublisher
from pigeonhole.adapters.sqs import QueueSender
from pigeonhole.classify.contract import MAX_ID_CHARS, InputEvent, Reason, event_model, parse_body
from pigeonhole.classify.service import ClassifierService
from pigeonhole.config import Settings
from pigeonhole.drift.recorder import WindowRecorder
from pigeonhole.model.features import NORMALIZATION
from pigeonhole.model.manifest import (
    DataFingerprint,
    DriftBaseline,
    FileRef,
    Histogram,
    InputField,
    InputSpec,
    Manifest,
    Thresholds,
)
from pigeonhole.wire import SQS_MAX_MESSAGE_BYTES

PROFILE = os.environ.get("PIGEONHOLE_HYPOTHESIS_PROFILE", "ci")
SCALE = {"ci": 1, "soak": 10}.get(PROFILE, 1)


def examples(n: int) -> int:
    return n * SCALE


MAX_CHARS = 200
MAX_BYTES = 2048
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
CLASSES = ["card_arrival", "exchange_rate", "lost_card"]
SPEC = InputSpec(fields=[InputField(name="text", max_chars=MAX_CHARS)], normalization=NORMALIZATION)
MODEL = event_model(SPEC)
POISON = "\u2063poison"  # the fake model raises on it (a content failure inside inference)
NAN_OUTPUT = "\u2064nan"  # the fake model answers NaN for it (a broken model output for one input)
# Synthetic personal data: must never reach a log line.
PII = ["jane.doe@example.com", "+44 20 7946 0958", "4111 1111 1111 1111", "5500-0000-0000-0004"]


# -- fakes ---------------------------------------------------------------------------------------
def _manifest() -> Manifest:
    return Manifest(
        name="fake",
        version="0.0.1-prop",
        created_at="2026-11-01T00:00:00Z",
        model=FileRef(file="model.onnx", sha256="0" * 64, size_bytes=1),
        classes=CLASSES,
        input=SPEC,
        thresholds=Thresholds(review_confidence=0.5, top_k=2),
        drift_baseline=DriftBaseline(
            n_events=100,
            class_prior=[0.4, 0.3, 0.3],
            confidence=Histogram(edges=[0.0, 0.5, 1.0], counts=[50, 50]),
            features={
                "length_chars": Histogram(edges=[0.0, 50.0, 10_000.0], counts=[50, 50]),
                "oov_share": Histogram(edges=[0.0, 0.5, 1.0001], counts=[50, 50]),
            },
        ),
        training_data=DataFingerprint(
            train_sha256="1" * 64,
            train_rows=1,
            eval_sha256="2" * 64,
            eval_rows=1,
            text_column="text",
            label_column="label",
            source="test",
        ),
        metrics={},
    )


@dataclass
class FakeRuntime:
    """Deterministic probabilities from the text; raises on POISON like a model failing on one input."""

    manifest: Manifest = field(default_factory=_manifest)
    vocabulary: frozenset[str] = frozenset({"card", "rate", "lost"})

    @property
    def classes(self) -> list[str]:
        return self.manifest.classes

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        rows = []
        for text in texts:
            text.encode("utf-8")  # what onnxruntime does with a string tensor: surrogates raise
            if POISON in text:
                raise RuntimeError(f"simulated inference failure on {text!r}")  # quotes the text on purpose
            if NAN_OUTPUT in text:
                rows.append([math.nan] * 3)
                continue
            h = sum(text.encode("utf-8")) % 97
            raw = np.array([h % 7 + 1, h % 5 + 1, h % 3 + 1], dtype=np.float64) ** 2
            rows.append(list(raw / raw.sum()))
        return np.array(rows, dtype=np.float32).reshape(len(texts), 3)


class Faults:
    """Decides, per AWS call, whether the environment fails it (seeded by Hypothesis)."""

    def __init__(self, rng: random.Random, rate: float) -> None:
        self.rng = rng
        self.rate = rate
        self.injected = 0

    def fail(self) -> bool:
        if self.rate and self.rng.random() < self.rate:
            self.injected += 1
            return True
        return False

    @staticmethod
    def error(operation: str) -> ClientError:
        return ClientError({"Error": {"Code": "InjectedFault", "Message": "injected"}}, operation)


def _wire_check(text: str) -> None:
    """What SQS and EventBridge would refuse: not UTF-8, or characters outside SQS's allowed set."""
    text.encode("utf-8")
    for ch in text:
        o = ord(ch)
        assert o in (0x9, 0xA, 0xD) or 0x20 <= o <= 0xD7FF or 0xE000 <= o <= 0xFFFD or o >= 0x10000, hex(o)


def _strict(text: str) -> Any:
    def refuse(name: str) -> None:
        raise AssertionError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


class FakeSqs:
    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self.delivered: dict[str, list[dict[str, Any]]] = {}

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        assert len(Entries) <= 10
        total = 0
        for e in Entries:
            _wire_check(e["MessageBody"])
            size = len(e["MessageBody"].encode("utf-8"))
            assert size <= SQS_MAX_MESSAGE_BYTES
            total += size
        assert total <= SQS_MAX_MESSAGE_BYTES
        if self.faults.fail():
            raise Faults.error("SendMessageBatch")
        ok, failed = [], []
        for e in Entries:
            if self.faults.fail():
                failed.append({"Id": e["Id"], "Code": "InjectedFault", "SenderFault": False})
            else:
                self.delivered.setdefault(QueueUrl, []).append(_strict(e["MessageBody"]))
                ok.append({"Id": e["Id"], "MessageId": "x", "MD5OfMessageBody": "x"})
        return {"Successful": ok, "Failed": failed}


class FakeEvents:
    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self.delivered: list[dict[str, Any]] = []

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        assert len(Entries) <= 10
        for e in Entries:
            _wire_check(e["Detail"])
        if self.faults.fail():
            raise Faults.error("PutEvents")
        out: list[dict[str, Any]] = []
        for e in Entries:
            if self.faults.fail():
                out.append({"ErrorCode": "InjectedFault", "ErrorMessage": "injected"})
            else:
                self.delivered.append(_strict(e["Detail"]))
                out.append({"EventId": "x"})
        return {"Entries": out, "FailedEntryCount": sum("ErrorCode" in o for o in out)}


class FakeDynamo:
    """The writes the recorder makes (batch items and pointers by PutItem, captures by BatchWriteItem), and
    TransactWriteItems for markers; a dict of keys stands in for the tables."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self.markers: set[str] = set()
        self.items: set[tuple[str, str]] = set()

    def put_item(self, TableName: str, Item: dict[str, Any]) -> dict[str, Any]:  # noqa: N803
        json.dumps(Item, default=str).encode("utf-8")
        if self.faults.fail():
            raise Faults.error("PutItem")
        self.items.add((Item["pk"]["S"], Item.get("sk", {}).get("S", "")))
        return {}

    def batch_write_item(self, RequestItems: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:  # noqa: N803
        json.dumps(RequestItems, default=str).encode("utf-8")
        if self.faults.fail():
            raise Faults.error("BatchWriteItem")
        for requests in RequestItems.values():
            for r in requests:
                self.markers.add(r["PutRequest"]["Item"]["pk"]["S"])
        return {"UnprocessedItems": {}}

    def transact_write_items(self, TransactItems: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        json.dumps(TransactItems, default=str).encode("utf-8")  # botocore's wire encoding
        if self.faults.fail():
            raise Faults.error("TransactWriteItems")
        for item in TransactItems:
            if "Put" in item:
                self.markers.add(item["Put"]["Item"]["pk"]["S"])
        return {}


# -- strategies ----------------------------------------------------------------------------------
class Raw(str):
    """A literal written into the JSON text as is (NaN, a 5,000-digit integer, a duplicate key)."""


HOSTILE_CHARS = ["\x00", "\ufeff", "\u200b", "\u200d", "\u202e", "\u2066", "\ud800", "\udfff", "\uffff", "é", "😀"]
hostile_text = st.one_of(
    st.text(max_size=40),
    st.lists(st.sampled_from([*HOSTILE_CHARS, "card", " ", "rate", *PII]), max_size=12).map("".join),
    st.sampled_from(["x" * MAX_CHARS, "x" * (MAX_CHARS + 1), "é" * MAX_CHARS, " " * 5, "", POISON, NAN_OUTPUT]),
    st.sampled_from(PII).map(lambda p: f"my card {p} has not arrived"),
)
raw_numbers = st.sampled_from(
    [Raw("NaN"), Raw("Infinity"), Raw("-Infinity"), Raw("9" * 5000), Raw("1e999"), Raw("-0"), Raw("1" * 4300)]
)
leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), hostile_text, raw_numbers)
extra_values = st.recursive(
    leaf, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=5), kids, max_size=3), max_leaves=8
)


def _time(offset: timedelta) -> str:
    try:
        return (NOW + offset).isoformat().replace("+00:00", "Z")
    except OverflowError:
        return "9999-12-31T23:59:59Z"


times = st.one_of(
    st.timedeltas(min_value=timedelta(days=-29), max_value=timedelta(hours=23)).map(_time),
    st.sampled_from(
        [
            "9999-12-31T23:59:59Z",
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-01:00",
            "2026-11-29",
            "yesterday",
            "2026-13-01T00:00:00Z",
            _time(timedelta(days=-30, seconds=-1)),
            _time(timedelta(days=1, seconds=1)),
        ]
    ),
    st.datetimes(timezones=st.sampled_from([UTC, None])).map(lambda d: d.isoformat()),
    st.integers(),
    st.none(),
)
ids = st.one_of(
    st.text(min_size=1, max_size=12),
    st.sampled_from(
        ["a" * MAX_ID_CHARS, "a" * (MAX_ID_CHARS + 1), "", "id\ud800", "id\x00"]
    ),  # ids are logged by design
    st.integers(),
    st.none(),
)


def render(value: Any) -> str:
    """JSON text of `value`, with Raw literals written verbatim."""
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{render(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(render(v) for v in value) + "]"
    return json.dumps(value)


@st.composite
def event_docs(draw: st.DrawFn) -> str:
    doc: dict[str, Any] = {}
    if draw(st.integers(0, 9)):
        doc["id"] = draw(ids)
    if draw(st.integers(0, 9)):
        doc["time"] = draw(times)
    if draw(st.integers(0, 9)):
        doc["text"] = draw(st.one_of(hostile_text, leaf))
    for key in draw(st.lists(st.sampled_from(["note", "score", "email", "nested", "text"]), max_size=3)):
        doc[f"{key}_x" if key in doc else key] = draw(extra_values)
    text = render({k: v for k, v in doc.items() if v is not None or draw(st.booleans())})
    shape = draw(st.integers(0, 9))
    if shape == 0:  # a duplicate key, the last one wins in Python
        text = text[:-1] + (',"id":' + render(draw(ids)) + "}") if len(text) > 2 else text
    if shape == 1:  # deep nesting
        depth = draw(st.sampled_from([10, 999, 5000]))
        text = text[:-1] + (',"deep":' if len(text) > 2 else '"deep":') + "[" * depth + "]" * depth + "}"
    if shape in (2, 3):  # an EventBridge envelope with an odd or a fine detail
        detail = draw(st.one_of(st.just(text), leaf.map(render), st.just('{"detail-type":"x","detail":' + text + "}")))
        envelope = {
            "version": "0",
            "id": "e",
            "detail-type": "SupportMessage",
            "source": "acme",
            "time": _time(timedelta()),
        }
        if draw(st.booleans()):
            envelope.pop(draw(st.sampled_from(sorted(envelope))))
        text = render(envelope)[:-1] + ',"detail":' + detail + "}"
    if shape == 4:  # padded to exactly the byte limit, or one byte past it
        pad = MAX_BYTES - len(text.encode("utf-8", "surrogatepass")) - len(',"pad":""') + draw(st.sampled_from([0, 1]))
        if pad > 0 and len(text) > 2:
            text = text[:-1] + ',"pad":"' + "p" * pad + '"}'
    return text


bodies = st.one_of(
    event_docs(),
    event_docs(),
    event_docs(),
    st.text(max_size=60),
    st.binary(max_size=60).map(lambda b: b.decode("utf-8", "replace")),
    st.sampled_from(["", "null", "[]", '"x"', "{", "[" * 3000, "1" * 5000, "\ufeff{}", "{}" * 3]),
)


# -- the parser ----------------------------------------------------------------------------------
@settings(max_examples=examples(7000))
@given(body=bodies)
def test_parser_never_raises_and_answers_an_event_or_a_reason(body: str) -> None:
    result = parse_body(body, SPEC, MODEL, MAX_BYTES)
    assert isinstance(result, InputEvent | Reason)
    if isinstance(result, InputEvent):
        assert 0 < len(result.id) <= MAX_ID_CHARS
        assert 0 < len(result.model_input) <= MAX_CHARS
        assert result.time.tzinfo is not None
        result.model_input.encode("utf-8")
        result.id.encode("utf-8")
    else:
        assert len(result.detail) < 300
        for p in PII:
            assert p not in result.detail


# -- the service ---------------------------------------------------------------------------------
class _Context:
    function_name = "classifier"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:classifier"
    memory_limit_in_mb = 1024
    aws_request_id = "req"
    log_group_name = "g"
    log_stream_name = "s"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 60_000


LOG = io.StringIO()
LOGGER = Logger(service="classifier-prop", logger_handler=__import__("logging").StreamHandler(LOG))


def _service(faults: Faults, observe: bool) -> tuple[ClassifierService, FakeSqs, FakeEvents, FakeDynamo]:
    sqs, events, ddb = FakeSqs(faults), FakeEvents(faults), FakeDynamo(faults)
    cfg = Settings(
        model_dir=Path("/nonexistent"),
        review_queue_url="review",
        quarantine_queue_url="quarantine",
        output_bus_name="bus",
        max_event_bytes=MAX_BYTES,
    )
    recorder = None
    if observe:
        store = DynamoDBAdapter(ddb, max_attempts=2, sleep=lambda _s: None)  # type: ignore[arg-type]
        recorder = WindowRecorder(store, "windows", "predictions", logger=LOGGER, clock=NOW.timestamp)
    service = ClassifierService(
        settings=cfg,
        runtime=FakeRuntime(),  # type: ignore[arg-type]
        bus=EventBusPublisher(events, "bus", "pigeonhole.classifier", "EventClassified"),  # type: ignore[arg-type]
        review=QueueSender(sqs, "review"),  # type: ignore[arg-type]
        quarantine=QueueSender(sqs, "quarantine"),  # type: ignore[arg-type]
        logger=LOGGER,
        metrics=Metrics(namespace="Prop", service="classifier"),
        observer=recorder,
        clock=NOW.timestamp,
    )
    return service, sqs, events, ddb


def _record(i: int, body: str, sent: datetime) -> dict[str, Any]:
    return {
        "messageId": f"m-{i}",
        "receiptHandle": f"r-{i}",
        "body": body,
        "attributes": {"SentTimestamp": str(int(sent.timestamp() * 1000)), "ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "md5OfBody": "x",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:ingest",
        "awsRegion": "us-east-1",
    }


def _pii_free(text: str) -> None:
    for p in PII:
        assert p not in text, "personal data reached a log line"


@settings(max_examples=examples(3000))
@given(
    batch=st.lists(bodies, min_size=1, max_size=6),
    fault_rate=st.sampled_from([0.0, 0.0, 0.1, 0.3]),
    seed=st.integers(0, 2**32 - 1),
    observe=st.booleans(),
)
def test_service_every_record_ends_in_exactly_one_place(
    batch: list[str], fault_rate: float, seed: int, observe: bool
) -> None:
    faults = Faults(random.Random(seed), fault_rate)
    service, sqs, events, ddb = _service(faults, observe)
    records = [_record(i, body, NOW) for i, body in enumerate(batch)]
    LOG.seek(0)
    LOG.truncate()

    outcomes = service.classify_batch(records)  # never raises: that is the first invariant

    assert set(outcomes) == {r["messageId"] for r in records}
    bus = Counter(str(d["id"]) for d in events.delivered)
    review = Counter(str(d["id"]) for d in sqs.delivered.get("review", []))
    quarantine = Counter(d["message_id"] for d in sqs.delivered.get("quarantine", []))
    must: dict[str, Counter[str]] = {"auto": Counter(), "review": Counter()}
    may: dict[str, Counter[str]] = {"auto": Counter(), "review": Counter()}
    for mid, o in outcomes.items():
        assert o.status in ("auto", "review", "quarantined")  # the fake model never fails for the environment
        if o.error is not None:
            assert "InjectedFault" in o.error, o.error  # only an injected environment fault retries
            assert quarantine[mid] <= 1
        if o.status == "quarantined":
            assert o.reason is not None
            assert quarantine[mid] == (1 if o.error is None else quarantine[mid])
        else:
            assert quarantine[mid] == 0
            assert o.classification is not None
            (must if o.error is None else may)[o.status][o.classification.event.id] += 1
    for route, delivered in (("auto", bus), ("review", review)):
        assert must[route] <= delivered, f"a {route} record without a fault was not delivered"
        assert delivered - must[route] <= may[route], f"a {route} message came from nowhere (or twice)"
    if observe and faults.injected == 0:
        assert ddb.items, "every batch writes at least one window batch item"
    for d in sqs.delivered.get("quarantine", []):
        assert len(json.dumps(d, ensure_ascii=False).encode()) <= SQS_MAX_MESSAGE_BYTES
        assert len(d["reason"]["detail"]) < 300
    for d in sqs.delivered.get("review", []) + events.delivered:
        assert d["label"] in CLASSES
        assert 0.0 <= d["confidence"] <= 1.0
    _pii_free(LOG.getvalue())
    for o in outcomes.values():
        _pii_free(repr(o))
        _pii_free(o.error or "")


@settings(max_examples=examples(300))
@given(
    batch=st.lists(bodies, min_size=1, max_size=10),
    fault_rate=st.sampled_from([0.0, 0.3, 1.0]),
    seed=st.integers(0, 2**32 - 1),
)
def test_handler_answers_item_failures_and_never_raises_for_content(
    batch: list[str], fault_rate: float, seed: int
) -> None:
    faults = Faults(random.Random(seed), fault_rate)
    service, _sqs, _events, _ddb = _service(faults, observe=True)
    records = [_record(i, body, NOW) for i, body in enumerate(batch)]
    response = service.handle({"Records": records}, _Context())  # type: ignore[arg-type]
    failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
    assert failed <= {r["messageId"] for r in records}
    assert faults.injected > 0 or not failed
