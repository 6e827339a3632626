"""The bench's request counter: it sees every call through botocore's hooks and bills AWS's units.

The calls are answered in-process by the bench's own `fakeaws` session (no network, no moto), so the
test checks the hook wiring end to end through real boto3 clients, and the billing rules on known items.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from pigeonhole_tools.bench import fakeaws
from pigeonhole_tools.bench.counting import (
    RequestCounter,
    attribute_value_size,
    chunks,
    item_size,
    read_units,
    write_units,
)


def _session_with_counter(reader: Any = None) -> tuple[Any, RequestCounter]:
    session = fakeaws.make_session()
    counter = RequestCounter(item_reader=reader, keep_calls=True)
    counter.attach(session)
    return session, counter


def test_item_size_follows_dynamodb_rules() -> None:
    # names count, strings by UTF-8 bytes, numbers ~ one byte per two significant digits + 1
    assert item_size({"pk": {"S": "abc"}}) == 2 + 3
    assert attribute_value_size({"S": "é"}) == 2
    assert attribute_value_size({"N": "12345"}) == 4
    assert attribute_value_size({"BOOL": True}) == 1
    assert attribute_value_size({"M": {"a": {"S": "xy"}}}) == 3 + 1 + 1 + 2
    assert attribute_value_size({"L": [{"N": "1"}, {"N": "2"}]}) == 3 + 2 * (1 + 2)


def test_units_round_up_per_started_unit() -> None:
    assert write_units(1) == 1
    assert write_units(1024) == 1
    assert write_units(1025) == 2
    assert write_units(1025, transactional=True) == 4
    assert read_units(4096) == 0.5
    assert read_units(4097, consistent=True) == 2.0
    assert chunks(0, 65536) == 1
    assert chunks(65537, 65536) == 2


def test_hook_counts_every_client_of_the_session_and_bills_entries() -> None:
    session, counter = _session_with_counter()
    sqs = session.client("sqs")
    events = session.client("events")
    big = "x" * 70_000  # over one 64 KiB chunk
    sqs.send_message_batch(
        QueueUrl="https://sqs.us-east-1.amazonaws.com/123456789012/q",
        Entries=[{"Id": "1", "MessageBody": "small"}, {"Id": "2", "MessageBody": big}],
    )
    events.put_events(
        Entries=[
            {"Source": "s", "DetailType": "t", "Detail": json.dumps({"a": 1}), "EventBusName": "b"},
            {"Source": "s", "DetailType": "t", "Detail": json.dumps({"a": 2}), "EventBusName": "b"},
            {"Source": "s", "DetailType": "t", "Detail": json.dumps({"a": big}), "EventBusName": "b"},
        ]
    )
    assert counter.calls == {"sqs.SendMessageBatch": 1, "events.PutEvents": 1}
    assert counter.billed["sqs_requests"] == 2  # one batch, two 64 KiB chunks of payload
    assert counter.billed["eventbridge_events"] == 4  # 1 + 1 + 2 chunks


def test_dynamodb_writes_bill_the_stored_item_and_double_in_transactions() -> None:
    stored = {"pk": {"S": "W#1"}, "sk": {"S": "0"}, "blob": {"S": "y" * 1500}}  # 1,505 bytes once stored
    session, counter = _session_with_counter(reader=lambda table, item: stored)
    ddb = session.client("dynamodb")
    ddb.update_item(
        TableName="windows",
        Key={"pk": {"S": "W#1"}, "sk": {"S": "0"}},
        UpdateExpression="ADD n :one",
        ExpressionAttributeValues={":one": {"N": "1"}},
    )
    ddb.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": "predictions", "Item": {"pk": {"S": "P#1"}}}},
            {
                "Update": {
                    "TableName": "windows",
                    "Key": {"pk": {"S": "W#1"}, "sk": {"S": "0"}},
                    "UpdateExpression": "ADD n :one",
                    "ExpressionAttributeValues": {":one": {"N": "1"}},
                }
            },
        ]
    )
    assert counter.calls == {"dynamodb.UpdateItem": 1, "dynamodb.TransactWriteItems": 1}
    # UpdateItem: 2 WCU (1,505 B stored); the transaction: 2 × 2 for each of its two items (the reader returns 1,505 B)
    assert counter.billed["dynamodb_wcu"] == 2 + 4 + 4
    assert counter.billed["dynamodb_wcu[windows]"] == 2 + 4
    assert counter.billed["dynamodb_wcu[predictions]"] == 4
    assert counter.billed["dynamodb_wcu_in_transactions[predictions]"] == 4
    assert counter.billed["dynamodb_wcu_in_transactions[windows]"] == 4  # the UpdateItem's 2 were not in one


def test_window_items_are_billed_by_kind_on_every_write_path() -> None:
    from pigeonhole_tools.bench.e2e import window_item_kind

    session = fakeaws.make_session()
    counter = RequestCounter(item_kind=window_item_kind)
    counter.attach(session)
    ddb = session.client("dynamodb")
    batch_item = {"pk": {"S": "E#v1#000"}, "sk": {"S": "2026-12-04T21:00:00Z#abc"}, "r": {"B": b"x" * 1500}}
    ddb.put_item(TableName="b10-windows", Item=batch_item)
    ddb.put_item(TableName="b10-windows", Item={"pk": {"S": "E#v1#late"}, "sk": {"S": "2026-12-04T21:00:00Z#abc"}})
    ddb.batch_write_item(
        RequestItems={
            "b10-windows": [{"PutRequest": {"Item": {"pk": {"S": "W#v1"}, "sk": {"S": "C#2026-12-04T21:00:00Z"}}}}],
            "b10-predictions": [{"PutRequest": {"Item": {"pk": {"S": "P#v1#e1"}}}}],
        }
    )
    ddb.update_item(
        TableName="b10-windows",
        Key={"pk": {"S": "M#models"}, "sk": {"S": "v1"}},
        UpdateExpression="SET a = :a",
        ExpressionAttributeValues={":a": {"N": "1"}},
    )
    ddb.transact_write_items(
        TransactItems=[{"Put": {"TableName": "b10-windows", "Item": {"pk": {"S": "W#v1"}, "sk": {"S": "R#x"}}}}]
    )
    billed = counter.billed
    assert billed["dynamodb_wcu_kind[batch_item]"] == 2  # 1.5 KB: two units
    assert billed["dynamodb_items_kind[batch_item]"] == 1
    assert billed["dynamodb_wcu_kind[late_pointer]"] == 1
    assert billed["dynamodb_wcu_kind[window_merge]"] == 1
    assert billed["dynamodb_wcu_kind[model_registry]"] == 1
    assert billed["dynamodb_wcu_kind[window_report]"] == 2  # in a transaction
    assert not any("predictions" in k for k in billed if k.startswith("dynamodb_wcu_kind"))  # not a window item
    assert sum(v for k, v in billed.items() if k.startswith("dynamodb_wcu_kind")) == billed["dynamodb_wcu[b10-windows]"]


def test_without_a_reader_the_sent_item_is_billed() -> None:
    session, counter = _session_with_counter()
    session.client("dynamodb").put_item(TableName="t", Item={"pk": {"S": "k"}, "v": {"S": "z" * 2000}})
    assert counter.billed["dynamodb_wcu"] == 2


def test_reset_and_snapshot() -> None:
    session, counter = _session_with_counter()
    session.client("sqs").send_message(QueueUrl="https://sqs.us-east-1.amazonaws.com/1/q", MessageBody="m")
    assert counter.snapshot() == {"calls": {"sqs.SendMessage": 1}, "billed": {"sqs_requests": 1}}
    counter.reset()
    assert counter.snapshot() == {"calls": {}, "billed": {}}


def test_attach_to_one_client_counts_only_that_client() -> None:
    session = fakeaws.make_session()
    counted, other = session.client("sqs"), session.client("sqs")
    counter = RequestCounter()
    counter.attach(counted)
    counted.delete_message_batch(
        QueueUrl="https://sqs.us-east-1.amazonaws.com/1/q", Entries=[{"Id": "1", "ReceiptHandle": "r"}]
    )
    other.delete_message_batch(
        QueueUrl="https://sqs.us-east-1.amazonaws.com/1/q", Entries=[{"Id": "1", "ReceiptHandle": "r"}]
    )
    assert counter.calls == {"sqs.DeleteMessageBatch": 1}


@pytest.mark.parametrize("kind", ["Put", "Update", "Delete"])
def test_failed_writes_still_bill(kind: str) -> None:
    counter = RequestCounter()
    body: dict[str, Any] = {"TableName": "t", "Key": {"pk": {"S": "k"}}, "Item": {"pk": {"S": "k"}}}
    billed = counter.billed_units(
        "dynamodb", f"{kind}Item", body, {"Error": {"Code": "ConditionalCheckFailedException"}}
    )
    assert billed["dynamodb_wcu"] == 1
