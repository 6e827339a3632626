"""One record never sinks its neighbours (issue 8): each example from the issue, reproduced through the
real handler against moto, then the general rule (content → that record's quarantine reason; only the
environment → a retry, of the records it touched, before the function runs out of time)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from pigeonhole.classify import handler as handler_module
from pigeonhole.classify.service import ClassifierService
from pigeonhole.config import Settings

from .conftest import NAMES, REGION, Context, Stack
from .monitoring_support import PREDICTIONS, WINDOWS, FaultyClient, create_tables, scan, write_tiny_model

NOW = datetime.now(UTC).replace(microsecond=0)
GOOD = ["when will my new card arrive", "what is the exchange rate for euros", "i lost my card"]


def _strict(text: str) -> Any:
    """A strict JSON reader (what JavaScript, Go and Jackson accept): no NaN, no Infinity."""

    def refuse(name: str) -> None:
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def _body(event_id: str, text: str, when: datetime | str = NOW, **extra: Any) -> str:
    stamp = when if isinstance(when, str) else when.isoformat().replace("+00:00", "Z")
    return json.dumps({"id": event_id, "time": stamp, "text": text, **extra})


def _ids(response: dict[str, Any]) -> list[str]:
    return [item["itemIdentifier"] for item in response["batchItemFailures"]]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture
def ddb(stack: Stack) -> Any:
    client = boto3.client("dynamodb", region_name=REGION)
    create_tables(client)
    return client


@pytest.fixture
def counted(stack: Stack, ddb: Any, tiny_model: Path) -> Iterator[ClassifierService]:
    """The real handler with the tiny model and the window recorder (the step that overflowed)."""
    settings = Settings(
        model_dir=tiny_model,
        review_queue_url=stack.review_url,
        quarantine_queue_url=stack.quarantine_url,
        output_bus_name=NAMES.output_bus,
        windows_table=WINDOWS,
        predictions_table=PREDICTIONS,
    )
    service = handler_module.build_service(settings, session=boto3.Session(region_name=REGION))
    handler_module.reset_for_tests(service)
    yield service
    handler_module.reset_for_tests(None)


def _everything(stack: Stack) -> dict[str, list[dict[str, Any]]]:
    """Drain every destination, reading each message with a strict JSON parser."""
    out: dict[str, list[dict[str, Any]]] = {}
    for name, url in (("bus", stack.sink_url), ("review", stack.review_url), ("quarantine", stack.quarantine_url)):
        messages = []
        while True:
            got = stack.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            if not got:
                break
            for m in got:
                messages.append(_strict(m["Body"]))
                stack.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        out[name] = messages
    return out


def _event_ids(messages: dict[str, list[dict[str, Any]]]) -> dict[str, list[str]]:
    return {
        "bus": sorted(m["detail"]["id"] for m in messages["bus"]),
        "review": sorted(m["id"] for m in messages["review"]),
        "quarantine": sorted(str(m.get("event_id")) for m in messages["quarantine"]),
    }


@pytest.mark.parametrize(
    "when",
    [
        "9999-12-31T23:59:59Z",  # the window step overflowed (TTL past the calendar's end)
        "0001-01-01T00:00:00+01:00",  # the UTC conversion overflowed before anything was sent
        "9999-12-31T23:59:59-01:00",
        (NOW + timedelta(days=2)).isoformat(),  # plausible calendar, implausible time
        (NOW - timedelta(days=31)).isoformat(),
    ],
)
def test_implausible_times_are_quarantined_and_neighbours_publish_once(
    stack: Stack, counted: ClassifierService, ddb: Any, context: Context, when: str
) -> None:
    stack.send([_body(f"good-{i}", t) for i, t in enumerate(GOOD)] + [_body("bad-time", "my card", when)])
    event = stack.receive_event()

    response = handler_module.handler(event, context)

    assert _ids(response) == [], "a producer's bad time must not fail the batch"
    messages = _everything(stack)
    (quarantined,) = messages["quarantine"]
    assert quarantined["reason"]["code"] == "invalid_time"
    assert quarantined["event_id"] == "bad-time"
    delivered = messages["bus"] + messages["review"]
    assert sorted(m.get("detail", m)["id"] for m in delivered) == ["good-0", "good-1", "good-2"]
    from pigeonhole_tools.reliability.accounting import merge_windows

    totals = merge_windows(scan(ddb, WINDOWS))
    assert totals.n == 3, "the neighbours are counted"
    assert totals.q == 1, "the quarantined event is counted at arrival"


def test_times_at_the_edges_of_the_window_are_accepted(
    stack: Stack, counted: ClassifierService, context: Context
) -> None:
    stack.send(
        [
            _body("old", GOOD[0], NOW - timedelta(days=29, hours=23)),
            _body("early", GOOD[1], NOW + timedelta(hours=23)),
        ]
    )
    assert _ids(handler_module.handler(stack.receive_event(), context)) == []
    ids = _event_ids(_everything(stack))
    assert ids["quarantine"] == []
    assert sorted(ids["bus"] + ids["review"]) == ["early", "old"]


def test_huge_integer_literal_fails_only_its_record(stack: Stack, counted: ClassifierService, context: Context) -> None:
    """json.loads raises a plain ValueError (not JSONDecodeError) past 4,300 digits: it used to escape."""
    huge = '{"id": "huge", "time": "@T", "text": "card", "n": @N}'.replace("@T", NOW.isoformat()).replace(
        "@N", "9" * 5000
    )
    stack.send([_body("good-0", GOOD[0]), huge])
    assert _ids(handler_module.handler(stack.receive_event(), context)) == []
    messages = _everything(stack)
    (quarantined,) = messages["quarantine"]
    assert quarantined["reason"]["code"] in {"invalid_json", "unprocessable"}
    assert quarantined["body_sha256"] == hashlib.sha256(huge.encode()).hexdigest()
    assert len(messages["bus"]) + len(messages["review"]) == 1


@pytest.mark.parametrize("filler", ["é", '"', "\u202e", "\U0001f600"])
def test_quarantine_message_fits_its_queue_whatever_the_body(
    stack: Stack, counted: ClassifierService, context: Context, filler: str
) -> None:
    """A body near SQS's limit grows when re-escaped (6 bytes per non-ASCII character, 2 per quote):
    the quarantine message embeds a prefix plus the body's sha256 and size, and its chunk neighbours land."""
    budget = 250 * 1024 - 64
    big = "x" + filler * (budget // len(filler.encode()))
    stack.send([big, "{not json", _body("good-0", GOOD[0])])
    event = stack.receive_event()
    assert len(event["Records"]) == 3

    assert _ids(handler_module.handler(event, context)) == []

    messages = _everything(stack)
    by_size = sorted(messages["quarantine"], key=lambda m: m["body_bytes"])
    small, large = by_size
    assert small["body"] == "{not json"
    assert small["body_truncated"] is False
    assert large["reason"]["code"] == "body_too_large"
    assert large["body_truncated"] is True
    assert large["body_bytes"] == len(big.encode())
    assert large["body_sha256"] == hashlib.sha256(big.encode()).hexdigest()
    assert big.startswith(large["body"])
    assert len(large["body"]) > 1000
    assert len(messages["bus"]) + len(messages["review"]) == 1


def test_nan_in_a_producers_fields_never_reaches_a_review_message(
    stack: Stack, counted: ClassifierService, context: Context
) -> None:
    """Python reads NaN/Infinity; strict parsers reject them. Every message written must parse strictly."""
    low = "zzz qqq"  # nothing the tiny model knows: low confidence, routed to review
    raw = '{"id": "nan", "time": "@T", "text": "@X", "score": NaN, "limit": -Infinity}'
    raw = raw.replace("@T", NOW.isoformat()).replace("@X", low)
    stack.send([raw, _body("plain", low, extra=1.5)])
    assert _ids(handler_module.handler(stack.receive_event(), context)) == []
    messages = _everything(stack)  # parsed strictly: raises on NaN anywhere
    ids = _event_ids(messages)
    assert "nan" not in ids["review"] + ids["bus"]
    assert len(ids["quarantine"]) == 1  # refused by the parser or by the strict writer, never written
    assert ids["review"] + ids["bus"] == ["plain"]


def test_lone_surrogates_and_unsendable_characters_fail_only_their_record(
    stack: Stack, counted: ClassifierService, context: Context
) -> None:
    """JSON escapes can spell characters UTF-8 (and so SQS, DynamoDB, onnxruntime) cannot carry."""
    t = NOW.isoformat()
    bodies = [
        '{"id": "sur-id-\\ud800", "time": "@T", "text": "card"}'.replace("@T", t),
        '{"id": "sur-text", "time": "@T", "text": "my card \\udfff"}'.replace("@T", t),
        '{"id": "nul-text", "time": "@T", "text": "my card \\u0000"}'.replace("@T", t),
        '{"id": "odd-extra", "time": "@T", "text": "zzz qqq", "note": "\\uffff \\u202e"}'.replace("@T", t),
        _body("good-0", GOOD[0]),
    ]
    stack.send(bodies)
    assert _ids(handler_module.handler(stack.receive_event(), context)) == []
    ids = _event_ids(_everything(stack))
    # lone surrogates anywhere are invalid JSON for the shared parser (no id is echoed); U+FFFF and a bidi
    # override in an extra field are legal and reach the review message escaped (SQS refuses U+FFFF raw)
    assert sorted(ids["quarantine"]) == ["None", "None"]
    assert sorted(ids["bus"] + ids["review"]) == ["good-0", "nul-text", "odd-extra"]  # NUL is only a character


def test_a_window_step_failure_fails_only_the_units_it_could_not_write(
    stack: Stack, ddb: Any, tiny_model: Path, context: Context
) -> None:
    """A batch over two windows writes its captures, then per window (the ended one first) a late pointer
    and the window's item; the pointer is refused: that window's records (and only they) retry, the
    other window is counted."""
    from pigeonhole.adapters.dynamodb import DynamoDBAdapter
    from pigeonhole.drift.recorder import WindowRecorder

    settings = Settings(
        model_dir=tiny_model,
        review_queue_url=stack.review_url,
        quarantine_queue_url=stack.quarantine_url,
        output_bus_name=NAMES.output_bus,
    )
    service = handler_module.build_service(settings, session=boto3.Session(region_name=REGION))
    faulty = FaultyClient(ddb)
    faulty.write_errors[2] = ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "PutItem")
    # write 1: the captures (BatchWriteItem); 2: the ended window's late pointer; 3: the current window's item
    service.observer = WindowRecorder(DynamoDBAdapter(faulty), WINDOWS, PREDICTIONS, window_seconds=300)
    handler_module.reset_for_tests(service)
    earlier = NOW - timedelta(minutes=10)  # its window comes first (and has ended: a late pointer follows)
    try:
        stack.send([_body(f"e{i}", GOOD[i % 3], earlier if i < 2 else NOW) for i in range(4)])
        event = stack.receive_event()
        response = handler_module.handler(event, context)
    finally:
        handler_module.reset_for_tests(None)
    from pigeonhole.drift import batches

    layout_items = [i for i in scan(ddb, WINDOWS) if batches.parse_batch_pk(i["pk"]) is not None]
    digests = {
        bytes(r["id"]).ljust(batches.DIGEST_BYTES, b"\x00")
        for i in layout_items
        for r in batches.decode(i["r"].value, int(i["nf"]))
    }
    counted = {e for e in ("e0", "e1", "e2", "e3") if batches.digest(f"P#0.1.0-test#{e}") in digests}
    assert counted == {"e2", "e3"}
    by_event = {json.loads(r["body"])["id"]: r["messageId"] for r in event["Records"]}
    assert sorted(_ids(response)) == sorted(by_event[e] for e in by_event if e not in counted)


