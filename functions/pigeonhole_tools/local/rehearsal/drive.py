"""The real classifier handler, run in-process with the deployed function's own environment."""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pigeonhole import constants as c
from pigeonhole_tools.local.emulator import (
    INPUT_DETAIL_TYPE,
    INPUT_SOURCE,
    offline_environment,
    require_loopback,
)
from pigeonhole_tools.local.rehearsal.compare import function_environment
from pigeonhole_tools.local.rehearsal.stack import Moto, RehearsalError

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

# -- driving the classifier --------------------------------------------------------------------------


@contextlib.contextmanager
def patched_environ(values: Mapping[str, str]) -> Iterator[None]:
    """Set `values` in os.environ for the block, then put the environment back exactly."""
    saved = dict(os.environ)
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def handler_environment(deployed: Mapping[str, str], moto: Moto, model_dir: Path) -> dict[str, str]:
    """The deployed environment plus LOCAL_OVERRIDES, refusing to run unless every client goes to moto."""
    env = {
        **deployed,
        **offline_environment(moto.region, moto.endpoint),
        c.ENV_MODEL_DIR: str(model_dir),
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    # The queue URLs in the template name sqs.<region>.amazonaws.com: without the endpoint override
    # the handler would call AWS. offline_environment sets it; check, so a change there cannot slip by.
    endpoint = env.get("AWS_ENDPOINT_URL")
    if not endpoint:
        raise RehearsalError("AWS_ENDPOINT_URL is not set: the deployed queue URLs point at the real SQS host")
    require_loopback(endpoint)
    return env


@dataclass(frozen=True)
class Classified:
    """Where one event ended up after the real handler ran with the deployed environment."""

    event_id: str
    batch_item_failures: list[str]
    output: list[dict[str, Any]]  # EventClassified events read back from the test queue on the output bus
    review: list[dict[str, Any]]

    @property
    def landed(self) -> bool:
        return not self.batch_item_failures and len(self.output) + len(self.review) == 1


def _drain(sqs: SQSClient, url: str, expect: int = 1, attempts: int = 5) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for _ in range(attempts):
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        for message in batch:
            found.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        if len(found) >= expect:
            break
        time.sleep(0.2)
    return found


def drive_classifier(moto: Moto, prefix: str, model_dir: Path, text: str) -> Classified:
    """Put one event on the deployed input bus and run the real handler on what reaches the ingest queue.

    The deployed rule carries it to the ingest queue; a test queue subscribed to the output bus (not
    part of the stack) catches the classifier's EventClassified event.
    """
    from pigeonhole.classify import handler as handler_module
    from pigeonhole_tools.local.poller import LambdaContext, build_event

    function_name = f"{prefix}-classifier"
    sqs = moto.client("sqs")
    events = moto.client("events")
    lam = moto.client("lambda")
    sink_name = f"consumer-{prefix}-sink"  # not `<prefix>-…`: not part of the stack
    sink_url = sqs.create_queue(QueueName=sink_name)["QueueUrl"]
    sink_arn = sqs.get_queue_attributes(QueueUrl=sink_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    deployed_env = function_environment(moto, function_name)
    output_bus = deployed_env[c.ENV_OUTPUT_BUS_NAME]
    rule = f"consumer-{prefix}-sink"
    consumer_pattern = {"source": [c.OUTPUT_SOURCE], "detail-type": [c.OUTPUT_DETAIL_TYPE]}
    events.put_rule(Name=rule, EventBusName=output_bus, EventPattern=json.dumps(consumer_pattern))
    events.put_targets(Rule=rule, EventBusName=output_bus, Targets=[{"Id": "sink", "Arn": sink_arn}])

    event_id = f"rehearsal-{uuid.uuid4().hex[:12]}"
    detail = {"id": event_id, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "text": text}
    response = events.put_events(
        Entries=[
            {
                "EventBusName": f"{prefix}-input",
                "Source": INPUT_SOURCE,
                "DetailType": INPUT_DETAIL_TYPE,
                "Detail": json.dumps(detail),
            }
        ]
    )
    if response.get("FailedEntryCount"):
        raise RehearsalError(f"put_events on the deployed input bus failed: {response['Entries']}")

    ingest_url = sqs.get_queue_url(QueueName=f"{prefix}-ingest")["QueueUrl"]
    ingest_arn = sqs.get_queue_attributes(QueueUrl=ingest_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    messages = sqs.receive_message(
        QueueUrl=ingest_url, MaxNumberOfMessages=10, AttributeNames=["All"], MessageAttributeNames=["All"]
    ).get("Messages", [])
    if len(messages) != 1:
        raise RehearsalError(f"expected the event on the deployed ingest queue, found {len(messages)} messages")

    config = lam.get_function_configuration(FunctionName=function_name)
    env = handler_environment(deployed_env, moto, model_dir)
    with patched_environ(env):
        handler_module.reset_for_tests()  # a cold container that reads this environment
        try:
            context = LambdaContext.start(
                function_name, config["FunctionArn"], float(config["Timeout"]), int(config["MemorySize"])
            )
            result = handler_module.handler(build_event(messages, ingest_arn, moto.region), context)
        finally:
            handler_module.reset_for_tests()
    failures = [item["itemIdentifier"] for item in (result or {}).get("batchItemFailures", [])]
    if not failures:
        sqs.delete_message(QueueUrl=ingest_url, ReceiptHandle=messages[0]["ReceiptHandle"])
    review_url = sqs.get_queue_url(QueueName=f"{prefix}-review")["QueueUrl"]
    output = _drain(sqs, sink_url, attempts=2)
    review = [] if output else _drain(sqs, review_url, attempts=2)
    return Classified(event_id=event_id, batch_item_failures=failures, output=output, review=review)
