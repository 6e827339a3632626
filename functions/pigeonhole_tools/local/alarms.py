"""Evaluate Pigeonhole's alarms locally, from the same definitions the CDK stack deploys.

moto stores metrics but never evaluates alarms or fires their actions, so the local runtime does it:
every `AlarmDef` / `CompositeAlarmDef` of `pigeonhole.alarms` (names, thresholds, comparison, period,
evaluation periods, datapoints to alarm, treat-missing-data, the metric-math subset) is evaluated
against the datapoints read back from the emulator's CloudWatch (`GetMetricData`). A transition into
ALARM of a notifying alarm publishes to the local on-call topic (page) or ticket topic (ticket), each
subscribed by an SQS queue so the demo can read the notification back.

Why one module: it is one emulation (CloudWatch alarm evaluation). The metric-math subset, one
alarm's decision, notifications, the CloudWatch reader and the evaluator sit under their own
banners; those banners are the seams if it grows further.

Emulation choices (documented in docs/local.md):

* The evaluation at time ``at`` looks at the ``evaluation_periods`` periods aligned on the period
  length, the last one being the period that contains ``at`` (CloudWatch also evaluates the latest,
  possibly partial, period).
* Metric math: a period has a value only where every metric the expression names has one (metric
  math aligns series on timestamps); ``IF`` evaluates only the branch it takes; dividing by zero gives
  no value.
* Missing data: ``notBreaching`` / ``breaching`` fill the gap; ``missing`` / ``ignore`` judge the
  present datapoints only (ALARM when breaching >= min(datapoints_to_alarm, present)); all missing:
  ``missing`` -> INSUFFICIENT_DATA, ``ignore`` -> the state is kept.
* Alarms on AWS service namespaces (AWS/SQS, AWS/Lambda) are evaluated only where the local runtime
  emits those metrics from what it observes (`service_metrics.py`: the poller's invocations, the
  queues' attributes) and the caller says so (`not_evaluated`); the rest are *not evaluated*, each
  with its reason. By default (no `not_evaluated` given) every AWS-namespace alarm is not evaluated.
* Percentiles (``pNN``): moto's GetMetricData has none; `CloudWatchSource` computes them from the
  values the forwarder put (its `DatumLedger`), linearly interpolated, per period.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

import boto3
from botocore.config import Config

from pigeonhole import alarms as defs
from pigeonhole import metrics_catalog as mc
from pigeonhole.naming import ResourceNames
from pigeonhole_tools.local.emulator import DEFAULT_REGION, FAKE_CREDENTIAL, require_loopback
from pigeonhole_tools.local.metrics import DatumLedger
from pigeonhole_tools.local.poller import percentile

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_cloudwatch.type_defs import MetricDataQueryTypeDef
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient

NOT_EVALUATED_REASON = "not evaluated locally (no such metric in the emulator)"
LOCAL_NAMESPACES = frozenset({mc.NAMESPACE})


class State(StrEnum):
    OK = "OK"
    ALARM = "ALARM"
    INSUFFICIENT_DATA = "INSUFFICIENT_DATA"
    NOT_EVALUATED = "NOT_EVALUATED"  # local only: the metric cannot exist in the emulator


Series = dict[int, float]  # period start (epoch seconds) -> value


class MetricSource(Protocol):
    """Where datapoints come from: the emulator's CloudWatch, or a dict in unit tests."""

    def series(
        self, query: defs.MetricQuery, dimensions: Mapping[str, str], period: int, start: int, end: int
    ) -> Series:
        """Values of `query` per period start in ``[start, end)``, only for periods that have data."""
        ...


# -- metric math (the subset pigeonhole.alarms documents) --------------------------------------------
_TOKEN = re.compile(r"\s*(?:(\d+\.\d*|\.\d+|\d+)|([A-Za-z_][A-Za-z_0-9]*)|(>=|<=|[-+*/(),<>]))")


class ExpressionError(ValueError):
    pass


def tokenize(expression: str) -> list[str]:
    tokens: list[str] = []
    pos = 0
    text = expression.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise ExpressionError(f"cannot read {text[pos:]!r} in {expression!r}")
        tokens.append(next(g for g in m.groups() if g is not None))
        pos = m.end()
    return tokens


Node = tuple[Any, ...]


