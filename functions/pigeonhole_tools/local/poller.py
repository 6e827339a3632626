"""A poller that plays Lambda's SQS event source mapping (ESM) against a moto queue.

moto cannot run Lambda code nor batch SQS into it, so this does what the ESM does: receive up to
10 messages with all attributes, build the exact SQS event Lambda would deliver, invoke the real
handler in-process with a Lambda-like context, delete the records that succeeded and leave the
failures for SQS to redeliver (and, after maxReceiveCount receives, to move to the DLQ).

Deliberate deviations from AWS, all labelled in docs/local.md:
- failed records are made visible again after `retry_delay_seconds` (default 1 s) instead of
  waiting out the queue's visibility timeout (181 s, as infra sets it), so a poison event reaches
  the DLQ in seconds; `retry_delay_seconds=None` keeps AWS's behaviour;
- one invocation at a time (the ESM scales to many concurrent pollers and sandboxes), so nothing is
  ever throttled: the local `Throttles` metric (`service_metrics.py`, fed by `on_invocation`) is 0;
- a function timeout is detected after the fact (the handler is not killed), the batch then fails.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pigeonhole.naming import MAX_BATCH_SIZE
from pigeonhole_tools.local.emulator import (
    ALIAS_NAME,
    DEFAULT_BATCHING_WINDOW,
    DEFAULT_FUNCTION_TIMEOUT,
    DEFAULT_MEMORY_MB,
    LocalResources,
    queue_depth,
    sqs_client,
)

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], Any], Any]
DEFAULT_FUNCTION_NAME = "pigeonhole-classifier"
DEFAULT_ACCOUNT = "123456789012"  # moto's default account
DEFAULT_RETRY_DELAY_SECONDS = 1
DEFAULT_WAIT_TIME_SECONDS = 1  # Lambda long-polls for 20 s; 1 s keeps Ctrl-C and drain checks responsive
# How Invocation.error starts for the two failures Lambda counts in its `Errors` metric (the handler raised or
# timed out). An invalid batch response fails the batch in the ESM but the invocation itself succeeded.
FUNCTION_ERROR_PREFIX = "function error: "
TIMEOUT_PREFIX = "Task timed out"


@dataclass
class LambdaContext:
    """The attributes of Lambda's Python context object that handlers and Powertools read."""

    function_name: str
    invoked_function_arn: str
    aws_request_id: str
    memory_limit_in_mb: int = DEFAULT_MEMORY_MB
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = ""
    timeout_seconds: float = DEFAULT_FUNCTION_TIMEOUT
    identity: Any = None
    client_context: Any = None
    tenant_id: str | None = None
    _deadline: float = field(default=0.0, repr=False)

    @classmethod
    def start(
        cls,
        function_name: str,
        invoked_function_arn: str,
        timeout_seconds: float,
        memory_limit_in_mb: int = DEFAULT_MEMORY_MB,
    ) -> LambdaContext:
        """A context for one invocation starting now (the remaining time counts down from the timeout)."""
        request_id = str(uuid.uuid4())
        day = datetime.now(UTC).strftime("%Y/%m/%d")
        return cls(
            function_name=function_name,
            invoked_function_arn=invoked_function_arn,
            aws_request_id=request_id,
            memory_limit_in_mb=memory_limit_in_mb,
            log_group_name=f"/aws/lambda/{function_name}",
            log_stream_name=f"{day}/[$LATEST]{uuid.uuid4().hex}",
            timeout_seconds=timeout_seconds,
            _deadline=time.monotonic() + timeout_seconds,
        )

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _b64(value: bytes | bytearray | str) -> str:
    # boto3 hands bytes back; moto's server returns binary attributes as text (a moto quirk), pass it through.
    raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    return base64.b64encode(raw).decode("ascii")


