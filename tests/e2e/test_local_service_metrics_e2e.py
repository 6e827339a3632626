"""AWS/SQS and AWS/Lambda metrics emitted by the local runtime drive the alarms that page (moto server).

A poison event goes through the real poller and the real classifier until moto's redrive moves it to
the DLQ; the queue sample and the invocations go into moto's CloudWatch; the live evaluator reads them
back with GetMetricData and pages the on-call subscriber queue. No wall-clock assertions.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from pigeonhole.naming import MAX_RECEIVE_COUNT
from pigeonhole_tools.local import alarms as la
from pigeonhole_tools.local.emulator import LocalResources
from pigeonhole_tools.local.faults import fail_records, raise_on
from pigeonhole_tools.local.poller import Handler, SqsEventSourcePoller
from pigeonhole_tools.local.samples import POISON_ID, DemoEvent
from pigeonhole_tools.local.service_metrics import REASON_NO_PC
from pigeonhole_tools.local.streaming import Sent, stream_events
from pigeonhole_tools.local.watch import LocalWatch


def _events(count: int) -> list[DemoEvent]:
    now = datetime.now(UTC).isoformat()
    out = [
        DemoEvent(f"svc-{i:02d}", "valid", "queue", json.dumps({"id": f"svc-{i:02d}", "time": now, "text": t}), "x")
        for i, t in enumerate(["where is my new card?", "my transfer has not arrived", "how do I top up?"][:count])
    ]
    poison = json.dumps({"id": POISON_ID, "time": now, "text": "where is my new card?"})
    return [*out, DemoEvent(POISON_ID, "poison", "queue", poison, "dlq")]


def _drain(system: LocalResources, handler: Handler, watch: LocalWatch, count: int) -> SqsEventSourcePoller:
    sent: list[Sent] = []
    stream_events(system, _events(count), sent, pause_seconds=0, max_attempts=1)
    poller = SqsEventSourcePoller.for_resources(
        system,
        handler,
        max_attempts=1,
        retry_delay_seconds=0,
        wait_time_seconds=0,
        on_invocation=watch.service.lambda_metrics.record,
    )
    assert poller.run(until_drained=True, max_seconds=120), "the ingest queue did not drain"
    return poller


def test_poison_in_the_dlq_pages_on_call(system: LocalResources, real_handler: Handler, model_dir: Path) -> None:
    watch = LocalWatch.start(system, model_dir)
    before = {r.suffix: r for r in watch.evaluate("before").results}
    assert before["ingest-dlq-depth"].state == la.State.OK  # evaluated on a real 0, not "not evaluated"
    assert before["ingest-dlq-depth"].values == [0.0]

    poller = _drain(system, fail_records(real_handler, [POISON_ID]), watch, 3)
    assert poller.stats.failed_records == MAX_RECEIVE_COUNT  # the poison's five receives, then the redrive

    after = {r.suffix: r for r in watch.evaluate("after").results}
    assert after["ingest-dlq-depth"].state == la.State.ALARM, after["ingest-dlq-depth"].reason
    assert after["ingest-dlq-depth"].values == [1.0]
    assert after["input-rule-dlq-depth"].state == la.State.OK
    assert after["feedback-dlq-depth"].state == la.State.OK  # provisioned locally: a real 0
    assert after["drift-dlq-depth"].state == la.State.NOT_EVALUATED  # no drift schedule, no DLQ locally
    # Partial batch failures are not Lambda errors: the error rate is evaluated and stays OK.
    assert after["classifier-error-rate"].state == la.State.OK
    rates = [v for v in after["classifier-error-rate"].values if v is not None]
    assert rates
    assert all(v == 0.0 for v in rates)
    assert after["classifier-throttles"].state == la.State.OK
    assert after["classifier-p99-duration"].state == la.State.OK
    # Percentiles come from the forwarder's ledger (moto has none): a value exists for the invocations' minute.
    assert any(v is not None and v > 0 for v in after["classifier-p99-duration"].values)
    assert after["ingest-oldest-message-age"].state == la.State.OK  # drained: age 0
    assert after["classifier-pc-spillover"].state == la.State.NOT_EVALUATED
    assert after["classifier-pc-spillover"].reason == REASON_NO_PC

    pages = [p for p in watch.pages if p["AlarmName"] == f"{system.names.prefix}-ingest-dlq-depth"]
    assert len(pages) == 1
    line = la.notification_line(pages[0])
    assert line.startswith(f"PAGE: {system.names.prefix}-ingest-dlq-depth OK -> ALARM"), line
    assert "Runbook: docs/runbook.md#ingest-dlq-depth" in line  # the description AWS would send, link included
    # Still in ALARM at the next evaluation: no second page.
    watch.evaluate("again")
    assert [p for p in watch.pages if p["AlarmName"].endswith("ingest-dlq-depth")] == pages


def test_function_errors_are_counted_by_the_error_rate(
    system: LocalResources, real_handler: Handler, model_dir: Path
) -> None:
    watch = LocalWatch.start(system, model_dir)
    watch.evaluate("before")
    poller = _drain(system, raise_on(real_handler, [POISON_ID]), watch, 1)
    assert poller.stats.batch_errors >= 1
    result = {r.suffix: r for r in watch.evaluate("after").results}["classifier-error-rate"]
    # Every batch held the poison event and raised (the valid event shared its fate): 100 % errors in the
    # minute(s) they ran in. The alarm needs 2 of 3 one-minute points, so one minute of errors is not yet
    # ALARM: the definition's M of N, not a local shortcut (a test cannot wait a minute for a second point).
    assert poller.stats.batch_errors == len(poller.stats.invocations)
    present = [v for v in result.values if v is not None]
    assert present
    assert all(v == 100.0 for v in present)
    assert result.state == (la.State.ALARM if len(present) >= 2 else la.State.OK), result.reason
