"""Feedback: labels joined to captured predictions, counted exactly once into the prediction's window;
everything that cannot be joined is counted, logged and acknowledged, never dropped silently."""

from __future__ import annotations

import io
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from pigeonhole import constants as c
from pigeonhole import metrics_catalog as mc
from pigeonhole import topology
from pigeonhole.adapters.dynamodb import DynamoDBAdapter
from pigeonhole.capture import CapturePolicy
from pigeonhole.classify.routing import Classification
from pigeonhole.drift import layout as keys
from pigeonhole.drift.counters import LATENCY_EDGES_SECONDS, WindowCounters, bin_counts
from pigeonhole.drift.recorder import WindowRecorder
from pigeonhole.drift.report import evaluate_for_manifest
from pigeonhole.feedback import handler as feedback_handler
from pigeonhole.feedback.service import FeedbackService
from pigeonhole_tools.local.provisioning import create_topology

from .conftest import Context
from .monitoring_support import (
    CLASSES,
    FEEDBACK,
    NAMES,
    PREDICTIONS,
    REGION,
    VERSION,
    WINDOWS,
    CrashError,
    FaultyClient,
    assert_in_catalog,
    at,
    classification,
    emf,
    get_window,
    manifest,
    moto_dynamodb,
    runtime,
    scan,
)

CLASSIFIED_AT = at("2026-11-29T07:03:00Z").timestamp()
LABELLED_AT = at("2026-11-29T09:01:00Z")  # two hours after the events
W0700, W0650 = "2026-11-29T07:00:00Z", "2026-11-29T06:50:00Z"

# id -> (predicted class index, confidence, event time)
PREDICTED: dict[str, tuple[int, float, str]] = {
    "e0": (0, 0.95, "2026-11-29T07:01:00Z"),
    "e1": (0, 0.70, "2026-11-29T07:01:00Z"),
    "e2": (1, 0.85, "2026-11-29T07:02:00Z"),
    "e3": (2, 0.40, "2026-11-29T07:02:00Z"),
    "e4": (1, 0.66, "2026-11-29T07:04:00Z"),
    "late": (2, 0.90, "2026-11-29T06:51:00Z"),  # a late event: its window is 06:50
}


def predictions() -> list[Classification]:
    return [classification(i, p, conf, when=t) for i, (p, conf, t) in PREDICTED.items()]


@pytest.fixture
def ddb() -> Iterator[Any]:
    with moto_dynamodb() as client:
        recorder = WindowRecorder(DynamoDBAdapter(client), WINDOWS, PREDICTIONS, clock=lambda: CLASSIFIED_AT)
        assert recorder.observe([(f"m-{e.event.id}", e) for e in predictions()], [], runtime()) == {}
        yield client


def service(client: Any, **kwargs: Any) -> FeedbackService:
    return FeedbackService(
        DynamoDBAdapter(client, rng=random.Random(0)),
        manifest(),
        WINDOWS,
        PREDICTIONS,
        FEEDBACK,
        clock=LABELLED_AT.timestamp,
        **kwargs,
    )


def record(message_id: str, body: Any, sent: str | None = "2026-11-29T09:01:00Z") -> dict[str, Any]:
    """An SQS record as the event source mapping delivers it."""
    attributes = {"ApproximateReceiveCount": "1"}
    if sent is not None:
        attributes["SentTimestamp"] = str(int(at(sent).timestamp() * 1000))
    return {
        "messageId": message_id,
        "receiptHandle": f"rh-{message_id}",
        "body": body if isinstance(body, str) else json.dumps(body),
        "attributes": attributes,
        "messageAttributes": {},
        "md5OfBody": "0",
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:{REGION}:123456789012:test-feedback",
        "awsRegion": REGION,
    }


def label(message_id: str, event_id: str, name: str, sent: str | None = "2026-11-29T09:01:00Z") -> dict[str, Any]:
    return record(message_id, {"id": event_id, "label": name}, sent)


def envelope(
    message_id: str, event_id: str, name: str, time: str, detail_type: str = "LabelFeedback"
) -> dict[str, Any]:
    return record(
        message_id,
        {
            "version": "0",
            "id": f"eb-{message_id}",
            "detail-type": detail_type,
            "source": "acme.reviewers",
            "account": "123456789012",
            "time": time,
            "region": REGION,
            "resources": [],
            "detail": {"id": event_id, "label": name},
        },
        sent="2026-11-29T23:00:00Z",  # the queue's time must not win over the envelope's
    )


