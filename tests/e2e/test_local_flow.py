"""The whole flow on loopback: moto server + emulated event source mapping + the real classifier over HTTP.

Every event that goes in must come out exactly once: on the output bus (read back from the sink
queue), in review, in quarantine, or in the DLQ. No test asserts on wall-clock time.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from pigeonhole import constants as c
from pigeonhole.naming import MAX_RECEIVE_COUNT
from pigeonhole_tools.local.demo import (
    Accounting,
    Collector,
    DemoOptions,
    Sent,
    account,
    render,
    run_demo,
    stream_events,
    window_totals,
)
from pigeonhole_tools.local.emulator import LocalResources
from pigeonhole_tools.local.faults import fail_records
from pigeonhole_tools.local.live import send_event
from pigeonhole_tools.local.poller import Handler, SqsEventSourcePoller
from pigeonhole_tools.local.samples import (
    POISON_ID,
    DemoEvent,
    demo_events,
    invalid_events,
    load_messages,
    producer_id,
)


def mixed_events() -> list[DemoEvent]:
    """16 support messages, 4 off-topic, every kind of invalid event and one poison event, via queue and bus."""
    now = datetime.now(UTC)
    rows = load_messages()
    banking = [r for r in rows if r["topic"] != "off_topic"][::12][:16]
    off_topic = [r for r in rows if r["topic"] == "off_topic"][:4]
    events = []
    for i, row in enumerate(banking + off_topic):
        key = f"e2e-{i:03d}"
        body = json.dumps({"id": key, "time": now.isoformat(), "text": row["text"]})
        kind = "off_topic" if row["topic"] == "off_topic" else "valid"
        events.append(DemoEvent(key, kind, "bus" if i % 3 == 0 else "queue", body, row["topic"]))  # type: ignore[arg-type]
    events += [DemoEvent(k, "invalid", via, body, code) for k, via, body, code in invalid_events(now)]
    poison = json.dumps({"id": POISON_ID, "time": now.isoformat(), "text": "where is my new card?"})
    events.append(DemoEvent(POISON_ID, "poison", "queue", poison, "dlq"))
    return events


def run_flow(
    system: LocalResources, events: list[DemoEvent], handler: Handler
) -> tuple[Accounting, SqsEventSourcePoller]:
    sent: list[Sent] = []
    stream_events(system, events, sent, pause_seconds=0, max_attempts=1)
    assert [s.event.key for s in sent if s.rejected] == []
    poller = SqsEventSourcePoller.for_resources(
        system, handler, max_attempts=1, retry_delay_seconds=0, wait_time_seconds=0
    )
    assert poller.run(until_drained=True, max_seconds=120), "the ingest queue did not drain"
    collector = Collector(system, max_attempts=1)
    collector.drain()
    return account(sent, collector.landings), poller


def test_every_event_lands_exactly_once(system: LocalResources, real_handler: Handler) -> None:
    events = mixed_events()
    attempts: Counter[str | None] = Counter()
    inner = fail_records(real_handler, [POISON_ID])

    def counting(event: dict[str, Any], context: Any) -> Any:
        attempts.update(producer_id(r["body"]) for r in event["Records"])
        return inner(event, context)

    accounting, poller = run_flow(system, events, counting)

    assert accounting.lost == []
    assert accounting.duplicated == []
    assert accounting.strays == []
    where = {key: landings[0] for key, landings in accounting.by_key.items()}
    assert len(where) == len(events)

    # The poison event failed on every receive and moto's redrive moved it after maxReceiveCount.
    assert where[POISON_ID].where == "dlq"
    assert where[POISON_ID].queue == system.ingest_dlq.name
    assert attempts[POISON_ID] == MAX_RECEIVE_COUNT
    assert poller.stats.failed_records == MAX_RECEIVE_COUNT
    assert poller.stats.batch_errors == 0

    # Each invalid event is quarantined with the machine-readable reason it earned.
    for ev in events:
        if ev.kind != "invalid":
            continue
        landing = where[ev.key]
        assert landing.where == "quarantine", ev.key
        doc = landing.doc()
        assert doc["schema"] == c.QUARANTINE_SCHEMA
        assert doc["reason"]["code"] == ev.topic, ev.key
        assert doc["body"] is not None

    # Valid events are classified: confident ones on the output bus, the rest in review.
    classified = [ev for ev in events if ev.kind in ("valid", "off_topic")]
    assert {where[ev.key].where for ev in classified} <= {"output", "review"}
    routes = Counter(where[ev.key].where for ev in classified)
    assert routes["output"] > 0
    for ev in classified:
        doc = where[ev.key].doc()
        if where[ev.key].where == "output":
            assert doc["source"] == c.OUTPUT_SOURCE
            assert doc["detail-type"] == c.OUTPUT_DETAIL_TYPE
            result = doc["detail"]
            assert result["route"] == "auto"
            assert result["route_reason"] == "confident"
        else:
            result = doc
            assert result["route"] == "review"
            assert result["route_reason"] in ("low_confidence", "unknown")
        assert result["id"] == ev.key
        assert result["schema"] == c.OUTPUT_SCHEMA
        assert 0.0 <= result["confidence"] <= 1.0
        assert result["top_k"][0]["label"] == result["label"]
        assert set(result["model"]) >= {"name", "version", "sha256"}


def test_a_function_error_retries_the_whole_batch_without_duplicates(
    system: LocalResources, real_handler: Handler
) -> None:
    """The first invocation raises before any side effect; SQS redelivers every record once more."""
    events = [e for e in mixed_events() if e.kind == "valid"][:6]
    calls: list[int] = []

    def flaky(event: dict[str, Any], context: Any) -> Any:
        calls.append(len(event["Records"]))
        if len(calls) == 1:
            raise ConnectionError("transient: downstream unavailable")
        return real_handler(event, context)

    accounting, poller = run_flow(system, events, flaky)
    assert accounting.lost == []
    assert accounting.duplicated == []
    assert poller.stats.batch_errors == 1
    assert poller.stats.invocations[0].deleted == 0
    assert poller.stats.records == len(events) + calls[0]


def test_redelivery_after_side_effects_keeps_window_counts_exact(system: LocalResources, real_handler: Handler) -> None:
    """The first invocation does all its work, then fails (say, a timeout): SQS delivers the batch again.

    Delivery is at least once, so results of that batch may land twice (consumers dedupe by id), but
    the window counters in DynamoDB must count every event exactly once.
    """
    events = [e for e in mixed_events() if e.kind != "poison"]
    calls = 0

    def fails_after_work(event: dict[str, Any], context: Any) -> Any:
        nonlocal calls
        calls += 1
        response = real_handler(event, context)
        if calls == 1:
            raise TimeoutError("Task timed out after the work was done")
        return response

    accounting, poller = run_flow(system, events, fails_after_work)
    assert accounting.lost == []
    assert accounting.strays == []
    first_batch = poller.stats.invocations[0]
    assert first_batch.error is not None
    assert first_batch.deleted == 0
    # The redelivered batch really ran twice: each of its results landed twice...
    assert len(accounting.duplicated) == first_batch.records
    assert all(len(accounting.by_key[k]) == 2 for k in accounting.duplicated)
    where = {k: {ln.where for ln in v} for k, v in accounting.by_key.items()}
    assert all(len(places) == 1 for places in where.values())  # repeated, never routed differently
    classified = sum(1 for places in where.values() if places & {"output", "review"})
    quarantined = sum(1 for places in where.values() if places == {"quarantine"})
    # ...and the window counters still count each event once.
    totals = window_totals(system)
    assert totals["n"] == classified
    assert totals["q"] == quarantined


def test_send_reaches_the_classifier_via_queue_and_bus(system: LocalResources, real_handler: Handler) -> None:
    from pigeonhole_tools.local.cli import local_app

    prefix = system.names.prefix
    now = datetime.now(UTC).isoformat()  # a plausible time: within the window around arrival
    body = json.dumps({"id": "send-bus-1", "time": now, "text": "I lost my card on the train"})
    bus = send_event(system.endpoint, prefix=prefix, region=system.region, body=body, via="bus", max_attempts=1)
    assert bus.event_id == "send-bus-1"
    result = CliRunner().invoke(
        local_app,
        ["send", "--endpoint", system.endpoint, "--prefix", prefix, "--id", "send-q-1", "--text", "card declined"],
    )
    assert result.exit_code == 0, result.output
    assert "send-q-1" in result.output

    poller = SqsEventSourcePoller.for_resources(system, real_handler, max_attempts=1, wait_time_seconds=0)
    assert poller.run(until_drained=True, max_seconds=60)
    collector = Collector(system, max_attempts=1)
    collector.drain()
    ids = {producer_id(ln.body) for ln in collector.landings if ln.where in ("output", "review")}
    assert ids == {"send-bus-1", "send-q-1"}


@pytest.mark.usefixtures("restore_environ")
def test_demo_accounts_for_every_event(model_dir: Path, tmp_path: Path) -> None:
    from pigeonhole.classify import handler as handler_module

    out = io.StringIO()
    console = Console(file=out, width=120)
    options = DemoOptions(
        prefix="e2e-demo",
        model_dir=model_dir,
        limit=30,
        retry_delay_seconds=0,
        pause_seconds=0,
        log_file=tmp_path / "handler.log",
        report_path=tmp_path / "report.json",
    )
    try:
        report = run_demo(options, console)
    finally:
        handler_module.reset_for_tests()
    expected = demo_events(limit=30)
    assert report.ok
    assert report.entered == len(expected)
    assert report.accounting.lost == []
    summary = json.loads((tmp_path / "report.json").read_text())
    assert summary["accounted"] == len(expected)
    assert summary["landed"]["dlq"] == 1
    assert sum(summary["landed"].values()) == len(expected)
    reasons = summary["route_reasons"]  # every classified result says why it went where it went
    assert sum(reasons.values()) == summary["landed"]["output"] + summary["landed"]["review"]
    assert reasons.get("confident") == summary["landed"]["output"]
    assert summary["handler"]["invocations"] >= 1
    render(report, console)
    assert "every event accounted for" in out.getvalue()
    # The poison event in the DLQ pages on-call, read back from the local subscriber queue (AWS/SQS emitted).
    pages = summary["alarms"]["pages"]
    assert [p["AlarmName"] for p in pages] == ["e2e-demo-ingest-dlq-depth"]
    assert (pages[0]["OldStateValue"], pages[0]["NewStateValue"]) == ("OK", "ALARM")
    assert "PAGE: e2e-demo-ingest-dlq-depth OK -> ALARM" in out.getvalue()
    assert (tmp_path / "handler.log").stat().st_size > 0  # Powertools logs went to the file, not the terminal


@pytest.mark.usefixtures("restore_environ")
def test_demo_fails_when_the_handler_fails_on_real_traffic(model_dir: Path, tmp_path: Path) -> None:
    """Everything ends up in the DLQ, so it is all accounted for, but that is not a working system."""

    def broken(event: dict[str, Any], context: Any) -> Any:
        raise RuntimeError("model failed to load")

    options = DemoOptions(
        prefix="e2e-broken",
        handler=broken,
        model_dir=model_dir,
        limit=4,
        retry_delay_seconds=0,
        batching_window_seconds=0,
        pause_seconds=0,
        log_file=tmp_path / "handler.log",
    )
    report = run_demo(options, Console(file=io.StringIO()))
    assert report.accounting.lost == []
    assert report.unexpected_dead_letters
    assert not report.ok
    assert report.first_error is not None
    assert "model failed to load" in report.first_error


def test_a_body_too_large_to_embed_is_kept_whole_in_the_quarantine_bucket(
    system: LocalResources, real_handler: Handler
) -> None:
    """Nothing a producer sent is lost: the quarantine message carries a prefix, the bucket the rest."""
    import hashlib

    from pigeonhole_tools.local.emulator import s3_client, sqs_client

    # 200 KB of JSON escapes: each `\n` (2 bytes) re-escapes to 3, so the embedded body cannot fit 256 KiB.
    body = json.dumps({"id": "big-1", "time": datetime.now(UTC).isoformat(), "text": "line\n" * 40_000})
    assert 190_000 < len(body.encode()) < 256 * 1024
    sqs = sqs_client(system.endpoint, system.region, max_attempts=1)
    sqs.send_message(QueueUrl=system.ingest.url, MessageBody=body)
    poller = SqsEventSourcePoller.for_resources(system, real_handler, max_attempts=1, wait_time_seconds=0)
    assert poller.run(until_drained=True, max_seconds=60)

    messages = sqs.receive_message(QueueUrl=system.quarantine.url, MaxNumberOfMessages=10)["Messages"]
    (raw,) = [m["Body"] for m in messages]
    assert len(raw.encode()) <= 256 * 1024
    message = json.loads(raw)
    assert message["reason"]["code"] == "body_too_large"
    assert message["body_truncated"] is True
    assert body.startswith(message["body"])
    archive = message["body_archive"]
    assert archive["bucket"] == system.quarantine_bucket
    stored = (
        s3_client(system.endpoint, system.region, max_attempts=1)
        .get_object(Bucket=archive["bucket"], Key=archive["key"])["Body"]
        .read()
    )
    assert stored == body.encode()
    assert hashlib.sha256(stored).hexdigest() == message["body_sha256"]
    assert message["body_bytes"] == len(stored)