def lambda_message_attributes(attributes: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """SQS API message attributes (StringValue, DataType) in Lambda's lower-camel event shape."""
    out: dict[str, dict[str, Any]] = {}
    for name, attr in attributes.items():
        value: dict[str, Any] = {}
        if "StringValue" in attr:
            value["stringValue"] = attr["StringValue"]
        if "BinaryValue" in attr:
            value["binaryValue"] = _b64(attr["BinaryValue"])
        value["stringListValues"] = list(attr.get("StringListValues", []))
        value["binaryListValues"] = [_b64(v) for v in attr.get("BinaryListValues", [])]
        value["dataType"] = attr["DataType"]
        out[name] = value
    return out


def to_lambda_record(message: MessageTypeDef | Mapping[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """One received SQS message as a record of Lambda's SQS event (field names and casing as Lambda's)."""
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": lambda_message_attributes(message.get("MessageAttributes", {})),
    }
    if message.get("MD5OfMessageAttributes"):
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    record["md5OfBody"] = message["MD5OfBody"]
    record["eventSource"] = "aws:sqs"
    record["eventSourceARN"] = queue_arn
    record["awsRegion"] = region
    return record


def build_event(messages: Sequence[MessageTypeDef | Mapping[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    """The event Lambda's ESM delivers for one batch; JSON round-tripped, as the real invoke payload is."""
    event = {"Records": [to_lambda_record(m, queue_arn, region) for m in messages]}
    return json.loads(json.dumps(event))


class BatchResponseError(Exception):
    """The whole batch failed (function error, invalid response, timeout): nothing is deleted."""


def failed_message_ids(response: Any, message_ids: Sequence[str]) -> set[str]:
    """Read a partial batch response as Lambda does (ReportBatchItemFailures on); raise BatchResponseError if invalid.

    Complete success: None, an empty object, a null or empty batchItemFailures. Complete failure: a
    response that is not a JSON object, an item without `itemIdentifier`, a null or empty identifier,
    or an identifier that is not a message of this batch.
    """
    if response is None:
        return set()
    try:
        json.dumps(response)
    except (TypeError, ValueError) as exc:
        raise BatchResponseError(f"the response is not JSON-serialisable: {exc}") from exc
    if not isinstance(response, dict):
        raise BatchResponseError(f"the response is a {type(response).__name__}, not an object")
    items = response.get("batchItemFailures")
    if items is None:
        return set()
    if not isinstance(items, list):
        raise BatchResponseError("batchItemFailures is not a list")
    known = set(message_ids)
    failed: set[str] = set()
    for item in items:
        if not isinstance(item, dict) or "itemIdentifier" not in item:
            raise BatchResponseError(f"batch item failure without itemIdentifier: {item!r}")
        identifier = item["itemIdentifier"]
        if not identifier or not isinstance(identifier, str):
            raise BatchResponseError(f"null or empty itemIdentifier: {identifier!r}")
        if identifier not in known:
            raise BatchResponseError(f"itemIdentifier {identifier!r} is not a message of this batch")
        failed.add(identifier)
    return failed


@dataclass(frozen=True)
class Invocation:
    """What one emulated invocation did; handler time excludes the poller's own SQS calls."""

    request_id: str
    message_ids: tuple[str, ...]
    failed_ids: tuple[str, ...]
    duration_ms: float
    deleted: int
    error: str | None = None  # set when the whole batch failed
    started_at: float = 0.0  # epoch seconds when the handler was called (0.0: not recorded)

    @property
    def records(self) -> int:
        return len(self.message_ids)

    @property
    def function_error(self) -> bool:
        """A Lambda `Errors` datapoint: the handler raised or timed out (not an invalid batch response)."""
        return self.error is not None and self.error.startswith((FUNCTION_ERROR_PREFIX, TIMEOUT_PREFIX))


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in [0, 100]); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class PollerStats:
    """Per-invocation records; appended by the poller thread, read by progress displays."""

    invocations: list[Invocation] = field(default_factory=list)

    @property
    def records(self) -> int:
        return sum(i.records for i in self.invocations)

    @property
    def deleted(self) -> int:
        return sum(i.deleted for i in self.invocations)

    @property
    def failed_records(self) -> int:
        return sum(len(i.failed_ids) for i in self.invocations)

    @property
    def batch_errors(self) -> int:
        return sum(1 for i in self.invocations if i.error is not None)

    def handler_ms(self, q: float) -> float:
        return percentile([i.duration_ms for i in self.invocations], q)


class SqsEventSourcePoller:
    """Receive → invoke → delete successes → retry failures, like Lambda's SQS ESM with partial batch responses."""

    def __init__(
        self,
        sqs: SQSClient,
        *,
        queue_url: str,
        queue_arn: str,
        region: str,
        handler: Handler,
        batch_size: int = MAX_BATCH_SIZE,
        visibility_timeout: int | None = None,
        retry_delay_seconds: int | None = DEFAULT_RETRY_DELAY_SECONDS,
        wait_time_seconds: int = DEFAULT_WAIT_TIME_SECONDS,
        batching_window_seconds: float = 0.0,
        function_name: str = DEFAULT_FUNCTION_NAME,
        function_timeout_seconds: float = DEFAULT_FUNCTION_TIMEOUT,
        memory_limit_in_mb: int = DEFAULT_MEMORY_MB,
        account_id: str = DEFAULT_ACCOUNT,
        on_invocation: Callable[[Invocation], None] | None = None,
    ) -> None:
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise ValueError(f"batch_size must be within 1..{MAX_BATCH_SIZE}")
        self._sqs = sqs
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.region = region
        self._handler = handler
        self.batch_size = batch_size
        self._visibility_timeout = visibility_timeout
        self.retry_delay_seconds = retry_delay_seconds
        self.wait_time_seconds = wait_time_seconds
        self.batching_window_seconds = batching_window_seconds
        self.function_name = function_name
        self.function_arn = f"arn:aws:lambda:{region}:{account_id}:function:{function_name}:{ALIAS_NAME}"
        self.function_timeout_seconds = function_timeout_seconds
        self.memory_limit_in_mb = memory_limit_in_mb
        self._on_invocation = on_invocation
        self.stats = PollerStats()

    @classmethod
    def for_resources(
        cls, resources: LocalResources, handler: Handler, *, max_attempts: int = 3, **kwargs: Any
    ) -> SqsEventSourcePoller:
        """A poller on the ingest queue of a provisioned local system (its own SQS client), set up as infra sets
        the event source mapping: the queue's visibility timeout, a 1 s batching window, the function's name."""
        sqs = sqs_client(resources.endpoint, resources.region, max_attempts)
        kwargs.setdefault("visibility_timeout", resources.visibility_timeout)
        kwargs.setdefault("batching_window_seconds", DEFAULT_BATCHING_WINDOW)
        kwargs.setdefault("function_name", resources.function_name)
        return cls(
            sqs,
            queue_url=resources.ingest.url,
            queue_arn=resources.ingest.arn,
            region=resources.region,
            handler=handler,
            **kwargs,
        )

    @property
    def visibility_timeout(self) -> int:
        """The queue's visibility timeout (what the ESM uses), read once."""
        if self._visibility_timeout is None:
            attrs = self._sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["VisibilityTimeout"])
            self._visibility_timeout = int(attrs["Attributes"]["VisibilityTimeout"])
        return self._visibility_timeout

    def receive(self, max_messages: int | None = None, wait_seconds: int | None = None) -> list[MessageTypeDef]:
        response = self._sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=max_messages or self.batch_size,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            VisibilityTimeout=self.visibility_timeout,
            WaitTimeSeconds=self.wait_time_seconds if wait_seconds is None else wait_seconds,
        )
        return list(response.get("Messages", []))

    def poll_once(self) -> Invocation | None:
        """Gather one batch and invoke the handler with it; None when the queue had nothing visible.

        With a batching window the ESM keeps reading until the batch is full or the window (counted
        from the first message) closes, like MaximumBatchingWindowInSeconds.
        """
        messages = self.receive()
        if not messages:
            return None
        if self.batching_window_seconds > 0:
            closes = time.monotonic() + self.batching_window_seconds
            while len(messages) < self.batch_size and (left := closes - time.monotonic()) > 0:
                more = self.receive(max_messages=self.batch_size - len(messages), wait_seconds=0)
                if more:
                    messages.extend(more)
                else:
                    time.sleep(min(0.05, left))
        return self.invoke(messages)

    def invoke(self, messages: Sequence[MessageTypeDef]) -> Invocation:
        """Invoke the handler on one batch and settle every message: delete or make visible again."""
        event = build_event(messages, self.queue_arn, self.region)
        ids = [m["MessageId"] for m in messages]
        context = LambdaContext.start(
            self.function_name, self.function_arn, self.function_timeout_seconds, self.memory_limit_in_mb
        )
        error: str | None = None
        response: Any = None
        started_at = time.time()
        started = time.perf_counter()
        try:
            response = self._handler(event, context)
        except Exception as exc:  # a function error fails the whole batch, as in Lambda
            error = f"{FUNCTION_ERROR_PREFIX}{type(exc).__name__}: {exc}"
        duration_ms = (time.perf_counter() - started) * 1000.0
        if error is None and duration_ms > self.function_timeout_seconds * 1000.0:
            error = f"{TIMEOUT_PREFIX} after {duration_ms / 1000.0:.2f} seconds (detected after the fact)"
        failed: set[str] = set()
        if error is None:
            try:
                failed = failed_message_ids(response, ids)
            except BatchResponseError as exc:
                error = f"invalid batch response: {exc}"
        if error is not None:
            log.warning("batch of %d failed as a whole: %s", len(ids), error)
            failed = set(ids)
        deleted = self._delete([m for m in messages if m["MessageId"] not in failed])
        self._retry_later([m for m in messages if m["MessageId"] in failed])
        invocation = Invocation(
            request_id=context.aws_request_id,
            message_ids=tuple(ids),
            failed_ids=tuple(i for i in ids if i in failed),
            duration_ms=duration_ms,
            deleted=deleted,
            error=error,
            started_at=started_at,
        )
        self.stats.invocations.append(invocation)
        if self._on_invocation is not None:
            self._on_invocation(invocation)
        return invocation

    def _delete(self, messages: Sequence[MessageTypeDef]) -> int:
        if not messages:
            return 0
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
        result = self._sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)  # type: ignore[arg-type]
        for failure in result.get("Failed", []):
            # The ESM logs and moves on: the message will be redelivered (at-least-once).
            log.warning("delete failed for entry %s: %s", failure["Id"], failure.get("Message", failure["Code"]))
        return len(result.get("Successful", []))

    def _retry_later(self, messages: Sequence[MessageTypeDef]) -> None:
        if not messages or self.retry_delay_seconds is None:
            return  # AWS behaviour: the message reappears when its visibility timeout expires
        entries = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": self.retry_delay_seconds}
            for i, m in enumerate(messages)
        ]
        result = self._sqs.change_message_visibility_batch(QueueUrl=self.queue_url, Entries=entries)  # type: ignore[arg-type]
        for failure in result.get("Failed", []):
            log.warning("visibility change failed for entry %s: %s", failure["Id"], failure.get("Message"))

    def drained(self) -> bool:
        """True when the queue holds nothing: no visible, in-flight (incl. retry backoff) or delayed message."""
        return queue_depth(self._sqs, self.queue_url) == 0

    def run(
        self,
        stop: threading.Event | None = None,
        *,
        until_drained: bool = False,
        max_seconds: float | None = None,
    ) -> bool:
        """Poll until `stop` is set, or (until_drained) the queue is empty; True if it drained.

        `max_seconds` is a safety net against a stuck run, not a performance assertion.
        """
        stop = stop or threading.Event()
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        while not stop.is_set():
            if self.poll_once() is not None:
                continue
            if until_drained and self.drained():
                return True
            if deadline is not None and time.monotonic() > deadline:
                return False
        return False