def expected_labels(pairs: list[tuple[str, str, float]]) -> dict[str, WindowCounters]:
    """Label counters per window from (event id, true label, latency seconds), computed independently."""
    layout = keys.counter_layout(manifest())
    out: dict[str, WindowCounters] = {}
    for event_id, true, latency in pairs:
        pred, conf, t = PREDICTED[event_id]
        window = classification(event_id, pred, conf, when=t).window
        one = WindowCounters.from_labels(layout, [pred], [CLASSES.index(true)], [conf], [latency])
        out[window] = out[window].merge(one) if window in out else one
    return out


def label_counters(client: Any, window: str) -> dict[str, float]:
    item = get_window(client, window)
    prefixes = ("cm_", "lconf_", "lcorr_", "lcsum_", "lat_")
    return {k: v for k, v in item.items() if k.startswith(prefixes) or k in ("nl", "brier")}


def assert_labels(client: Any, want: dict[str, WindowCounters]) -> None:
    for window in (W0700, W0650):
        expected = {
            k: v
            for k, v in (want[window].to_item_updates() if window in want else {}).items()
            if not k.startswith(("n", "c_", "conf_", "csum", "csq", "f_", "rev", "q")) or k == "nl"
        }
        got = {k: v for k, v in label_counters(client, window).items() if v != 0}
        assert got.keys() == expected.keys(), window
        for k, v in expected.items():
            assert got[k] == pytest.approx(v), (window, k)


# -- the join -------------------------------------------------------------------------------------


def test_labels_join_their_predictions_window_with_latency(ddb: Any, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    svc = service(ddb)
    records = [
        label("f1", "e0", "card_arrival"),  # correct
        label("f2", "e2", "lost_card"),  # wrong
        label("f3", "late", "lost_card", sent="2026-11-29T07:51:00Z"),  # correct, one hour after the event
    ]
    outcomes = svc.process(records)
    assert [outcomes[m].status for m in ("f1", "f2", "f3")] == ["labelled"] * 3
    assert outcomes["f2"].misclassified
    assert outcomes["f3"].extra["window"] == W0650
    assert_labels(
        ddb,
        expected_labels([("e0", "card_arrival", 7200.0), ("e2", "lost_card", 7140.0), ("late", "lost_card", 3600.0)]),
    )
    # The label latency lands in its histogram bin.
    latency = bin_counts([3600.0], LATENCY_EDGES_SECONDS)
    assert label_counters(ddb, W0650)[f"lat_{int(np.argmax(latency))}"] == 1
    # One marker per joined label, in the feedback table.
    markers = {m["pk"]: m for m in scan(ddb, FEEDBACK)}
    assert set(markers) == {keys.label_pk(VERSION, e) for e in ("e0", "e2", "late")}
    assert markers[keys.label_pk(VERSION, "e2")]["label"] == "lost_card"
    assert int(markers[keys.label_pk(VERSION, "e2")]["predicted_index"]) == 1

    points = emf(capsys.readouterr().out)
    assert_in_catalog(points)
    values = {p["name"]: p["value"] for p in points}
    assert values == {
        "LabelledEvents": 3.0,
        "MisclassifiedEvents": 1.0,
        "LabelledWeight": 3.0,  # captured at rate 1: each label stands for itself
        "MisclassifiedWeight": 1.0,
        "FeedbackUnmatched": 0.0,
    }
    labelled = next(p for p in points if p["name"] == "LabelledEvents")
    assert labelled["dimensions"] == {mc.DIM_SERVICE: "feedback", mc.DIM_MODEL_VERSION: VERSION}


def test_eventbridge_labels_are_unwrapped_and_timed_by_the_envelope(ddb: Any) -> None:
    outcomes = service(ddb).process([envelope("f1", "e1", "exchange_rate", "2026-11-29T07:11:00Z")])
    assert outcomes["f1"].status == "labelled"
    assert_labels(ddb, expected_labels([("e1", "exchange_rate", 600.0)]))


def test_window_report_metrics_come_from_the_label_counters(ddb: Any) -> None:
    truth = {"e0": "card_arrival", "e1": "exchange_rate", "e2": "exchange_rate", "e3": "lost_card", "e4": "lost_card"}
    service(ddb).process([label(f"f-{i}", i, t) for i, t in truth.items()])
    item = get_window(ddb, W0700)
    counters = WindowCounters.from_item(item, keys.counter_layout(manifest()))
    report = evaluate_for_manifest(counters, manifest())
    assert report.accuracy is not None
    assert report.accuracy.labelled == 5
    assert report.accuracy.accuracy == pytest.approx(3 / 5)  # e1 and e4 were wrong
    assert report.accuracy.label_coverage == pytest.approx(5 / 5)
    assert report.accuracy.brier is not None
    assert report.accuracy.ece is not None
    assert report.accuracy.label_latency_p50_seconds is not None
    assert 5000 < report.accuracy.label_latency_p50_seconds < 9000
    per_class = {s.label: s for s in report.accuracy.per_class}
    assert per_class["card_arrival"].precision == pytest.approx(1 / 2)
    assert per_class["lost_card"].recall == pytest.approx(1 / 2)


# -- exactly once ---------------------------------------------------------------------------------


def test_redelivered_and_duplicated_labels_count_once(ddb: Any) -> None:
    svc = service(ddb)
    first = [label("f1", "e0", "card_arrival"), label("f2", "e2", "lost_card"), label("f2b", "e2", "lost_card")]
    outcomes = svc.process(first)
    assert outcomes["f2b"].status == "duplicate"  # same event, same batch
    again = svc.process(first)  # redelivery of the whole batch
    assert {o.status for o in again.values()} == {"duplicate"}
    later = svc.process([label("g1", "e2", "lost_card"), label("g2", "e3", "lost_card")])  # EventBridge duplicate
    assert (later["g1"].status, later["g2"].status) == ("duplicate", "labelled")
    assert_labels(
        ddb, expected_labels([("e0", "card_arrival", 7200.0), ("e2", "lost_card", 7140.0), ("e3", "lost_card", 7140.0)])
    )


@pytest.mark.parametrize("where", ["before", "after"])
def test_a_crash_around_the_transaction_never_double_counts(ddb: Any, where: str) -> None:
    faulty = FaultyClient(ddb)
    setattr(faulty, f"crash_{where}", {1})
    svc = service(faulty)
    records = [label("f1", "e0", "exchange_rate"), label("f2", "e4", "exchange_rate")]
    with pytest.raises(CrashError):
        svc.process(records)
    outcomes = svc.process(records)  # SQS delivers the batch again
    assert {o.status for o in outcomes.values()} == ({"labelled"} if where == "before" else {"duplicate"})
    assert_labels(ddb, expected_labels([("e0", "exchange_rate", 7200.0), ("e4", "exchange_rate", 7020.0)]))


def test_a_failed_write_retries_only_the_labels_it_holds(ddb: Any) -> None:
    faulty = FaultyClient(ddb)
    faulty.errors = {1: ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "Tx")}
    event = {"Records": [label("f1", "e0", "card_arrival"), record("f2", "not json"), label("f3", "zz", "lost_card")]}
    response = service(faulty).handle(event, None)
    assert response["batchItemFailures"] == [{"itemIdentifier": "f1"}]
    assert service(ddb).handle({"Records": event["Records"][:1]}, None)["batchItemFailures"] == []
    assert_labels(ddb, expected_labels([("e0", "card_arrival", 7200.0)]))


