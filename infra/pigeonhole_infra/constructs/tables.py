"""DynamoDB: the tables of `pigeonhole.topology` (window counters, sampled predictions, joined feedback).

Each is built from its spec: keys, billing mode (on demand), TTL attribute, point-in-time recovery,
encryption with the data key and any global secondary index.
"""

from __future__ import annotations

from typing import Final

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from constructs import Construct

from pigeonhole.topology import KeySpec, TableSpec, Topology

_TYPES: Final = {
    "S": dynamodb.AttributeType.STRING,
    "N": dynamodb.AttributeType.NUMBER,
    "B": dynamodb.AttributeType.BINARY,
}


def _attribute(key: KeySpec) -> dynamodb.Attribute:
    return dynamodb.Attribute(name=key.name, type=_TYPES[key.type])


def _optional(key: KeySpec | None) -> dynamodb.Attribute | None:
    return None if key is None else _attribute(key)


def build_table(
    scope: Construct, construct_id: str, *, spec: TableSpec, key: kms.IKey, destroy_on_teardown: bool
) -> dynamodb.Table:
    table = dynamodb.Table(
        scope,
        construct_id,
        table_name=spec.name,
        partition_key=_attribute(spec.partition_key),
        sort_key=_optional(spec.sort_key),
        billing_mode=dynamodb.BillingMode[spec.billing_mode],
        encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED if spec.kms else dynamodb.TableEncryption.AWS_MANAGED,
        encryption_key=key if spec.kms else None,
        point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
            point_in_time_recovery_enabled=spec.pitr
        ),
        time_to_live_attribute=spec.ttl_attribute,
        removal_policy=cdk.RemovalPolicy.DESTROY if destroy_on_teardown else cdk.RemovalPolicy.RETAIN,
    )
    for index in spec.indexes:
        table.add_global_secondary_index(
            index_name=index.name,
            partition_key=_attribute(index.partition_key),
            sort_key=_optional(index.sort_key),
            projection_type=dynamodb.ProjectionType[index.projection],
        )
    return table


class Tables(Construct):
    """Every table of the topology, by physical name; `windows`, `predictions` and `feedback` for wiring."""

    def __init__(
        self, scope: Construct, construct_id: str, *, topology: Topology, key: kms.IKey, destroy_on_teardown: bool
    ) -> None:
        super().__init__(scope, construct_id)
        # Construct ids as first deployed ("Windows", ...): a new logical id would replace a retained table.
        self.tables = {
            spec.name: build_table(
                self,
                spec.id.removesuffix("_table").title(),
                spec=spec,
                key=key,
                destroy_on_teardown=destroy_on_teardown,
            )
            for spec in topology.tables
        }
        names = topology.names
        self.windows = self.tables[names.windows_table]
        self.predictions = self.tables[names.predictions_table]
        self.feedback = self.tables[names.feedback_table]
