"""Every alarm of Pigeonhole as plain data: the one source for the CDK stack and the local evaluator.

Why plain data: the stack (infra/) turns each definition into a CloudWatch alarm and the local
runtime evaluates the same definitions against the metrics it collects, so the two cannot drift
apart. Nothing here imports CDK or boto3.

Dimension values that only a deployment knows (queue and function names, the model version) are
`Binding` placeholders; each consumer supplies them. A `Binding` value is the attribute name of
that resource in `pigeonhole.naming.ResourceNames`, so `resolve_bindings` names them all for a
prefix (infra and the local evaluator both call it).

Math expressions use only metric ids, numbers, ``+ - * /``, comparisons (``> >= < <=``) and
``IF(condition, a, b)``: a subset of CloudWatch metric math small enough to evaluate locally. The one
exception is ``DIFF(id)`` (this period's value minus the previous one's) in the DLQ arrival alarms;
an alarm the local runtime cannot evaluate says why in `local_reason`.

Why one module: it is the single place alarms are defined (tests/infra/test_infra_alarm_contract.py
refuses an AlarmDef built anywhere else), so a reviewer reads every threshold, period and severity
of the system in one file; the types and helpers at the top are only what those definitions need.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from pigeonhole import metrics_catalog as mc
from pigeonhole import topology as topo
from pigeonhole.naming import ResourceNames

NS_SQS: Final = "AWS/SQS"
NS_LAMBDA: Final = "AWS/Lambda"
NS_EVENTS: Final = "AWS/Events"
NS_DYNAMODB: Final = "AWS/DynamoDB"


class Severity(StrEnum):
    """Where an alarm notifies: page -> the on-call topic, ticket -> the ticket topic."""

    PAGE = "page"
    TICKET = "ticket"


class Comparison(StrEnum):
    """CloudWatch comparison operators (their API spelling)."""

    GT = "GreaterThanThreshold"
    GTE = "GreaterThanOrEqualToThreshold"
    LT = "LessThanThreshold"
    LTE = "LessThanOrEqualToThreshold"


class MissingData(StrEnum):
    """CloudWatch treat-missing-data values (their API spelling)."""

    NOT_BREACHING = "notBreaching"
    BREACHING = "breaching"
    IGNORE = "ignore"
    MISSING = "missing"


class Binding(StrEnum):
    """A dimension value a deployment supplies; the value names the resource in the naming object."""

    MODEL_VERSION = "model_version"  # the manifest version of the deployed model
    CLASSIFIER_FUNCTION = "classifier_function"  # Lambda FunctionName
    CLASSIFIER_ALIAS = "classifier_alias_resource"  # Lambda Resource dimension: "<function>:<alias>"
    # Lambda ExecutedVersion: the version the deploy publishes (infra binds lambda.Version's number at
    # synth, so a canary's alarms follow the NEW version alone); "$LATEST" in the local runtime.
    CLASSIFIER_VERSION = "classifier_version"
    DRIFT_FUNCTION = "drift_function"
    FEEDBACK_FUNCTION = "feedback_function"
    INGEST_QUEUE = "ingest_queue"
    INGEST_DLQ = "ingest_dlq"
    REVIEW_DLQ = "review_dlq"
    QUARANTINE_DLQ = "quarantine_dlq"
    FEEDBACK_DLQ = "feedback_dlq"
    INPUT_RULE_DLQ = "input_rule_dlq"  # EventBridge input bus -> ingest queue target
    LABEL_RULE_DLQ = "label_rule_dlq"  # EventBridge input bus (LabelFeedback) -> feedback queue target
    DRIFT_DLQ = "drift_dlq"  # drift schedule target and the drift function's async failures
    REVIEW_QUEUE = "review_queue"
    QUARANTINE_QUEUE = "quarantine_queue"
    INPUT_BUS = "input_bus"
    INPUT_RULE = "input_rule"
    LABEL_RULE = "label_rule"
    DRIFT_SCHEDULE = "drift_schedule"  # on the default bus
    WINDOWS_TABLE = "windows_table"  # DynamoDB TableName
    PREDICTIONS_TABLE = "predictions_table"
    FEEDBACK_TABLE = "feedback_table"


DimensionValue = str | Binding


@dataclass(frozen=True)
class MetricQuery:
    """One metric at one statistic and period.

    `per_window`: the period is one drift window; consumers use the deployment's window length
    (PIGEONHOLE_WINDOW_SECONDS) instead of `period_s`, because the drift function emits once per window.
    """

    namespace: str
    name: str
    dimensions: tuple[tuple[str, DimensionValue], ...]
    statistic: str  # Sum | Average | Maximum | Minimum | SampleCount | pNN
    period_s: int
    catalog: mc.MetricDef | None = None  # set for every metric of our own namespace
    per_window: bool = False

    def resolve(self, bindings: Mapping[Binding, str]) -> dict[str, str]:
        """Concrete dimensions; raises KeyError naming the binding a consumer forgot."""
        return {name: bindings[value] if isinstance(value, Binding) else value for name, value in self.dimensions}

    def period(self, window_seconds: int) -> int:
        return window_seconds if self.per_window else self.period_s


@dataclass(frozen=True)
class AlarmDef:
    """One metric or metric-math alarm. Name: f"{prefix}-{suffix}"."""

    suffix: str
    description: str
    severity: Severity
    threshold: float
    comparison: Comparison
    evaluation_periods: int
    datapoints_to_alarm: int
    treat_missing_data: MissingData
    metric: MetricQuery | None = None  # a single-metric alarm ...
    expression: str | None = None  # ... or a math alarm over `metrics` (id -> query)
    metrics: tuple[tuple[str, MetricQuery], ...] = ()
    rollback: bool = False  # a canary deployment rolls back while this alarm is in ALARM
    requires_provisioned_concurrency: bool = False  # only exists when the alias has warm capacity
    notify: bool = True  # False for the parts of a composite alarm: the composite notifies
    notify_ok: bool = True  # False where OK is only "no new arrival this period" (the DLQ arrival alarms)
    local_reason: str | None = None  # why the local runtime cannot evaluate it, whatever metrics it has

    def __post_init__(self) -> None:
        if (self.metric is None) == (self.expression is None):
            raise ValueError(f"{self.suffix}: give exactly one of metric or expression")
        if self.expression is not None and not self.metrics:
            raise ValueError(f"{self.suffix}: a math alarm needs its metrics")
        if not 1 <= self.datapoints_to_alarm <= self.evaluation_periods:
            raise ValueError(f"{self.suffix}: datapoints_to_alarm must be within 1..evaluation_periods")
        periods = {q.period_s for q in self.queries()}
        if len(periods) != 1:
            raise ValueError(f"{self.suffix}: every metric of one alarm needs the same period")

    def queries(self) -> tuple[MetricQuery, ...]:
        return (self.metric,) if self.metric is not None else tuple(q for _, q in self.metrics)

    @property
    def period_s(self) -> int:
        return self.queries()[0].period_s


@dataclass(frozen=True)
class CompositeAlarmDef:
    """ALARM when every alarm in `all_of` is in ALARM (multi-window burn rates)."""

    suffix: str
    description: str
    severity: Severity
    all_of: tuple[str, ...]  # suffixes of AlarmDefs
    rollback: bool = False


def alarm_name(prefix: str, suffix: str) -> str:
    return f"{prefix}-{suffix}"


# Every alarm's description ends with a link to its entry in the runbook: docs/runbook.md has one
# `### <suffix>` heading per alarm (tests/unit/test_runbook.py keeps the two in step). A deployment may
# host the runbook elsewhere (InfraConfig.runbook_url); the anchor is always the suffix.
RUNBOOK_PATH: Final = "docs/runbook.md"
DESCRIPTION_LIMIT: Final = 1024  # CloudWatch's AlarmDescription maximum (characters)


def runbook_link(suffix: str, runbook: str = RUNBOOK_PATH) -> str:
    """The address of one alarm's runbook entry: `<runbook>#<suffix>` (a stable heading anchor)."""
    return f"{runbook}#{suffix}"


