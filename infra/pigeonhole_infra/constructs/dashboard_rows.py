"""Dashboard rows for a canary and for the managed parts: DynamoDB, EventBridge, event source mappings.

Kept apart from `dashboard.py` so each row is a function of the deployment's names. Metric names and
dimensions are AWS's own (AWS/Lambda, AWS/DynamoDB, AWS/Events; tests/infra/test_infra_dashboard.py
holds the list each is checked against). A canary runs two versions behind one alias, so the per-version
graphs use SEARCH: Lambda's `ExecutedVersion` dimension and our `ModelVersion` give one line per version,
whatever their numbers are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch

from pigeonhole import alarms as defs
from pigeonhole import metrics_catalog as mc
from pigeonhole.naming import ResourceNames

MINUTE = 60
WIDTH = 8  # three graphs per 24-unit row
NS_DYNAMODB = "AWS/DynamoDB"
NS_LAMBDA = defs.NS_LAMBDA


@dataclass(frozen=True)
class SourceMapping:
    """One SQS event source mapping: a title, its UUID (a token until deploy) and its concurrency cap."""

    title: str
    uuid: str
    max_concurrency: int


def _graph(title: str, left: Sequence[cloudwatch.IMetric], **kwargs: object) -> cloudwatch.GraphWidget:
    return cloudwatch.GraphWidget(title=title, left=list(left), width=WIDTH, height=6, **kwargs)  # type: ignore[arg-type]


def _search(query: str, statistic: str, label: str, period: int = MINUTE) -> cloudwatch.MathExpression:
    return cloudwatch.MathExpression(
        expression=f"SEARCH('{query}', '{statistic}', {period})",
        using_metrics={},
        period=cdk.Duration.seconds(period),
        label=label,
    )


def canary_rows(names: ResourceNames) -> list[list[cloudwatch.IWidget]]:
    """Both versions side by side: Lambda's view per function version, ours per model version."""

    def by_executed_version(metric: str, statistic: str) -> cloudwatch.MathExpression:
        query = (
            f'{{{NS_LAMBDA},FunctionName,Resource,ExecutedVersion}} MetricName="{metric}" '
            f'FunctionName="{names.classifier_function}" Resource="{names.classifier_alias_resource}"'
        )
        return _search(query, statistic, label=f"{metric} v")

    def by_model_version(metric: mc.MetricDef, statistic: str) -> cloudwatch.MathExpression:
        dims = ",".join((mc.NAMESPACE, *metric.dimensions))
        query = f'{{{dims}}} MetricName="{metric.name}" {mc.DIM_SERVICE}="{metric.service}"'
        return _search(query, statistic, label=f"{metric.name} model")

    return [
        [
            cloudwatch.TextWidget(
                markdown="## Canary: each version on its own line\n"
                "Lambda metrics by `ExecutedVersion` of the live alias; classifier metrics by `ModelVersion`. "
                "During a deployment the new version's lines start at its share of the traffic.",
                width=24,
                height=2,
            )
        ],
        [
            _graph("Invocations by version", [by_executed_version("Invocations", "Sum")]),
            _graph("Errors by version", [by_executed_version("Errors", "Sum")]),
            _graph("Duration p99 by version (ms)", [by_executed_version("Duration", "p99")]),
        ],
        [
            _graph(
                "Review rate by model version (%)",
                [by_model_version(mc.LOW_CONFIDENCE_RATE, "Average")],
            ),
            _graph(
                "Quarantine rate by model version (%)",
                [by_model_version(mc.QUARANTINE_RATE, "Average")],
            ),
            _graph(
                "Events and publish failures by model version",
                [by_model_version(mc.EVENTS_RECEIVED, "Sum")],
                right=[by_model_version(mc.PUBLISH_FAILURES, "Sum")],
            ),
        ],
    ]