class _Parser:
    """Recursive descent: comparison < additive < multiplicative < unary < atom (numbers, ids, IF, parens)."""

    def __init__(self, tokens: Sequence[str]) -> None:
        self.tokens = list(tokens)
        self.i = 0

    def peek(self) -> str | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        tok = self.peek()
        if tok is None or (expected is not None and tok != expected):
            raise ExpressionError(f"expected {expected or 'more'} at token {self.i}, got {tok!r}")
        self.i += 1
        return tok

    def parse(self) -> Node:
        node = self.comparison()
        if self.peek() is not None:
            raise ExpressionError(f"unexpected {self.peek()!r}")
        return node

    def comparison(self) -> Node:
        node = self.additive()
        while self.peek() in (">", ">=", "<", "<="):
            op = self.take()
            node = ("bin", op, node, self.additive())
        return node

    def additive(self) -> Node:
        node = self.multiplicative()
        while self.peek() in ("+", "-"):
            op = self.take()
            node = ("bin", op, node, self.multiplicative())
        return node

    def multiplicative(self) -> Node:
        node = self.unary()
        while self.peek() in ("*", "/"):
            op = self.take()
            node = ("bin", op, node, self.unary())
        return node

    def unary(self) -> Node:
        if self.peek() == "-":
            self.take()
            return ("neg", self.unary())
        return self.atom()

    def atom(self) -> Node:
        tok = self.take()
        if tok == "(":
            node = self.comparison()
            self.take(")")
            return node
        if tok[0].isdigit() or tok[0] == ".":
            return ("num", float(tok))
        if tok == "IF":
            self.take("(")
            cond = self.comparison()
            self.take(",")
            then = self.comparison()
            self.take(",")
            other = self.comparison()
            self.take(")")
            return ("if", cond, then, other)
        if tok[0].isalpha() or tok[0] == "_":
            return ("id", tok)
        raise ExpressionError(f"unexpected {tok!r}")


def parse_expression(expression: str) -> Node:
    return _Parser(tokenize(expression)).parse()


def expression_ids(node: Node) -> set[str]:
    kind = node[0]
    if kind == "id":
        return {node[1]}
    if kind == "num":
        return set()
    return set().union(*(expression_ids(child) for child in node[1:] if isinstance(child, tuple)))


def _apply(op: str, a: float, b: float) -> float | None:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "/":
        return None if b == 0 else a / b
    return float({">": a > b, ">=": a >= b, "<": a < b, "<=": a <= b}[op])


def evaluate_node(node: Node, values: Mapping[str, float]) -> float | None:
    """Value of the expression for one period; None when it has none (e.g. division by zero)."""
    kind = node[0]
    if kind == "num":
        return float(node[1])
    if kind == "id":
        if node[1] not in values:
            raise ExpressionError(f"unknown metric id {node[1]!r}")
        return values[node[1]]
    if kind == "neg":
        v = evaluate_node(node[1], values)
        return None if v is None else -v
    if kind == "if":
        cond = evaluate_node(node[1], values)
        if cond is None:
            return None
        return evaluate_node(node[2] if cond != 0 else node[3], values)
    a, b = evaluate_node(node[2], values), evaluate_node(node[3], values)
    return None if a is None or b is None else _apply(node[1], a, b)


def evaluate_expression(expression: str, series: Mapping[str, Series]) -> Series:
    """The expression per period, where every named metric has a datapoint."""
    node = parse_expression(expression)
    ids = expression_ids(node)
    missing = ids - set(series)
    if missing:
        raise ExpressionError(f"expression names metrics without a query: {sorted(missing)}")
    common = set.intersection(*(set(series[i]) for i in ids)) if ids else set()
    out: Series = {}
    for t in sorted(common):
        value = evaluate_node(node, {i: series[i][t] for i in ids})
        if value is not None and math.isfinite(value):
            out[t] = value
    return out


# -- one alarm ----------------------------------------------------------------------------------------
def breaches(comparison: defs.Comparison, value: float, threshold: float) -> bool:
    return {
        defs.Comparison.GT: value > threshold,
        defs.Comparison.GTE: value >= threshold,
        defs.Comparison.LT: value < threshold,
        defs.Comparison.LTE: value <= threshold,
    }[comparison]


_SYMBOLS = {defs.Comparison.GT: ">", defs.Comparison.GTE: ">=", defs.Comparison.LT: "<", defs.Comparison.LTE: "<="}


