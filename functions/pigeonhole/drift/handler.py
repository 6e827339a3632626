"""Lambda entry point for the drift function, invoked once per window by a schedule.

The event's content is ignored: what is closed depends on the clock when the function runs (a late or
repeated invocation simply finds less, or nothing, to do). Only the manifest is read, no ONNX session.
The shared parts (lazy service, clients, model tagging, load-failure metric) are ``pigeonhole.entry``'s.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from pigeonhole import metrics_catalog as mc
from pigeonhole.adapters.dynamodb import DynamoDBAdapter
from pigeonhole.config import MonitorSettings
from pigeonhole.drift.service import DriftConfig, DriftService
from pigeonhole.entry import AwsClients, Lazy, model_load, tag_model, trace_lambda_handler
from pigeonhole.model.manifest import load_manifest

logger = Logger(service=mc.SERVICE_DRIFT)


def drift_config(settings: MonitorSettings) -> DriftConfig:
    return DriftConfig(
        window_seconds=settings.window_seconds,
        grace_seconds=settings.grace_seconds,
        reference_windows=settings.reference_windows,
        lookback_windows=settings.lookback_windows,
        window_ttl_days=settings.window_ttl_days,
        threshold_overrides=settings.threshold_overrides,
        shards=settings.window_shards,
    )


def build_service(settings: MonitorSettings, session: boto3.Session | None = None) -> DriftService:
    with model_load(mc.DRIFT_MODEL_LOAD_FAILURES, logger, settings.model_dir):
        manifest = load_manifest(settings.model_dir)
    tag_model(manifest, logger)
    store = DynamoDBAdapter(AwsClients(session).dynamodb())
    return DriftService(store, manifest, settings.windows_table, drift_config(settings), logger=logger)


service: Lazy[DriftService] = Lazy(lambda: build_service(MonitorSettings.from_env()))


def reset_for_tests(built: DriftService | None = None) -> None:
    service.reset(built)


@trace_lambda_handler(mc.SERVICE_DRIFT)
@logger.inject_lambda_context(log_event=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return service.get().run(datetime.now(UTC)).summary()
