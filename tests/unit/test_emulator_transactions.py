"""The emulator's moto transaction speed-up: one table backup per transaction, rollback unchanged."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.dynamodb.models.table import Table

from pigeonhole_tools.local.emulator import _speed_up_moto_transactions


@pytest.fixture
def table() -> Iterator[Any]:
    _speed_up_moto_transactions()
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield client


def counter_and_markers(n: int, marker_prefix: str) -> list[dict[str, Any]]:
    """A classifier-like transaction: one counter ADD and n conditional markers."""
    items: list[dict[str, Any]] = [
        {
            "Update": {
                "TableName": "t",
                "Key": {"pk": {"S": "W#1"}},
                "UpdateExpression": "ADD events :n",
                "ExpressionAttributeValues": {":n": {"N": str(n)}},
            }
        }
    ]
    items += [
        {
            "Put": {
                "TableName": "t",
                "Item": {"pk": {"S": f"{marker_prefix}{i}"}},
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }
        for i in range(n)
    ]
    return items


def test_a_transaction_copies_each_table_once(table: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    real = copy.deepcopy
    table_copies: list[int] = []

    def counting(x: Any, memo: Any = None) -> Any:
        if isinstance(x, Table):
            table_copies.append(id(x))
        return real(x, memo)

    monkeypatch.setattr(copy, "deepcopy", counting)
    table.transact_write_items(TransactItems=counter_and_markers(10, "E#"))
    assert len(table_copies) == 1  # moto alone: 11 (one per item)


def test_a_failed_transaction_still_rolls_every_write_back(table: Any) -> None:
    table.transact_write_items(TransactItems=counter_and_markers(3, "E#"))
    # Markers E#0..E#2 exist: the same batch again fails its conditions, so the ADD must not stick either.
    with pytest.raises(ClientError) as exc:
        table.transact_write_items(TransactItems=counter_and_markers(3, "E#"))
    assert exc.value.response["Error"]["Code"] == "TransactionCanceledException"
    counter = table.get_item(TableName="t", Key={"pk": {"S": "W#1"}})["Item"]
    assert counter["events"] == {"N": "3"}
    assert table.scan(TableName="t")["Count"] == 4
    table.transact_write_items(TransactItems=counter_and_markers(2, "F#"))  # and the table still works after
    assert table.get_item(TableName="t", Key={"pk": {"S": "W#1"}})["Item"]["events"] == {"N": "5"}
