"""The drift function (once per window, on a schedule) and the feedback function (labels from SQS)."""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
import jsii
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from pigeonhole import constants as c
from pigeonhole import metrics_catalog as mc
from pigeonhole.config import drift_grace_seconds
from pigeonhole_infra.config import (
    DRIFT_HANDLER,
    ENV_FEEDBACK_TABLE,
    ENV_PREDICTIONS_TABLE,
    ENV_WINDOWS_TABLE,
    FEEDBACK_HANDLER,
    InfraConfig,
)
from pigeonhole_infra.constructs.function import PigeonholeFunction
from pigeonhole_infra.constructs.queues import dead_letter_queue
from pigeonhole_infra.constructs.security import KMS_DYNAMODB, KMS_SQS_PRODUCER


@jsii.implements(lambda_.IDestination)
class QueueDestination:
    """An on-failure SQS destination granting only `sqs:SendMessage` (the key grant is the caller's).

    Why not `aws_lambda_destinations.SqsDestination`: it grants kms:ReEncrypt* and kms:GenerateDataKey*.
    """

    def __init__(self, queue: sqs.IQueue) -> None:
        self.queue = queue

    def bind(
        self,
        scope: Construct,
        fn: lambda_.IFunction,
        *,
        type: lambda_.DestinationType | None = None,
    ) -> lambda_.DestinationConfig:
        self.queue.grant(fn, "sqs:SendMessage")
        return lambda_.DestinationConfig(destination=self.queue.queue_arn)


class DriftTracker(Construct):
    """Closes each window: reads its counters, writes the drift/accuracy report, emits the drift metrics.

    The schedule's target and the function's own asynchronous failures share one DLQ: either way
    a window went unreported and someone should look.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: InfraConfig,
        code: lambda_.Code,
        layers: Sequence[lambda_.ILayerVersion],
        key: kms.IKey,
        windows_table: dynamodb.ITable,
    ) -> None:
        super().__init__(scope, construct_id)
        names = config.names
        built = PigeonholeFunction(
            self,
            "Drift",
            config=config,
            function_name=names.drift_function,
            handler=DRIFT_HANDLER,
            service=mc.SERVICE_DRIFT,
            description="Once per window: drift and expected-accuracy report from the window counters",
            code=code,
            layers=layers,
            memory_mb=config.drift_memory_mb,
            timeout_s=config.drift_timeout_s,
            reserved_concurrency=config.drift_reserved_concurrency,  # a cap: it cannot starve the classifier
            environment={
                ENV_WINDOWS_TABLE: windows_table.table_name,
                c.ENV_WINDOW_SECONDS: str(config.window_seconds),
                c.ENV_DRIFT_GRACE_SECONDS: str(
                    drift_grace_seconds(config.ingest_visibility_timeout_s, config.batching_window_s, config.timeout_s)
                ),
            },
        )
        self.function = built.function
        # Queries the windows' counters (events and the feedback function's confusion counts), writes
        # each report once (conditional put) and refreshes its label metrics (conditional update).
        windows_table.grant(built.role, "dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem")
        key.grant(built.role, *KMS_DYNAMODB, *KMS_SQS_PRODUCER)  # tables; the DLQ as failure destination

        # The schedule's spec (pigeonhole.topology) sets its rate, retry policy and DLQ; the function's
        # own asynchronous retries follow the same policy.
        spec = config.topology.rule(names.drift_schedule)
        if spec.schedule is None or spec.target.name != names.drift_function:
            raise ValueError(f"{spec.name}: expected a schedule that targets {names.drift_function}")
        self.dlq = dead_letter_queue(self, "Dlq", spec=config.topology.queue(spec.target.dead_letter_queue), key=key)
        retry = spec.target.retry
        max_event_age = cdk.Duration.seconds(retry.maximum_event_age_s)
        self.function.configure_async_invoke(
            retry_attempts=retry.maximum_retry_attempts,
            max_event_age=max_event_age,
            on_failure=QueueDestination(self.dlq),
        )
        self.schedule = events.Rule(
            self,
            "Schedule",
            rule_name=spec.name,
            description=spec.description,
            schedule=events.Schedule.expression(spec.schedule),
            targets=[
                targets.LambdaFunction(
                    self.function,
                    dead_letter_queue=self.dlq,
                    retry_attempts=retry.maximum_retry_attempts,
                    max_event_age=max_event_age,
                )
            ],
        )


class FeedbackProcessor(Construct):
    """Joins labels to captured predictions by event id and adds confusion counts per window."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: InfraConfig,
        code: lambda_.Code,
        layers: Sequence[lambda_.ILayerVersion],
        key: kms.IKey,
        feedback_queue: sqs.IQueue,
        windows_table: dynamodb.ITable,
        predictions_table: dynamodb.ITable,
        feedback_table: dynamodb.ITable,
    ) -> None:
        super().__init__(scope, construct_id)
        built = PigeonholeFunction(
            self,
            "Feedback",
            config=config,
            function_name=config.names.feedback_function,
            handler=FEEDBACK_HANDLER,
            service=mc.SERVICE_FEEDBACK,
            description="Joins ground-truth labels to predictions; counts (mis)classifications per window",
            code=code,
            layers=layers,
            memory_mb=config.feedback_memory_mb,
            timeout_s=config.feedback_timeout_s,
            reserved_concurrency=config.feedback_reserved,  # = its mapping's maximum concurrency
            environment={
                ENV_WINDOWS_TABLE: windows_table.table_name,
                ENV_PREDICTIONS_TABLE: predictions_table.table_name,
                ENV_FEEDBACK_TABLE: feedback_table.table_name,
                c.ENV_WINDOW_SECONDS: str(config.window_seconds),
            },
        )
        self.function = built.function
        # Looks up the captured predictions the labels refer to (one batch get per batch).
        predictions_table.grant(built.role, "dynamodb:BatchGetItem")
        # Each label's marker is put once (conditional, in the same transaction as the counters) ...
        feedback_table.grant(built.role, "dynamodb:PutItem")
        # ... that ADD the confusion counts to the label's window (and the unmatched-label counters);
        # reads which model versions' captures may still exist (M#models) to join across a deploy.
        windows_table.grant(built.role, "dynamodb:UpdateItem", "dynamodb:Query")
        key.grant(built.role, *KMS_DYNAMODB)  # the queue's kms:Decrypt comes with the event source grant
        feedback_source = sources.SqsEventSource(
            feedback_queue,
            batch_size=config.feedback_batch_size,
            max_batching_window=cdk.Duration.seconds(config.feedback_batching_window_s)
            if config.feedback_batching_window_s
            else None,
            report_batch_item_failures=True,
            max_concurrency=config.feedback_max_concurrency,
            metrics_config=lambda_.MetricsConfig(metrics=[lambda_.MetricType.EVENT_COUNT]),  # for the dashboard
        )
        self.function.add_event_source(feedback_source)
        self.mapping_id = feedback_source.event_source_mapping_id
