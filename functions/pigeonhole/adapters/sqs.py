"""Send messages to an SQS queue in batches, reporting failures per message.

Batches are cut by count (10 a call) and by bytes (256 KiB for the whole request, not per message),
so one large message never fails its neighbours; a message that alone exceeds the limit fails alone,
without a call.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

MAX_ENTRIES = 10  # SendMessageBatch accepts at most 10 messages a call
MAX_BATCH_BYTES = 256 * 1024  # ...and at most 256 KiB of message bodies in all


def _size(body: str) -> int:
    return len(body.encode("utf-8", errors="surrogatepass"))


def chunks(
    items: Sequence[tuple[str, str]], max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BATCH_BYTES
) -> Iterator[list[tuple[str, str]]]:
    """Consecutive runs of ``items`` within both limits (an item over ``max_bytes`` alone is its own run)."""
    chunk: list[tuple[str, str]] = []
    used = 0
    for key, body in items:
        size = _size(body)
        if chunk and (len(chunk) >= max_entries or used + size > max_bytes):
            yield chunk
            chunk, used = [], 0
        chunk.append((key, body))
        used += size
    if chunk:
        yield chunk


class QueueSender:
    def __init__(self, client: SQSClient, queue_url: str, max_message_bytes: int = MAX_BATCH_BYTES) -> None:
        self._client = client
        self._url = queue_url
        self._max_message_bytes = max_message_bytes

    def send(self, items: Sequence[tuple[str, str]]) -> dict[str, str]:
        """Send each (key, body); return {key: error} for the messages that were not accepted."""
        failures: dict[str, str] = {}
        sendable: list[tuple[str, str]] = []
        for key, body in items:
            size = _size(body)
            if size > self._max_message_bytes:
                failures[key] = f"message is {size} bytes; the queue accepts at most {self._max_message_bytes}"
            else:
                sendable.append((key, body))
        for chunk in chunks(sendable):
            entries: list[SendMessageBatchRequestEntryTypeDef] = [
                {"Id": str(i), "MessageBody": body} for i, (_, body) in enumerate(chunk)
            ]
            try:
                response = self._client.send_message_batch(QueueUrl=self._url, Entries=entries)
            except (ClientError, BotoCoreError) as exc:
                failures.update({key: f"SendMessageBatch failed: {exc}" for key, _ in chunk})
                continue
            accepted = {entry["Id"] for entry in response.get("Successful", [])}
            for failed in response.get("Failed", []):
                index = int(failed["Id"])
                if 0 <= index < len(chunk):
                    failures[chunk[index][0]] = f"{failed['Code']}: {failed.get('Message', '')}"
            for i, (key, _) in enumerate(chunk):
                if str(i) not in accepted and key not in failures:
                    failures[key] = "SendMessageBatch returned no result"
        return failures
