"""Lambda entry point for the classifier: decorators, then one call into the service.

The service (model session, boto3 clients) is built on the first invocation, not at import, so
importing this module is cheap and tests can inject their own. It is then reused by the container.
The one exception is an environment Lambda initialises before traffic (provisioned concurrency,
SnapStart): there the model is verified and loaded during init, so no request pays for it.
The shared parts (lazy service, clients, model tagging, load-failure metric) are ``pigeonhole.entry``'s.
"""

from __future__ import annotations

from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.typing import LambdaContext

from pigeonhole import metrics_catalog as mc
from pigeonhole.adapters.dynamodb import DynamoDBAdapter
from pigeonhole.adapters.eventbridge import EventBusPublisher
from pigeonhole.adapters.s3 import BodyArchive
from pigeonhole.adapters.sqs import QueueSender
from pigeonhole.classify.probe import answer_probe, is_probe
from pigeonhole.classify.service import ClassifierService
from pigeonhole.config import Settings
from pigeonhole.constants import OUTPUT_DETAIL_TYPE, OUTPUT_SOURCE
from pigeonhole.drift.recorder import WindowRecorder
from pigeonhole.entry import AwsClients, Lazy, model_load, tag_model, trace_lambda_handler, warm_during_init
from pigeonhole.model.runtime import ModelRuntime

logger = Logger(service=mc.SERVICE_CLASSIFIER)
metrics = Metrics(namespace=mc.NAMESPACE, service=mc.SERVICE_CLASSIFIER)


def build_service(settings: Settings, session: boto3.Session | None = None) -> ClassifierService:
    """Load and verify the model, then wire the adapters. A model that fails its checks stops here."""
    with model_load(mc.MODEL_LOAD_FAILURES, logger, settings.model_dir, by_version=mc.MODEL_LOAD_FAILURES_BY_VERSION):
        runtime = ModelRuntime.load(settings.model_dir, threads=settings.ort_threads)
    manifest = runtime.manifest
    tag_model(manifest, logger, metrics)
    aws = AwsClients(session)
    sqs = aws.sqs()
    recorder = None
    if settings.windows_table and settings.predictions_table:
        recorder = WindowRecorder(
            DynamoDBAdapter(aws.dynamodb()),
            settings.windows_table,
            settings.predictions_table,
            window_seconds=settings.window_seconds,
            capture=settings.capture,
            capture_ttl_days=settings.capture_ttl_days,
            window_ttl_days=settings.window_ttl_days,
            shards=settings.window_shards,
            register_model=True,  # feedback joins labels to this version's predictions after a deploy
            logger=logger,
        )
        recorder.layout(manifest)  # a model whose baseline cannot be monitored fails here, at cold start
    return ClassifierService(
        settings=settings,
        runtime=runtime,
        bus=EventBusPublisher(aws.events(), settings.output_bus_name, OUTPUT_SOURCE, OUTPUT_DETAIL_TYPE),
        review=QueueSender(sqs, settings.review_queue_url),
        quarantine=QueueSender(sqs, settings.quarantine_queue_url),
        logger=logger,
        metrics=metrics,
        observer=recorder,
        archive=(BodyArchive(aws.s3(), settings.quarantine_bucket) if settings.quarantine_bucket else None),
    )


service: Lazy[ClassifierService] = Lazy(lambda: build_service(Settings.from_env()))
warm_during_init(service)


def reset_for_tests(built: ClassifierService | None = None) -> None:
    service.reset(built)


@metrics.log_metrics
@trace_lambda_handler(mc.SERVICE_CLASSIFIER)
@logger.inject_lambda_context(log_event=False)
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse | dict[str, Any]:
    if is_probe(event):  # the pre-traffic hook's golden probe: labels only, no side effect
        return answer_probe(service.get().runtime, event)
    return service.get().handle(event, context)
