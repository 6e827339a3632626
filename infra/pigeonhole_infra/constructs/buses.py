"""EventBridge: the buses and the queue-targeted rules of `pigeonhole.topology`, built from their specs.

EventBridge -> SQS, never EventBridge -> Lambda: the queue brings batching, partial batch
failures, redrive to a DLQ and back-pressure. Each target gets an explicit retry policy and its
own dead-letter queue for events EventBridge could not deliver.
"""

from __future__ import annotations

from collections.abc import Mapping

import aws_cdk as cdk
import jsii
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs
from aws_cdk.interfaces import aws_events as events_refs
from constructs import Construct

from pigeonhole.topology import RetryPolicy, RuleSpec, Topology
from pigeonhole_infra.constructs.queues import dead_letter_queue

# Construct ids of the rules, as first deployed (a new logical id would replace a named rule).
RULE_IDS = {"input_rule": "InputToIngest", "label_rule": "LabelsToFeedback"}


@jsii.implements(events.IRuleTarget)
class EncryptedQueueTarget:
    """An SQS target that grants EventBridge exactly `sqs:SendMessage`, only for this rule.

    Why not `aws_events_targets.SqsQueue`: its binding grants EventBridge `kms:ReEncrypt*` and
    `kms:GenerateDataKey*` on the key and `sqs:GetQueue*` on the queue; SSE-KMS needs only
    kms:GenerateDataKey + kms:Decrypt, which the data key's policy grants (see DataKey).
    """

    def __init__(self, queue: sqs.IQueue, dead_letter_queue: sqs.IQueue, retry: RetryPolicy) -> None:
        self.queue = queue
        self.dead_letter_queue = dead_letter_queue
        self.retry = retry

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
                maximum_retry_attempts=self.retry.maximum_retry_attempts,
                maximum_event_age_in_seconds=self.retry.maximum_event_age_s,
            ),
        )


def _construct_id(spec_id: str) -> str:
    """`input_bus` -> `InputBus`: the ids the first deployments used for buses and rule DLQs."""
    return "".join(part.title() for part in spec_id.split("_"))


class EventBuses(Construct):
    """Every bus of the topology and every rule that targets a queue (the drift schedule is the tracker's).

    `queues` maps a queue's physical name to the built queue each rule's target names.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        topology: Topology,
        key: kms.IKey,
        queues: Mapping[str, sqs.IQueue],
    ) -> None:
        super().__init__(scope, construct_id)
        # Encrypted with the stack's data key (the spec says so): CDK adds a key-policy statement per bus
        # letting EventBridge use the key (kms:DescribeKey, GenerateDataKey, Decrypt) on the conditions
        # aws:SourceAccount, aws:SourceArn = the bus and the bus's encryption context; DataKey adds the
        # unconditioned kms:DescribeKey EventBridge's documentation asks for to validate the key.
        self.buses = {
            spec.name: events.EventBus(
                self, _construct_id(spec.id), event_bus_name=spec.name, kms_key=key if spec.kms else None
            )
            for spec in topology.buses
        }
        names = topology.names
        self.input_bus = self.buses[names.input_bus]
        self.output_bus = self.buses[names.output_bus]
        self.rules: dict[str, events.Rule] = {}
        self.rule_dlqs: dict[str, sqs.Queue] = {}
        for spec in topology.rules:
            if spec.target.kind == "queue":
                self._queue_rule(spec, topology, key, queues)

    def _queue_rule(self, spec: RuleSpec, topology: Topology, key: kms.IKey, queues: Mapping[str, sqs.IQueue]) -> None:
        if spec.bus is None or spec.pattern is None:
            raise ValueError(f"{spec.name}: a queue-targeted rule needs a bus and an event pattern")
        dlq_spec = topology.queue(spec.target.dead_letter_queue)
        dlq = dead_letter_queue(self, _construct_id(dlq_spec.id), spec=dlq_spec, key=key)
        rule = events.Rule(
            self,
            RULE_IDS[spec.id],
            rule_name=spec.name,
            event_bus=self.buses[spec.bus],
            description=spec.description,
            # A placeholder the override below replaces: the spec's pattern is plain EventBridge JSON.
            event_pattern=events.EventPattern(detail_type=["placeholder"]),
            targets=[EncryptedQueueTarget(queues[spec.target.name], dead_letter_queue=dlq, retry=spec.target.retry)],
        )
        cfn_rule = rule.node.default_child
        assert isinstance(cfn_rule, events.CfnRule)
        cfn_rule.add_property_override("EventPattern", dict(spec.pattern))
        self.rules[spec.name] = rule
        self.rule_dlqs[spec.name] = dlq
