"""The pre-traffic hook: a small function that replays the package's golden set through the NEW version.

CodeDeploy invokes it (BeforeAllowTraffic) after publishing the version and before shifting any
traffic; it reports Succeeded or Failed with PutLifecycleEventHookExecutionStatus. Least privilege:
it may invoke only the version this deploy published (its qualified ARN, bound at synth) and report
only on this application's deployment group. It reads the golden set from the same model layer.
"""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_codedeploy as codedeploy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from pigeonhole import constants as c
from pigeonhole_infra.config import GOLDEN_HOOK_HANDLER, HOOK_RESERVED, InfraConfig
from pigeonhole_infra.constructs.function import PigeonholeFunction

HOOK_SERVICE = "golden-hook"
HOOK_MEMORY_MB = 256  # it only sends JSON and compares labels; the model runs in the classifier


class GoldenHook(Construct):
    """Exposes `function` and `role`; call `allow_report` once the deployment group exists."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: InfraConfig,
        code: lambda_.Code,
        layers: Sequence[lambda_.ILayerVersion],
        target: lambda_.IVersion,
    ) -> None:
        super().__init__(scope, construct_id)
        self.function_name = config.names.golden_hook_function
        built = PigeonholeFunction(
            self,
            "Hook",
            config=config,
            function_name=self.function_name,
            handler=GOLDEN_HOOK_HANDLER,
            service=HOOK_SERVICE,
            description="CodeDeploy pre-traffic hook: the new classifier version must pass the golden set",
            code=code,
            layers=layers,
            memory_mb=HOOK_MEMORY_MB,
            timeout_s=config.golden_hook_timeout_s,
            environment={
                c.ENV_HOOK_TARGET_VERSION: target.function_arn,
                c.ENV_MIN_GOLDEN_ACCURACY: str(config.min_golden_accuracy),
            },
            reserved_concurrency=HOOK_RESERVED,  # one deployment at a time; never takes the classifier's capacity
        )
        self.function = built.function
        self.role = built.role
        # Invoke exactly the version this deploy published (its qualified ARN), nothing else.
        self.role.add_to_principal_policy(
            iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[target.function_arn])
        )

    def allow_report(self, application: codedeploy.CfnApplication, group: codedeploy.CfnDeploymentGroup) -> None:
        """PutLifecycleEventHookExecutionStatus on this deployment group only."""
        stack = cdk.Stack.of(self)
        group_arn = stack.format_arn(
            service="codedeploy",
            resource="deploymentgroup",
            resource_name=f"{application.ref}/{group.ref}",
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )
        self.role.add_to_principal_policy(
            iam.PolicyStatement(actions=["codedeploy:PutLifecycleEventHookExecutionStatus"], resources=[group_arn])
        )
