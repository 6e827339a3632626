"""Resource names shared by the CDK stack and the local runtime, so both describe the same system."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ResourceNames:
    """Physical names derived from one prefix (one deployment = one prefix)."""

    prefix: str = "pigeonhole"

    @property
    def ingest_queue(self) -> str:
        return f"{self.prefix}-ingest"

    @property
    def ingest_dlq(self) -> str:
        return f"{self.prefix}-ingest-dlq"

    @property
    def review_queue(self) -> str:
        return f"{self.prefix}-review"

    @property
    def quarantine_queue(self) -> str:
        return f"{self.prefix}-quarantine"

    @property
    def feedback_queue(self) -> str:
        return f"{self.prefix}-feedback"

    @property
    def input_bus(self) -> str:
        return f"{self.prefix}-input"

    @property
    def output_bus(self) -> str:
        return f"{self.prefix}-output"

    @property
    def input_rule(self) -> str:
        return f"{self.prefix}-input-to-ingest"

    @property
    def oncall_topic(self) -> str:
        return f"{self.prefix}-oncall"

    @property
    def ticket_topic(self) -> str:
        return f"{self.prefix}-tickets"


# The ingest queue's redrive policy: after this many receives a message goes to the DLQ.
MAX_RECEIVE_COUNT = 5
# Lambda's SQS event source mapping never hands more than this many records to one invocation here.
MAX_BATCH_SIZE = 10
