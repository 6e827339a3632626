"""Every boto3 client a function creates, with one timeout and retry policy.

One policy so that the functions cannot drift apart (they had three configs). The budget per call is
bounded: 3 attempts (standard mode: exponential backoff with jitter, retrying throttling, 5xx and
connection errors) of at most 2 s to connect and 5 s to read; the functions' own retry of a failed
record is SQS's redelivery, not a longer loop here. Clients are created when a service is built, never
at import, so importing a handler never reaches AWS.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

MAX_ATTEMPTS: Final = 3
CONNECT_TIMEOUT_S: Final = 2
READ_TIMEOUT_S: Final = 5
BOTO_CONFIG: Final = Config(
    # total_max_attempts counts the first try; botocore's max_attempts counts retries only (3 gave 4 tries).
    retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},
    connect_timeout=CONNECT_TIMEOUT_S,
    read_timeout=READ_TIMEOUT_S,
    # botocore's client-side validation stays on although it costs ~0.2 ms of the classifier's ~7 ms warm CPU
    # per batch of 10 (about 3 %, make bench): a run with it off once counted 295 events in the windows for
    # 286 distinct ones; see docs/reliability.md ("Window counts under faults").
)


class AwsClients:
    """Clients from one session (the default chain unless a test passes its own), all with BOTO_CONFIG."""

    def __init__(self, session: boto3.Session | None = None) -> None:
        self.session = session or boto3.Session()
        self.config = BOTO_CONFIG

    def sqs(self) -> SQSClient:
        return self.session.client("sqs", config=self.config)

    def events(self) -> EventBridgeClient:
        return self.session.client("events", config=self.config)

    def dynamodb(self) -> DynamoDBClient:
        return self.session.client("dynamodb", config=self.config)

    def s3(self) -> S3Client:
        return self.session.client("s3", config=self.config)
