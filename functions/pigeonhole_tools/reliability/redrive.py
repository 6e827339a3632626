"""``pigeonhole dlq redrive``: dead letters back to the queue they came from, once their cause is fixed.

On AWS this is SQS's own message-move task (``StartMessageMoveTask``, watched with
``ListMessageMoveTasks``): SQS moves the messages with their attributes, at a bounded rate, and
refuses a second task on the same DLQ while one runs, so a second ``redrive`` reports the running
task instead of starting another. moto (5.2.5) answers both calls with HTTP 500, so on the local
runtime the same move is done by hand: receive (all attributes) → send to the source with the same
body and message attributes → delete from the DLQ only after the send succeeded. A message whose
send failed stays in the DLQ; one that was sent and whose delete failed may be delivered twice,
which the classifier tolerates (at-least-once; window counts are exact by event id). Running it
again moves what is left, so it is safe to repeat.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

Method = Literal["auto", "move-task", "copy"]
VISIBILITY_SECONDS = 60  # a received dead letter is hidden this long while it is being copied


class RedriveError(RuntimeError):
    """The DLQ cannot be redriven as asked (no source queue, several, a task already running...)."""


@dataclass
class RedriveResult:
    dlq_url: str
    destination_url: str | None
    method: Literal["move-task", "copy"]
    dry_run: bool
    waiting: int  # messages in the DLQ when the run started (approximate, as SQS counts)
    moved: int = 0  # copy: sent and deleted; move-task: what the task reports moved so far
    failed: int = 0  # copy: messages left in the DLQ because the send failed
    task: dict[str, Any] | None = None  # move-task: the task as ListMessageMoveTasks reports it
    note: str = ""
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def queue_url(sqs: SQSClient, name_or_url: str) -> str:
    if name_or_url.startswith(("http://", "https://")):
        return name_or_url
    return sqs.get_queue_url(QueueName=name_or_url)["QueueUrl"]


def queue_arn(sqs: SQSClient, url: str) -> str:
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def waiting(sqs: SQSClient, url: str) -> int:
    attrs = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return sum(int(v) for v in attrs.values())


def source_queue(sqs: SQSClient, dlq_url: str) -> str:
    """The one queue whose redrive policy points at this DLQ (SQS's ListDeadLetterSourceQueues)."""
    sources = sqs.list_dead_letter_source_queues(QueueUrl=dlq_url).get("queueUrls", [])
    if len(sources) != 1:
        found = ", ".join(sources) or "none"
        raise RedriveError(f"expected exactly one source queue for {dlq_url}, found {found}: pass --to")
    return sources[0]


def _attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    """A received message attribute as SendMessage takes it (moto's server hands binary back as text)."""
    out: dict[str, Any] = {"DataType": value["DataType"]}
    if "StringValue" in value:
        out["StringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        raw = value["BinaryValue"]
        out["BinaryValue"] = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
    return out


def _fifo_fields(message: Mapping[str, Any], fifo: bool) -> dict[str, str]:
    if not fifo:
        return {}
    attrs = message.get("Attributes", {})
    group = attrs.get("MessageGroupId", "redrive")
    dedup = attrs.get("MessageDeduplicationId") or message["MessageId"]
    return {"MessageGroupId": group, "MessageDeduplicationId": dedup}


def redrive_by_copy(
    sqs: SQSClient,
    dlq_url: str,
    destination_url: str,
    *,
    dry_run: bool = False,
    max_messages: int | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> RedriveResult:
    """Receive → send (same body and message attributes) → delete only what was sent."""
    result = RedriveResult(dlq_url, destination_url, "copy", dry_run, waiting(sqs, dlq_url))
    if dry_run:
        result.note = f"dry run: {result.waiting} message(s) would move to {destination_url}"
        return result
    fifo = destination_url.endswith(".fifo")
    seen: set[str] = set()
    while max_messages is None or result.moved + result.failed < max_messages:
        want = 10 if max_messages is None else min(10, max_messages - result.moved - result.failed)
        messages = sqs.receive_message(
            QueueUrl=dlq_url,
            MaxNumberOfMessages=want,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            VisibilityTimeout=VISIBILITY_SECONDS,
            WaitTimeSeconds=0,
        ).get("Messages", [])
        fresh = [m for m in messages if m["MessageId"] not in seen]  # a failed one came back: stop there
        if not fresh:
            break
        seen.update(m["MessageId"] for m in fresh)
        entries: list[Any] = []
        for i, m in enumerate(fresh):
            entry: dict[str, Any] = {"Id": str(i), "MessageBody": m["Body"], **_fifo_fields(m, fifo)}
            if m.get("MessageAttributes"):
                entry["MessageAttributes"] = {k: _attribute(v) for k, v in m["MessageAttributes"].items()}
            entries.append(entry)
        try:
            sent = sqs.send_message_batch(QueueUrl=destination_url, Entries=entries)
        except (ClientError, BotoCoreError) as exc:  # the whole call refused: every message stays
            sent = {"Successful": [], "Failed": [], "ResponseMetadata": {}}  # type: ignore[typeddict-item]
            result.errors.append(f"SendMessageBatch: {exc}"[:200])
        ok = {e["Id"] for e in sent.get("Successful", [])}
        for failure in sent.get("Failed", []):
            result.errors.append(f"{failure.get('Code')}: {failure.get('Message', '')}"[:200])
        done = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(fresh) if str(i) in ok]
        left = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
            for i, m in enumerate(fresh)
            if str(i) not in ok
        ]
        if done:
            deleted = sqs.delete_message_batch(QueueUrl=dlq_url, Entries=done)  # type: ignore[arg-type]
            for failure in deleted.get("Failed", []):
                result.errors.append(f"delete {failure.get('Code')}: sent, may be delivered twice")
        if left:
            sqs.change_message_visibility_batch(QueueUrl=dlq_url, Entries=left)  # type: ignore[arg-type]
        result.moved += len(done)
        result.failed += len(left)
        if on_progress is not None:
            on_progress(result.moved)
    result.note = f"moved {result.moved} message(s) to {destination_url}" + (
        f"; {result.failed} stayed in the DLQ (send failed)" if result.failed else ""
    )
    return result


def redrive_by_move_task(
    sqs: SQSClient,
    dlq_url: str,
    destination_url: str | None,
    *,
    dry_run: bool = False,
    max_per_second: int | None = None,
) -> RedriveResult:
    """SQS's own move task; a second call while one runs reports that task instead of starting another."""
    dlq_arn = queue_arn(sqs, dlq_url)
    result = RedriveResult(dlq_url, destination_url, "move-task", dry_run, waiting(sqs, dlq_url))
    tasks = sqs.list_message_move_tasks(SourceArn=dlq_arn, MaxResults=10).get("Results", [])
    running = next((t for t in tasks if t.get("Status") == "RUNNING"), None)
    if running is not None:
        result.task = dict(running)
        result.moved = int(running.get("ApproximateNumberOfMessagesMoved", 0))
        result.note = "a move task is already running on this DLQ: not starting another"
        return result
    if dry_run:
        result.note = f"dry run: {result.waiting} message(s) would move to {destination_url or 'their source queues'}"
        return result
    params: dict[str, Any] = {"SourceArn": dlq_arn}
    if destination_url is not None:
        params["DestinationArn"] = queue_arn(sqs, destination_url)
    if max_per_second is not None:
        params["MaxNumberOfMessagesPerSecond"] = max_per_second
    handle = sqs.start_message_move_task(**params)["TaskHandle"]
    tasks = sqs.list_message_move_tasks(SourceArn=dlq_arn, MaxResults=1).get("Results", [])
    result.task = {"TaskHandle": handle, **(dict(tasks[0]) if tasks else {})}
    result.moved = int(result.task.get("ApproximateNumberOfMessagesMoved", 0))
    result.note = (
        f"move task started for ~{result.waiting} message(s) to {destination_url or 'their source queues'}; "
        "run again to see its progress"
    )
    return result


def redrive(
    sqs: SQSClient,
    dlq: str,
    *,
    to: str | None = None,
    method: Method = "auto",
    local: bool = False,
    dry_run: bool = False,
    max_messages: int | None = None,
    max_per_second: int | None = None,
) -> RedriveResult:
    """Pick the method (``auto``: the move task on AWS, the copy on the local runtime) and run it."""
    dlq_url = queue_url(sqs, dlq)
    chosen = ("copy" if local else "move-task") if method == "auto" else method
    if chosen == "move-task":
        if max_messages is not None:
            raise RedriveError("--max applies to the copy method; a move task moves the whole DLQ")
        destination = queue_url(sqs, to) if to else None
        return redrive_by_move_task(sqs, dlq_url, destination, dry_run=dry_run, max_per_second=max_per_second)
    destination = queue_url(sqs, to) if to else source_queue(sqs, dlq_url)
    return redrive_by_copy(sqs, dlq_url, destination, dry_run=dry_run, max_messages=max_messages)