def alarm_description(alarm: AlarmDef | CompositeAlarmDef, runbook: str = RUNBOOK_PATH) -> str:
    """What CloudWatch shows and notifies: severity, meaning, and where the on-call engineer reads on."""
    text = f"[{alarm.severity}] {alarm.description}. Runbook: {runbook_link(alarm.suffix, runbook)}"
    if len(text) > DESCRIPTION_LIMIT:
        raise ValueError(f"{alarm.suffix}: description is {len(text)} characters, CloudWatch takes {DESCRIPTION_LIMIT}")
    return text


# -- metric constructors ---------------------------------------------------------------------------
def ours(metric: mc.MetricDef, statistic: str, period_s: int, per_window: bool = False) -> MetricQuery:
    """A metric of our namespace with exactly the dimensions the functions emit (from the catalog)."""
    dims: list[tuple[str, DimensionValue]] = []
    for dim in metric.dimensions:
        if dim == mc.DIM_SERVICE:
            dims.append((dim, metric.service))
        elif dim == mc.DIM_MODEL_VERSION:
            dims.append((dim, Binding.MODEL_VERSION))
        elif dim == mc.DIM_FUNCTION_VERSION:
            dims.append((dim, Binding.CLASSIFIER_VERSION))
        else:
            raise ValueError(f"{metric.name}: no alarm can pin dimension {dim!r} (one alarm per value is not kept)")
    return MetricQuery(
        mc.NAMESPACE, metric.name, tuple(dims), statistic, period_s, catalog=metric, per_window=per_window
    )


def sqs(name: str, queue: Binding, statistic: str, period_s: int) -> MetricQuery:
    return MetricQuery(NS_SQS, name, (("QueueName", queue),), statistic, period_s)


def classifier_alias(name: str, statistic: str, period_s: int) -> MetricQuery:
    """Lambda metrics of the live alias (both versions during a canary)."""
    dims = (("FunctionName", Binding.CLASSIFIER_FUNCTION), ("Resource", Binding.CLASSIFIER_ALIAS))
    return MetricQuery(NS_LAMBDA, name, dims, statistic, period_s)


def classifier_version(name: str, statistic: str, period_s: int) -> MetricQuery:
    """Lambda metrics of one published version invoked through the alias (the canary's new version alone)."""
    dims = (
        ("FunctionName", Binding.CLASSIFIER_FUNCTION),
        ("Resource", Binding.CLASSIFIER_ALIAS),
        ("ExecutedVersion", Binding.CLASSIFIER_VERSION),
    )
    return MetricQuery(NS_LAMBDA, name, dims, statistic, period_s)