def test_the_first_label_wins_and_a_relabel_is_counted(ddb: Any) -> None:
    svc = service(ddb)
    svc.process([label("f1", "e3", "lost_card")])
    outcomes = svc.process([label("f2", "e3", "card_arrival")])
    assert outcomes["f2"].status == "duplicate"
    assert outcomes["f2"].extra.get("relabel")
    assert_labels(ddb, expected_labels([("e3", "lost_card", 7140.0)]))
    day = get_unmatched(ddb)
    assert day["relabel"] == 1


# -- what cannot be joined ------------------------------------------------------------------------


def get_unmatched(client: Any) -> dict[str, Any]:
    items = [i for i in scan(client, WINDOWS) if i["pk"] == keys.unmatched_pk(VERSION)]
    assert len(items) == 1
    assert items[0]["sk"] == "2026-11-29"
    return {k: int(v) if k not in ("pk", "sk", "model_version") else v for k, v in items[0].items()}


def test_unknown_ids_labels_and_invalid_bodies_are_counted_logged_and_acknowledged(
    ddb: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    event = {
        "Records": [
            label("u1", "never-classified", "lost_card"),
            label("u2", "e0", "not_a_class"),
            record("i1", "{not json"),
            record("i2", [1, 2]),
            record("i3", {"id": "e1"}),
            envelope("i4", "e1", "lost_card", "2026-11-29T08:00:00Z", detail_type="SomethingElse"),
            label("ok", "e1", "card_arrival"),
        ]
    }
    stream = io.StringIO()
    response = service(ddb, logger=Logger(service="feedback-test", stream=stream)).handle(event, None)
    assert response["batchItemFailures"] == []  # retrying would not make any of these better
    out = capsys.readouterr().out
    day = get_unmatched(ddb)
    assert (day["unknown_id"], day["unknown_label"], day["invalid"]) == (1, 1, 4)
    values = {p["name"]: p["value"] for p in emf(out)}
    assert values == {
        "LabelledEvents": 1.0,
        "MisclassifiedEvents": 0.0,
        "LabelledWeight": 1.0,
        "MisclassifiedWeight": 0.0,
        "FeedbackUnmatched": 6.0,
    }
    unmatched = next(p for p in emf(out) if p["name"] == "FeedbackUnmatched")
    assert unmatched["dimensions"] == {mc.DIM_SERVICE: "feedback"}
    logs = [json.loads(line) for line in stream.getvalue().splitlines()]
    warned = {entry["message_id"]: entry for entry in logs if entry.get("level") == "WARNING"}
    assert set(warned) == {"u1", "u2", "i1", "i2", "i3", "i4"}
    assert warned["u1"]["status"] == "unknown_id"
    assert warned["i3"]["status"] == "invalid"
    assert "label" in warned["i3"]["detail"]
    assert "SomethingElse" in warned["i4"]["detail"]
    assert "{not json" not in stream.getvalue()  # never the body
    # The label that went well has no line of its own: one batch line counts it, by event id.
    assert [entry for entry in logs if entry.get("message_id") == "ok"] == []
    (batch,) = [entry for entry in logs if entry["message"] == "feedback batch done"]
    assert (batch["records"], batch["done"], batch["event_ids"]) == (7, {"labelled": 1}, ["e1"])


def test_labels_of_predictions_not_sampled_for_capture(capsys: pytest.CaptureFixture[str]) -> None:
    with moto_dynamodb() as client:
        recorder = WindowRecorder(
            DynamoDBAdapter(client), WINDOWS, PREDICTIONS, capture=CapturePolicy(0.0, 0.0), clock=lambda: CLASSIFIED_AT
        )
        recorder.observe([(f"m-{e.event.id}", e) for e in predictions()], [], runtime())
        capsys.readouterr()
        # The classifier writes nothing per event it does not capture: the policy says none will come.
        outcomes = service(client, capture=CapturePolicy(0.0, 0.0)).process([label("f1", "e0", "card_arrival")])
        assert outcomes["f1"].status == "not_captured"
        assert get_unmatched(client)["not_captured"] == 1
        assert get_window(client, W0700).get("nl", 0) == 0
        # Expected by configuration, so not part of the FeedbackUnmatched alarm signal.
        values = {p["name"]: p["value"] for p in emf(capsys.readouterr().out)}
        assert values["FeedbackUnmatched"] == 0.0


def test_a_label_without_capture_for_an_id_only_some_routes_capture_is_not_captured_after_waiting() -> None:
    """Auto-routed events are captured at a rate, review-routed ones always: without a capture, the label
    waits (pending) like any early label, then counts as not captured rather than unknown."""
    with moto_dynamodb() as client:
        policy = CapturePolicy(review_rate=1.0, auto_rate=0.0)
        recorder = WindowRecorder(
            DynamoDBAdapter(client), WINDOWS, PREDICTIONS, capture=policy, clock=lambda: CLASSIFIED_AT
        )
        recorder.observe([(f"m-{e.event.id}", e) for e in predictions()], [], runtime())
        auto = next(e.event.id for e in predictions() if e.route == "auto")
        waiting = service(client, capture=policy, retry_unknown_seconds=600)
        assert waiting.process([label("f1", auto, "card_arrival")])["f1"].status == "pending"
        done = service(client, capture=policy, retry_unknown_seconds=0)
        assert done.process([label("f2", auto, "card_arrival")])["f2"].status == "not_captured"
        everything = service(client, retry_unknown_seconds=0)  # every id is always captured: unknown
        assert everything.process([label("f3", "never-seen", "card_arrival")])["f3"].status == "unknown_id"


# -- the Lambda handler ---------------------------------------------------------------------------


def test_handler_builds_from_the_environment_and_reads_the_queue(
    ddb: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, context: Context
) -> None:
    (tmp_path / "manifest.json").write_text(manifest().dump())
    for name, value in {
        c.ENV_MODEL_DIR: str(tmp_path),
        c.ENV_WINDOWS_TABLE: WINDOWS,
        c.ENV_PREDICTIONS_TABLE: PREDICTIONS,
        c.ENV_FEEDBACK_TABLE: FEEDBACK,
    }.items():
        monkeypatch.setenv(name, value)
    sqs = boto3.client("sqs", region_name=REGION)
    events = boto3.client("events", region_name=REGION)
    url = create_topology(sqs, events, ddb, topology.build(NAMES)).queues[NAMES.feedback_queue].url
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"id": "e4", "label": "exchange_rate"}))
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"])["Messages"]
    event = {"Records": [{**record(m["MessageId"], m["Body"]), "attributes": m["Attributes"]} for m in messages]}
    feedback_handler.reset_for_tests(None)
    try:
        assert feedback_handler.handler(event, context) == {"batchItemFailures": []}
    finally:
        feedback_handler.reset_for_tests(None)
    assert get_window(ddb, W0700)["nl"] == 1
