"""Functional fixtures: real boto3 calls against in-process moto, real model, real handler."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto import mock_aws

from pigeonhole import topology
from pigeonhole.classify import handler as handler_module
from pigeonhole.classify.service import ClassifierService
from pigeonhole.config import Settings
from pigeonhole.naming import ResourceNames
from pigeonhole_tools.local.provisioning import create_topology

NAMES = ResourceNames(prefix="test")
REGION = "us-east-1"


@dataclass
class Stack:
    sqs: Any
    events: Any
    ingest_url: str
    ingest_arn: str
    dlq_url: str
    review_url: str
    quarantine_url: str
    sink_url: str

    def send(self, bodies: list[str]) -> None:
        for start in range(0, len(bodies), 10):
            entries = [{"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies[start : start + 10])]
            self.sqs.send_message_batch(QueueUrl=self.ingest_url, Entries=entries)

    def receive_event(self, max_messages: int = 10) -> dict[str, Any]:
        """An SQS event shaped like the one Lambda's event source mapping delivers, from real messages."""
        messages = self.sqs.receive_message(
            QueueUrl=self.ingest_url,
            MaxNumberOfMessages=max_messages,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            VisibilityTimeout=60,  # like the event source mapping: in flight until deleted or failed
        ).get("Messages", [])
        return {
            "Records": [
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": m.get("Attributes", {}),
                    "messageAttributes": {},
                    "md5OfBody": hashlib.md5(m["Body"].encode()).hexdigest(),
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self.ingest_arn,
                    "awsRegion": REGION,
                }
                for m in messages
            ]
        }

    def drain(self, url: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            got = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
            if not got:
                return out
            for m in got:
                out.append(json.loads(m["Body"]))
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


@pytest.fixture
def stack() -> Iterator[Stack]:
    """The local runtime's topology (the stack's queues, buses, rules and tables) in in-process moto."""
    with mock_aws():
        cfg = Config(retries={"max_attempts": 1})
        sqs = boto3.client("sqs", region_name=REGION, config=cfg)
        events = boto3.client("events", region_name=REGION, config=cfg)
        dynamodb = boto3.client("dynamodb", region_name=REGION, config=cfg)
        queues = create_topology(sqs, events, dynamodb, topology.build(NAMES)).queues
        ingest = queues[NAMES.ingest_queue]
        yield Stack(
            sqs,
            events,
            ingest.url,
            ingest.arn,
            queues[NAMES.ingest_dlq].url,
            queues[NAMES.review_queue].url,
            queues[NAMES.quarantine_queue].url,
            queues[NAMES.output_sink].url,
        )


@pytest.fixture
def settings(stack: Stack, model_dir: Path) -> Settings:
    return Settings(
        model_dir=model_dir,
        review_queue_url=stack.review_url,
        quarantine_queue_url=stack.quarantine_url,
        output_bus_name=NAMES.output_bus,
        event_max_age_seconds=100 * 365 * 86_400,  # the tests' events carry fixed times (2026-11-29)
    )


@pytest.fixture
def service(settings: Settings) -> Iterator[ClassifierService]:
    svc = handler_module.build_service(settings, session=boto3.Session(region_name=REGION))
    handler_module.reset_for_tests(svc)
    yield svc
    handler_module.reset_for_tests(None)


class Context:
    """The parts of LambdaContext the Powertools decorators read."""

    function_name = "pigeonhole-classifier"
    function_version = "$LATEST"
    invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:pigeonhole-classifier"
    memory_limit_in_mb = 1024
    aws_request_id = "req-1"
    log_group_name = "/aws/lambda/pigeonhole-classifier"
    log_stream_name = "stream"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 30_000


@pytest.fixture
def context() -> Context:
    return Context()
