"""The AWS path of `pigeonhole dlq redrive`: SQS's own StartMessageMoveTask (moto lacks it), with a Stubber."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from pigeonhole_tools.reliability.redrive import RedriveError, redrive

DLQ = "https://sqs.us-east-1.amazonaws.com/123456789012/p-ingest-dlq"
DLQ_ARN = "arn:aws:sqs:us-east-1:123456789012:p-ingest-dlq"


def _client() -> tuple[object, Stubber]:
    sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url="http://127.0.0.1:9")
    return sqs, Stubber(sqs)


def _common(stub: Stubber, waiting: int, tasks: list[dict[str, object]]) -> None:
    stub.add_response(
        "get_queue_attributes", {"Attributes": {"QueueArn": DLQ_ARN}}, {"QueueUrl": DLQ, "AttributeNames": ["QueueArn"]}
    )
    stub.add_response(
        "get_queue_attributes",
        {"Attributes": {"ApproximateNumberOfMessages": str(waiting), "ApproximateNumberOfMessagesNotVisible": "0"}},
        {"QueueUrl": DLQ, "AttributeNames": ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]},
    )
    stub.add_response("list_message_move_tasks", {"Results": tasks}, {"SourceArn": DLQ_ARN, "MaxResults": 10})


def test_move_task_starts_one_task_back_to_the_source() -> None:
    sqs, stub = _client()
    _common(stub, 7, [{"Status": "COMPLETED", "SourceArn": DLQ_ARN}])
    stub.add_response("start_message_move_task", {"TaskHandle": "h-1"}, {"SourceArn": DLQ_ARN})
    stub.add_response(
        "list_message_move_tasks",
        {"Results": [{"Status": "RUNNING", "TaskHandle": "h-1", "ApproximateNumberOfMessagesMoved": 2}]},
        {"SourceArn": DLQ_ARN, "MaxResults": 1},
    )
    with stub:
        result = redrive(sqs, DLQ)  # type: ignore[arg-type]
    stub.assert_no_pending_responses()
    assert (result.method, result.waiting, result.moved) == ("move-task", 7, 2)
    assert result.task is not None
    assert result.task["TaskHandle"] == "h-1"


def test_a_running_task_is_reported_not_doubled_and_dry_run_starts_nothing() -> None:
    sqs, stub = _client()
    _common(stub, 5, [{"Status": "RUNNING", "TaskHandle": "h-0", "ApproximateNumberOfMessagesMoved": 3}])
    _common(stub, 5, [])
    with stub:
        running = redrive(sqs, DLQ)  # type: ignore[arg-type]
        dry = redrive(sqs, DLQ, dry_run=True)  # type: ignore[arg-type]
    stub.assert_no_pending_responses()  # no StartMessageMoveTask was called
    assert running.moved == 3
    assert "already running" in running.note
    assert dry.dry_run
    assert dry.moved == 0


def test_max_is_refused_for_a_move_task() -> None:
    sqs, _ = _client()
    with pytest.raises(RedriveError):
        redrive(sqs, DLQ, max_messages=3)  # type: ignore[arg-type]
