"""On-call and ticket topics, and every CloudWatch alarm, built from `pigeonhole.alarms` (the one source).

Nothing here decides what to alarm on: thresholds, periods, statistics and severities all come
from the shared definitions, which the local evaluator reads too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from pigeonhole import alarms as defs
from pigeonhole_infra.config import InfraConfig

COMPARISON: Final = {
    defs.Comparison.GT: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
    defs.Comparison.GTE: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    defs.Comparison.LT: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
    defs.Comparison.LTE: cloudwatch.ComparisonOperator.LESS_THAN_OR_EQUAL_TO_THRESHOLD,
}
MISSING: Final = {
    defs.MissingData.NOT_BREACHING: cloudwatch.TreatMissingData.NOT_BREACHING,
    defs.MissingData.BREACHING: cloudwatch.TreatMissingData.BREACHING,
    defs.MissingData.IGNORE: cloudwatch.TreatMissingData.IGNORE,
    defs.MissingData.MISSING: cloudwatch.TreatMissingData.MISSING,
}


def bindings_for(config: InfraConfig, model_version: str, function_version: str) -> dict[defs.Binding, str]:
    """Every alarm placeholder resolved for this deployment: names by attribute, the model version, and the
    classifier version this deploy publishes (a token: the canary alarms follow each new version)."""
    return defs.resolve_bindings(config.names, model_version, function_version)


def to_metric(query: defs.MetricQuery, bindings: Mapping[defs.Binding, str], window_s: int) -> cloudwatch.Metric:
    return cloudwatch.Metric(
        namespace=query.namespace,
        metric_name=query.name,
        dimensions_map=query.resolve(bindings),
        statistic=query.statistic,
        period=cdk.Duration.seconds(query.period(window_s)),
    )


def to_alarm_metric(alarm: defs.AlarmDef, bindings: Mapping[defs.Binding, str], window_s: int) -> cloudwatch.IMetric:
    if alarm.metric is not None:
        return to_metric(alarm.metric, bindings, window_s)
    return cloudwatch.MathExpression(
        expression=alarm.expression or "",
        using_metrics={mid: to_metric(q, bindings, window_s) for mid, q in alarm.metrics},
        period=cdk.Duration.seconds(alarm.metrics[0][1].period(window_s)),
        label=alarm.suffix,
    )


def _topic(scope: Construct, construct_id: str, *, name: str, key: kms.IKey, purpose: str) -> sns.Topic:
    topic = sns.Topic(scope, construct_id, topic_name=name, display_name=purpose, master_key=key, enforce_ssl=True)
    # A topic policy (the TLS-only deny) replaces SNS's default one, so alarm actions need an explicit allow.
    topic.add_to_resource_policy(
        iam.PolicyStatement(
            sid="CloudWatchAlarmsPublish",
            principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
            actions=["sns:Publish"],
            resources=[topic.topic_arn],
            conditions={"StringEquals": {"aws:SourceAccount": cdk.Aws.ACCOUNT_ID}},
        )
    )
    return topic


class Alerting(Construct):
    """Topics (page and ticket) and the alarms; `alarms` maps suffix -> alarm, `rollback_alarms` for the canary."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: InfraConfig,
        key: kms.IKey,
        model_version: str,
        function_version: str,
    ):
        super().__init__(scope, construct_id)
        names = config.names
        self.oncall_topic = _topic(self, "OnCall", name=names.oncall_topic, key=key, purpose="Pigeonhole on-call")
        self.ticket_topic = _topic(self, "Tickets", name=names.ticket_topic, key=key, purpose="Pigeonhole tickets")
        if config.oncall_email:
            self.oncall_topic.add_subscription(subscriptions.EmailSubscription(config.oncall_email))
        if config.oncall_https_url:
            self.oncall_topic.add_subscription(
                subscriptions.UrlSubscription(config.oncall_https_url, protocol=sns.SubscriptionProtocol.HTTPS)
            )
        if config.ticket_email:
            self.ticket_topic.add_subscription(subscriptions.EmailSubscription(config.ticket_email))

        self.bindings = bindings_for(config, model_version, function_version)
        page = cw_actions.SnsAction(self.oncall_topic)
        ticket = cw_actions.SnsAction(self.ticket_topic)
        provisioned = config.warm_mode == "provisioned"
        self.alarms: dict[str, cloudwatch.Alarm] = {}
        for definition in defs.applicable(provisioned_concurrency=provisioned):
            alarm = cloudwatch.Alarm(
                self,
                definition.suffix,
                alarm_name=defs.alarm_name(config.prefix, definition.suffix),
                alarm_description=defs.alarm_description(definition, config.runbook_url),
                metric=to_alarm_metric(definition, self.bindings, config.window_seconds),
                threshold=definition.threshold,
                comparison_operator=COMPARISON[definition.comparison],
                evaluation_periods=definition.evaluation_periods,
                datapoints_to_alarm=definition.datapoints_to_alarm,
                treat_missing_data=MISSING[definition.treat_missing_data],
            )
            if definition.notify:
                action = page if definition.severity is defs.Severity.PAGE else ticket
                alarm.add_alarm_action(action)
                if definition.notify_ok:
                    alarm.add_ok_action(action)
            self.alarms[definition.suffix] = alarm

        self.composites: dict[str, cloudwatch.CompositeAlarm] = {}
        for composite in defs.COMPOSITES:
            alarm_rule = cloudwatch.AlarmRule.all_of(
                *[
                    cloudwatch.AlarmRule.from_alarm(self.alarms[s], cloudwatch.AlarmState.ALARM)
                    for s in composite.all_of
                ]
            )
            built = cloudwatch.CompositeAlarm(
                self,
                composite.suffix,
                composite_alarm_name=defs.alarm_name(config.prefix, composite.suffix),
                alarm_description=defs.alarm_description(composite, config.runbook_url),
                alarm_rule=alarm_rule,
            )
            action = page if composite.severity is defs.Severity.PAGE else ticket
            built.add_alarm_action(action)
            built.add_ok_action(action)
            self.composites[composite.suffix] = built

    @property
    def rollback_alarms(self) -> list[cloudwatch.IAlarm]:
        """The alarms that stop a canary: errors, duration and model behaviour."""
        rollback = {d.suffix for d in defs.ALARMS if d.rollback} | {c.suffix for c in defs.COMPOSITES if c.rollback}
        chosen: list[cloudwatch.IAlarm] = [a for s, a in self.alarms.items() if s in rollback]
        chosen += [a for s, a in self.composites.items() if s in rollback]
        return chosen
