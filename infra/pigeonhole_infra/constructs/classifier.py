"""The classifier: function, live alias with warm capacity, and the ingest queue's event source mapping.

Warm capacity is either provisioned concurrency on the alias with target tracking at 50 %
utilization, or SnapStart on published versions: Lambda does not allow both on one version, so
the config offers one switch. The event source mapping points at the alias, never at $LATEST,
so the canary and the warm capacity apply to every batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from pigeonhole import constants as c
from pigeonhole import metrics_catalog as mc
from pigeonhole.naming import ALIAS_NAME
from pigeonhole_infra.config import (
    CLASSIFIER_HANDLER,
    ENV_PREDICTIONS_TABLE,
    ENV_WINDOWS_TABLE,
    InfraConfig,
)
from pigeonhole_infra.constructs.function import PigeonholeFunction
from pigeonhole_infra.constructs.security import KMS_DYNAMODB, KMS_SQS_PRODUCER
from pigeonhole_infra.constructs.storage import QUARANTINE_OBJECTS


class Classifier(Construct):
    """Exposes `function`, `alias` and `role`."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: InfraConfig,
        code: lambda_.Code,
        layers: Sequence[lambda_.ILayerVersion],
        key: kms.IKey,
        ingest_queue: sqs.IQueue,
        review_queue: sqs.IQueue,
        quarantine_queue: sqs.IQueue,
        output_bus: events.IEventBus,
        windows_table: dynamodb.ITable,
        predictions_table: dynamodb.ITable,
        quarantine_bucket: s3.IBucket,
    ) -> None:
        super().__init__(scope, construct_id)
        environment = {
            c.ENV_REVIEW_QUEUE_URL: review_queue.queue_url,
            c.ENV_QUARANTINE_QUEUE_URL: quarantine_queue.queue_url,
            c.ENV_OUTPUT_BUS_NAME: output_bus.event_bus_name,
            c.ENV_ORT_THREADS: str(config.ort_threads),
            c.ENV_WINDOW_SECONDS: str(config.window_seconds),
            ENV_WINDOWS_TABLE: windows_table.table_name,
            ENV_PREDICTIONS_TABLE: predictions_table.table_name,
            c.ENV_QUARANTINE_BUCKET: quarantine_bucket.bucket_name,
            c.ENV_PER_LABEL_METRICS: "true" if config.per_label_metrics else "false",
        }
        if config.review_threshold is not None:
            environment[c.ENV_REVIEW_THRESHOLD] = str(config.review_threshold)
        built = PigeonholeFunction(
            self,
            "Classifier",
            config=config,
            function_name=config.names.classifier_function,
            handler=CLASSIFIER_HANDLER,
            service=mc.SERVICE_CLASSIFIER,
            description="Classifies SQS batches with the ONNX model and routes each result",
            code=code,
            layers=layers,
            memory_mb=config.memory_mb,
            timeout_s=config.timeout_s,
            environment=environment,
            snap_start=config.warm_mode == "snapstart",
            # >= the mapping's maximum concurrency and the provisioned maximum (InfraConfig checks it).
            reserved_concurrency=config.classifier_reserved,
        )
        self.function = built.function
        self.role = built.role

        # Least privilege, one resource per grant.
        # (CDK's grant_send_messages would add kms:ReEncrypt* and kms:GenerateDataKey*: too wide.)
        review_queue.grant(self.role, "sqs:SendMessage")
        quarantine_queue.grant(self.role, "sqs:SendMessage")
        output_bus.grant_put_events_to(self.role)
        # Window accounting: one PutItem per batch and window (plus a late pointer); UpdateItem for the
        # M#models registration.
        windows_table.grant(self.role, "dynamodb:PutItem", "dynamodb:UpdateItem")
        # Sampled prediction capture (BatchWriteItem puts), later joined with labels by event id.
        predictions_table.grant(self.role, "dynamodb:BatchWriteItem")
        # Full bodies of large quarantined events, keyed by sha256 (PutObject only, under its own prefix;
        # CDK's grant_put would add object tagging, legal hold and retention). SSE-KMS needs the same
        # kms:GenerateDataKey the SQS producer grant already gives.
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject"], resources=[quarantine_bucket.arn_for_objects(QUARANTINE_OBJECTS)]
            )
        )
        # kms:GenerateDataKey + kms:Decrypt: the SSE-KMS queues it sends to, PutEvents onto the output bus and
        # PutObject into the quarantine-bodies bucket, all encrypted with the same key.
        key.grant(self.role, *KMS_SQS_PRODUCER, *KMS_DYNAMODB)

        provisioned = config.warm_mode == "provisioned"
        self.alias = lambda_.Alias(
            self,
            "Live",
            alias_name=ALIAS_NAME,
            version=self.function.current_version,
            provisioned_concurrent_executions=config.provisioned_min if provisioned else None,
            description="What the ingest queue invokes; CodeDeploy shifts it between versions",
        )
        if provisioned:
            scaling = self.alias.add_auto_scaling(
                min_capacity=config.provisioned_min, max_capacity=config.provisioned_max
            )
            scaling.scale_on_utilization(utilization_target=config.provisioned_utilization)

        ingest_source = sources.SqsEventSource(
            ingest_queue,
            batch_size=config.batch_size,
            max_batching_window=cdk.Duration.seconds(config.batching_window_s) if config.batching_window_s else None,
            report_batch_item_failures=True,
            max_concurrency=config.max_concurrency,
            # Polled / invoked / failed / deleted event counts per mapping, for the dashboard.
            metrics_config=lambda_.MetricsConfig(metrics=[lambda_.MetricType.EVENT_COUNT]),
        )
        self.alias.add_event_source(ingest_source)
        self.mapping_id = ingest_source.event_source_mapping_id  # the mapping's UUID (a token)
