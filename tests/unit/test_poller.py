"""The emulated event source mapping: event shape, partial batch responses, deletes, retries, redrive.

Runs against in-process moto (real SQS semantics, no server) with trivial handlers; the real
handler over HTTP is the e2e tests' job.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.data_classes import SQSEvent
from aws_lambda_powertools.utilities.parser.models import SqsModel
from botocore.config import Config
from moto import mock_aws

from pigeonhole import topology as topo
from pigeonhole.naming import MAX_BATCH_SIZE, MAX_RECEIVE_COUNT, ResourceNames
from pigeonhole_tools.local.poller import (
    BatchResponseError,
    LambdaContext,
    SqsEventSourcePoller,
    build_event,
    failed_message_ids,
    lambda_message_attributes,
    percentile,
)
from pigeonhole_tools.local.provisioning import QueueRef, create_queue

REGION = "us-east-1"


class Queues:
    """The ingest queue and its DLQ (redrive after MAX_RECEIVE_COUNT) from the topology's specs, with a 30 s
    visibility timeout instead of 181 s (no test waits it out)."""

    def __init__(self, sqs: Any) -> None:
        self.sqs = sqs
        names = ResourceNames("unit")
        specs = topo.build(names)
        ingest = specs.queue(names.ingest_queue)
        made: dict[str, QueueRef] = {}
        for spec in (specs.queue(names.ingest_dlq), replace(ingest, visibility_timeout_s=30)):
            made[spec.name] = create_queue(sqs, spec, made)
        self.dlq_url = made[names.ingest_dlq].url
        self.url = made[names.ingest_queue].url
        self.queue_arn = made[names.ingest_queue].arn

    def arn(self, url: str) -> str:
        return self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

    def send(self, *bodies: str, **kwargs: Any) -> list[str]:
        return [self.sqs.send_message(QueueUrl=self.url, MessageBody=b, **kwargs)["MessageId"] for b in bodies]

    def depth(self, url: str | None = None) -> dict[str, int]:
        attrs = self.sqs.get_queue_attributes(
            QueueUrl=url or self.url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return {
            "visible": int(attrs["ApproximateNumberOfMessages"]),
            "hidden": int(attrs["ApproximateNumberOfMessagesNotVisible"]),
        }

    def poller(self, handler: Any, **kwargs: Any) -> SqsEventSourcePoller:
        kwargs.setdefault("wait_time_seconds", 0)
        kwargs.setdefault("retry_delay_seconds", 0)
        return SqsEventSourcePoller(
            self.sqs, queue_url=self.url, queue_arn=self.queue_arn, region=REGION, handler=handler, **kwargs
        )


@pytest.fixture
def queues() -> Iterator[Queues]:
    with mock_aws():
        yield Queues(boto3.client("sqs", region_name=REGION, config=Config(retries={"max_attempts": 1})))


def ok(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"batchItemFailures": []}


# -- the event -----------------------------------------------------------------------------------
def test_event_has_lambdas_sqs_shape(queues: Queues) -> None:
    queues.send(
        '{"id": "e1", "text": "hello"}',
        MessageAttributes={
            "producer": {"DataType": "String", "StringValue": "unit"},
            "priority": {"DataType": "Number", "StringValue": "3"},
        },
    )
    poller = queues.poller(ok)
    messages = poller.receive()
    event = build_event(messages, queues.queue_arn, REGION)

    (record,) = event["Records"]
    assert set(record) == {
        "messageId",
        "receiptHandle",
        "body",
        "attributes",
        "messageAttributes",
        "md5OfMessageAttributes",
        "md5OfBody",
        "eventSource",
        "eventSourceARN",
        "awsRegion",
    }
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == queues.queue_arn
    assert record["awsRegion"] == REGION
    assert record["md5OfBody"] == hashlib.md5(record["body"].encode()).hexdigest()
    assert {"ApproximateReceiveCount", "SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp"} <= set(
        record["attributes"]
    )
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert record["messageAttributes"]["producer"] == {
        "stringValue": "unit",
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "String",
    }
    # Powertools' own models of the Lambda SQS event accept it: the handler sees what Lambda sends.
    SqsModel.model_validate(event)
    parsed = next(iter(SQSEvent(event).records))
    assert parsed.message_id == messages[0]["MessageId"]
    assert parsed.message_attributes["priority"].string_value == "3"  # type: ignore[union-attr]


def test_event_without_message_attributes_has_no_md5_of_them(queues: Queues) -> None:
    queues.send("plain")
    record = build_event(queues.poller(ok).receive(), queues.queue_arn, REGION)["Records"][0]
    assert record["messageAttributes"] == {}
    assert "md5OfMessageAttributes" not in record


def test_binary_attributes_are_base64() -> None:
    converted = lambda_message_attributes(
        {"blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01", "BinaryListValues": [b"a"]}}
    )
    assert converted["blob"] == {
        "binaryValue": "AAE=",
        "stringListValues": [],
        "binaryListValues": ["YQ=="],
        "dataType": "Binary",
    }


def test_batches_hold_at_most_ten_records(queues: Queues) -> None:
    for start in range(0, 25, 10):
        entries = [{"Id": str(i), "MessageBody": f"m{start + i}"} for i in range(min(10, 25 - start))]
        queues.sqs.send_message_batch(QueueUrl=queues.url, Entries=entries)
    sizes: list[int] = []
    poller = queues.poller(lambda e, c: sizes.append(len(e["Records"])))
    assert poller.run(until_drained=True, max_seconds=60)
    assert sum(sizes) == 25
    assert max(sizes) <= MAX_BATCH_SIZE
    with pytest.raises(ValueError, match="batch_size"):
        queues.poller(ok, batch_size=11)


def test_the_batching_window_keeps_reading_until_the_batch_is_full(queues: Queues) -> None:
    queues.send("a", "b", "c")
    sizes: list[int] = []
    poller = queues.poller(lambda e, c: sizes.append(len(e["Records"])), batching_window_seconds=30)
    receive = poller.receive
    calls = 0

    def receive_while_producer_sends(*args: Any, **kwargs: Any) -> list[Any]:
        nonlocal calls
        calls += 1
        if calls == 2:  # messages arrive while the window is open
            queues.send(*(f"late-{i}" for i in range(8)))
        return receive(*args, **kwargs)

    poller.receive = receive_while_producer_sends  # type: ignore[method-assign]
    invocation = poller.poll_once()
    assert invocation is not None
    assert sizes == [MAX_BATCH_SIZE]  # the window closed early because the batch filled up
    assert queues.depth()["visible"] == 1


def test_without_a_batching_window_a_batch_is_one_receive(queues: Queues) -> None:
    queues.send("a", "b")
    sizes: list[int] = []
    queues.poller(lambda e, c: sizes.append(len(e["Records"]))).poll_once()
    assert sizes == [2]


def test_context_looks_like_lambdas() -> None:
    ctx = LambdaContext.start("fn", "arn:aws:lambda:us-east-1:123456789012:function:fn:live", timeout_seconds=5)
    assert 0 < ctx.get_remaining_time_in_millis() <= 5000
    assert ctx.memory_limit_in_mb == 1024
    assert ctx.aws_request_id
    assert ctx.log_group_name == "/aws/lambda/fn"


def test_handler_receives_a_context(queues: Queues) -> None:
    queues.send("x")
    seen: list[Any] = []
    queues.poller(lambda e, c: seen.append(c), function_name="pigeonhole-classifier").poll_once()
    (ctx,) = seen
    assert ctx.function_name == "pigeonhole-classifier"
    assert ctx.invoked_function_arn == "arn:aws:lambda:us-east-1:123456789012:function:pigeonhole-classifier:live"
    assert ctx.get_remaining_time_in_millis() > 0


# -- reading the response ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "response",
    [None, {}, {"batchItemFailures": []}, {"batchItemFailures": None}],
    ids=["null", "empty-object", "empty-list", "null-list"],
)
def test_complete_success_responses(response: Any) -> None:
    assert failed_message_ids(response, ["a", "b"]) == set()


def test_partial_failure_names_the_failed_records() -> None:
    response = {"batchItemFailures": [{"itemIdentifier": "b"}]}
    assert failed_message_ids(response, ["a", "b", "c"]) == {"b"}


@pytest.mark.parametrize(
    "response",
    [
        {"batchItemFailures": [{"itemIdentifier": ""}]},
        {"batchItemFailures": [{"itemIdentifier": None}]},
        {"batchItemFailures": [{"messageId": "a"}]},
        {"batchItemFailures": [{"itemIdentifier": "not-in-batch"}]},
        {"batchItemFailures": "a"},
        "ok",
        ["a"],
        {"batchItemFailures": [], "x": object()},
    ],
    ids=["empty-id", "null-id", "bad-key", "unknown-id", "not-a-list", "string", "list", "not-json"],
)
def test_complete_failure_responses(response: Any) -> None:
    with pytest.raises(BatchResponseError):
        failed_message_ids(response, ["a", "b"])


# -- settling the batch --------------------------------------------------------------------------
def test_only_successes_are_deleted_and_failures_come_back(queues: Queues) -> None:
    ids = queues.send("good-1", "bad", "good-2")

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {
            "batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in event["Records"] if r["body"] == "bad"]
        }

    poller = queues.poller(handler)
    invocation = poller.invoke(poller.receive())
    assert invocation.deleted == 2
    assert invocation.failed_ids == (ids[1],)
    assert invocation.error is None
    again = poller.receive()
    assert [m["MessageId"] for m in again] == [ids[1]]
    assert again[0]["Attributes"]["ApproximateReceiveCount"] == "2"


def test_a_raising_handler_fails_the_whole_batch(queues: Queues) -> None:
    ids = queues.send("a", "b", "c")

    def handler(event: dict[str, Any], context: Any) -> None:
        raise RuntimeError("boom")

    poller = queues.poller(handler)
    invocation = poller.invoke(poller.receive())
    assert invocation.deleted == 0
    assert invocation.error is not None
    assert "RuntimeError: boom" in invocation.error
    assert set(invocation.failed_ids) == set(ids)
    assert sorted(m["MessageId"] for m in poller.receive()) == sorted(ids)


def test_an_invalid_response_fails_the_whole_batch(queues: Queues) -> None:
    queues.send("a", "b")
    poller = queues.poller(lambda e, c: {"batchItemFailures": [{"itemIdentifier": ""}]})
    invocation = poller.invoke(poller.receive())
    assert invocation.deleted == 0
    assert invocation.error is not None
    assert invocation.error.startswith("invalid batch response")
    assert len(poller.receive()) == 2


def test_a_handler_past_its_timeout_fails_the_batch(queues: Queues) -> None:
    queues.send("slow")

    def handler(event: dict[str, Any], context: Any) -> None:
        import time

        time.sleep(0.05)

    poller = queues.poller(handler, function_timeout_seconds=0.001)
    invocation = poller.poll_once()
    assert invocation is not None
    assert invocation.error is not None
    assert "timed out" in invocation.error
    assert invocation.deleted == 0


def test_without_the_shortcut_failures_wait_for_the_visibility_timeout(queues: Queues) -> None:
    queues.send("bad")
    poller = queues.poller(lambda e, c: {"batchItemFailures": [{"itemIdentifier": e["Records"][0]["messageId"]}]})
    poller.retry_delay_seconds = None  # AWS behaviour: hidden until the 30 s visibility timeout expires
    poller.poll_once()
    assert queues.depth() == {"visible": 0, "hidden": 1}
    assert poller.receive() == []


def test_the_shortcut_makes_failures_visible_again_at_once(queues: Queues) -> None:
    queues.send("bad")
    poller = queues.poller(lambda e, c: {"batchItemFailures": [{"itemIdentifier": e["Records"][0]["messageId"]}]})
    poller.poll_once()
    assert queues.depth() == {"visible": 1, "hidden": 0}


def test_a_poison_record_reaches_the_dlq_after_max_receive_count(queues: Queues) -> None:
    """moto's redrive runs on receive: after 5 failed receives the 6th receive moves it to the DLQ."""
    (poison,) = queues.send("poison")
    queues.send("fine")
    attempts: list[str] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        failures = []
        for r in event["Records"]:
            if r["body"] == "poison":
                attempts.append(r["attributes"]["ApproximateReceiveCount"])
                failures.append({"itemIdentifier": r["messageId"]})
        return {"batchItemFailures": failures}

    poller = queues.poller(handler)
    assert poller.run(until_drained=True, max_seconds=60)
    assert attempts == [str(n) for n in range(1, MAX_RECEIVE_COUNT + 1)]
    dead = queues.sqs.receive_message(QueueUrl=queues.dlq_url, MaxNumberOfMessages=10)["Messages"]
    assert [m["MessageId"] for m in dead] == [poison]  # the DLQ keeps the message id
    assert queues.depth() == {"visible": 0, "hidden": 0}
    assert poller.stats.failed_records == MAX_RECEIVE_COUNT


def test_stats_record_every_invocation(queues: Queues) -> None:
    queues.send("a", "b")
    seen: list[Any] = []
    poller = queues.poller(ok, on_invocation=seen.append)
    assert poller.run(until_drained=True, max_seconds=60)
    assert poller.stats.records == 2
    assert poller.stats.deleted == 2
    assert seen == poller.stats.invocations
    assert poller.stats.handler_ms(50) >= 0.0


def test_percentile_interpolates() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([5.0], 99) == 5.0
    assert percentile(list(map(float, range(101))), 99) == 99.0
    assert percentile([], 50) != percentile([], 50)  # NaN
