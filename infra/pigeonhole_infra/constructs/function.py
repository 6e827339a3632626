"""One Lambda function the Pigeonhole way: own role, own log group, layers, Powertools env, tracing.

Why its own role instead of CDK's default: the default attaches the AWS-managed
AWSLambdaBasicExecutionRole (logs on every log group in the account); ours may write only to
the function's own log group, and every other permission comes from a CDK grant on one resource.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from pigeonhole import constants as c
from pigeonhole import metrics_catalog as mc
from pigeonhole_infra.config import ENV_POWERTOOLS_LOG_LEVEL, ENV_POWERTOOLS_TRACE_DISABLED, FUNCTIONS_DIR, InfraConfig
from pigeonhole_infra.constructs.layers import lambda_architecture, lambda_runtime

# The Lambda code asset is the `pigeonhole` package only: training and local tooling never ship.
CODE_EXCLUDE: Final = (
    "*",
    "!pigeonhole",
    "!pigeonhole/**",
    "**/__pycache__",
    "**/*.pyc",
    "**/.mypy_cache",
    "**/.pytest_cache",
    "**/.ruff_cache",
)


def function_code(functions_dir: Path = FUNCTIONS_DIR) -> lambda_.Code:
    """The shared code asset of all three functions."""
    return lambda_.Code.from_asset(str(functions_dir), exclude=list(CODE_EXCLUDE))


def powertools_environment(service: str, log_level: str, window_shards: int = 1) -> dict[str, str]:
    """What every function's Powertools and onnxruntime read; `service` must match the metric catalog.
    Also the window layout every function must agree on (the shard count names the batch partitions)."""
    return {
        c.ENV_WINDOW_SHARDS: str(window_shards),
        c.ENV_SERVICE_NAME: service,
        c.ENV_METRICS_NAMESPACE: mc.NAMESPACE,
        ENV_POWERTOOLS_LOG_LEVEL: log_level,
        c.ENV_ORT_TELEMETRY: "1",
        c.ENV_MODEL_DIR: c.DEFAULT_MODEL_DIR,
    }


def capture_environment(config: InfraConfig) -> dict[str, str]:
    """The capture policy, on every function alike (the classifier applies it; the others read the same)."""
    return dict(config.capture.to_env(c.ENV_CAPTURE_REVIEW_RATE, c.ENV_CAPTURE_AUTO_RATE))


class PigeonholeFunction(Construct):
    """A python function with the runtime and model layers; exposes `function`, `role`, `log_group`."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: InfraConfig,
        function_name: str,
        handler: str,
        service: str,
        description: str,
        code: lambda_.Code,
        layers: Sequence[lambda_.ILayerVersion],
        memory_mb: int,
        timeout_s: int,
        environment: Mapping[str, str],
        snap_start: bool = False,
        reserved_concurrency: int | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        removal = cdk.RemovalPolicy.DESTROY if config.destroy_data_on_teardown else cdk.RemovalPolicy.RETAIN
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            log_group_name=f"/aws/lambda/{function_name}",
            retention=_retention(config.log_retention_days),
            removal_policy=removal,
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"{function_name}: its own log group plus per-resource grants",
        )
        self.log_group.grant_write(self.role)
        self.function = lambda_.Function(
            self,
            "Function",
            function_name=function_name,
            description=description,
            runtime=lambda_runtime(config.python_version),
            architecture=lambda_architecture(config.architecture),
            handler=handler,
            code=code,
            layers=list(layers),
            memory_size=memory_mb,
            timeout=cdk.Duration.seconds(timeout_s),
            role=self.role,
            log_group=self.log_group,
            # Active adds xray:PutTraceSegments/PutTelemetryRecords on Resource '*' to the role: X-Ray offers no
            # resource-level permissions for them (acknowledged in nag.py). Metrics need no IAM: they are EMF logs.
            # Off: no tracing and no permission, and the handlers never import the X-Ray SDK (entry/tracing.py).
            tracing=lambda_.Tracing.ACTIVE if config.tracing else lambda_.Tracing.DISABLED,
            environment={
                **powertools_environment(service, config.log_level, config.window_shards),
                **capture_environment(config),
                **({} if config.tracing else {ENV_POWERTOOLS_TRACE_DISABLED: "true"}),
                **environment,
            },
            snap_start=lambda_.SnapStartConf.ON_PUBLISHED_VERSIONS if snap_start else None,
            reserved_concurrent_executions=reserved_concurrency,
        )


def _retention(days: int) -> logs.RetentionDays:
    """RetentionDays is an enum keyed by name; map a day count (validated in config) to it."""
    retention: logs.RetentionDays = getattr(logs.RetentionDays, _DAYS_TO_RETENTION[days])
    return retention


_DAYS_TO_RETENTION: Final = {
    1: "ONE_DAY",
    3: "THREE_DAYS",
    5: "FIVE_DAYS",
    7: "ONE_WEEK",
    14: "TWO_WEEKS",
    30: "ONE_MONTH",
    60: "TWO_MONTHS",
    90: "THREE_MONTHS",
    120: "FOUR_MONTHS",
    150: "FIVE_MONTHS",
    180: "SIX_MONTHS",
    365: "ONE_YEAR",
    400: "THIRTEEN_MONTHS",
    545: "EIGHTEEN_MONTHS",
    731: "TWO_YEARS",
    1096: "THREE_YEARS",
    1827: "FIVE_YEARS",
    2192: "SIX_YEARS",
    2557: "SEVEN_YEARS",
    2922: "EIGHT_YEARS",
    3288: "NINE_YEARS",
    3653: "TEN_YEARS",
}