def lambda_function(name: str, function: Binding, statistic: str, period_s: int) -> MetricQuery:
    return MetricQuery(NS_LAMBDA, name, (("FunctionName", function),), statistic, period_s)


def rule_metric(name: str, rule: Binding, bus: Binding | None, statistic: str, period_s: int) -> MetricQuery:
    """An EventBridge rule's metric: EventBusName + RuleName on a custom bus, RuleName alone on the default bus."""
    dims: tuple[tuple[str, DimensionValue], ...] = (("RuleName", rule),)
    if bus is not None:
        dims = (("EventBusName", bus), *dims)
    return MetricQuery(NS_EVENTS, name, dims, statistic, period_s)


def dynamodb_table(name: str, table: Binding, statistic: str, period_s: int) -> MetricQuery:
    return MetricQuery(NS_DYNAMODB, name, (("TableName", table),), statistic, period_s)


# -- SLO parameters -------------------------------------------------------------------------------
# Labelled accuracy objective: 90 % (the int8 BANKING77 model measures ~92.5 % offline), so the error
# budget is 10 % of labelled events. Burn rate = observed misclassification share / budget.
ACCURACY_SLO: Final = 0.90
ERROR_BUDGET: Final = round(1.0 - ACCURACY_SLO, 6)
# Burn rates cannot exceed 1 / budget (= 10) here, so the classic 14.4 / 6 are out of reach:
# page at 3x (>= 30 % wrong for an hour and the last 5 minutes), ticket at 1.5x (>= 15 % wrong for
# 6 hours and the last 30 minutes).
FAST_BURN: Final = 3.0
SLOW_BURN: Final = 1.5
MIN_LABELS: Final = 20  # fewer labels than this in a window say nothing: the expression yields 0
MIN_EVENTS: Final = 20  # the same guard for per-event rates

ONE_MINUTE: Final = 60
FIVE_MINUTES: Final = 300


def _burn_rate(suffix: str, window_s: int, burn: float, severity: Severity, what: str) -> AlarmDef:
    return AlarmDef(
        suffix=suffix,
        description=f"{what}: labelled misclassification (weighted by capture) burns the {ERROR_BUDGET:.0%} "
        f"budget at >= {burn}x over {window_s // 60} min",
        severity=severity,
        threshold=burn,
        comparison=Comparison.GTE,
        evaluation_periods=1,
        datapoints_to_alarm=1,
        treat_missing_data=MissingData.NOT_BREACHING,
        # Weighted by 1 / capture rate: every review-routed event is captured, a share of the auto-routed.
        expression=f"IF(labelled >= {MIN_LABELS}, (wrong / weight) / {ERROR_BUDGET}, 0)",
        metrics=(
            ("labelled", ours(mc.LABELLED_EVENTS, "Sum", window_s)),
            ("weight", ours(mc.LABELLED_WEIGHT, "Sum", window_s)),
            ("wrong", ours(mc.MISCLASSIFIED_WEIGHT, "Sum", window_s)),
        ),
        notify=False,
    )


def _any_at_all(suffix: str, severity: Severity, description: str, **query: Any) -> AlarmDef:
    """Fires on one period whose value is above zero; no data means nothing happened (not breaching)."""
    return AlarmDef(
        suffix=suffix,
        description=description,
        severity=severity,
        threshold=0,
        comparison=Comparison.GT,
        evaluation_periods=1,
        datapoints_to_alarm=1,
        treat_missing_data=MissingData.NOT_BREACHING,
        **query,
    )


def _dlq_depth(suffix: str, queue: Binding, severity: Severity, what: str) -> AlarmDef:
    return _any_at_all(
        suffix,
        severity,
        f"{what}: messages are waiting in a dead-letter queue (look, fix, redrive)",
        metric=sqs("ApproximateNumberOfMessagesVisible", queue, "Maximum", ONE_MINUTE),
    )


# Every arrival in a DLQ notifies, not only the first (a DLQ already in ALARM on depth stays silent).
# SQS counts NumberOfMessagesSent only for SendMessage calls: a message moved by a redrive policy
# (maxReceiveCount) is not counted (AWS SQS developer guide, dead-letter queues), so the queues fed by
# a redrive watch their depth's increase instead; the ones fed by EventBridge target DLQs and by
# Lambda's on-failure destination (both SendMessage) watch NumberOfMessagesSent, which also counts
# arrivals that coincide with a deletion.
DIFF_LOCAL_REASON: Final = "not evaluated locally: DIFF() is outside the local evaluator's metric-math subset"
SENT_LOCAL_REASON: Final = "not evaluated locally: the local runtime does not emit SQS NumberOfMessagesSent"
EVENTS_LOCAL_REASON: Final = "not evaluated locally: the emulator runs no EventBridge rules of its own (no AWS/Events)"


def _dlq_arrivals_redriven(suffix: str, queue: Binding, severity: Severity, what: str) -> AlarmDef:
    return _any_at_all(
        suffix,
        severity,
        f"{what}: new messages arrived in a dead-letter queue (each arrival notifies again)",
        expression="DIFF(visible)",
        metrics=(("visible", sqs("ApproximateNumberOfMessagesVisible", queue, "Maximum", ONE_MINUTE)),),
        notify_ok=False,
        local_reason=DIFF_LOCAL_REASON,
    )


