"""The default capture policy through the real recorder and feedback service (moto): accuracy estimated
from the labels of captured predictions equals the weighted truth, and the unweighted figure is biased."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import pytest

from pigeonhole.adapters.dynamodb import DynamoDBAdapter
from pigeonhole.capture import CapturePolicy
from pigeonhole.classify.routing import Classification
from pigeonhole.drift.recorder import WindowRecorder
from pigeonhole.feedback.estimates import WeightedLabels
from pigeonhole.feedback.service import FeedbackService

from .monitoring_support import (
    CLASSES,
    FEEDBACK,
    PREDICTIONS,
    WINDOWS,
    at,
    classification,
    emf,
    get_window,
    manifest,
    moto_dynamodb,
    runtime,
    scan,
)
from .test_feedback import CLASSIFIED_AT, LABELLED_AT, W0700, label

REVIEW, AUTO = 50, 150  # routed to review (confidence 0.4) and auto (0.9)
REVIEW_ACCURACY, AUTO_ACCURACY = 0.5, 0.95


def population() -> tuple[list[Classification], dict[str, str]]:
    """Events with their true labels: review-routed ones right 50 % of the time, auto-routed 95 %."""
    rng = random.Random(7)
    events: list[Classification] = []
    truth: dict[str, str] = {}
    for i in range(REVIEW + AUTO):
        review = i < REVIEW
        predicted = rng.randrange(len(CLASSES))
        event = classification(f"pop-{i:04d}", predicted, 0.4 if review else 0.9, when="2026-11-29T07:01:00Z")
        right = rng.random() < (REVIEW_ACCURACY if review else AUTO_ACCURACY)
        truth[event.event.id] = CLASSES[predicted if right else (predicted + 1) % len(CLASSES)]
        events.append(event)
    return events, truth


def test_weighted_accuracy_equals_the_weighted_truth_and_the_unweighted_one_is_biased(
    capsys: pytest.CaptureFixture[str],
) -> None:
    events, truth = population()
    # Every review-routed event, a quarter of the auto-routed (the default takes a tenth; a quarter keeps
    # this population small: moto copies the tables for every transaction).
    policy = CapturePolicy(review_rate=1.0, auto_rate=0.25)
    with moto_dynamodb() as client:
        recorder = WindowRecorder(
            DynamoDBAdapter(client, rng=random.Random(0)),
            WINDOWS,
            PREDICTIONS,
            capture=policy,
            clock=lambda: CLASSIFIED_AT,
        )
        for start in range(0, len(events), 100):
            chunk = events[start : start + 100]
            assert recorder.observe([(f"m-{e.event.id}", e) for e in chunk], [], runtime()) == {}
        captures = [m for m in scan(client, PREDICTIONS) if m["captured"]]
        by_route = {r: [m for m in captures if m["route"] == r] for r in ("auto", "review")}
        assert len(by_route["review"]) == REVIEW  # every review-routed prediction is captured
        assert 20 <= len(by_route["auto"]) <= 55  # ~25 % of 150 (binomial sd ~5)
        assert {float(m["weight"]) for m in by_route["auto"]} == {4.0}

        # Every captured prediction gets its true label (as reviewers would label what they see).
        feedback = FeedbackService(
            DynamoDBAdapter(client, rng=random.Random(0)),
            manifest(),
            WINDOWS,
            PREDICTIONS,
            FEEDBACK,
            clock=LABELLED_AT.timestamp,
        )
        ids = sorted(str(m["event_id"]) for m in captures)
        outcomes = feedback.process([label(f"f-{e}", e, truth[e]) for e in ids])
        assert {o.status for o in outcomes.values()} == {"labelled"}
        item = get_window(client, W0700)

    estimates = WeightedLabels.from_item(item).summary()
    overall = estimates["overall"]
    # The estimate is exactly the Horvitz-Thompson ratio over the labelled captures ...
    right = {m["event_id"]: CLASSES[int(m["label_index"])] == truth[str(m["event_id"])] for m in captures}
    weights = {m["event_id"]: float(m["weight"]) for m in captures}
    weighted_truth = sum(weights[e] for e in right if right[e]) / sum(weights.values())
    assert overall.accuracy == pytest.approx(weighted_truth, abs=1e-9)
    assert overall.labelled == len(captures) == int(item["nl"])
    assert overall.represented == pytest.approx(REVIEW + 4.0 * len(by_route["auto"]))
    # ... close to the population's accuracy, while the unweighted figure is pulled towards review's.
    population_accuracy = sum(CLASSES[e.label_index] == truth[e.event.id] for e in events) / len(events)
    assert overall.accuracy == pytest.approx(population_accuracy, abs=0.05)
    assert overall.unweighted_accuracy is not None
    assert population_accuracy - overall.unweighted_accuracy > 0.1
    assert overall.accuracy - overall.unweighted_accuracy > 0.1
    with capsys.disabled():
        print(
            f"population {population_accuracy:.3f}, weighted {overall.accuracy:.3f}, unweighted "
            f"{overall.unweighted_accuracy:.3f}, labels {overall.labelled}, ESS {overall.effective_sample_size:.1f}"
        )
    assert estimates["review"].accuracy == pytest.approx(
        sum(right[m["event_id"]] for m in by_route["review"]) / REVIEW, abs=1e-9
    )
    assert estimates["review"].effective_sample_size == pytest.approx(REVIEW)
    assert overall.effective_sample_size < overall.labelled  # unequal weights: fewer labels' worth
    # The SLO alarm's inputs: Σw and Σw·wrong per batch, summed over the run.
    points = emf(capsys.readouterr().out)
    weight = sum(p["value"] for p in points if p["name"] == "LabelledWeight")
    wrong = sum(p["value"] for p in points if p["name"] == "MisclassifiedWeight")
    assert weight == pytest.approx(overall.represented)
    assert 1 - wrong / weight == pytest.approx(overall.accuracy)


def test_captures_written_before_the_policy_count_with_weight_one() -> None:
    """A capture without a ``weight`` attribute (written at the old flat rate of 1) joins with w = 1."""
    event = classification("legacy", 0, 0.9)
    with moto_dynamodb() as client:
        recorder = WindowRecorder(DynamoDBAdapter(client), WINDOWS, PREDICTIONS, clock=lambda: CLASSIFIED_AT)
        recorder.observe([("m-legacy", event)], [], runtime())
        client.update_item(
            TableName=PREDICTIONS,
            Key={"pk": {"S": f"P#{manifest().version}#legacy"}},
            UpdateExpression="REMOVE #w",
            ExpressionAttributeNames={"#w": "weight"},
        )
        feedback = FeedbackService(
            DynamoDBAdapter(client), manifest(), WINDOWS, PREDICTIONS, FEEDBACK, clock=LABELLED_AT.timestamp
        )
        assert feedback.process([label("f1", "legacy", CLASSES[0])])["f1"].status == "labelled"
        estimate = WeightedLabels.from_item(get_window(client, W0700)).estimate()
    assert (estimate.labelled, estimate.represented, estimate.accuracy) == (1, 1.0, 1.0)
    assert at("2026-11-29T07:01:00Z") < LABELLED_AT


def dynamodb_item_bytes(item: dict[str, Any]) -> int:
    """An item's billed size by DynamoDB's documented rules: UTF-8 names and strings, numbers at one byte
    per two significant digits plus one, booleans one byte."""
    size = 0
    for name, value in item.items():
        size += len(name.encode("utf-8"))
        if isinstance(value, bool):
            size += 1
        elif isinstance(value, str):
            size += len(value.encode("utf-8"))
        else:
            digits = str(abs(value)).replace(".", "").lstrip("0").rstrip("0") or "0"
            size += (len(digits) + 1) // 2 + 1
    return size


@pytest.mark.parametrize("id_chars", [36, 256])  # a UUID, and the contract's longest id
def test_a_capture_fits_one_write_unit(id_chars: int) -> None:
    """Measures the write cost of a capture with BANKING77's longest label (docs/deploy.md and
    docs/monitoring.md quote these numbers); an event that is not captured writes nothing of its own."""
    longest = "balance_not_updated_after_cheque_or_cash_deposit"  # 48 characters, the longest of the 77
    events = [
        dataclasses.replace(classification(f"{i}".rjust(id_chars, "x"), 0, conf), label=longest)
        for i, conf in enumerate((0.423456789012345, 0.923456789012345))  # one review-routed (captured), one auto
    ]
    policy = CapturePolicy(review_rate=1.0, auto_rate=0.0)
    with moto_dynamodb() as client:
        recorder = WindowRecorder(
            DynamoDBAdapter(client), WINDOWS, PREDICTIONS, capture=policy, clock=lambda: CLASSIFIED_AT
        )
        assert recorder.observe([(f"m{i}", e) for i, e in enumerate(events)], [], runtime()) == {}
        markers = scan(client, PREDICTIONS)
    sizes = {bool(m["captured"]): dynamodb_item_bytes(m) for m in markers}
    print(f"capture bytes (id {id_chars} chars): {sizes[True]}")
    assert set(sizes) == {True}  # the auto-routed event is counted in its window's batch item: no marker
    assert sizes[True] <= 1024  # one write unit per captured event