def decide(
    alarm: defs.AlarmDef, values: Sequence[float | None], previous: State = State.INSUFFICIENT_DATA
) -> tuple[State, str]:
    """The state for the last `evaluation_periods` values (oldest first, None = missing) and why."""
    m, n = alarm.datapoints_to_alarm, alarm.evaluation_periods
    if len(values) != n:
        raise ValueError(f"{alarm.suffix}: expected {n} values, got {len(values)}")
    treat = alarm.treat_missing_data
    shown = ", ".join("-" if v is None else f"{v:g}" for v in values)
    op = _SYMBOLS[alarm.comparison]
    if treat in (defs.MissingData.NOT_BREACHING, defs.MissingData.BREACHING):
        flags = [breaches(alarm.comparison, v, alarm.threshold) if v is not None else None for v in values]
        fill = treat == defs.MissingData.BREACHING
        count = sum(1 for f in flags if (fill if f is None else f))
        need = m
    else:
        present = [v for v in values if v is not None]
        if not present:
            if treat == defs.MissingData.IGNORE:
                return previous, f"no datapoints in {n} period(s): state kept (ignore)"
            return State.INSUFFICIENT_DATA, f"no datapoints in {n} period(s)"
        count = sum(1 for v in present if breaches(alarm.comparison, v, alarm.threshold))
        need = min(m, len(present))
    state = State.ALARM if count >= need else State.OK
    reason = f"[{shown}]: {count} of {n} breaching (value {op} {alarm.threshold:g}; {m} needed, missing={treat})"
    return state, reason


@dataclass
class AlarmResult:
    name: str
    suffix: str
    severity: defs.Severity
    state: State
    previous: State
    reason: str
    values: list[float | None] = field(default_factory=list)
    notify: bool = True

    @property
    def went_to_alarm(self) -> bool:
        return self.state == State.ALARM and self.previous != State.ALARM


def evaluation_periods(at: int, period: int, count: int) -> list[int]:
    """Starts of the `count` aligned periods ending with the one that contains `at`, oldest first."""
    last = at // period * period
    return [last - (count - 1 - k) * period for k in range(count)]


def local_bindings(names: ResourceNames, model_version: str) -> dict[defs.Binding, str]:
    """Every binding placeholder, named as infra names it (`pigeonhole.naming` is the one source)."""
    return defs.resolve_bindings(names, model_version)


def evaluable(alarm: defs.AlarmDef) -> bool:
    """Only our own namespace exists in the emulator; AWS service metrics are never published locally."""
    return all(q.namespace in LOCAL_NAMESPACES for q in alarm.queries())


# -- notifications ------------------------------------------------------------------------------------
class Notifier(Protocol):
    def notify(self, result: AlarmResult, description: str, at: datetime) -> None: ...


@dataclass(frozen=True)
class AlarmTopics:
    """The local on-call and ticket topics, each with a subscribed queue the demo reads back."""

    oncall_topic_arn: str
    ticket_topic_arn: str
    oncall_queue_url: str
    ticket_queue_url: str

    def topic_for(self, severity: defs.Severity) -> str:
        return self.oncall_topic_arn if severity == defs.Severity.PAGE else self.ticket_topic_arn

    def queue_for(self, severity: defs.Severity) -> str:
        return self.oncall_queue_url if severity == defs.Severity.PAGE else self.ticket_queue_url


def sns_client(endpoint: str, region: str = DEFAULT_REGION, max_attempts: int = 3) -> SNSClient:
    """An SNS client bound to the moto endpoint, with fake credentials (never AWS)."""
    session = boto3.session.Session(
        aws_access_key_id=FAKE_CREDENTIAL,
        aws_secret_access_key=FAKE_CREDENTIAL,
        aws_session_token=FAKE_CREDENTIAL,
        region_name=region,
    )
    config = Config(retries={"max_attempts": max_attempts, "mode": "standard"}, connect_timeout=3, read_timeout=30)
    return session.client("sns", endpoint_url=require_loopback(endpoint), config=config)


def provision_alarm_topics(sns: SNSClient, sqs: SQSClient, names: ResourceNames) -> AlarmTopics:
    """Create `<prefix>-oncall` and `<prefix>-tickets` in moto, each subscribed by a queue of the same name."""
    arns: list[str] = []
    urls: list[str] = []
    for topic in (names.oncall_topic, names.ticket_topic):
        topic_arn = sns.create_topic(Name=topic)["TopicArn"]
        url = sqs.create_queue(QueueName=f"{topic}-subscriber")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "sns.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
                }
            ],
        }
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(policy)})
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
        arns.append(topic_arn)
        urls.append(url)
    return AlarmTopics(arns[0], arns[1], urls[0], urls[1])


