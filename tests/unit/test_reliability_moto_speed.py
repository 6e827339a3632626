"""The speed-only moto patch: a pre-checked transaction gives the same outcome as moto's own snapshot path."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from pigeonhole_tools.reliability.moto_speed import prechecked_transactions


def _scenario() -> tuple[Any, dict[str, Any]]:
    """Marker m1 exists; a transaction puts m1 and m2 (only if absent) and adds to a counter."""
    ddb = boto3.client("dynamodb", region_name="us-east-1")
    for name in ("markers", "counters"):
        ddb.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    ddb.put_item(TableName="markers", Item={"pk": {"S": "m1"}, "seen": {"N": "1"}})

    def put(key: str) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": "markers",
                "Item": {"pk": {"S": key}},
                "ConditionExpression": "attribute_not_exists(#k)",
                "ExpressionAttributeNames": {"#k": "pk"},
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    add = {
        "Update": {
            "TableName": "counters",
            "Key": {"pk": {"S": "w"}},
            "UpdateExpression": "ADD #n :one",
            "ExpressionAttributeNames": {"#n": "n"},
            "ExpressionAttributeValues": {":one": {"N": "2"}},
        }
    }
    return ddb, {"failing": [put("m1"), put("m2"), add], "passing": [put("m2"), put("m3"), add]}


def _outcome(run: Callable[[], Any]) -> tuple[Any, ...]:
    ddb, items = run()
    with pytest.raises(ClientError) as err:
        ddb.transact_write_items(TransactItems=items["failing"])
    reasons = err.value.response.get("CancellationReasons")
    after_failure = ddb.scan(TableName="markers")["Count"], ddb.scan(TableName="counters")["Count"]
    ddb.transact_write_items(TransactItems=items["passing"])
    counter = ddb.get_item(TableName="counters", Key={"pk": {"S": "w"}})["Item"]["n"]
    return reasons, after_failure, ddb.scan(TableName="markers")["Count"], counter


def test_prechecked_transactions_match_moto() -> None:
    with mock_aws():
        expected = _outcome(_scenario)
    with mock_aws(), prechecked_transactions():
        got = _outcome(_scenario)
    assert got == expected
    reasons = expected[0]
    assert [r["Code"] for r in reasons] == ["ConditionalCheckFailed", "None", "None"]
    assert reasons[0]["Item"] == {"pk": {"S": "m1"}, "seen": {"N": "1"}}
    assert expected[1] == (1, 0)  # nothing of the cancelled transaction applied
