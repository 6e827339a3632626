"""`pigeonhole dlq redrive` against moto in server mode: attributes kept, dry run, count, safe to run twice."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from pigeonhole_tools.cli import app
from pigeonhole_tools.local.emulator import LocalResources, queue_depth, sqs_client
from pigeonhole_tools.reliability.redrive import redrive, redrive_by_copy

ATTRIBUTES = {
    "producer": {"DataType": "String", "StringValue": "billing"},
    "attempt": {"DataType": "Number", "StringValue": "3"},
    "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01\xfe"},
}


def _dead_letters(system: LocalResources, n: int) -> list[str]:
    sqs = sqs_client(system.endpoint, system.region, 1)
    bodies = [json.dumps({"id": f"dlq-{i:03d}", "text": "my card is lost"}) for i in range(n)]
    for start in range(0, n, 10):
        entries = [
            {"Id": str(i), "MessageBody": b, "MessageAttributes": ATTRIBUTES}
            for i, b in enumerate(bodies[start : start + 10])
        ]
        assert not sqs.send_message_batch(QueueUrl=system.ingest_dlq.url, Entries=entries).get("Failed")  # type: ignore[arg-type]
    return bodies


def test_redrive_moves_dead_letters_back_with_their_attributes(system: LocalResources) -> None:
    sqs = sqs_client(system.endpoint, system.region, 1)
    bodies = _dead_letters(system, 23)

    dry = redrive(sqs, system.ingest_dlq.name, local=True, dry_run=True)
    assert (dry.method, dry.waiting, dry.moved) == ("copy", 23, 0)
    assert dry.destination_url == system.ingest.url  # found through ListDeadLetterSourceQueues
    assert queue_depth(sqs, system.ingest_dlq.url) == 23
    assert queue_depth(sqs, system.ingest.url) == 0

    done = redrive(sqs, system.ingest_dlq.url, local=True)
    assert (done.moved, done.failed, done.errors) == (23, 0, [])
    assert queue_depth(sqs, system.ingest_dlq.url) == 0

    received = []
    while batch := sqs.receive_message(
        QueueUrl=system.ingest.url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], WaitTimeSeconds=0
    ).get("Messages", []):
        received += batch
    assert sorted(m["Body"] for m in received) == sorted(bodies)
    for m in received:
        attrs = m["MessageAttributes"]
        assert attrs["producer"] == {"DataType": "String", "StringValue": "billing"}
        assert attrs["attempt"] == {"DataType": "Number", "StringValue": "3"}
        blob = attrs["blob"]["BinaryValue"]
        assert (blob.encode() if isinstance(blob, str) else blob) == b"\x00\x01\xfe"

    again = redrive(sqs, system.ingest_dlq.url, local=True)  # safe to run twice: nothing left to move
    assert (again.waiting, again.moved, again.failed) == (0, 0, 0)


def test_redrive_max_and_a_failed_send_leaves_the_message_in_the_dlq(system: LocalResources) -> None:
    sqs = sqs_client(system.endpoint, system.region, 1)
    _dead_letters(system, 12)
    part = redrive_by_copy(sqs, system.ingest_dlq.url, system.ingest.url, max_messages=5)
    assert part.moved == 5
    assert queue_depth(sqs, system.ingest_dlq.url) == 7

    rest = redrive_by_copy(sqs, system.ingest_dlq.url, system.ingest.url)
    assert (rest.moved, queue_depth(sqs, system.ingest_dlq.url)) == (7, 0)

    # A destination that refuses the send (its maximum message size is below the dead letter's size).
    tiny = sqs.create_queue(QueueName=f"{system.names.prefix}-tiny", Attributes={"MaximumMessageSize": "1024"})
    sqs.send_message(QueueUrl=system.ingest_dlq.url, MessageBody=json.dumps({"id": "dlq-big", "text": "x" * 2_000}))
    refused = redrive_by_copy(sqs, system.ingest_dlq.url, tiny["QueueUrl"])
    assert (refused.moved, refused.failed) == (0, 1)
    assert refused.errors
    assert queue_depth(sqs, system.ingest_dlq.url) == 1  # the refused one stayed where it was, visible again


def test_cli_dry_run_and_json(system: LocalResources) -> None:
    _dead_letters(system, 4)
    runner = CliRunner()
    out = runner.invoke(
        app, ["dlq", "redrive", system.ingest_dlq.name, "--endpoint", system.endpoint, "--dry-run", "--json"]
    )
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    assert (doc["method"], doc["waiting"], doc["moved"], doc["dry_run"]) == ("copy", 4, 0, True)
    out = runner.invoke(app, ["dlq", "redrive", system.ingest_dlq.name, "--endpoint", system.endpoint])
    assert out.exit_code == 0, out.output
    assert "moved 4 message(s)" in out.output
