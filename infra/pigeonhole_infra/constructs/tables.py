"""DynamoDB: window counters, sampled predictions and joined feedback.

All three: on-demand (traffic is bursty and idle costs nothing), point-in-time recovery,
encrypted with the data key, and a TTL on `expires_at` so old windows and samples age out.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from constructs import Construct

from pigeonhole_infra.config import TTL_ATTRIBUTE, StackNames


def _table(
    scope: Construct,
    construct_id: str,
    *,
    name: str,
    key: kms.IKey,
    sort_key: bool,
    destroy_on_teardown: bool,
) -> dynamodb.Table:
    return dynamodb.Table(
        scope,
        construct_id,
        table_name=name,
        partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
        sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.STRING) if sort_key else None,
        billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
        encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
        encryption_key=key,
        point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
            point_in_time_recovery_enabled=True
        ),
        time_to_live_attribute=TTL_ATTRIBUTE,
        removal_policy=cdk.RemovalPolicy.DESTROY if destroy_on_teardown else cdk.RemovalPolicy.RETAIN,
    )


class Tables(Construct):
    """windows (pk + sk), predictions (pk) and feedback (pk)."""

    def __init__(
        self, scope: Construct, construct_id: str, *, names: StackNames, key: kms.IKey, destroy_on_teardown: bool
    ) -> None:
        super().__init__(scope, construct_id)
        self.windows = _table(
            self, "Windows", name=names.windows_table, key=key, sort_key=True, destroy_on_teardown=destroy_on_teardown
        )
        self.predictions = _table(
            self,
            "Predictions",
            name=names.predictions_table,
            key=key,
            sort_key=False,
            destroy_on_teardown=destroy_on_teardown,
        )
        self.feedback = _table(
            self,
            "Feedback",
            name=names.feedback_table,
            key=key,
            sort_key=False,
            destroy_on_teardown=destroy_on_teardown,
        )
