"""The customer-managed KMS key that encrypts every queue, table, topic and event bus.

Why a CMK rather than SQS-managed (SSE-SQS) encryption: the events carry customer free text, so we
want key-usage records in CloudTrail, a key policy that names exactly which services may use it,
and the ability to revoke access by disabling one key. cdk-nag (AwsSolutions-SQS2/SNS2) accepts
either; SNS topics that CloudWatch alarms publish to cannot use the AWS-managed `aws/sns` key at
all, so a CMK is needed there anyway. One key (rotated yearly) keeps the bill at $1/month.
"""

from __future__ import annotations

from typing import Final

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

# The key actions each use needs, and no more (CDK's generic grants add kms:ReEncrypt* and
# kms:GenerateDataKey*): an SSE-KMS queue producer needs a data key and to read it back; DynamoDB
# decrypts the cached table key on the caller's behalf.
KMS_SQS_PRODUCER: Final = ("kms:GenerateDataKey", "kms:Decrypt")
KMS_DYNAMODB: Final = ("kms:Decrypt", "kms:DescribeKey")


class DataKey(Construct):
    """A rotating CMK with the two service grants CDK's grant methods do not add on their own."""

    def __init__(self, scope: Construct, construct_id: str, *, alias: str, destroy_on_teardown: bool) -> None:
        super().__init__(scope, construct_id)
        self.key = kms.Key(
            self,
            "Key",
            alias=alias,
            description="Pigeonhole data at rest: queues, tables, topics, event buses",
            enable_key_rotation=True,
            removal_policy=cdk.RemovalPolicy.DESTROY if destroy_on_teardown else cdk.RemovalPolicy.RETAIN,
        )
        source_account = {"StringEquals": {"aws:SourceAccount": cdk.Aws.ACCOUNT_ID}}
        # EventBridge writes to the rules' SQS dead-letter queues, which CDK's target binding grants
        # on the queue policy only; SSE-KMS also needs these two key actions.
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="EventBridgeWritesEncryptedQueues",
                principals=[iam.ServicePrincipal("events.amazonaws.com")],
                actions=["kms:GenerateDataKey", "kms:Decrypt"],
                resources=["*"],  # in a key policy "*" means this key
                conditions=source_account,
            )
        )
        # The buses are encrypted with this key: EventBridge validates the key with DescribeKey, which
        # carries no encryption context or source ARN (AWS's documented key policy grants it unconditioned;
        # it reveals the key's metadata only). Using the key is granted per bus by EventBus(kms_key=...).
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="EventBridgeValidatesBusKey",
                principals=[iam.ServicePrincipal("events.amazonaws.com")],
                actions=["kms:DescribeKey"],
                resources=["*"],  # in a key policy "*" means this key
            )
        )
        # CloudWatch alarm actions publish to the encrypted SNS topics.
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsPublishToEncryptedTopics",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:GenerateDataKey*", "kms:Decrypt"],
                resources=["*"],  # in a key policy "*" means this key
                conditions=source_account,
            )
        )