def alarm_message(result: AlarmResult, description: str, at: datetime) -> dict[str, Any]:
    """The JSON CloudWatch sends to SNS on a state change (the fields a pager integration reads)."""
    return {
        "AlarmName": result.name,
        "AlarmDescription": description,
        "NewStateValue": result.state.value,
        "OldStateValue": result.previous.value,
        "NewStateReason": result.reason,
        "StateChangeTime": at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "Severity": result.severity.value,
        "Emulated": True,
    }


class SnsNotifier:
    """Publishes ALARM transitions to the topic of the alarm's severity."""

    def __init__(self, sns: SNSClient, topics: AlarmTopics) -> None:
        self._sns = sns
        self._topics = topics

    def notify(self, result: AlarmResult, description: str, at: datetime) -> None:
        self._sns.publish(
            TopicArn=self._topics.topic_for(result.severity),
            Subject=f'ALARM: "{result.name}"'[:100],
            Message=json.dumps(alarm_message(result, description, at)),
        )


def read_notifications(sqs: SQSClient, queue_url: str) -> list[dict[str, Any]]:
    """Consume every notification in a subscriber queue (SNS envelope unwrapped)."""
    out: list[dict[str, Any]] = []
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
            "Messages", []
        )
        if not messages:
            return out
        for m in messages:
            body = json.loads(m["Body"])
            inner = body.get("Message") if isinstance(body, dict) and "TopicArn" in body else None
            out.append(json.loads(inner) if isinstance(inner, str) else body)
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
        )


# -- reading CloudWatch -----------------------------------------------------------------------------
_PERCENTILE = re.compile(r"^p(\d{1,2}(?:\.\d+)?)$")


class UnsupportedStatisticError(ValueError):
    """A percentile was asked of a source without a ledger: moto cannot compute it."""


