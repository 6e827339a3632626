"""Inverse-probability-weighted accuracy from labels: the sums, their item round trip, the estimate."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest

from pigeonhole.feedback.estimates import WeightedLabels, capture_weight


def test_the_estimate_weighs_each_label_by_its_inverse_capture_rate() -> None:
    # 10 review labels (w=1), 4 right; 2 auto labels (w=10), both right.
    joins = [("review", 1.0, i < 4) for i in range(10)] + [("auto", 10.0, True)] * 2
    labels = WeightedLabels.from_joins(joins)
    overall = labels.estimate()
    assert overall.labelled == 12
    assert overall.represented == pytest.approx(30.0)
    assert overall.accuracy == pytest.approx((4 + 20) / 30)
    assert overall.unweighted_accuracy == pytest.approx(6 / 12)
    assert overall.effective_sample_size == pytest.approx(30**2 / (10 + 200))
    summary = labels.summary()
    assert summary["review"].accuracy == pytest.approx(0.4)
    assert summary["auto"].accuracy == pytest.approx(1.0)
    assert summary["auto"].effective_sample_size == pytest.approx(2.0)


def test_item_round_trip_and_merge_are_addition() -> None:
    a = WeightedLabels.from_joins([("review", 1.0, True), ("auto", 10.0, False)])
    b = WeightedLabels.from_joins([("auto", 10.0, True)])
    item = {k: Decimal(repr(v)) for k, v in a.to_item_updates().items()} | {"n": Decimal(5), "cm_0_0": Decimal(1)}
    assert WeightedLabels.from_item(item) == a
    wire = {k: {"N": str(v)} for k, v in b.to_item_updates().items()}
    assert WeightedLabels.from_item(wire) == b
    merged = WeightedLabels.merge_items([item, wire])
    assert merged == a + b
    assert merged == WeightedLabels.from_joins([("review", 1.0, True), ("auto", 10.0, False), ("auto", 10.0, True)])
    assert merged.estimate(("auto",)).accuracy == pytest.approx(0.5)


def test_no_labels_no_estimate_and_bad_inputs_are_refused() -> None:
    empty = WeightedLabels().estimate()
    assert (empty.labelled, empty.accuracy, empty.effective_sample_size) == (0, None, 0.0)
    with pytest.raises(ValueError, match="route"):
        WeightedLabels.from_joins([("quarantined", 1.0, True)])
    with pytest.raises(ValueError, match="weight"):
        WeightedLabels.from_joins([("auto", 0.5, True)])
    assert capture_weight({"route": "auto"}) == 1.0  # captured before the policy existed: rate 1
    assert capture_weight({"route": "review", "weight": Decimal("10")}) == 10.0
    assert math.isnan(capture_weight({"route": "auto", "weight": "nope"}))  # refused by the join
    assert math.isnan(capture_weight({"weight": 1}))  # no route
