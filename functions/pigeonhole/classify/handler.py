"""Lambda entry point for the classifier: decorators, then one call into the service.

The service (model session, boto3 clients) is built on the first invocation, not at import, so
importing this module is cheap and tests can inject their own. It is then reused by the container.
"""

from __future__ import annotations

from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config

from pigeonhole import metrics_catalog as mc
from pigeonhole.adapters.dynamodb import DynamoDBAdapter
from pigeonhole.adapters.eventbridge import EventBusPublisher
from pigeonhole.adapters.sqs import QueueSender
from pigeonhole.classify.service import ClassifierService
from pigeonhole.config import Settings
from pigeonhole.constants import OUTPUT_DETAIL_TYPE, OUTPUT_SOURCE
from pigeonhole.drift.recorder import WindowRecorder
from pigeonhole.model.runtime import ModelRuntime

logger = Logger(service=mc.SERVICE_CLASSIFIER)
metrics = Metrics(namespace=mc.NAMESPACE, service=mc.SERVICE_CLASSIFIER)
tracer = Tracer(service=mc.SERVICE_CLASSIFIER)

_BOTO_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=2, read_timeout=5)


class _Container:
    """Holds the service built on first use; `reset` lets tests start a fresh 'cold' container."""

    service: ClassifierService | None = None

    @classmethod
    def get(cls) -> ClassifierService:
        if cls.service is None:
            cls.service = build_service(Settings.from_env())
        return cls.service

    @classmethod
    def reset(cls, service: ClassifierService | None = None) -> None:
        cls.service = service


def build_service(settings: Settings, session: boto3.Session | None = None) -> ClassifierService:
    """Load and verify the model, then wire the adapters. A model that fails its checks stops here."""
    try:
        runtime = ModelRuntime.load(settings.model_dir, threads=settings.ort_threads)
    except Exception:
        logger.exception("model failed to load", extra={"model_dir": str(settings.model_dir)})
        with single_metric(
            name=mc.MODEL_LOAD_FAILURES.name,
            unit=MetricUnit.Count,
            value=1,
            namespace=mc.NAMESPACE,
            default_dimensions={mc.DIM_SERVICE: mc.SERVICE_CLASSIFIER},
        ):
            pass
        raise
    manifest = runtime.manifest
    logger.append_keys(model_name=manifest.name, model_version=manifest.version, model_sha256=manifest.model.sha256)
    metrics.set_default_dimensions(**{mc.DIM_MODEL_VERSION: manifest.version})
    session = session or boto3.Session()
    sqs = session.client("sqs", config=_BOTO_CONFIG)
    events = session.client("events", config=_BOTO_CONFIG)
    recorder = None
    if settings.windows_table and settings.predictions_table:
        recorder = WindowRecorder(
            DynamoDBAdapter(session.client("dynamodb", config=_BOTO_CONFIG)),
            settings.windows_table,
            settings.predictions_table,
            window_seconds=settings.window_seconds,
            capture_rate=settings.capture_rate,
            capture_ttl_days=settings.capture_ttl_days,
            window_ttl_days=settings.window_ttl_days,
            shards=settings.window_shards,
            logger=logger,
        )
        recorder.layout(manifest)  # a model whose baseline cannot be monitored fails here, at cold start
    return ClassifierService(
        settings=settings,
        runtime=runtime,
        bus=EventBusPublisher(events, settings.output_bus_name, OUTPUT_SOURCE, OUTPUT_DETAIL_TYPE),
        review=QueueSender(sqs, settings.review_queue_url),
        quarantine=QueueSender(sqs, settings.quarantine_queue_url),
        logger=logger,
        metrics=metrics,
        observer=recorder,
    )


def reset_for_tests(service: ClassifierService | None = None) -> None:
    _Container.reset(service)


@metrics.log_metrics
@tracer.capture_lambda_handler
@logger.inject_lambda_context(log_event=False)
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return _Container.get().handle(event, context)
