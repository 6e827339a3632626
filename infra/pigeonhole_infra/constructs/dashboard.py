"""The operator's dashboard: throughput, latency, errors, class mix, confidence, drift, accuracy; then
both versions of a canary side by side, DynamoDB, EventBridge rules and the event source mappings
(those rows are in `dashboard_rows`).

Metrics of our namespace are built with the same catalog-derived dimensions as the alarms, so a
graph and an alarm can never disagree about what they watch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from constructs import Construct

from pigeonhole import alarms as defs
from pigeonhole import metrics_catalog as mc
from pigeonhole.drift.detectors import SIGNAL_CLASS_MIX
from pigeonhole_infra.config import InfraConfig
from pigeonhole_infra.constructs.alerting import to_metric
from pigeonhole_infra.constructs.dashboard_rows import (
    SourceMapping,
    canary_rows,
    dynamodb_row,
    event_source_mapping_row,
    eventbridge_row,
)

MINUTE = 60
WIDTH = 8  # three graphs per 24-unit row


class OperationsDashboard(Construct):
    """One CloudWatch dashboard; rows top to bottom answer "is it flowing, fast, correct, stable?"."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: InfraConfig,
        bindings: Mapping[defs.Binding, str],
        alarms: Sequence[cloudwatch.IAlarm],
        mappings: Sequence[SourceMapping] = (),
    ) -> None:
        super().__init__(scope, construct_id)
        window = config.window_seconds
        model_version = bindings[defs.Binding.MODEL_VERSION]

        def ours(
            metric: mc.MetricDef, statistic: str, period: int = MINUTE, label: str | None = None
        ) -> cloudwatch.Metric:
            built = to_metric(defs.ours(metric, statistic, period), bindings, window)
            return built.with_(label=label or f"{metric.name} ({statistic})")

        def alias(name: str, statistic: str, label: str | None = None) -> cloudwatch.Metric:
            built = to_metric(defs.classifier_alias(name, statistic, MINUTE), bindings, window)
            return built.with_(label=label or f"{name} ({statistic})")

        def sqs(name: str, queue: defs.Binding, statistic: str = "Maximum") -> cloudwatch.Metric:
            built = to_metric(defs.sqs(name, queue, statistic, MINUTE), bindings, window)
            return built.with_(label=f"{bindings[queue]} {name}")

        def search(metric: mc.MetricDef, extra_dim: str, statistic: str, period: int) -> cloudwatch.MathExpression:
            dims = ",".join((mc.NAMESPACE, *metric.dimensions))
            query = (
                f'SEARCH(\'{{{dims}}} MetricName="{metric.name}" {mc.DIM_SERVICE}="{metric.service}" '
                f"{mc.DIM_MODEL_VERSION}=\"{model_version}\"', '{statistic}', {period})"
            )
            return cloudwatch.MathExpression(
                expression=query, using_metrics={}, period=cdk.Duration.seconds(period), label=f"by {extra_dim}"
            )

        def graph(title: str, left: Sequence[cloudwatch.IMetric], **kwargs: object) -> cloudwatch.GraphWidget:
            return cloudwatch.GraphWidget(title=title, left=list(left), width=WIDTH, height=6, **kwargs)  # type: ignore[arg-type]

        dlqs = (
            defs.Binding.INGEST_DLQ,
            defs.Binding.INPUT_RULE_DLQ,
            defs.Binding.FEEDBACK_DLQ,
            defs.Binding.LABEL_RULE_DLQ,
            defs.Binding.REVIEW_DLQ,
            defs.Binding.QUARANTINE_DLQ,
            defs.Binding.DRIFT_DLQ,
        )
        labelled = ours(mc.LABELLED_EVENTS, "Sum", 3600)
        weight = ours(mc.LABELLED_WEIGHT, "Sum", 3600)  # labels weighted by 1 / capture rate
        wrong = ours(mc.MISCLASSIFIED_WEIGHT, "Sum", 3600)

        def class_mix_drift(metric: mc.MetricDef) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace=mc.NAMESPACE,
                metric_name=metric.name,
                dimensions_map={
                    mc.DIM_SERVICE: metric.service,
                    mc.DIM_MODEL_VERSION: model_version,
                    mc.DIM_SIGNAL: SIGNAL_CLASS_MIX,
                },
                statistic="Maximum",
                period=cdk.Duration.seconds(window),
                label=f"class mix {metric.name}",
            )

        # Per-label metrics are an option (one custom metric per label); without them the class mix is
        # watched through the drift function's per-window class-mix PSI and JS distance.
        class_mix = (
            graph(
                "Class mix (events per label, 5 min)",
                [search(mc.CLASS_PREDICTED, mc.DIM_LABEL, "Sum", 300)],
                stacked=True,
            )
            if config.per_label_metrics
            else graph(
                "Class mix drift per window (PSI; JS right)",
                [class_mix_drift(mc.DRIFT_PSI)],
                right=[class_mix_drift(mc.DRIFT_JS)],
            )
        )

        self.dashboard = cloudwatch.Dashboard(
            self,
            "Dashboard",
            dashboard_name=config.names.dashboard,
            default_interval=cdk.Duration.hours(3),
            widgets=[
                [
                    cloudwatch.TextWidget(
                        markdown=f"# Pigeonhole `{config.prefix}`: model {model_version}\n"
                        "Flow: input bus -> ingest queue -> classifier alias -> output bus / review / quarantine. "
                        "Red alarms page (on-call topic) or ticket.",
                        width=24,
                        height=2,
                    )
                ],
                [
                    graph(
                        "Throughput (events / min)",
                        [
                            ours(mc.EVENTS_RECEIVED, "Sum"),
                            ours(mc.EVENTS_AUTO, "Sum"),
                            ours(mc.EVENTS_REVIEW, "Sum"),
                            ours(mc.EVENTS_QUARANTINED, "Sum"),
                        ],
                    ),
                    graph(
                        "Ingest queue",
                        [
                            sqs("ApproximateNumberOfMessagesVisible", defs.Binding.INGEST_QUEUE),
                            sqs("NumberOfMessagesSent", defs.Binding.INGEST_QUEUE, "Sum"),
                        ],
                        right=[sqs("ApproximateAgeOfOldestMessage", defs.Binding.INGEST_QUEUE)],
                    ),
                    graph(
                        "Classifier invocations and concurrency",
                        [alias("Invocations", "Sum"), alias("ConcurrentExecutions", "Maximum")],
                        right=[alias("ProvisionedConcurrencyUtilization", "Maximum")]
                        if config.warm_mode == "provisioned"
                        else [],
                    ),
                ],
                [
                    graph(
                        "Batch duration (ms)",
                        [alias("Duration", "p50"), alias("Duration", "p90"), alias("Duration", "p99")],
                    ),
                    graph(
                        "ONNX inference per batch (ms)",
                        [ours(mc.INFERENCE_TIME, "p50"), ours(mc.INFERENCE_TIME, "p99")],
                    ),
                    graph(
                        "Errors",
                        [
                            alias("Errors", "Sum"),
                            alias("Throttles", "Sum"),
                            ours(mc.PUBLISH_FAILURES, "Sum"),
                            ours(mc.MODEL_LOAD_FAILURES, "Sum"),
                        ],
                    ),
                ],
                [
                    graph(
                        "Dead-letter queues (messages)", [sqs("ApproximateNumberOfMessagesVisible", q) for q in dlqs]
                    ),
                    class_mix,
                    graph(
                        "Confidence",
                        [
                            ours(mc.CONFIDENCE, "p10"),
                            ours(mc.CONFIDENCE, "p50"),
                            ours(mc.CONFIDENCE, "Average"),
                        ],
                        right=[
                            ours(mc.LOW_CONFIDENCE_RATE, "Average", label="routed to review (%)"),
                            ours(mc.UNKNOWN_RATE, "Average", label="routed as unknown (%)"),
                        ],
                    ),
                ],
                [
                    graph(
                        "Drift severity (0 ok, 1 warn, 2 page)",
                        [ours(mc.DRIFT_SEVERITY, "Maximum", window)],
                        right=[ours(mc.WINDOW_EVENTS, "Sum", window)],
                    ),
                    graph(
                        "Drift PSI and JS distance by signal",
                        [search(mc.DRIFT_PSI, mc.DIM_SIGNAL, "Maximum", window)],
                        right=[search(mc.DRIFT_JS, mc.DIM_SIGNAL, "Maximum", window)],
                    ),
                    graph(
                        "Accuracy (labelled, hourly) and expected accuracy (label-free)",
                        [
                            cloudwatch.MathExpression(
                                expression="IF(labelled > 0, 100 * (1 - wrong / weight), 0)",
                                using_metrics={"labelled": labelled, "weight": weight, "wrong": wrong},
                                period=cdk.Duration.hours(1),
                                label="labelled accuracy (%)",
                            ),
                            cloudwatch.MathExpression(
                                expression="100 * expected",
                                using_metrics={"expected": ours(mc.EXPECTED_ACCURACY, "Average", window)},
                                period=cdk.Duration.seconds(window),
                                label="expected accuracy (%)",
                            ),
                        ],
                        right=[labelled.with_(label="labels joined / h")],
                        left_annotations=[cloudwatch.HorizontalAnnotation(value=100 * defs.ACCURACY_SLO, label="SLO")],
                    ),
                ],
                *canary_rows(config.names),
                dynamodb_row(config.names),
                eventbridge_row(bindings),
                event_source_mapping_row(
                    mappings, [alias("ConcurrentExecutions", "Maximum", label="live alias concurrent executions")]
                ),
                [cloudwatch.AlarmStatusWidget(alarms=list(alarms), title="Alarms", width=24, height=6)],
            ],
        )
