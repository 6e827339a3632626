# ruff: noqa: N803  (the stub clients take boto3's keyword names)
"""The SQS and EventBridge adapters: per-entry failures map back to exactly their records, and batches
are cut by bytes as well as by count (a stub client stands in for AWS: these are unit tests)."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError, ReadTimeoutError

from pigeonhole.adapters.eventbridge import MAX_REQUEST_BYTES, EventBusPublisher
from pigeonhole.adapters.sqs import MAX_BATCH_BYTES, QueueSender, chunks


class _Sqs:
    """Answers SendMessageBatch like SQS: Failed entries for the ids in `fail`, Successful for the rest."""

    def __init__(self, fail: set[str] | None = None, raise_on: set[int] | None = None) -> None:
        self.fail = fail or set()
        self.raise_on = raise_on or set()
        self.calls: list[list[dict[str, Any]]] = []

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append(Entries)
        assert len(Entries) <= 10
        assert sum(len(e["MessageBody"].encode()) for e in Entries) <= MAX_BATCH_BYTES
        if len(self.calls) in self.raise_on:
            raise ReadTimeoutError(endpoint_url="http://sqs")
        ok, failed = [], []
        for e in Entries:
            if e["MessageBody"] in self.fail:
                failed.append({"Id": e["Id"], "Code": "InternalError", "SenderFault": False, "Message": "try again"})
            else:
                ok.append({"Id": e["Id"], "MessageId": "m", "MD5OfMessageBody": "x"})
        return {"Successful": ok, "Failed": failed}


def test_sqs_failed_entries_map_back_to_exactly_their_keys() -> None:
    items = [(f"k{i}", f"body-{i}") for i in range(23)]
    client = _Sqs(fail={"body-3", "body-12", "body-22"})
    failures = QueueSender(client, "url").send(items)  # type: ignore[arg-type]
    assert set(failures) == {"k3", "k12", "k22"}
    assert all(v.startswith("InternalError") for v in failures.values())
    assert [len(c) for c in client.calls] == [10, 10, 3]


def test_sqs_a_failed_call_fails_only_its_chunk() -> None:
    items = [(f"k{i}", f"body-{i}") for i in range(15)]
    failures = QueueSender(_Sqs(raise_on={2}), "url").send(items)  # type: ignore[arg-type]
    assert set(failures) == {f"k{i}" for i in range(10, 15)}


def test_sqs_a_short_answer_fails_the_unanswered() -> None:
    class Short(_Sqs):
        def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
            answer = super().send_message_batch(QueueUrl, Entries)
            answer["Successful"] = answer["Successful"][:-1]
            return answer

    failures = QueueSender(Short(), "url").send([("a", "1"), ("b", "2")])  # type: ignore[arg-type]
    assert failures == {"b": "SendMessageBatch returned no result"}


def test_sqs_batches_are_cut_by_bytes_and_an_oversized_message_fails_alone() -> None:
    big = "x" * (100 * 1024)
    items = [("a", big), ("b", big), ("c", big), ("huge", "y" * (MAX_BATCH_BYTES + 1)), ("d", "small")]
    client = _Sqs()
    failures = QueueSender(client, "url").send(items)  # type: ignore[arg-type]
    assert list(failures) == ["huge"]
    assert [len(c) for c in client.calls] == [2, 2]  # 200 KiB, then 100 KiB + "small"


def test_chunks_count_utf8_bytes_not_characters() -> None:
    items = [(str(i), "é" * 50_000) for i in range(3)]  # 100,000 bytes each, 50,000 characters
    assert [len(c) for c in chunks(items)] == [2, 1]


class _Events:
    def __init__(self, fail_index: set[int] | None = None, error: Exception | None = None) -> None:
        self.fail_index = fail_index or set()
        self.error = error
        self.calls: list[list[dict[str, Any]]] = []

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append(Entries)
        assert len(Entries) <= 10
        if self.error is not None:
            raise self.error
        out: list[dict[str, Any]] = []
        for e in Entries:
            n = json.loads(e["Detail"])["n"]
            if n in self.fail_index:
                out.append({"ErrorCode": "InternalFailure", "ErrorMessage": "retry"})
            else:
                out.append({"EventId": f"id-{n}"})
        return {"FailedEntryCount": sum("ErrorCode" in o for o in out), "Entries": out}


def test_put_events_failed_entries_map_back_to_exactly_their_keys() -> None:
    client = _Events(fail_index={0, 11, 14})
    publisher = EventBusPublisher(client, "bus", "src", "Type")  # type: ignore[arg-type]
    failures = publisher.publish([(f"k{i}", {"n": i}) for i in range(15)])
    assert set(failures) == {"k0", "k11", "k14"}
    assert [len(c) for c in client.calls] == [10, 5]


def test_put_events_a_throttled_call_fails_its_chunk() -> None:
    throttled = ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow"}}, "PutEvents")
    publisher = EventBusPublisher(_Events(error=throttled), "bus", "src", "Type")  # type: ignore[arg-type]
    assert set(publisher.publish([("a", {"n": 1}), ("b", {"n": 2})])) == {"a", "b"}


def test_put_events_requests_stay_under_256_kib() -> None:
    client = _Events()
    publisher = EventBusPublisher(client, "bus", "src", "Type")  # type: ignore[arg-type]
    pad = "p" * (60 * 1024)
    failures = publisher.publish([(f"k{i}", f'{{"pad":"{pad}","n":{i}}}') for i in range(6)])
    assert failures == {}
    for call in client.calls:
        assert sum(publisher.entry_size(e["Detail"]) for e in call) <= MAX_REQUEST_BYTES
    assert [len(c) for c in client.calls] == [4, 2]


def test_put_events_refuses_what_strict_json_cannot_carry_for_that_entry_only() -> None:
    client = _Events()
    failures = EventBusPublisher(client, "bus", "src", "Type").publish(  # type: ignore[arg-type]
        [("nan", {"n": float("nan")}), ("ok", {"n": 1})]
    )
    assert list(failures) == ["nan"]
    assert len(client.calls[0]) == 1
