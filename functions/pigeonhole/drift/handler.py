"""Lambda entry point for the drift function, invoked once per window by a schedule.

The event's content is ignored: what is closed depends on the clock when the function runs (a late or
repeated invocation simply finds less, or nothing, to do). Only the manifest is read, no ONNX session.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config

from pigeonhole import metrics_catalog as mc
from pigeonhole.adapters.dynamodb import DynamoDBAdapter
from pigeonhole.config import MonitorSettings
from pigeonhole.drift.service import DriftConfig, DriftService
from pigeonhole.model.manifest import load_manifest

logger = Logger(service=mc.SERVICE_DRIFT)
tracer = Tracer(service=mc.SERVICE_DRIFT)

_BOTO_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=2, read_timeout=10)


class _Container:
    service: DriftService | None = None

    @classmethod
    def get(cls) -> DriftService:
        if cls.service is None:
            cls.service = build_service(MonitorSettings.from_env())
        return cls.service


def drift_config(settings: MonitorSettings) -> DriftConfig:
    return DriftConfig(
        window_seconds=settings.window_seconds,
        grace_seconds=settings.grace_seconds,
        reference_windows=settings.reference_windows,
        lookback_windows=settings.lookback_windows,
        window_ttl_days=settings.window_ttl_days,
        threshold_overrides=settings.threshold_overrides,
    )


def build_service(settings: MonitorSettings, session: boto3.Session | None = None) -> DriftService:
    manifest = load_manifest(settings.model_dir)
    logger.append_keys(model_name=manifest.name, model_version=manifest.version)
    client = (session or boto3.Session()).client("dynamodb", config=_BOTO_CONFIG)
    return DriftService(
        DynamoDBAdapter(client), manifest, settings.windows_table, drift_config(settings), logger=logger
    )


def reset_for_tests(service: DriftService | None = None) -> None:
    _Container.service = service


@tracer.capture_lambda_handler
@logger.inject_lambda_context(log_event=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return _Container.get().run(datetime.now(UTC)).summary()