class _Raising:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc
        self.calls = 0

    def observe(self, *args: Any, **kwargs: Any) -> dict[str, str]:
        self.calls += 1
        raise self.exc


@pytest.mark.parametrize(
    ("exc", "retried"),
    [
        (ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "TransactWriteItems"), True),
        (ValueError("a defect in the counting code"), False),
    ],
)
def test_observer_failure_through_the_service(
    stack: Stack, tiny_model: Path, context: Context, exc: BaseException, retried: bool
) -> None:
    """The environment breaking the window step retries the batch's records; anything else cannot be
    cured by a retry, so the outputs stand (they are already published) and nothing is republished."""
    settings = Settings(
        model_dir=tiny_model,
        review_queue_url=stack.review_url,
        quarantine_queue_url=stack.quarantine_url,
        output_bus_name=NAMES.output_bus,
    )
    service = handler_module.build_service(settings, session=boto3.Session(region_name=REGION))
    observer = _Raising(exc)
    service.observer = observer
    handler_module.reset_for_tests(service)
    try:
        stack.send([_body("e0", GOOD[0]), "{bad", _body("e1", GOOD[1])])
        event = stack.receive_event()
        outcomes = service.classify_batch(event["Records"])
    finally:
        handler_module.reset_for_tests(None)
    assert observer.calls == 1
    failed = {mid for mid, o in outcomes.items() if o.error is not None}
    assert failed == ({r["messageId"] for r in event["Records"]} if retried else set())
    assert {o.status for o in outcomes.values()} <= {"auto", "review", "quarantined"}


