"""Labels survive a deploy: feedback joins on the model version that captured the prediction, and a
label that overtakes its prediction is retried for a bounded time, then counted, never dropped."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from aws_lambda_powertools import Logger

from pigeonhole.adapters.dynamodb import DynamoDBAdapter
from pigeonhole.drift import layout as keys
from pigeonhole.drift.recorder import WindowRecorder
from pigeonhole.feedback.service import FeedbackService

from .monitoring_support import (
    CLASSES,
    FEEDBACK,
    PREDICTIONS,
    VERSION,
    WINDOWS,
    at,
    classification,
    get_window,
    manifest,
    moto_dynamodb,
    runtime,
    scan,
)

OLD, NEW = VERSION, "0.2.0-test"
CLASSIFIED_AT = at("2026-11-29T07:03:00Z")
W0700 = "2026-11-29T07:00:00Z"
RETRY = 600


def recorder(client: Any, when: float, register: bool = True) -> WindowRecorder:
    return WindowRecorder(DynamoDBAdapter(client), WINDOWS, PREDICTIONS, register_model=register, clock=lambda: when)


def classify(client: Any, version: str, ids: list[str], register: bool = True) -> None:
    events = [(f"m-{i}", classification(i, 0, 0.9, when="2026-11-29T07:01:00Z")) for i in ids]
    assert (
        recorder(client, CLASSIFIED_AT.timestamp(), register).observe(events, [], runtime(manifest(version=version)))
        == {}
    )


def feedback(client: Any, now: float, version: str = NEW, retry: int = RETRY) -> FeedbackService:
    return FeedbackService(
        DynamoDBAdapter(client, rng=random.Random(0)),
        manifest(version=version),
        WINDOWS,
        PREDICTIONS,
        FEEDBACK,
        retry_unknown_seconds=retry,
        logger=Logger(service="feedback-deploy-test"),
        clock=lambda: now,
    )


def label(message_id: str, event_id: str, name: str, first_received: float, receives: int = 1) -> dict[str, Any]:
    ms = str(int(first_received * 1000))
    return {
        "messageId": message_id,
        "receiptHandle": f"rh-{message_id}",
        "body": f'{{"id": "{event_id}", "label": "{name}"}}',
        "attributes": {
            "ApproximateReceiveCount": str(receives),
            "SentTimestamp": ms,
            "ApproximateFirstReceiveTimestamp": ms,
        },
        "messageAttributes": {},
        "md5OfBody": "0",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:test-feedback",
        "awsRegion": "us-east-1",
    }


def unmatched(client: Any, version: str = NEW) -> dict[str, int]:
    items = [i for i in scan(client, WINDOWS) if i["pk"] == keys.unmatched_pk(version)]
    return {k: int(v) for k, v in (items[0] if items else {}).items() if k in ("unknown_id", "unknown_label")}


@pytest.fixture
def ddb() -> Iterator[Any]:
    with moto_dynamodb() as client:
        yield client


# -- the version join -----------------------------------------------------------------------------


def test_a_label_for_the_previous_versions_prediction_counts_in_that_versions_window(ddb: Any) -> None:
    classify(ddb, OLD, ["old-1", "old-2"])  # served before the deploy
    classify(ddb, NEW, ["new-1"])  # served after it
    now = (CLASSIFIED_AT + timedelta(hours=2)).timestamp()
    svc = feedback(ddb, now)
    response = svc.handle(
        {
            "Records": [
                label("f1", "old-1", "card_arrival", now - 5),
                label("f2", "old-2", "lost_card", now - 5),
                label("f3", "new-1", "card_arrival", now - 5),
            ]
        },
        None,
    )
    assert response["batchItemFailures"] == []
    old, new = get_window(ddb, W0700, OLD), get_window(ddb, W0700, NEW)
    assert (old["nl"], new["nl"]) == (2, 1)  # each label in the window of the version that predicted
    assert old[f"cm_0_{CLASSES.index('lost_card')}"] == 1
    markers = {i["pk"]: i for i in scan(ddb, FEEDBACK)}
    assert set(markers) == {keys.label_pk(OLD, "old-1"), keys.label_pk(OLD, "old-2"), keys.label_pk(NEW, "new-1")}
    assert markers[keys.label_pk(OLD, "old-1")]["model_version"] == OLD
    # Exactly once across versions: the same labels again are duplicates, nothing is added.
    again = feedback(ddb, now + 60).process(
        [label("f4", "old-1", "card_arrival", now), label("f5", "new-1", "card_arrival", now)]
    )
    assert {o.status for o in again.values()} == {"duplicate"}
    assert (get_window(ddb, W0700, OLD)["nl"], get_window(ddb, W0700, NEW)["nl"]) == (2, 1)


def test_without_the_registry_the_previous_versions_labels_were_unknown(ddb: Any) -> None:
    """What the registry buys: a classifier that does not register leaves old predictions unjoinable."""
    classify(ddb, OLD, ["old-1"], register=False)
    now = (CLASSIFIED_AT + timedelta(hours=2)).timestamp()
    outcomes = feedback(ddb, now, retry=0).process([label("f1", "old-1", "card_arrival", now)])
    assert outcomes["f1"].status == "unknown_id"
    classify(ddb, OLD, ["old-2"])  # the next batch of the old version registers it
    outcomes = feedback(ddb, now).process([label("f2", "old-1", "card_arrival", now)])
    assert outcomes["f2"].status == "labelled"


def test_the_label_must_be_a_class_of_the_predicting_version(ddb: Any) -> None:
    classify(ddb, OLD, ["old-1"])
    now = (CLASSIFIED_AT + timedelta(hours=2)).timestamp()
    outcomes = feedback(ddb, now).process([label("f1", "old-1", "not_a_class", now)])
    assert outcomes["f1"].status == "unknown_label"
    assert OLD in str(outcomes["f1"].detail)
    assert unmatched(ddb) == {"unknown_label": 1}


# -- labels that overtake their prediction --------------------------------------------------------


def test_an_early_label_is_retried_then_joined_exactly_once(ddb: Any) -> None:
    now = CLASSIFIED_AT.timestamp()
    first = feedback(ddb, now).handle({"Records": [label("f1", "late-1", "card_arrival", now - 1)]}, None)
    assert first["batchItemFailures"] == [{"itemIdentifier": "f1"}]  # back to SQS, not counted anywhere
    assert unmatched(ddb) == {}
    assert scan(ddb, FEEDBACK) == []
    classify(ddb, NEW, ["late-1"])  # the classifier's retried batch lands
    redelivered = label("f1", "late-1", "card_arrival", now - 1, receives=2)
    second = feedback(ddb, now + 181).handle({"Records": [redelivered]}, None)
    assert second["batchItemFailures"] == []
    assert get_window(ddb, W0700, NEW)["nl"] == 1
    assert unmatched(ddb) == {}


@pytest.mark.parametrize(
    ("age_seconds", "receives", "status"),
    [
        (0, 1, "pending"),
        (RETRY - 1, 4, "pending"),
        (RETRY, 2, "unknown_id"),  # the bound: counted as unmatched, acknowledged
        (RETRY * 10, 1, "unknown_id"),
        (10, 5, "unknown_id"),  # the last receive before the dead-letter queue counts it instead
    ],
)
def test_the_retry_is_bounded_by_age_and_receives(ddb: Any, age_seconds: int, receives: int, status: str) -> None:
    now = CLASSIFIED_AT.timestamp()
    svc = feedback(ddb, now)
    response = svc.handle({"Records": [label("f1", "never", "card_arrival", now - age_seconds, receives)]}, None)
    failed = [f["itemIdentifier"] for f in response["batchItemFailures"]]
    assert failed == (["f1"] if status == "pending" else [])
    assert unmatched(ddb) == ({} if status == "pending" else {"unknown_id": 1})


def test_a_failed_lookup_is_retried_whatever_the_age(ddb: Any) -> None:
    class Broken(DynamoDBAdapter):
        def batch_get(self, *args: Any, **kwargs: Any) -> dict[str, dict[str, Any]]:
            raise RuntimeError("throttled")

    now = CLASSIFIED_AT.timestamp()
    svc = FeedbackService(
        Broken(ddb),
        manifest(version=NEW),
        WINDOWS,
        PREDICTIONS,
        FEEDBACK,
        logger=Logger(service="feedback-deploy-test"),
        clock=lambda: now,
    )
    response = svc.handle({"Records": [label("f1", "x", "card_arrival", now - 10 * RETRY)]}, None)
    assert response["batchItemFailures"] == [{"itemIdentifier": "f1"}]
    assert unmatched(ddb) == {}