def _dlq_arrivals_sent(suffix: str, queue: Binding, severity: Severity, what: str) -> AlarmDef:
    return _any_at_all(
        suffix,
        severity,
        f"{what}: new messages arrived in a dead-letter queue (each arrival notifies again)",
        metric=sqs("NumberOfMessagesSent", queue, "Sum", ONE_MINUTE),
        notify_ok=False,
        local_reason=SENT_LOCAL_REASON,
    )


# Review and quarantine: read by people, kept HUMAN_QUEUE_RETENTION_S. A ticket when the oldest item
# has waited half of that, a page when it is two days from expiring; a ticket on a backlog.
HUMAN_AGE_TICKET_S: Final = topo.HUMAN_QUEUE_RETENTION_S // 2
HUMAN_AGE_PAGE_S: Final = topo.HUMAN_QUEUE_RETENTION_S - 2 * topo.DAY_S
REVIEW_BACKLOG: Final = 1000  # ~10 % of events go to review: a day's worth at 10k events/day
QUARANTINE_BACKLOG: Final = 100  # invalid events are rare: a hundred means a producer broke

# Heartbeat: the live alias was not invoked for an hour (12 five-minute periods, missing = breaching).
# The event source mapping invokes only when the ingest queue has messages, so no invocations = no events.
HEARTBEAT_PERIODS: Final = 12
HEARTBEAT_LOCAL_REASON: Final = (
    "not evaluated locally: the local runtime is silent whenever nobody sends, which is its normal state"
)
# Feedback: more than 20 % of at least MIN_LABELS labels in an hour could not be joined.
UNMATCHED_PERCENT: Final = 20


def _human_queue(queue: Binding, name: str, backlog: int) -> tuple[AlarmDef, ...]:
    def age(suffix: str, threshold: int, severity: Severity, what: str) -> AlarmDef:
        return AlarmDef(
            suffix=suffix,
            description=f"The oldest {name} message {what} (kept {topo.HUMAN_QUEUE_RETENTION_S // topo.DAY_S} "
            "days, then lost)",
            severity=severity,
            threshold=threshold,
            comparison=Comparison.GT,
            evaluation_periods=3,
            datapoints_to_alarm=3,
            treat_missing_data=MissingData.NOT_BREACHING,
            metric=sqs("ApproximateAgeOfOldestMessage", queue, "Maximum", FIVE_MINUTES),
        )

    return (
        age(
            f"{name}-oldest-message-age",
            HUMAN_AGE_TICKET_S,
            Severity.TICKET,
            f"has waited over {HUMAN_AGE_TICKET_S / topo.DAY_S:g} days",
        ),
        age(
            f"{name}-message-expiry",
            HUMAN_AGE_PAGE_S,
            Severity.PAGE,
            f"expires within {(topo.HUMAN_QUEUE_RETENTION_S - HUMAN_AGE_PAGE_S) // topo.DAY_S} days",
        ),
        AlarmDef(
            suffix=f"{name}-backlog",
            description=f"Over {backlog} {name} messages are waiting for a person",
            severity=Severity.TICKET,
            threshold=backlog,
            comparison=Comparison.GT,
            evaluation_periods=3,
            datapoints_to_alarm=3,
            treat_missing_data=MissingData.NOT_BREACHING,
            metric=sqs("ApproximateNumberOfMessagesVisible", queue, "Maximum", FIVE_MINUTES),
        ),
    )


def _rule_failures(suffix: str, rule: Binding, bus: Binding | None, severity: Severity, what: str) -> AlarmDef:
    # EventBridge sends FailedInvocations only when it is not zero: no data is not breaching.
    return _any_at_all(
        suffix,
        severity,
        f"{what}: EventBridge failed to invoke the rule's target permanently (not dead-lettered)",
        metric=rule_metric("FailedInvocations", rule, bus, "Sum", FIVE_MINUTES),
        local_reason=EVENTS_LOCAL_REASON,
    )


DYNAMODB_LOCAL_REASON: Final = "not evaluated locally: the emulator publishes no AWS/DynamoDB metrics"


def _table_pressure(suffix: str, metric: MetricQuery, threshold: float, what: str) -> AlarmDef:
    """Sustained (2 of 3 five-minute periods): the writers retry a short burst with back-off on their own;
    DynamoDB sends these metrics only when they are not zero, so no data is not breaching."""
    return AlarmDef(
        suffix=suffix,
        description=what,
        severity=Severity.TICKET,
        threshold=threshold,
        comparison=Comparison.GT,
        evaluation_periods=3,
        datapoints_to_alarm=2,
        treat_missing_data=MissingData.NOT_BREACHING,
        metric=metric,
        local_reason=DYNAMODB_LOCAL_REASON,
    )


