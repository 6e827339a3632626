"""The fault injector: each kind reaches the code as AWS would deliver it, through botocore's own handling."""

from __future__ import annotations

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectTimeoutError

from pigeonhole_tools.reliability.config import FaultKind, FaultPlan
from pigeonhole_tools.reliability.injection import FaultInjector


def _client(kind: FaultKind, service: str = "sqs", retries: int = 0) -> tuple[object, FaultInjector]:
    injector = FaultInjector(FaultPlan(rate=0.999999, seed=1, kinds=(kind,), landed_fraction=0.0))
    session = injector.attach(boto3.Session(aws_access_key_id="x", aws_secret_access_key="x", region_name="us-east-1"))
    # botocore reads retries["max_attempts"] as the number of *retries*: total attempts are one more.
    config = Config(retries={"mode": "standard", "max_attempts": retries})
    return session.client(service, endpoint_url="http://127.0.0.1:9", config=config), injector


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        (FaultKind.THROTTLING, "ThrottlingException"),
        (FaultKind.ACCESS_DENIED, "AccessDeniedException"),
    ],
)
def test_error_responses_are_parsed_as_aws_errors(kind: FaultKind, code: str) -> None:
    sqs, injector = _client(kind)
    with pytest.raises(ClientError) as err:
        sqs.send_message_batch(QueueUrl="http://127.0.0.1:9/1/q", Entries=[{"Id": "0", "MessageBody": "x"}])  # type: ignore[attr-defined]
    assert err.value.response["Error"]["Code"] == code
    assert injector.stats.faults[f"SendMessageBatch:{kind}"] == 1


def test_server_errors_and_timeouts_are_retried_by_botocore() -> None:
    sqs, injector = _client(FaultKind.TIMEOUT, retries=3)  # what the functions configure
    with pytest.raises(ConnectTimeoutError):
        sqs.send_message_batch(QueueUrl="http://127.0.0.1:9/1/q", Entries=[{"Id": "0", "MessageBody": "x"}])  # type: ignore[attr-defined]
    assert injector.stats.attempts["SendMessageBatch"] == 4  # the first attempt and 3 retries, each through the hook


def test_transaction_conflict_is_a_cancellation_with_reasons() -> None:
    ddb, _ = _client(FaultKind.TRANSACTION_CONFLICT, "dynamodb")
    items = [{"Put": {"TableName": "t", "Item": {"pk": {"S": str(i)}}}} for i in range(3)]
    with pytest.raises(ClientError) as err:
        ddb.transact_write_items(TransactItems=items)  # type: ignore[attr-defined]
    assert err.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert [r["Code"] for r in err.value.response["CancellationReasons"]] == ["TransactionConflict"] * 3  # type: ignore[typeddict-item]


def test_conflicts_only_hit_dynamodb_and_the_draws_are_seeded() -> None:
    def faults(seed: int) -> dict[str, int]:
        sqs, injector = _client(FaultKind.THROTTLING)
        injector.plan = FaultPlan(rate=0.5, seed=seed, kinds=(FaultKind.TRANSACTION_CONFLICT, FaultKind.THROTTLING))
        injector._rng.seed(seed)
        for _ in range(40):
            try:
                sqs.send_message_batch(QueueUrl="http://127.0.0.1:9/1/q", Entries=[{"Id": "0", "MessageBody": "x"}])  # type: ignore[attr-defined]
            except Exception:
                continue
        return dict(injector.stats.faults)

    first = faults(3)
    assert first == faults(3)
    assert set(first) == {"SendMessageBatch:throttling"}  # no conflict drawn for SQS
    with pytest.raises(ValueError, match="rate"):
        FaultPlan(rate=1.0)
