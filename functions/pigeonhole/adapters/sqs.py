"""Send messages to an SQS queue in batches, reporting failures per message."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

MAX_ENTRIES = 10  # SendMessageBatch accepts at most 10 messages a call


class QueueSender:
    def __init__(self, client: SQSClient, queue_url: str) -> None:
        self._client = client
        self._url = queue_url

    def send(self, items: Sequence[tuple[str, str]]) -> dict[str, str]:
        """Send each (key, body); return {key: error} for the messages that were not accepted."""
        failures: dict[str, str] = {}
        for start in range(0, len(items), MAX_ENTRIES):
            chunk = items[start : start + MAX_ENTRIES]
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
                failures[chunk[int(failed["Id"])][0]] = f"{failed['Code']}: {failed.get('Message', '')}"
            for i, (key, _) in enumerate(chunk):
                if str(i) not in accepted and key not in failures:
                    failures[key] = "SendMessageBatch returned no result"
        return failures