# Windows that scale (docs/monitoring.md "Window accounting"): the classifier writes one plain item per
# batch and window over `window_shards` partitions, so throttling means a partition or the table is at
# its limit (raise window_shards) and conflicts can only come from the feedback function's label
# transactions on a window's label item.
TABLE_ALARMS: Final[tuple[AlarmDef, ...]] = (
    _table_pressure(
        "windows-write-throttles",
        dynamodb_table("WriteThrottleEvents", Binding.WINDOWS_TABLE, "Sum", FIVE_MINUTES),
        0,
        "Window batch items or label counters are throttled: records retry and may reach the DLQ",
    ),
    _table_pressure(
        "windows-read-throttles",
        dynamodb_table("ReadThrottleEvents", Binding.WINDOWS_TABLE, "Sum", FIVE_MINUTES),
        0,
        "The drift function's window reads are throttled: reports are late",
    ),
    _table_pressure(
        "predictions-write-throttles",
        dynamodb_table("WriteThrottleEvents", Binding.PREDICTIONS_TABLE, "Sum", FIVE_MINUTES),
        0,
        "Prediction captures are throttled: classifier records retry",
    ),
    _table_pressure(
        "feedback-write-throttles",
        dynamodb_table("WriteThrottleEvents", Binding.FEEDBACK_TABLE, "Sum", FIVE_MINUTES),
        0,
        "Label markers are throttled: labels retry and may reach the feedback DLQ",
    ),
    _table_pressure(
        "windows-transaction-conflicts",
        dynamodb_table("TransactionConflict", Binding.WINDOWS_TABLE, "Sum", FIVE_MINUTES),
        10,
        "Label transactions collide on a window's label item (> 10 per 5 min): raise window_shards",
    ),
)


SILENCE_ALARMS: Final[tuple[AlarmDef, ...]] = (
    # --- arrivals in each DLQ (the depth alarms above stay in ALARM while a DLQ holds anything) ---
    _dlq_arrivals_redriven("ingest-dlq-arrivals", Binding.INGEST_DLQ, Severity.PAGE, "More poison events"),
    _dlq_arrivals_redriven("feedback-dlq-arrivals", Binding.FEEDBACK_DLQ, Severity.TICKET, "More labels failed"),
    _dlq_arrivals_redriven("review-dlq-arrivals", Binding.REVIEW_DLQ, Severity.TICKET, "More review items failed"),
    _dlq_arrivals_redriven(
        "quarantine-dlq-arrivals", Binding.QUARANTINE_DLQ, Severity.TICKET, "More quarantine items failed"
    ),
    _dlq_arrivals_sent("input-rule-dlq-arrivals", Binding.INPUT_RULE_DLQ, Severity.PAGE, "More events missed ingest"),
    _dlq_arrivals_sent("label-rule-dlq-arrivals", Binding.LABEL_RULE_DLQ, Severity.TICKET, "More labels missed"),
    _dlq_arrivals_sent("drift-dlq-arrivals", Binding.DRIFT_DLQ, Severity.TICKET, "More drift runs failed"),
    # --- review and quarantine: age towards expiry, and backlog ---
    *_human_queue(Binding.REVIEW_QUEUE, "review", REVIEW_BACKLOG),
    *_human_queue(Binding.QUARANTINE_QUEUE, "quarantine", QUARANTINE_BACKLOG),
    # --- every EventBridge rule delivers ---
    _rule_failures("input-rule-failed-invocations", Binding.INPUT_RULE, Binding.INPUT_BUS, Severity.PAGE, "Events"),
    _rule_failures("label-rule-failed-invocations", Binding.LABEL_RULE, Binding.INPUT_BUS, Severity.TICKET, "Labels"),
    _rule_failures("drift-schedule-failed-invocations", Binding.DRIFT_SCHEDULE, None, Severity.TICKET, "Drift runs"),
    # --- traffic heartbeat: silence is an incident too ---
    AlarmDef(
        suffix="traffic-heartbeat",
        description=f"The classifier was not invoked for {HEARTBEAT_PERIODS * FIVE_MINUTES // 60} minutes: no "
        "events arrive (producers, the input rule or the event source mapping stopped)",
        severity=Severity.PAGE,
        threshold=1,
        comparison=Comparison.LT,
        evaluation_periods=HEARTBEAT_PERIODS,
        datapoints_to_alarm=HEARTBEAT_PERIODS,
        treat_missing_data=MissingData.BREACHING,  # no traffic publishes no datapoints at all
        metric=classifier_alias("Invocations", "Sum", FIVE_MINUTES),
        local_reason=HEARTBEAT_LOCAL_REASON,
    ),
    # --- labels that cannot be joined ---
    AlarmDef(
        suffix="feedback-unmatched-rate",
        description=f"Over {UNMATCHED_PERCENT} % of labels in an hour could not be joined to a prediction "
        "(unknown event ids or labels: a producer or the capture broke)",
        severity=Severity.TICKET,
        threshold=UNMATCHED_PERCENT,
        comparison=Comparison.GT,
        evaluation_periods=1,
        datapoints_to_alarm=1,
        treat_missing_data=MissingData.NOT_BREACHING,
        expression=f"IF(unmatched + labelled >= {MIN_LABELS}, 100 * unmatched / (unmatched + labelled), 0)",
        metrics=(
            ("unmatched", ours(mc.FEEDBACK_UNMATCHED, "Sum", 3600)),
            ("labelled", ours(mc.LABELLED_EVENTS, "Sum", 3600)),
        ),
    ),
)

