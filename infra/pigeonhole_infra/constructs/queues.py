"""Queues, built from `pigeonhole.topology` specs: each encrypted with the data key, TLS-only, and
either dead-lettered or a dead-letter queue itself (the spec says which and for how long)."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from pigeonhole.topology import DATA_KEY_REUSE_S, QueueSpec, Topology


def build_queue(
    scope: Construct,
    construct_id: str,
    *,
    spec: QueueSpec,
    key: kms.IKey,
    dead_letter_queue: sqs.IQueue | None = None,
) -> sqs.Queue:
    """One queue with exactly the spec's settings; `dead_letter_queue` is the built queue its redrive names."""
    if (spec.redrive is None) != (dead_letter_queue is None):
        raise ValueError(f"{spec.name}: pass the dead-letter queue exactly when the spec has a redrive")
    redrive = (
        sqs.DeadLetterQueue(queue=dead_letter_queue, max_receive_count=spec.redrive.max_receive_count)
        if spec.redrive is not None and dead_letter_queue is not None
        else None
    )
    return sqs.Queue(
        scope,
        construct_id,
        queue_name=spec.name,
        encryption=sqs.QueueEncryption.KMS if spec.kms else sqs.QueueEncryption.SQS_MANAGED,
        encryption_master_key=key if spec.kms else None,
        data_key_reuse=cdk.Duration.seconds(DATA_KEY_REUSE_S) if spec.kms else None,
        enforce_ssl=True,
        retention_period=cdk.Duration.seconds(spec.retention_s),
        visibility_timeout=cdk.Duration.seconds(spec.visibility_timeout_s),
        dead_letter_queue=redrive,
    )


def dead_letter_queue(scope: Construct, construct_id: str, *, spec: QueueSpec, key: kms.IKey) -> sqs.Queue:
    """A queue that only ever receives failures (a redrive, a rule target, a function's on-failure)."""
    if not spec.dead_letter:
        raise ValueError(f"{spec.name} is not a dead-letter queue in the topology")
    return build_queue(scope, construct_id, spec=spec, key=key)


class QueueWithDlq(Construct):
    """A work queue and the dead-letter queue its redrive policy names."""

    def __init__(
        self, scope: Construct, construct_id: str, *, spec: QueueSpec, topology: Topology, key: kms.IKey
    ) -> None:
        super().__init__(scope, construct_id)
        if spec.redrive is None:
            raise ValueError(f"{spec.name} has no redrive policy in the topology")
        self.spec = spec
        self.dlq = dead_letter_queue(self, "Dlq", spec=topology.queue(spec.redrive.dead_letter_queue), key=key)
        self.queue = build_queue(self, "Queue", spec=spec, key=key, dead_letter_queue=self.dlq)