def dynamodb_row(names: ResourceNames) -> list[cloudwatch.IWidget]:
    """The windows table (every classifier batch writes it), plus throttles of every table."""

    def table(metric: str, table_name: str, statistic: str = "Sum") -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=NS_DYNAMODB,
            metric_name=metric,
            dimensions_map={"TableName": table_name},
            statistic=statistic,
            period=cdk.Duration.minutes(1),
            label=f"{table_name} {metric}",
        )

    tables = (names.windows_table, names.predictions_table, names.feedback_table)
    return [
        _graph(
            "Windows table: consumed capacity (units / min)",
            [table("ConsumedWriteCapacityUnits", names.windows_table)],
            right=[table("ConsumedReadCapacityUnits", names.windows_table)],
        ),
        _graph(
            "DynamoDB throttles",
            [table("WriteThrottleEvents", t) for t in tables] + [table("ReadThrottleEvents", names.windows_table)],
        ),
        _graph(
            "Windows table: conflicts",
            [
                table("TransactionConflict", names.windows_table),
                table("ConditionalCheckFailedRequests", names.windows_table),
            ],
        ),
    ]


def eventbridge_row(bindings: Mapping[defs.Binding, str]) -> list[cloudwatch.IWidget]:
    """Each rule's deliveries: the same rule metrics (and dimensions) the FailedInvocations alarms read."""
    from pigeonhole_infra.constructs.alerting import to_metric

    rules = (
        (defs.Binding.INPUT_RULE, defs.Binding.INPUT_BUS),
        (defs.Binding.LABEL_RULE, defs.Binding.INPUT_BUS),
        (defs.Binding.DRIFT_SCHEDULE, None),
    )

    def rule(metric: str, which: defs.Binding, bus: defs.Binding | None) -> cloudwatch.Metric:
        built = to_metric(defs.rule_metric(metric, which, bus, "Sum", MINUTE), bindings, MINUTE)
        return built.with_(label=f"{bindings[which]} {metric}")

    rule_dlqs = (defs.Binding.INPUT_RULE_DLQ, defs.Binding.LABEL_RULE_DLQ, defs.Binding.DRIFT_DLQ)

    def rule_dlq(queue: defs.Binding) -> cloudwatch.Metric:
        built = to_metric(defs.sqs("ApproximateNumberOfMessagesVisible", queue, "Maximum", MINUTE), bindings, MINUTE)
        return built.with_(label=bindings[queue])

    return [
        _graph("Rule invocations", [rule("Invocations", r, b) for r, b in rules]),
        _graph(
            "Rule deliveries that failed",
            [rule("FailedInvocations", r, b) for r, b in rules]
            + [rule("InvocationsSentToDlq", r, b) for r, b in rules]
            + [rule("InvocationsFailedToBeSentToDlq", r, b) for r, b in rules],
        ),
        _graph("Rule DLQs (messages)", [rule_dlq(q) for q in rule_dlqs]),
    ]


def event_source_mapping_row(
    mappings: Sequence[SourceMapping], concurrency: Sequence[cloudwatch.IMetric]
) -> list[cloudwatch.IWidget]:
    """What each SQS mapping polled, invoked, failed and deleted (its EventCount metrics), and concurrency."""

    def esm(metric: str, mapping: SourceMapping) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=NS_LAMBDA,
            metric_name=metric,
            dimensions_map={"EventSourceMappingUUID": mapping.uuid},
            statistic="Sum",
            period=cdk.Duration.minutes(1),
            label=f"{mapping.title} {metric}",
        )

    counts = ("PolledEventCount", "InvokedEventCount", "FailedInvokeEventCount", "DeletedEventCount")
    widgets: list[cloudwatch.IWidget] = [
        _graph(f"{m.title} mapping (events / min)", [esm(name, m) for name in counts]) for m in mappings
    ]
    widgets.append(
        _graph(
            "Classifier concurrency and the mapping's cap",
            list(concurrency),
            left_annotations=[
                cloudwatch.HorizontalAnnotation(value=m.max_concurrency, label=f"{m.title} max concurrency")
                for m in mappings[:1]
            ],
        )
    )
    return widgets
