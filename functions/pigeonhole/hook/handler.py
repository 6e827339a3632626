"""Lambda entry point of the pre-traffic hook (CodeDeploy BeforeAllowTraffic): one call into the service."""

from __future__ import annotations

from typing import Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config

from pigeonhole.config import HookSettings
from pigeonhole.entry import BOTO_CONFIG, Lazy
from pigeonhole.hook.service import GoldenHook, VersionProbe
from pigeonhole.model.golden import load_golden
from pigeonhole.model.manifest import load_manifest

logger = Logger(service="golden-hook")


def build_hook(settings: HookSettings, session: boto3.Session | None = None) -> GoldenHook:
    session = session or boto3.Session()
    manifest = load_manifest(settings.model_dir)
    # The probe waits for a cold start and a model load of the new version: a longer read timeout.
    invoke_config = BOTO_CONFIG.merge(Config(read_timeout=60, retries={"total_max_attempts": 1}))
    probe = VersionProbe(
        client=session.client("lambda", config=invoke_config),
        version_arn=settings.target_version_arn,
        expected_sha256=manifest.model.sha256,
    )
    return GoldenHook(
        codedeploy=session.client("codedeploy", config=BOTO_CONFIG),
        golden=lambda: load_golden(settings.model_dir, manifest),
        classify=probe,
        min_accuracy_floor=settings.min_golden_accuracy,
        logger=logger,
    )


hook: Lazy[GoldenHook] = Lazy(lambda: build_hook(HookSettings.from_env()))


@logger.inject_lambda_context(log_event=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, str]:
    return {"status": hook.get().run(event)}
