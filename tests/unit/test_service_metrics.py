"""What the local runtime puts as AWS/Lambda and AWS/SQS metrics, and which alarms that leaves unevaluated."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws

from pigeonhole import alarms as defs
from pigeonhole import topology
from pigeonhole.naming import ResourceNames
from pigeonhole_tools.local import alarms as la
from pigeonhole_tools.local.metrics import Datum, DatumLedger, MetricForwarder
from pigeonhole_tools.local.poller import Invocation, SqsEventSourcePoller
from pigeonhole_tools.local.service_metrics import (
    REASON_FUNCTIONS,
    REASON_NO_PC,
    LambdaMetrics,
    QueueMetrics,
    WatchedQueue,
    invocation_datums,
    moto_oldest_sent_ms,
    not_evaluated,
    queue_datums,
)

T0 = 1_800_000_000.0  # an instant aligned on the minute


def _inv(error: str | None = None, duration_ms: float = 42.0) -> Invocation:
    return Invocation("req", ("m1", "m2"), (), duration_ms, 2, error=error, started_at=T0 + 5)


def _by(datums: list[Datum]) -> dict[tuple[str, tuple[tuple[str, str], ...]], Datum]:
    return {(d.name, d.dimensions): d for d in datums}


def test_one_invocation_is_published_under_the_three_alias_dimension_sets() -> None:
    datums = invocation_datums(_inv(), "fn", alias="live", executed_version="7")
    assert {d.namespace for d in datums} == {defs.NS_LAMBDA}
    by = _by(datums)
    sets = [
        (("FunctionName", "fn"),),
        (("FunctionName", "fn"), ("Resource", "fn:live")),
        (("FunctionName", "fn"), ("Resource", "fn:live"), ("ExecutedVersion", "7")),
    ]
    assert len(datums) == 4 * len(sets)
    for dims in sets:
        assert (by[("Invocations", dims)].values, by[("Invocations", dims)].unit) == ((1.0,), "Count")
        assert by[("Errors", dims)].values == (0.0,)
        assert by[("Throttles", dims)].values == (0.0,)
        assert (by[("Duration", dims)].values, by[("Duration", dims)].unit) == ((42.0,), "Milliseconds")
    assert {d.timestamp for d in datums} == {datetime.fromtimestamp(T0 + 5, tz=UTC)}


@pytest.mark.parametrize(
    ("error", "errors"),
    [
        ("function error: ValueError: boom", 1.0),  # the handler raised
        ("Task timed out after 61.00 seconds (detected after the fact)", 1.0),  # a timeout is a Lambda error
        ("invalid batch response: batchItemFailures is not a list", 0.0),  # the ESM fails it, Lambda does not
        (None, 0.0),
    ],
)
def test_errors_count_only_raised_or_timed_out_invocations(error: str | None, errors: float) -> None:
    by = _by(invocation_datums(_inv(error), "fn"))
    assert by[("Errors", (("FunctionName", "fn"),))].values == (errors,)


def test_the_poller_marks_a_raising_handler_as_a_function_error() -> None:
    def boom(event: dict[str, Any], context: Any) -> Any:
        raise RuntimeError("boom")

    class FakeSqs:
        def delete_message_batch(self, **kw: Any) -> dict[str, Any]:
            return {"Successful": [{"Id": e["Id"]} for e in kw["Entries"]]}

        def change_message_visibility_batch(self, **kw: Any) -> dict[str, Any]:
            return {"Successful": []}

    seen: list[Invocation] = []
    recorder = LambdaMetrics("fn", then=seen.append)
    poller = SqsEventSourcePoller(
        FakeSqs(),  # type: ignore[arg-type]
        queue_url="q",
        queue_arn="arn:aws:sqs:eu-west-1:123456789012:q",
        region="eu-west-1",
        handler=boom,
        visibility_timeout=30,
        on_invocation=recorder.record,
    )
    message = {"MessageId": "m1", "ReceiptHandle": "r1", "Body": "{}", "MD5OfBody": "x"}
    inv = poller.invoke([message])  # type: ignore[list-item]
    assert inv.function_error
    assert inv.started_at > 0
    assert seen == [inv]
    assert recorder.recorded == 1
    by = _by(recorder.drain())
    assert by[("Errors", (("FunctionName", "fn"),))].values == (1.0,)
    assert recorder.drain() == []  # drained once


def test_queue_sample_counts_and_age_from_the_oldest_sent_timestamp() -> None:
    at = datetime.fromtimestamp(T0, tz=UTC)
    attrs = {
        "ApproximateNumberOfMessages": "3",
        "ApproximateNumberOfMessagesNotVisible": "2",
        "ApproximateNumberOfMessagesDelayed": "0",
    }
    by = {d.name: d for d in queue_datums("q-dlq", attrs, int((T0 - 90.5) * 1000), at)}
    assert by["ApproximateNumberOfMessagesVisible"].values == (3.0,)
    assert by["ApproximateNumberOfMessagesNotVisible"].values == (2.0,)
    assert by["ApproximateNumberOfMessagesDelayed"].values == (0.0,)
    assert by["ApproximateAgeOfOldestMessage"].values == (90.5,)
    assert by["ApproximateAgeOfOldestMessage"].unit == "Seconds"
    assert {d.dimensions for d in by.values()} == {(("QueueName", "q-dlq"),)}
    assert {d.namespace for d in by.values()} == {defs.NS_SQS}
    empty = {d.name: d for d in queue_datums("q", {}, None, at)}
    assert empty["ApproximateAgeOfOldestMessage"].values == (0.0,)
    assert empty["ApproximateNumberOfMessagesVisible"].values == (0.0,)


def test_queue_metrics_read_each_queue_once() -> None:
    calls: list[str] = []

    class FakeSqs:
        def get_queue_attributes(self, QueueUrl: str, AttributeNames: list[str]) -> dict[str, Any]:  # noqa: N803
            calls.append(QueueUrl)
            return {"Attributes": {"ApproximateNumberOfMessages": "1" if QueueUrl == "u-dlq" else "0"}}

    sampler = QueueMetrics(FakeSqs(), [WatchedQueue("a", "u-a"), WatchedQueue("dlq", "u-dlq")], lambda name: None)  # type: ignore[arg-type]
    datums = sampler.sample(datetime.fromtimestamp(T0, tz=UTC))
    assert calls == ["u-a", "u-dlq"]
    visible = {d.dimensions: d.values for d in datums if d.name == "ApproximateNumberOfMessagesVisible"}
    assert visible == {(("QueueName", "a"),): (0.0,), (("QueueName", "dlq"),): (1.0,)}


def test_what_stays_not_evaluated_locally_and_why() -> None:
    names = ResourceNames("unit")
    bindings = la.local_bindings(names, "1.0.0")
    assert bindings[defs.Binding.CLASSIFIER_ALIAS] == "unit-classifier:live"
    # What local provisioning creates: every queue of the topology but the drift schedule's DLQ.
    queues = [q.name for q in topology.queues(names) if q.name != names.drift_dlq]
    out = not_evaluated(defs.applicable(True), bindings, queues=queues, functions=["unit-classifier"])
    assert out == {
        "drift-dlq-depth": "the queue is not provisioned locally",
        "classifier-pc-spillover": REASON_NO_PC,
        "drift-function-errors": REASON_FUNCTIONS[defs.Binding.DRIFT_FUNCTION],
        "feedback-function-errors": REASON_FUNCTIONS[defs.Binding.FEEDBACK_FUNCTION],
        # The silence alarms the local runtime cannot evaluate say why in their definition.
        **{a.suffix: a.local_reason for a in defs.ALARMS if a.local_reason is not None},
    }
    # Without the queue list, every SQS alarm would be reported as not provisioned.
    none = not_evaluated(defs.applicable(True), bindings, queues=[], functions=["unit-classifier"])
    assert none["ingest-dlq-depth"] == none["ingest-oldest-message-age"] == "the queue is not provisioned locally"


def test_the_evaluator_uses_the_given_reasons_and_evaluates_the_rest() -> None:
    class Source:
        def series(self, query: defs.MetricQuery, dims: Any, period: int, start: int, end: int) -> dict[int, float]:
            return {start: 1.0} if query.name == "ApproximateNumberOfMessagesVisible" else {}

    bindings = la.local_bindings(ResourceNames("unit"), "1.0.0")
    dlqs = [defs.by_suffix()[s] for s in ("ingest-dlq-depth", "drift-dlq-depth")]
    evaluator = la.LocalAlarms(
        Source(),
        bindings,
        prefix="unit",
        window_seconds=300,
        alarms=dlqs,
        composites=(),
        not_evaluated={"drift-dlq-depth": "why"},
    )
    results = {r.suffix: r for r in evaluator.evaluate(datetime.fromtimestamp(T0, tz=UTC))}
    assert results["ingest-dlq-depth"].state == la.State.ALARM
    assert (results["drift-dlq-depth"].state, results["drift-dlq-depth"].reason) == (la.State.NOT_EVALUATED, "why")
    # Without reasons given, AWS-namespace alarms keep the old default: not evaluated.
    default = la.LocalAlarms(Source(), bindings, prefix="unit", window_seconds=300, alarms=dlqs, composites=())
    assert {r.suffix: r for r in default.evaluate(datetime.fromtimestamp(T0, tz=UTC))}[
        "ingest-dlq-depth"
    ].state == la.State.NOT_EVALUATED


def test_percentiles_come_from_the_ledger_per_period() -> None:
    ledger = DatumLedger()

    class FakeCloudWatch:
        def put_metric_data(self, **kw: Any) -> None:
            pass

    forwarder = MetricForwarder(FakeCloudWatch(), ledger)  # type: ignore[arg-type]
    dims = (("FunctionName", "fn"), ("Resource", "fn:live"))
    first = [
        Datum(defs.NS_LAMBDA, "Duration", dims, "Milliseconds", (float(v),), datetime.fromtimestamp(T0 + 1, UTC))
        for v in range(1, 101)
    ]
    second = [Datum(defs.NS_LAMBDA, "Duration", dims, "Milliseconds", (5.0,), datetime.fromtimestamp(T0 + 61, UTC))]
    other = [Datum(defs.NS_LAMBDA, "Duration", dims[:1], "Milliseconds", (1e6,), datetime.fromtimestamp(T0 + 1, UTC))]
    forwarder.put(first + second + other)
    query = defs.by_suffix()["classifier-p99-duration"].metric
    assert query is not None
    source = la.CloudWatchSource(None, ledger)  # type: ignore[arg-type]
    series = source.series(query, dict(dims), 60, int(T0), int(T0) + 120)
    assert series == {int(T0): pytest.approx(99.01), int(T0) + 60: 5.0}
    with pytest.raises(la.UnsupportedStatisticError):
        la.CloudWatchSource(None).series(query, dict(dims), 60, int(T0), int(T0) + 120)  # type: ignore[arg-type]


def test_the_oldest_message_age_comes_from_moto_sent_timestamps_without_a_receive() -> None:
    with mock_aws():
        sqs = boto3.client("sqs", region_name="eu-west-1")
        url = sqs.create_queue(QueueName="unit-age")["QueueUrl"]
        assert moto_oldest_sent_ms("unit-age", "eu-west-1") is None  # empty
        sqs.send_message(QueueUrl=url, MessageBody="first")
        sqs.send_message(QueueUrl=url, MessageBody="second")
        sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=60)  # delayed: not counted
        oldest = moto_oldest_sent_ms("unit-age", "eu-west-1")
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"])["Messages"]
        stamps = sorted(int(m["Attributes"]["SentTimestamp"]) for m in got)
        assert oldest == stamps[0]
        # Reading the age did not count as a receive: the first real receive sees ApproximateReceiveCount 1.
        assert {m["Attributes"]["ApproximateReceiveCount"] for m in got} == {"1"}
        assert moto_oldest_sent_ms("no-such-queue", "eu-west-1") is None