class _ShortContext(Context):
    def __init__(self, millis: int) -> None:
        self.millis = millis

    def get_remaining_time_in_millis(self) -> int:  # type: ignore[override]
        return self.millis


def test_out_of_time_records_are_failed_before_anything_is_published(stack: Stack, counted: ClassifierService) -> None:
    """With less time left than the reserve, nothing is sent (a late send would be a duplicate after the
    timeout) and every record comes back as an item failure."""
    stack.send([_body("e0", GOOD[0]), "{bad"])
    event = stack.receive_event()
    outcomes = counted.classify_batch(event["Records"], deadline=counted.deadline(_ShortContext(1500)))
    assert all(o.error is not None and "out of time" in o.error for o in outcomes.values())
    messages = _everything(stack)
    assert messages == {"bus": [], "review": [], "quarantine": []}


def test_throttled_window_step_gives_up_before_the_deadline(
    stack: Stack, ddb: Any, tiny_model: Path, context: Context
) -> None:
    """Persistent throttling: the back-off loop stops when its next pause would cross the deadline,
    and the function still answers with item failures (no test waits on the wall clock: a fake clock)."""
    from pigeonhole.adapters.dynamodb import DynamoDBAdapter
    from pigeonhole.drift.recorder import WindowRecorder

    clock = [1000.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock[0] += seconds

    throttled = ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow"}}, "PutItem")
    faulty = FaultyClient(ddb)
    faulty.write_errors = dict.fromkeys(range(1, 100), throttled)
    settings = Settings(
        model_dir=tiny_model,
        review_queue_url=stack.review_url,
        quarantine_queue_url=stack.quarantine_url,
        output_bus_name=NAMES.output_bus,
    )
    service = handler_module.build_service(settings, session=boto3.Session(region_name=REGION))
    service.monotonic = lambda: clock[0]
    store = DynamoDBAdapter(
        faulty, max_attempts=50, base_delay=0.5, max_delay=4.0, sleep=sleep, monotonic=lambda: clock[0]
    )
    service.observer = WindowRecorder(store, WINDOWS, PREDICTIONS)
    stack.send([_body("e0", GOOD[0])])
    event = stack.receive_event()
    deadline = service.deadline(_ShortContext(10_000))
    assert deadline is not None
    outcomes = service.classify_batch(event["Records"], deadline=deadline)
    (outcome,) = outcomes.values()
    assert outcome.error is not None
    assert "out of time" in outcome.error
    assert clock[0] <= deadline
    assert 1 < faulty.write_calls < 50


def test_a_truncated_body_is_kept_whole_in_the_archive_bucket(stack: Stack, tiny_model: Path, context: Context) -> None:
    """With PIGEONHOLE_QUARANTINE_BUCKET set, the body a quarantine message could only embed a prefix
    of is stored whole under its sha256 (idempotent on redelivery), and the message says where."""
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="test-quarantine-bodies")
    settings = Settings(
        model_dir=tiny_model,
        review_queue_url=stack.review_url,
        quarantine_queue_url=stack.quarantine_url,
        output_bus_name=NAMES.output_bus,
        quarantine_bucket="test-quarantine-bodies",
    )
    service = handler_module.build_service(settings, session=boto3.Session(region_name=REGION))
    handler_module.reset_for_tests(service)
    big = "é" * (120 * 1024)
    try:
        stack.send([big, "{small"])
        event = stack.receive_event()
        assert _ids(handler_module.handler(event, context)) == []
        assert _ids(handler_module.handler(event, context)) == []  # redelivered: same object, same message
    finally:
        handler_module.reset_for_tests(None)
    messages = [m for m in _everything(stack)["quarantine"] if m["body_truncated"]]
    assert len(messages) == 2
    archive = messages[0]["body_archive"]
    assert archive == messages[1]["body_archive"]
    assert archive["bucket"] == "test-quarantine-bodies"
    stored = s3.get_object(Bucket=archive["bucket"], Key=archive["key"])["Body"].read()
    assert stored == big.encode()
    assert archive["key"].endswith(hashlib.sha256(stored).hexdigest())
    assert len(s3.list_objects_v2(Bucket="test-quarantine-bodies")["Contents"]) == 1, "small bodies are not archived"


def test_an_archive_failure_retries_only_that_record(stack: Stack, tiny_model: Path, context: Context) -> None:
    settings = Settings(
        model_dir=tiny_model,
        review_queue_url=stack.review_url,
        quarantine_queue_url=stack.quarantine_url,
        output_bus_name=NAMES.output_bus,
        quarantine_bucket="no-such-bucket",
    )
    service = handler_module.build_service(settings, session=boto3.Session(region_name=REGION))
    big = "x" * (200 * 1024) + '"' * (40 * 1024)
    stack.send([big, "{small", _body("good-0", GOOD[0])])
    event = stack.receive_event()
    outcomes = service.classify_batch(event["Records"])
    failed = [mid for mid, o in outcomes.items() if o.error is not None]
    assert failed == [next(r["messageId"] for r in event["Records"] if r["body"] == big)]
    assert "NoSuchBucket" in (outcomes[failed[0]].error or "")
    assert len(_everything(stack)["quarantine"]) == 1