class CloudWatchSource:
    """Datapoints from the emulator's CloudWatch via GetMetricData (one query per call: moto's is simple).

    Percentile statistics come from `ledger` (the values the local forwarder put): moto has none.
    """

    def __init__(self, client: CloudWatchClient, ledger: DatumLedger | None = None) -> None:
        self._client = client
        self._ledger = ledger

    def _percentiles(
        self, query: defs.MetricQuery, dimensions: Mapping[str, str], q: float, period: int, start: int, end: int
    ) -> Series:
        if self._ledger is None:
            raise UnsupportedStatisticError(f"{query.name} {query.statistic}: moto has no percentiles, no ledger")
        by_period: dict[int, list[float]] = {}
        values = self._ledger.values(
            query.namespace,
            query.name,
            dimensions,
            datetime.fromtimestamp(start, tz=UTC),
            datetime.fromtimestamp(end, tz=UTC),
        )
        for stamp, value in values:
            by_period.setdefault(int(stamp.timestamp()) // period * period, []).append(value)
        return {t: percentile(vs, q) for t, vs in by_period.items()}

    def series(
        self, query: defs.MetricQuery, dimensions: Mapping[str, str], period: int, start: int, end: int
    ) -> Series:
        pct = _PERCENTILE.match(query.statistic)
        if pct is not None:
            return self._percentiles(query, dimensions, float(pct.group(1)), period, start, end)
        request: MetricDataQueryTypeDef = {
            "Id": "m0",
            "MetricStat": {
                "Metric": {
                    "Namespace": query.namespace,
                    "MetricName": query.name,
                    "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
                },
                "Period": period,
                "Stat": query.statistic,
            },
            "ReturnData": True,
        }
        out: Series = {}
        response = self._client.get_metric_data(
            MetricDataQueries=[request],
            StartTime=datetime.fromtimestamp(start, tz=UTC),
            EndTime=datetime.fromtimestamp(end, tz=UTC),
        )
        for result in response.get("MetricDataResults", []):
            for stamp, value in zip(result.get("Timestamps", []), result.get("Values", []), strict=False):
                out[int(stamp.timestamp()) // period * period] = float(value)
        return out


# -- the evaluator ----------------------------------------------------------------------------------
class LocalAlarms:
    """Keeps every alarm's state across evaluations and notifies on transitions into ALARM."""

    def __init__(
        self,
        source: MetricSource,
        bindings: Mapping[defs.Binding, str],
        *,
        prefix: str,
        window_seconds: int,
        notifier: Notifier | None = None,
        alarms: Sequence[defs.AlarmDef] = defs.applicable(provisioned_concurrency=True),
        composites: Sequence[defs.CompositeAlarmDef] = defs.COMPOSITES,
        not_evaluated: Mapping[str, str] | None = None,
    ) -> None:
        """`not_evaluated`: suffix -> reason for the alarms whose metrics the emulator lacks; default: every
        alarm on an AWS namespace (`evaluable`), with `NOT_EVALUATED_REASON`."""
        self.source = source
        self.bindings = dict(bindings)
        self.prefix = prefix
        self.window_seconds = window_seconds
        self.notifier = notifier
        self.alarms = tuple(alarms)
        self.composites = tuple(composites)
        self.states: dict[str, State] = {}
        self.notified: list[AlarmResult] = []
        if not_evaluated is None:
            not_evaluated = {a.suffix: NOT_EVALUATED_REASON for a in self.alarms if not evaluable(a)}
        self.not_evaluated = dict(not_evaluated)

    def _values(self, alarm: defs.AlarmDef, at: int) -> list[float | None]:
        query0 = alarm.queries()[0]
        period = query0.period(self.window_seconds)
        starts = evaluation_periods(at, period, alarm.evaluation_periods)
        begin, end = starts[0], starts[-1] + period

        def fetch(q: defs.MetricQuery) -> Series:
            return self.source.series(q, q.resolve(self.bindings), period, begin, end)

        if alarm.metric is not None:
            series = fetch(alarm.metric)
        else:
            assert alarm.expression is not None
            series = evaluate_expression(alarm.expression, {i: fetch(q) for i, q in alarm.metrics})
        return [series.get(s) for s in starts]

    def evaluate_alarm(self, alarm: defs.AlarmDef, at: int) -> AlarmResult:
        """One alarm at epoch second `at` (does not notify; `evaluate` does)."""
        name = defs.alarm_name(self.prefix, alarm.suffix)
        previous = self.states.get(alarm.suffix, State.INSUFFICIENT_DATA)
        why = self.not_evaluated.get(alarm.suffix)
        if why is not None:
            return AlarmResult(
                name,
                alarm.suffix,
                alarm.severity,
                State.NOT_EVALUATED,
                previous,
                why,
                [],
                alarm.notify,
            )
        values = self._values(alarm, at)
        state, reason = decide(alarm, values, previous)
        return AlarmResult(name, alarm.suffix, alarm.severity, state, previous, reason, values, alarm.notify)

    def evaluate(self, at: datetime) -> list[AlarmResult]:
        """Every alarm and composite at `at`; transitions into ALARM of notifying alarms are published."""
        epoch = int(at.timestamp())
        results = [self.evaluate_alarm(a, epoch) for a in self.alarms]
        by_suffix = {r.suffix: r for r in results}
        for comp in self.composites:
            parts = [by_suffix.get(p) for p in comp.all_of]
            previous = self.states.get(comp.suffix, State.INSUFFICIENT_DATA)
            if any(p is None or p.state == State.NOT_EVALUATED for p in parts):
                state, reason = State.NOT_EVALUATED, NOT_EVALUATED_REASON
            else:
                alarmed = [p.suffix for p in parts if p is not None and p.state == State.ALARM]
                state = State.ALARM if len(alarmed) == len(parts) else State.OK
                reason = f"ALARM({') AND ALARM('.join(comp.all_of)}): {len(alarmed)} of {len(parts)} in ALARM"
            name = defs.alarm_name(self.prefix, comp.suffix)
            results.append(AlarmResult(name, comp.suffix, comp.severity, state, previous, reason, [], True))
        # The description CloudWatch would send: severity, meaning and the runbook entry's link.
        descriptions = {a.suffix: defs.alarm_description(a) for a in self.alarms} | {
            c.suffix: defs.alarm_description(c) for c in self.composites
        }
        for r in results:
            self.states[r.suffix] = r.state
            if r.notify and r.went_to_alarm:
                self.notified.append(r)
                if self.notifier is not None:
                    self.notifier.notify(r, descriptions[r.suffix], at)
        return results


def notification_line(message: Mapping[str, Any]) -> str:
    """`PAGE: <alarm> ...` / `TICKET: <alarm> ...`: how the demo prints what the subscriber queue got."""
    kind = "PAGE" if message.get("Severity") == defs.Severity.PAGE.value else "TICKET"
    return (
        f"{kind}: {message.get('AlarmName')} {message.get('OldStateValue')} -> {message.get('NewStateValue')} "
        f"at {message.get('StateChangeTime')}: {message.get('AlarmDescription')} ({message.get('NewStateReason')})"
    )
