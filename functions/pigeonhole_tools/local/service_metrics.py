"""What AWS Lambda and SQS would publish, emitted by the local runtime into the emulator's CloudWatch.

In AWS the services publish `AWS/Lambda` and `AWS/SQS` metrics themselves; moto publishes none, so
the DLQ, backlog and classifier-health alarms had nothing to read locally. This module plays the
two services from what the local runtime really observes:

* Lambda: one datapoint per poller invocation (the event source mapping, emulated), under the three
  dimension sets Lambda uses for an alias invocation: ``FunctionName``; ``FunctionName, Resource``
  (``<function>:<alias>``); ``FunctionName, Resource, ExecutedVersion``. ``Invocations`` = 1;
  ``Errors`` = 1 when the handler raised or timed out (a partial batch failure or an invalid batch
  response is not a Lambda error); ``Duration`` = the poller's measurement around the handler call
  (ms); ``Throttles`` = 0 — the poller invokes one batch at a time and models no concurrency limit,
  so nothing can be throttled locally (a true 0, not a measurement of AWS's limits).
* SQS: sampled queue attributes per ``QueueName``: ``ApproximateNumberOfMessagesVisible``,
  ``...NotVisible``, ``...Delayed`` (moto's attributes, as GetQueueAttributes returns them) and
  ``ApproximateAgeOfOldestMessage``. moto has no attribute for the age, so it is computed from the
  messages' ``SentTimestamp`` as moto holds them (the server runs in this process): now minus the
  oldest non-delayed message's send time, in-flight messages included. AWS's rule that a message
  received three or more times stops counting is not modelled (see docs/local.md).

Dimension order matters locally: moto 5.2.5 matches a query's dimensions against a datum's only if
both list them in the same order (docs/local.md, moto findings), so datums use the alarm definitions'
order (``FunctionName`` before ``Resource``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pigeonhole import alarms as defs
from pigeonhole_tools.local.emulator import ALIAS_NAME, DEFAULT_REGION, LocalResources
from pigeonhole_tools.local.metrics import Datum, MetricForwarder
from pigeonhole_tools.local.poller import DEFAULT_ACCOUNT, Invocation

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger(__name__)

DEFAULT_EXECUTED_VERSION = "$LATEST"  # the poller's LambdaContext.function_version: no published version locally
DEFAULT_SAMPLE_SECONDS = 10.0  # AWS publishes SQS metrics once a minute; sampling more often only sharpens Maximum
QUEUE_COUNT_ATTRIBUTES = {
    "ApproximateNumberOfMessagesVisible": "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible": "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed": "ApproximateNumberOfMessagesDelayed",
}
AGE_METRIC = "ApproximateAgeOfOldestMessage"

# Why an alarm stays "not evaluated" locally (reasons shown by the demo and docs/local.md).
REASON_NO_PC = "no provisioned concurrency locally: one in-process handler, nothing to spill over"
REASON_FUNCTIONS: Mapping[defs.Binding, str] = {
    defs.Binding.DRIFT_FUNCTION: "the drift function is not invoked as a Lambda locally (the demo calls run_drift)",
    defs.Binding.FEEDBACK_FUNCTION: "the feedback function is not part of the local runtime",
}
REASON_NO_QUEUE = "the queue is not provisioned locally"


# -- Lambda ------------------------------------------------------------------------------------------
def lambda_dimension_sets(
    function_name: str, alias: str = ALIAS_NAME, executed_version: str = DEFAULT_EXECUTED_VERSION
) -> list[tuple[tuple[str, str], ...]]:
    """The dimension sets Lambda publishes an alias invocation under (in the alarm definitions' order)."""
    resource = ("Resource", f"{function_name}:{alias}")
    return [
        (("FunctionName", function_name),),
        (("FunctionName", function_name), resource),
        (("FunctionName", function_name), resource, ("ExecutedVersion", executed_version)),
    ]


def invocation_datums(
    invocation: Invocation,
    function_name: str,
    *,
    alias: str = ALIAS_NAME,
    executed_version: str = DEFAULT_EXECUTED_VERSION,
) -> list[Datum]:
    """What Lambda publishes for one invocation, stamped with the time the handler was called."""
    when = datetime.fromtimestamp(invocation.started_at or time.time(), tz=UTC)
    values = (
        ("Invocations", "Count", 1.0),
        ("Errors", "Count", 1.0 if invocation.function_error else 0.0),
        ("Throttles", "Count", 0.0),  # the poller models no concurrency limit: nothing is ever throttled
        ("Duration", "Milliseconds", invocation.duration_ms),
    )
    return [
        Datum(defs.NS_LAMBDA, name, dims, unit, (value,), when)
        for dims in lambda_dimension_sets(function_name, alias, executed_version)
        for name, unit, value in values
    ]


class LambdaMetrics:
    """Collects the Lambda metrics of a poller's invocations (pass `record` as its `on_invocation`).

    Buffered, flushed by `flush` (before an alarm evaluation), so the poller thread makes no extra
    CloudWatch call per invocation; CloudWatch also aggregates before alarms can see a datapoint.
    """

    def __init__(
        self,
        function_name: str,
        *,
        alias: str = ALIAS_NAME,
        executed_version: str = DEFAULT_EXECUTED_VERSION,
        then: Callable[[Invocation], None] | None = None,
    ) -> None:
        self.function_name = function_name
        self.alias = alias
        self.executed_version = executed_version
        self._then = then
        self._pending: list[Datum] = []
        self._lock = threading.Lock()
        self.recorded = 0

    def record(self, invocation: Invocation) -> None:
        datums = invocation_datums(
            invocation, self.function_name, alias=self.alias, executed_version=self.executed_version
        )
        with self._lock:
            self._pending.extend(datums)
            self.recorded += 1
        if self._then is not None:
            self._then(invocation)

    def drain(self) -> list[Datum]:
        with self._lock:
            out, self._pending = self._pending, []
        return out


# -- SQS -------------------------------------------------------------------------------------------
def moto_oldest_sent_ms(queue_name: str, region: str = DEFAULT_REGION, account: str = DEFAULT_ACCOUNT) -> int | None:
    """SentTimestamp (epoch ms) of the oldest non-delayed message moto holds; None: empty or not in this process.

    Read from moto's in-process backend, not through the API: a ReceiveMessage to peek would make the
    message invisible and count a receive, which the redrive policy (maxReceiveCount) would then act on.
    """
    try:
        from moto.sqs.models import sqs_backends
    except ImportError:  # pragma: no cover - moto is a dependency of the local extra
        return None
    queue = sqs_backends[account][region].queues.get(queue_name)
    if queue is None:
        return None
    sent: list[Any] = [m.sent_timestamp for m in list(queue._messages) if not m.delayed]
    stamps = [int(t) for t in sent if t is not None]
    return min(stamps) if stamps else None


OldestSent = Callable[[str], int | None]


def queue_datums(
    queue_name: str, attributes: Mapping[str, str], oldest_sent_ms: int | None, at: datetime
) -> list[Datum]:
    """What SQS publishes for one queue at one sample: the three counts and the oldest message's age (s)."""
    dims = (("QueueName", queue_name),)
    out = [
        Datum(defs.NS_SQS, metric, dims, "Count", (float(attributes.get(attr, "0")),), at)
        for metric, attr in QUEUE_COUNT_ATTRIBUTES.items()
    ]
    age = 0.0 if oldest_sent_ms is None else max(0.0, at.timestamp() - oldest_sent_ms / 1000.0)
    out.append(Datum(defs.NS_SQS, AGE_METRIC, dims, "Seconds", (age,), at))
    return out


@dataclass(frozen=True)
class WatchedQueue:
    name: str
    url: str


class QueueMetrics:
    """Samples queues' attributes into SQS metrics."""

    def __init__(self, sqs: SQSClient, queues: Sequence[WatchedQueue], oldest_sent: OldestSent) -> None:
        self._sqs = sqs
        self.queues = tuple(queues)
        self._oldest_sent = oldest_sent

    def sample(self, at: datetime | None = None) -> list[Datum]:
        when = at or datetime.now(UTC)
        out: list[Datum] = []
        for q in self.queues:
            attrs = self._sqs.get_queue_attributes(
                QueueUrl=q.url,
                AttributeNames=list(QUEUE_COUNT_ATTRIBUTES.values()),  # type: ignore[arg-type]
            )["Attributes"]
            counts = {str(k): v for k, v in attrs.items()}
            out.extend(queue_datums(q.name, counts, self._oldest_sent(q.name), when))
        return out


def watched_queues(resources: LocalResources) -> list[WatchedQueue]:
    """Every queue the local system provisioned from the topology (work queues, their DLQs, rule DLQs, sink)."""
    return [WatchedQueue(name, ref.url) for name, ref in sorted(resources.provisioned.queues.items())]


# -- which alarms that leaves unevaluated ----------------------------------------------------------
def not_evaluated(
    alarms: Iterable[defs.AlarmDef],
    bindings: Mapping[defs.Binding, str],
    *,
    queues: Iterable[str],
    functions: Iterable[str],
) -> dict[str, str]:
    """suffix -> why, for every alarm whose AWS metrics the local runtime does not emit."""
    queue_names, function_names = set(queues), set(functions)
    out: dict[str, str] = {}
    for alarm in alarms:
        if alarm.local_reason is not None:  # the definition says why (DIFF, AWS/Events, the heartbeat)
            out[alarm.suffix] = alarm.local_reason
            continue
        for q in alarm.queries():
            reason: str | None = None
            dims = dict(q.dimensions)
            if q.namespace == defs.NS_SQS:
                queue = dims.get("QueueName")
                name = bindings.get(queue) if isinstance(queue, defs.Binding) else queue
                if name not in queue_names:
                    reason = REASON_NO_QUEUE
            elif q.namespace == defs.NS_LAMBDA:
                function = dims.get("FunctionName")
                name = bindings.get(function) if isinstance(function, defs.Binding) else function
                if q.name == "ProvisionedConcurrencySpilloverInvocations":
                    reason = REASON_NO_PC
                elif name not in function_names:
                    known = REASON_FUNCTIONS.get(function) if isinstance(function, defs.Binding) else None
                    reason = known or "the function is not run by the local poller"
            if reason is not None:
                out[alarm.suffix] = reason
                break
    return out


class ServiceMetrics:
    """The local stand-in for Lambda's and SQS's own metric publishing: `publish` puts what is pending."""

    def __init__(self, forwarder: MetricForwarder, lambda_metrics: LambdaMetrics, queue_metrics: QueueMetrics) -> None:
        self.forwarder = forwarder
        self.lambda_metrics = lambda_metrics
        self.queue_metrics = queue_metrics
        self.samples = 0

    @classmethod
    def for_resources(cls, resources: LocalResources, sqs: SQSClient, forwarder: MetricForwarder) -> ServiceMetrics:
        def oldest(name: str) -> int | None:
            return moto_oldest_sent_ms(name, resources.region)

        return cls(
            forwarder,
            LambdaMetrics(resources.function_name),
            QueueMetrics(sqs, watched_queues(resources), oldest),
        )

    def not_evaluated(self, alarms: Iterable[defs.AlarmDef], bindings: Mapping[defs.Binding, str]) -> dict[str, str]:
        return not_evaluated(
            alarms,
            bindings,
            queues=[q.name for q in self.queue_metrics.queues],
            functions=[self.lambda_metrics.function_name],
        )

    def publish(self, at: datetime | None = None) -> int:
        """Put the invocations recorded so far and one sample of every queue; returns the datums put."""
        datums = self.lambda_metrics.drain() + self.queue_metrics.sample(at)
        self.samples += 1
        return self.forwarder.put(datums)

    def run(self, stop: threading.Event, interval: float = DEFAULT_SAMPLE_SECONDS) -> None:
        """Publish every `interval` seconds until `stop` is set (a thread of its own; errors are logged)."""
        while not stop.wait(interval):
            try:
                self.publish()
            except Exception as exc:  # a failed sample must not end the run
                log.warning("service metrics sample failed: %s", exc)