# -- the canary: rollback alarms that judge the NEW version alone -------------------------------------
# The alias alarms above mix both versions: at 10 % traffic a new version had to fail over half its
# invocations to move them. These read Lambda's metrics by ExecutedVersion and ours by the model
# version (records, quarantine, review) or the function version (model-load failures, which happen
# before a model version is known). CodeDeploy rolls back while any is in ALARM; after promotion they
# keep watching the live version, as tickets (the alias alarms page).
#
# Timing (docs/deploy.md, "Canary timing"): an alarm can first fire DATAPOINTS x PERIOD after the
# new version starts failing, plus the metric's publication delay, plus one alarm evaluation cycle.
# `seconds_to_fire` is that sum; infra refuses a canary interval shorter than the longest of them.
CANARY_PERIOD_S: Final = ONE_MINUTE
CANARY_EVALUATION_PERIODS: Final = 3
CANARY_DATAPOINTS: Final = 2
CANARY_MIN_EVENTS: Final = 10  # the new version's per-minute rates need this many events to mean anything
# Publication delays, conservative: AWS/Lambda metrics land within about a minute; EMF metrics wait
# for the function's log batch to reach CloudWatch Logs and be extracted (observed 1-3 minutes).
LAMBDA_METRIC_DELAY_S: Final = 120
EMF_METRIC_DELAY_S: Final = 180
ALARM_EVALUATION_S: Final = 60  # a metric alarm evaluates once a minute
CANARY_PREFIX: Final = "canary-"


def _canary(suffix: str, description: str, threshold: float, **query: Any) -> AlarmDef:
    return AlarmDef(
        suffix=CANARY_PREFIX + suffix,
        description=f"Canary (new version alone): {description}",
        severity=Severity.TICKET,
        threshold=threshold,
        comparison=Comparison.GT,
        evaluation_periods=CANARY_EVALUATION_PERIODS,
        datapoints_to_alarm=CANARY_DATAPOINTS,
        treat_missing_data=MissingData.NOT_BREACHING,
        rollback=True,
        **query,
    )


def _rate(part: mc.MetricDef, whole: mc.MetricDef) -> dict[str, Any]:
    return {
        "expression": f"IF(whole >= {CANARY_MIN_EVENTS}, 100 * part / whole, 0)",
        "metrics": (
            ("part", ours(part, "Sum", CANARY_PERIOD_S)),
            ("whole", ours(whole, "Sum", CANARY_PERIOD_S)),
        ),
    }


CANARY_ALARMS: Final[tuple[AlarmDef, ...]] = (
    _canary(
        "error-rate",
        "over 5 % of its invocations failed as a whole (crash, timeout, init failure)",
        5,
        expression="IF(invocations > 0, 100 * errors / invocations, 0)",
        metrics=(
            ("errors", classifier_version("Errors", "Sum", CANARY_PERIOD_S)),
            ("invocations", classifier_version("Invocations", "Sum", CANARY_PERIOD_S)),
        ),
    ),
    _canary(
        "record-failure-rate",
        "over 5 % of the records it received failed back to SQS (per-record failures are not Lambda errors)",
        5,
        **_rate(mc.PUBLISH_FAILURES, mc.EVENTS_RECEIVED),
    ),
    _canary(
        "quarantine-rate",
        "over 5 % of its events were quarantined",
        5,
        **_rate(mc.EVENTS_QUARANTINED, mc.EVENTS_RECEIVED),
    ),
    _canary(
        "review-rate",
        "over 30 % of its classified events went to review",
        30,
        **_rate(mc.EVENTS_REVIEW, mc.EVENTS_CLASSIFIED),
    ),
    _canary(
        "p99-duration",
        "p99 batch duration over 2 s",
        2000,
        metric=classifier_version("Duration", "p99", CANARY_PERIOD_S),
    ),
    AlarmDef(
        suffix=CANARY_PREFIX + "model-load-failure",
        description="Canary (new version alone): a container of the new version could not load or verify its model",
        severity=Severity.TICKET,
        threshold=0,
        comparison=Comparison.GT,
        evaluation_periods=1,
        datapoints_to_alarm=1,
        treat_missing_data=MissingData.NOT_BREACHING,
        metric=ours(mc.MODEL_LOAD_FAILURES_BY_VERSION, "Sum", CANARY_PERIOD_S),
        rollback=True,
    ),
)


def seconds_to_fire(alarm: AlarmDef) -> int:
    """Earliest an alarm can reach ALARM after its signal starts: datapoints x period + delay + evaluation."""
    delay = max(EMF_METRIC_DELAY_S if q.namespace == mc.NAMESPACE else LAMBDA_METRIC_DELAY_S for q in alarm.queries())
    return alarm.datapoints_to_alarm * alarm.period_s + delay + ALARM_EVALUATION_S


def canary_seconds_needed() -> int:
    """The shortest canary interval in which every rollback alarm can fire."""
    return max(seconds_to_fire(a) for a in ALARMS if a.rollback)


