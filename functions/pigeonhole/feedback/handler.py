"""Lambda entry point for feedback (the feedback queue's event source mapping, partial batch responses).

Built on the first invocation, not at import: only the manifest is read (no ONNX session), and the
DynamoDB client is created then, so importing is cheap and tests can inject their own service.
The shared parts (lazy service, clients, model tagging, load-failure metric) are ``pigeonhole.entry``'s.
"""

from __future__ import annotations

from typing import Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.typing import LambdaContext

from pigeonhole import metrics_catalog as mc
from pigeonhole.adapters.dynamodb import DynamoDBAdapter
from pigeonhole.config import MonitorSettings
from pigeonhole.entry import AwsClients, Lazy, model_load, tag_model, trace_lambda_handler
from pigeonhole.exceptions import ConfigurationError
from pigeonhole.feedback.service import FeedbackService
from pigeonhole.model.manifest import load_manifest

logger = Logger(service=mc.SERVICE_FEEDBACK)


def build_service(settings: MonitorSettings, session: boto3.Session | None = None) -> FeedbackService:
    """Read the manifest (its version names the windows), then wire the DynamoDB adapter."""
    if not settings.predictions_table or not settings.feedback_table:
        raise ConfigurationError("the feedback function needs the predictions and feedback tables")
    with model_load(mc.FEEDBACK_MODEL_LOAD_FAILURES, logger, settings.model_dir):
        manifest = load_manifest(settings.model_dir)
    tag_model(manifest, logger)
    return FeedbackService(
        DynamoDBAdapter(AwsClients(session).dynamodb()),
        manifest,
        windows_table=settings.windows_table,
        predictions_table=settings.predictions_table,
        feedback_table=settings.feedback_table,
        window_ttl_days=settings.window_ttl_days,
        marker_ttl_days=settings.capture_ttl_days,
        shards=settings.window_shards,
        retry_unknown_seconds=settings.feedback_retry_seconds,
        capture=settings.capture,
        logger=logger,
    )


service: Lazy[FeedbackService] = Lazy(lambda: build_service(MonitorSettings.from_env()))


def reset_for_tests(built: FeedbackService | None = None) -> None:
    service.reset(built)


@trace_lambda_handler(mc.SERVICE_FEEDBACK)
@logger.inject_lambda_context(log_event=False)
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return service.get().handle(event, context)
