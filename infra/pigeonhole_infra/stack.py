"""The one Pigeonhole stack: queues, buses, tables, functions, warm alias, canary, alarms, dashboard.

Account-agnostic: no environment is pinned and nothing is looked up, so synthesis never calls AWS.
"""

from __future__ import annotations

import aws_cdk as cdk
from constructs import Construct

from pigeonhole_infra.config import InfraConfig
from pigeonhole_infra.constructs.alerting import Alerting
from pigeonhole_infra.constructs.buses import EventBuses
from pigeonhole_infra.constructs.canary import CanaryDeployment
from pigeonhole_infra.constructs.classifier import Classifier
from pigeonhole_infra.constructs.companions import DriftTracker, FeedbackProcessor
from pigeonhole_infra.constructs.dashboard import OperationsDashboard
from pigeonhole_infra.constructs.dashboard_rows import SourceMapping
from pigeonhole_infra.constructs.function import function_code
from pigeonhole_infra.constructs.golden_hook import GoldenHook
from pigeonhole_infra.constructs.layers import ModelLayer, RuntimeLayer
from pigeonhole_infra.constructs.queues import QueueWithDlq
from pigeonhole_infra.constructs.security import DataKey
from pigeonhole_infra.constructs.storage import build_bucket
from pigeonhole_infra.constructs.tables import Tables
from pigeonhole_infra.nag import acknowledge

# Construct ids of the work queues, as first deployed (a new logical id would replace a named queue).
WORK_QUEUE_IDS = {
    "ingest_queue": "Ingest",
    "review_queue": "Review",
    "quarantine_queue": "Quarantine",
    "feedback_queue": "FeedbackQueue",
}


class PigeonholeStack(cdk.Stack):
    """Composes the constructs; each construct owns its resources and their grants."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: InfraConfig,
        **kwargs: object,
    ) -> None:
        config.require_oncall()  # before anything is built: a stack that pages nobody must say so
        super().__init__(
            scope,
            construct_id,
            description="Pigeonhole: serverless event classifier (queues, ONNX classifier, drift, alarms)",
            **kwargs,  # type: ignore[arg-type]
        )
        self.config = config
        names = config.names
        for tag, value in config.tags.items():
            cdk.Tags.of(self).add(tag, value)

        self.data_key = DataKey(
            self, "DataKey", alias=names.data_key_alias, destroy_on_teardown=config.destroy_data_on_teardown
        ).key
        key = self.data_key
        # Every queue, bus, rule and table comes from the topology's specs (pigeonhole.topology).
        topology = config.topology
        self.work_queues = {
            spec.name: QueueWithDlq(self, WORK_QUEUE_IDS[spec.id], spec=spec, topology=topology, key=key)
            for spec in topology.queues
            if spec.redrive is not None
        }
        self.ingest = self.work_queues[names.ingest_queue]
        self.review = self.work_queues[names.review_queue]
        self.quarantine = self.work_queues[names.quarantine_queue]
        self.feedback = self.work_queues[names.feedback_queue]
        self.buses = EventBuses(
            self,
            "Buses",
            topology=topology,
            key=key,
            queues={name: built.queue for name, built in self.work_queues.items()},
        )
        self.tables = Tables(
            self, "Tables", topology=topology, key=key, destroy_on_teardown=config.destroy_data_on_teardown
        )
        quarantine_bodies = topology.bucket(names.quarantine_bucket)
        self.quarantine_bucket = build_bucket(
            self,
            "QuarantineBodies",
            spec=quarantine_bodies,
            key=key,
            destroy_on_teardown=config.destroy_data_on_teardown,
        )

        runtime_layer = RuntimeLayer(
            self, "RuntimeLayer", arch=config.architecture, python_version=config.python_version
        ).layer
        model = ModelLayer(self, "ModelLayer", model_dir=config.model_path)
        self.model_manifest = model.manifest
        layers = [runtime_layer, model.layer]
        code = function_code()

        self.classifier = Classifier(
            self,
            "Classifier",
            config=config,
            code=code,
            layers=layers,
            key=key,
            ingest_queue=self.ingest.queue,
            review_queue=self.review.queue,
            quarantine_queue=self.quarantine.queue,
            output_bus=self.buses.output_bus,
            windows_table=self.tables.windows,
            predictions_table=self.tables.predictions,
            quarantine_bucket=self.quarantine_bucket,
        )
        self.drift = DriftTracker(
            self,
            "Drift",
            config=config,
            code=code,
            layers=layers,
            key=key,
            windows_table=self.tables.windows,
        )
        self.feedback_processor = FeedbackProcessor(
            self,
            "Feedback",
            config=config,
            code=code,
            layers=layers,
            key=key,
            feedback_queue=self.feedback.queue,
            windows_table=self.tables.windows,
            predictions_table=self.tables.predictions,
            feedback_table=self.tables.feedback,
        )

        new_version = self.classifier.function.current_version  # what this deploy publishes
        self.alerting = Alerting(
            self,
            "Alerting",
            config=config,
            key=key,
            model_version=model.manifest.version,
            function_version=new_version.version,
        )
        self.golden_hook = GoldenHook(self, "GoldenHook", config=config, code=code, layers=layers, target=new_version)
        self.canary = CanaryDeployment(
            self,
            "Canary",
            function=self.classifier.function,
            alias=self.classifier.alias,
            rollback_alarms=self.alerting.rollback_alarms,
            percent=config.canary_percent,
            minutes=config.canary_minutes,
            hook=self.golden_hook,
        )
        OperationsDashboard(
            self,
            "Dashboard",
            config=config,
            bindings=self.alerting.bindings,
            alarms=[*self.alerting.alarms.values(), *self.alerting.composites.values()],
            mappings=[
                SourceMapping("Ingest", self.classifier.mapping_id, config.max_concurrency),
                SourceMapping("Feedback", self.feedback_processor.mapping_id, config.feedback_max_concurrency),
            ],
        )

        cdk.CfnOutput(self, "InputBusName", value=self.buses.input_bus.event_bus_name)
        cdk.CfnOutput(self, "OutputBusName", value=self.buses.output_bus.event_bus_name)
        cdk.CfnOutput(self, "IngestQueueUrl", value=self.ingest.queue.queue_url)
        cdk.CfnOutput(self, "ReviewQueueUrl", value=self.review.queue.queue_url)
        cdk.CfnOutput(self, "QuarantineQueueUrl", value=self.quarantine.queue.queue_url)
        cdk.CfnOutput(self, "QuarantineBucketName", value=self.quarantine_bucket.bucket_name)
        cdk.CfnOutput(self, "OnCallTopicArn", value=self.alerting.oncall_topic.topic_arn)
        cdk.CfnOutput(self, "ModelVersion", value=model.manifest.version)

        acknowledge(self)