ALARMS: Final[tuple[AlarmDef, ...]] = (
    # --- dead-letter queues: any message is an incident or a ticket ---
    _dlq_depth("ingest-dlq-depth", Binding.INGEST_DLQ, Severity.PAGE, "Poison events left the ingest queue"),
    _dlq_depth("input-rule-dlq-depth", Binding.INPUT_RULE_DLQ, Severity.PAGE, "EventBridge could not reach ingest"),
    _dlq_depth("feedback-dlq-depth", Binding.FEEDBACK_DLQ, Severity.TICKET, "Labels failed to process"),
    _dlq_depth("label-rule-dlq-depth", Binding.LABEL_RULE_DLQ, Severity.TICKET, "EventBridge could not queue labels"),
    _dlq_depth("review-dlq-depth", Binding.REVIEW_DLQ, Severity.TICKET, "Review consumers gave up on items"),
    _dlq_depth("quarantine-dlq-depth", Binding.QUARANTINE_DLQ, Severity.TICKET, "Quarantine consumers gave up"),
    _dlq_depth("drift-dlq-depth", Binding.DRIFT_DLQ, Severity.TICKET, "A drift run was not delivered or failed"),
    # --- ingest backlog ---
    AlarmDef(
        suffix="ingest-oldest-message-age",
        description="The oldest ingest message waited over 10 minutes: the classifier is not keeping up",
        severity=Severity.PAGE,
        threshold=600,
        comparison=Comparison.GT,
        evaluation_periods=3,
        datapoints_to_alarm=3,
        treat_missing_data=MissingData.NOT_BREACHING,
        metric=sqs("ApproximateAgeOfOldestMessage", Binding.INGEST_QUEUE, "Maximum", ONE_MINUTE),
    ),
    # --- classifier health (alias metrics: both versions during a canary; the canary's own are below) ---
    AlarmDef(
        suffix="classifier-error-rate",
        description="Over 5 % of classifier invocations failed as a whole (crash or timeout, not per-record)",
        severity=Severity.PAGE,
        threshold=5,
        comparison=Comparison.GT,
        evaluation_periods=3,
        datapoints_to_alarm=2,
        treat_missing_data=MissingData.NOT_BREACHING,
        expression="IF(invocations > 0, 100 * errors / invocations, 0)",
        metrics=(
            ("errors", classifier_alias("Errors", "Sum", ONE_MINUTE)),
            ("invocations", classifier_alias("Invocations", "Sum", ONE_MINUTE)),
        ),
    ),
    AlarmDef(
        suffix="classifier-throttles",
        description="The classifier is throttled (account or reserved concurrency exhausted)",
        severity=Severity.TICKET,
        threshold=0,
        comparison=Comparison.GT,
        evaluation_periods=5,
        datapoints_to_alarm=3,
        treat_missing_data=MissingData.NOT_BREACHING,
        metric=classifier_alias("Throttles", "Sum", ONE_MINUTE),
    ),
    AlarmDef(
        suffix="classifier-p99-duration",
        description="p99 batch duration over 2 s (a batch of 10 normally takes tens of milliseconds)",
        severity=Severity.PAGE,
        threshold=2000,
        comparison=Comparison.GT,
        evaluation_periods=5,
        datapoints_to_alarm=3,
        treat_missing_data=MissingData.NOT_BREACHING,
        metric=classifier_alias("Duration", "p99", ONE_MINUTE),
    ),
    AlarmDef(
        suffix="classifier-pc-spillover",
        description="Invocations spilled over provisioned concurrency onto cold containers",
        severity=Severity.TICKET,
        threshold=0,
        comparison=Comparison.GT,
        evaluation_periods=5,
        datapoints_to_alarm=3,
        treat_missing_data=MissingData.NOT_BREACHING,
        metric=classifier_alias("ProvisionedConcurrencySpilloverInvocations", "Sum", ONE_MINUTE),
        requires_provisioned_concurrency=True,
    ),
    AlarmDef(
        suffix="model-load-failure",
        description="A classifier container could not load or verify the model package",
        severity=Severity.PAGE,
        threshold=0,
        comparison=Comparison.GT,
        evaluation_periods=1,
        datapoints_to_alarm=1,
        treat_missing_data=MissingData.NOT_BREACHING,
        metric=ours(mc.MODEL_LOAD_FAILURES, "Sum", ONE_MINUTE),
    ),
    # --- model behaviour ---
    AlarmDef(
        suffix="quarantine-rate",
        description="Over 5 % of events are quarantined as invalid (a producer or a contract change)",
        severity=Severity.TICKET,
        threshold=5,
        comparison=Comparison.GT,
        evaluation_periods=5,
        datapoints_to_alarm=3,
        treat_missing_data=MissingData.NOT_BREACHING,
        expression=f"IF(received >= {MIN_EVENTS}, 100 * quarantined / received, 0)",
        metrics=(
            ("quarantined", ours(mc.EVENTS_QUARANTINED, "Sum", ONE_MINUTE)),
            ("received", ours(mc.EVENTS_RECEIVED, "Sum", ONE_MINUTE)),
        ),
    ),
    AlarmDef(
        suffix="review-rate-spike",
        description="Over 30 % of classified events go to human review (low confidence: drift or a bad model)",
        severity=Severity.TICKET,
        threshold=30,
        comparison=Comparison.GT,
        evaluation_periods=5,
        datapoints_to_alarm=3,
        treat_missing_data=MissingData.NOT_BREACHING,
        expression=f"IF(classified >= {MIN_EVENTS}, 100 * review / classified, 0)",
        metrics=(
            ("review", ours(mc.EVENTS_REVIEW, "Sum", ONE_MINUTE)),
            ("classified", ours(mc.EVENTS_CLASSIFIED, "Sum", ONE_MINUTE)),
        ),
    ),
    AlarmDef(
        suffix="publish-failures",
        description="Results could not be published and were handed back to SQS for retry",
        severity=Severity.TICKET,
        threshold=0,
        comparison=Comparison.GT,
        evaluation_periods=5,
        datapoints_to_alarm=3,
        treat_missing_data=MissingData.NOT_BREACHING,
        metric=ours(mc.PUBLISH_FAILURES, "Sum", ONE_MINUTE),
    ),
    # --- drift (one datapoint per closed window) ---
    AlarmDef(
        suffix="drift-page",
        description="A closed window drifted past the page thresholds (PSI >= 0.25 or equivalent)",
        severity=Severity.PAGE,
        threshold=2,
        comparison=Comparison.GTE,
        evaluation_periods=1,
        datapoints_to_alarm=1,
        treat_missing_data=MissingData.NOT_BREACHING,
        metric=ours(mc.DRIFT_SEVERITY, "Maximum", FIVE_MINUTES, per_window=True),
    ),
    AlarmDef(
        suffix="drift-warn",
        description="A closed window drifted past the warn thresholds (PSI >= 0.1 or equivalent)",
        severity=Severity.TICKET,
        threshold=1,
        comparison=Comparison.GTE,
        evaluation_periods=1,
        datapoints_to_alarm=1,
        treat_missing_data=MissingData.NOT_BREACHING,
        metric=ours(mc.DRIFT_SEVERITY, "Maximum", FIVE_MINUTES, per_window=True),
    ),
    # --- accuracy SLO: multi-window burn rates, combined by the composites below ---
    _burn_rate("accuracy-burn-fast-long", 3600, FAST_BURN, Severity.PAGE, "Fast burn (long window)"),
    _burn_rate("accuracy-burn-fast-short", 300, FAST_BURN, Severity.PAGE, "Fast burn (short window)"),
    _burn_rate("accuracy-burn-slow-long", 6 * 3600, SLOW_BURN, Severity.TICKET, "Slow burn (long window)"),
    _burn_rate("accuracy-burn-slow-short", 1800, SLOW_BURN, Severity.TICKET, "Slow burn (short window)"),
    # --- the companion functions ---
    AlarmDef(
        suffix="drift-function-errors",
        description="The drift function failed (its report and drift metrics are missing)",
        severity=Severity.TICKET,
        threshold=0,
        comparison=Comparison.GT,
        evaluation_periods=1,
        datapoints_to_alarm=1,
        treat_missing_data=MissingData.NOT_BREACHING,
        metric=lambda_function("Errors", Binding.DRIFT_FUNCTION, "Sum", FIVE_MINUTES),
    ),
    AlarmDef(
        suffix="feedback-function-errors",
        description="The feedback function failed whole batches",
        severity=Severity.TICKET,
        threshold=0,
        comparison=Comparison.GT,
        evaluation_periods=1,
        datapoints_to_alarm=1,
        treat_missing_data=MissingData.NOT_BREACHING,
        metric=lambda_function("Errors", Binding.FEEDBACK_FUNCTION, "Sum", FIVE_MINUTES),
    ),
    *SILENCE_ALARMS,
    *CANARY_ALARMS,
    *TABLE_ALARMS,
)

