"""Queues: every one encrypted with the data key, TLS-only, and either a DLQ or backed by one."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from pigeonhole.naming import MAX_RECEIVE_COUNT

DLQ_RETENTION = cdk.Duration.days(14)  # SQS's maximum: time to look, fix and redrive
SOURCE_RETENTION = cdk.Duration.days(4)  # shorter than the DLQ's, so a redriven message never expires first
# SQS reuses a KMS data key for this long: fewer KMS requests (cost) for a bounded key-reuse window.
DATA_KEY_REUSE = cdk.Duration.hours(1)


def dead_letter_queue(scope: Construct, construct_id: str, *, name: str, key: kms.IKey) -> sqs.Queue:
    """A queue that only ever receives failures: 14 days to inspect and redrive."""
    return sqs.Queue(
        scope,
        construct_id,
        queue_name=name,
        encryption=sqs.QueueEncryption.KMS,
        encryption_master_key=key,
        data_key_reuse=DATA_KEY_REUSE,
        enforce_ssl=True,
        retention_period=DLQ_RETENTION,
    )


class QueueWithDlq(Construct):
    """A work queue and its dead-letter queue (after MAX_RECEIVE_COUNT receives)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        dlq_name: str,
        key: kms.IKey,
        visibility_timeout_s: int,
        max_receive_count: int = MAX_RECEIVE_COUNT,
    ) -> None:
        super().__init__(scope, construct_id)
        self.dlq = dead_letter_queue(self, "Dlq", name=dlq_name, key=key)
        self.queue = sqs.Queue(
            self,
            "Queue",
            queue_name=name,
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=key,
            data_key_reuse=DATA_KEY_REUSE,
            enforce_ssl=True,
            retention_period=SOURCE_RETENTION,
            visibility_timeout=cdk.Duration.seconds(visibility_timeout_s),
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.dlq, max_receive_count=max_receive_count),
        )
