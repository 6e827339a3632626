"""CodeDeploy canary on the live alias, rolled back automatically by the alarms marked `rollback`.

Why L1 resources instead of `codedeploy.LambdaDeploymentGroup`: the L2 always attaches the
AWS-managed AWSCodeDeployRoleForLambdaLimited policy (cloudwatch:DescribeAlarms, lambda:UpdateAlias
and sns:Publish on "*"). Here the service role may only read and shift this one alias and read
these alarms.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_codedeploy as codedeploy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from pigeonhole_infra.constructs.golden_hook import GoldenHook

# CodeDeploy's predefined Lambda configurations, by (percent, minutes).
PREDEFINED: Final = {
    (10, 5): "CodeDeployDefault.LambdaCanary10Percent5Minutes",
    (10, 10): "CodeDeployDefault.LambdaCanary10Percent10Minutes",
    (10, 15): "CodeDeployDefault.LambdaCanary10Percent15Minutes",
    (10, 30): "CodeDeployDefault.LambdaCanary10Percent30Minutes",
}
ALL_AT_ONCE: Final = "CodeDeployDefault.LambdaAllAtOnce"


class CanaryDeployment(Construct):
    """Application + deployment group + the alias's UpdatePolicy that hands alias updates to CodeDeploy."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        function: lambda_.IFunction,
        alias: lambda_.Alias,
        rollback_alarms: Sequence[cloudwatch.IAlarm],
        percent: int,
        minutes: int,
        hook: GoldenHook | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.role = iam.Role(
            self,
            "ServiceRole",
            assumed_by=iam.ServicePrincipal("codedeploy.amazonaws.com"),
            description="CodeDeploy: shift the classifier's live alias, read its rollback alarms",
        )
        # The alias ARN is spelled from the function's: a reference to the alias itself would close a
        # cycle (alias UpdatePolicy -> deployment group -> this role's policy -> alias).
        alias_arn = f"{function.function_arn}:{alias.alias_name}"
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["lambda:GetAlias", "lambda:UpdateAlias"], resources=[function.function_arn, alias_arn]
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["lambda:GetProvisionedConcurrencyConfig"],
                # The version being shifted to is published by the same deploy, so its number is not
                # known at synth time: the qualifier wildcard stays inside this one function.
                resources=[alias_arn, f"{function.function_arn}:*"],
            )
        )
        if hook is not None:
            # CodeDeploy invokes the pre-traffic hook with this role (the managed policy would allow any
            # function named CodeDeployHook_*; this allows the one hook).
            # The ARN is spelled from the hook's name: a reference would close a cycle (hook role policy ->
            # deployment group -> this role's policy -> hook function -> hook role policy).
            hook_arn = cdk.Stack.of(self).format_arn(
                service="lambda",
                resource="function",
                resource_name=hook.function_name,
                arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
            )
            self.role.add_to_policy(iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[hook_arn]))
        if rollback_alarms:
            self.role.add_to_policy(
                iam.PolicyStatement(
                    actions=["cloudwatch:DescribeAlarms"], resources=[a.alarm_arn for a in rollback_alarms]
                )
            )

        self.application = codedeploy.CfnApplication(self, "Application", compute_platform="Lambda")
        config_name = self._deployment_config(percent, minutes)
        self.group = codedeploy.CfnDeploymentGroup(
            self,
            "Group",
            application_name=self.application.ref,
            service_role_arn=self.role.role_arn,
            deployment_config_name=config_name,
            deployment_style=codedeploy.CfnDeploymentGroup.DeploymentStyleProperty(
                deployment_option="WITH_TRAFFIC_CONTROL", deployment_type="BLUE_GREEN"
            ),
            alarm_configuration=codedeploy.CfnDeploymentGroup.AlarmConfigurationProperty(
                enabled=bool(rollback_alarms),
                alarms=[codedeploy.CfnDeploymentGroup.AlarmProperty(name=a.alarm_name) for a in rollback_alarms],
            ),
            auto_rollback_configuration=codedeploy.CfnDeploymentGroup.AutoRollbackConfigurationProperty(
                enabled=True,
                events=["DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM", "DEPLOYMENT_STOP_ON_REQUEST"],
            ),
        )
        # The role's policy must exist before CodeDeploy validates the group.
        self.group.node.add_dependency(self.role)
        cfn_alias = alias.node.default_child
        if not isinstance(cfn_alias, cdk.CfnResource):
            raise TypeError("the alias has no CloudFormation resource to attach the update policy to")
        cfn_alias.cfn_options.update_policy = cdk.CfnUpdatePolicy(
            code_deploy_lambda_alias_update=cdk.CfnCodeDeployLambdaAliasUpdate(
                application_name=self.application.ref,
                deployment_group_name=self.group.ref,
                before_allow_traffic_hook=hook.function_name if hook is not None else None,
            )
        )
        # The alias update starts the deployment: by then the hook (with its permissions) and the rollback
        # alarms (re-bound to the new version) must be in place, or the canary would judge the old version.
        if hook is not None:
            hook.allow_report(self.application, self.group)
            alias.node.add_dependency(hook)
        for alarm in rollback_alarms:
            alias.node.add_dependency(alarm)

    def _deployment_config(self, percent: int, minutes: int) -> str:
        if percent == 0:
            return ALL_AT_ONCE
        if (percent, minutes) in PREDEFINED:
            return PREDEFINED[(percent, minutes)]
        custom = codedeploy.CfnDeploymentConfig(
            self,
            "Config",
            compute_platform="Lambda",
            traffic_routing_config=codedeploy.CfnDeploymentConfig.TrafficRoutingConfigProperty(
                type="TimeBasedCanary",
                time_based_canary=codedeploy.CfnDeploymentConfig.TimeBasedCanaryProperty(
                    canary_percentage=percent, canary_interval=minutes
                ),
            ),
        )
        return custom.ref