COMPOSITES: Final[tuple[CompositeAlarmDef, ...]] = (
    CompositeAlarmDef(
        suffix="accuracy-burn-fast",
        description=f"Labelled accuracy far below the {ACCURACY_SLO:.0%} objective for the last hour and now",
        severity=Severity.PAGE,
        all_of=("accuracy-burn-fast-long", "accuracy-burn-fast-short"),
    ),
    CompositeAlarmDef(
        suffix="accuracy-burn-slow",
        description=f"Labelled accuracy below the {ACCURACY_SLO:.0%} objective for 6 hours and still",
        severity=Severity.TICKET,
        all_of=("accuracy-burn-slow-long", "accuracy-burn-slow-short"),
    ),
)


def by_suffix() -> dict[str, AlarmDef]:
    return {a.suffix: a for a in ALARMS}


def applicable(provisioned_concurrency: bool) -> tuple[AlarmDef, ...]:
    """The alarms a deployment has: spillover only exists with provisioned concurrency."""
    return tuple(a for a in ALARMS if provisioned_concurrency or not a.requires_provisioned_concurrency)


LOCAL_FUNCTION_VERSION: Final = "$LATEST"  # what the local runtime's invocations report as ExecutedVersion


def resolve_bindings(
    names: ResourceNames, model_version: str, function_version: str = LOCAL_FUNCTION_VERSION
) -> dict[Binding, str]:
    """Every placeholder for one system: a resource's name is its `Binding` attribute on `names`.

    ``function_version`` is the classifier version the canary alarms judge: infra passes the version
    the deploy publishes (a CloudFormation token); the local runtime's invocations run "$LATEST".
    """
    values = {Binding.MODEL_VERSION: model_version, Binding.CLASSIFIER_VERSION: function_version}
    for binding in Binding:
        if binding not in values:
            values[binding] = getattr(names, binding.value)
    return values


def _check() -> None:
    """Import-time sanity: unique suffixes, composites refer to existing non-notifying alarms."""
    suffixes = [a.suffix for a in ALARMS] + [c.suffix for c in COMPOSITES]
    if len(set(suffixes)) != len(suffixes):
        raise ValueError("alarm suffixes must be unique")
    known = by_suffix()
    for composite in COMPOSITES:
        for part in composite.all_of:
            if part not in known or known[part].notify:
                raise ValueError(f"{composite.suffix}: {part} must be a non-notifying AlarmDef")


_check()
