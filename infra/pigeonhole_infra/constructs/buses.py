"""EventBridge: the input bus (events and labels in) and the output bus (EventClassified out).

EventBridge -> SQS, never EventBridge -> Lambda: the queue brings batching, partial batch
failures, redrive to a DLQ and back-pressure. Each target gets an explicit retry policy and its
own dead-letter queue for events EventBridge could not deliver.
"""

from __future__ import annotations

import aws_cdk as cdk
import jsii
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs
from aws_cdk.interfaces import aws_events as events_refs
from constructs import Construct

from pigeonhole_infra.config import StackNames
from pigeonhole_infra.constructs.queues import dead_letter_queue

LABEL_DETAIL_TYPE = "LabelFeedback"
TARGET_RETRY_ATTEMPTS = 8
TARGET_MAX_EVENT_AGE = cdk.Duration.hours(2)


@jsii.implements(events.IRuleTarget)
class EncryptedQueueTarget:
    """An SQS target that grants EventBridge exactly `sqs:SendMessage`, only for this rule.

    Why not `aws_events_targets.SqsQueue`: its binding grants EventBridge `kms:ReEncrypt*` and
    `kms:GenerateDataKey*` on the key and `sqs:GetQueue*` on the queue; SSE-KMS needs only
    kms:GenerateDataKey + kms:Decrypt, which the data key's policy grants (see DataKey).
    """

    def __init__(self, queue: sqs.IQueue, dead_letter_queue: sqs.IQueue) -> None:
        self.queue = queue
        self.dead_letter_queue = dead_letter_queue

    def bind(self, rule: events_refs.IRuleRef, id: str | None = None) -> events.RuleTargetConfig:
        for queue in (self.queue, self.dead_letter_queue):
            queue.add_to_resource_policy(
                iam.PolicyStatement(
                    sid=f"EventBridgeRule{cdk.Names.node_unique_id(rule.node)}"[:100],
                    principals=[iam.ServicePrincipal("events.amazonaws.com")],
                    actions=["sqs:SendMessage"],
                    resources=[queue.queue_arn],
                    conditions={"ArnEquals": {"aws:SourceArn": rule.rule_ref.rule_arn}},
                )
            )
        return events.RuleTargetConfig(
            arn=self.queue.queue_arn,
            dead_letter_config=events.CfnRule.DeadLetterConfigProperty(arn=self.dead_letter_queue.queue_arn),
            retry_policy=events.CfnRule.RetryPolicyProperty(
                maximum_retry_attempts=TARGET_RETRY_ATTEMPTS,
                maximum_event_age_in_seconds=int(TARGET_MAX_EVENT_AGE.to_seconds()),
            ),
        )


class EventBuses(Construct):
    """Input bus with its two rules (events -> ingest, labels -> feedback) and the output bus."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: StackNames,
        key: kms.IKey,
        ingest_queue: sqs.IQueue,
        feedback_queue: sqs.IQueue,
    ) -> None:
        super().__init__(scope, construct_id)
        self.input_bus = events.EventBus(self, "InputBus", event_bus_name=names.input_bus)
        self.output_bus = events.EventBus(self, "OutputBus", event_bus_name=names.output_bus)

        self.input_rule_dlq = dead_letter_queue(self, "InputRuleDlq", name=names.input_rule_dlq, key=key)
        self.input_rule = events.Rule(
            self,
            "InputToIngest",
            rule_name=names.input_rule,
            event_bus=self.input_bus,
            description="Every event except labels goes to the ingest queue",
            event_pattern=events.EventPattern(detail_type=events.Match.anything_but(LABEL_DETAIL_TYPE)),
            targets=[EncryptedQueueTarget(ingest_queue, dead_letter_queue=self.input_rule_dlq)],
        )

        self.label_rule_dlq = dead_letter_queue(self, "LabelRuleDlq", name=names.label_rule_dlq, key=key)
        self.label_rule = events.Rule(
            self,
            "LabelsToFeedback",
            rule_name=names.label_rule,
            event_bus=self.input_bus,
            description="Ground-truth labels go to the feedback queue",
            event_pattern=events.EventPattern(detail_type=[LABEL_DETAIL_TYPE]),
            targets=[EncryptedQueueTarget(feedback_queue, dead_letter_queue=self.label_rule_dlq)],
        )
