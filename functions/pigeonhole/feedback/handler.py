"""Lambda entry point for feedback (the feedback queue's event source mapping, partial batch responses).

Built on the first invocation, not at import: only the manifest is read (no ONNX session), and the
DynamoDB client is created then, so importing is cheap and tests can inject their own service.
"""

from __future__ import annotations

from typing import Any

import boto3
from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config

from pigeonhole import metrics_catalog as mc
from pigeonhole.adapters.dynamodb import DynamoDBAdapter
from pigeonhole.config import MonitorSettings
from pigeonhole.exceptions import ConfigurationError
from pigeonhole.feedback.service import FeedbackService
from pigeonhole.model.manifest import load_manifest

logger = Logger(service=mc.SERVICE_FEEDBACK)
tracer = Tracer(service=mc.SERVICE_FEEDBACK)

_BOTO_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=2, read_timeout=5)


class _Container:
    service: FeedbackService | None = None

    @classmethod
    def get(cls) -> FeedbackService:
        if cls.service is None:
            cls.service = build_service(MonitorSettings.from_env())
        return cls.service


def build_service(settings: MonitorSettings, session: boto3.Session | None = None) -> FeedbackService:
    """Read the manifest (its version names the windows), then wire the DynamoDB adapter."""
    if not settings.predictions_table or not settings.feedback_table:
        raise ConfigurationError("the feedback function needs the predictions and feedback tables")
    manifest = load_manifest(settings.model_dir)
    logger.append_keys(model_name=manifest.name, model_version=manifest.version)
    client = (session or boto3.Session()).client("dynamodb", config=_BOTO_CONFIG)
    return FeedbackService(
        DynamoDBAdapter(client),
        manifest,
        windows_table=settings.windows_table,
        predictions_table=settings.predictions_table,
        feedback_table=settings.feedback_table,
        window_ttl_days=settings.window_ttl_days,
        marker_ttl_days=settings.capture_ttl_days,
        shards=settings.window_shards,
        logger=logger,
    )


def reset_for_tests(service: FeedbackService | None = None) -> None:
    _Container.service = service


@tracer.capture_lambda_handler
@logger.inject_lambda_context(log_event=False)
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return _Container.get().handle(event, context)
