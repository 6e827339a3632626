"""Routing: labels, top-k, thresholds, route reasons and windows, from probabilities alone."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from pigeonhole.classify.contract import InputEvent
from pigeonhole.classify.routing import ROUTE_REASONS, decide, route_batch, window_start
from pigeonhole.model.manifest import Manifest, load_manifest

CLASSES = ["card_arrival", "lost_card", "refund"]


def _event(i: int, when: datetime | None = None) -> InputEvent:
    return InputEvent(
        id=f"e{i}", time=when or datetime(2026, 11, 29, 7, 3, 10, tzinfo=UTC), model_input="x", payload={}
    )


def test_labels_topk_and_routes() -> None:
    probs = np.array([[0.7, 0.2, 0.1], [0.3, 0.35, 0.35], [0.05, 0.05, 0.9]], dtype=np.float32)
    out = route_batch([_event(i) for i in range(3)], probs, CLASSES, threshold=0.6, top_k=2, window_seconds=300)
    assert [c.label for c in out] == ["card_arrival", "lost_card", "refund"]
    assert [c.route for c in out] == ["auto", "review", "auto"]
    assert out[0].top_k == [("card_arrival", pytest.approx(0.7)), ("lost_card", pytest.approx(0.2))]
    # ties break towards the lower class index, so the output is deterministic
    assert out[1].top_k[0][0] == "lost_card"
    assert out[1].top_k[1][0] == "refund"


def test_threshold_is_inclusive() -> None:
    probs = np.array([[0.5, 0.25, 0.25]], dtype=np.float32)
    (c,) = route_batch([_event(0)], probs, CLASSES, threshold=0.5, top_k=1, window_seconds=300)
    assert c.route == "auto"


def test_top_k_is_capped_by_class_count() -> None:
    probs = np.array([[0.2, 0.3, 0.5]], dtype=np.float32)
    (c,) = route_batch([_event(0)], probs, CLASSES, threshold=0.0, top_k=10, window_seconds=300)
    assert [label for label, _ in c.top_k] == ["refund", "lost_card", "card_arrival"]


@pytest.mark.parametrize(
    ("when", "seconds", "expected"),
    [
        (datetime(2026, 11, 29, 7, 3, 10, tzinfo=UTC), 300, "2026-11-29T07:00:00Z"),
        (datetime(2026, 11, 29, 7, 5, 0, tzinfo=UTC), 300, "2026-11-29T07:05:00Z"),
        (datetime(2026, 11, 29, 7, 4, 59, 999000, tzinfo=UTC), 300, "2026-11-29T07:00:00Z"),
        (datetime(2026, 11, 29, 7, 59, 0, tzinfo=UTC), 3600, "2026-11-29T07:00:00Z"),
    ],
)
def test_window_start(when: datetime, seconds: int, expected: str) -> None:
    assert window_start(when, seconds) == expected


def test_late_events_keep_their_own_window() -> None:
    late = _event(0, datetime(2026, 11, 28, 23, 58, tzinfo=UTC))
    probs = np.array([[0.9, 0.05, 0.05]], dtype=np.float32)
    (c,) = route_batch([late], probs, CLASSES, threshold=0.5, top_k=1, window_seconds=300)
    assert c.window == "2026-11-28T23:55:00Z"


# -- route reasons -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("confidence", "per_class", "score", "expected"),
    [
        (0.9, None, None, ("auto", "confident")),
        (0.5, None, None, ("auto", "confident")),  # inclusive
        (0.49, None, None, ("review", "low_confidence")),
        (0.9, {"refund": 0.95}, None, ("review", "low_confidence")),  # the class's own threshold
        (0.4, {"refund": 0.3}, None, ("auto", "confident")),  # a lower per-class threshold lets it through
        (0.9, {"lost_card": 0.99}, None, ("auto", "confident")),  # another class's threshold does not apply
        (0.99, None, 0.7, ("review", "unknown")),  # unknown wins over a confident label
        (0.2, None, 0.7, ("review", "unknown")),  # and over low confidence
        (0.9, None, 0.59, ("auto", "confident")),
        (0.9, None, 0.6, ("review", "unknown")),  # inclusive
    ],
)
def test_decide_route_and_reason(
    confidence: float, per_class: dict[str, float] | None, score: float | None, expected: tuple[str, str]
) -> None:
    assert decide("refund", confidence, 0.5, per_class, score, unknown_threshold=0.6) == expected


def test_no_unknown_threshold_means_no_unknown_route() -> None:
    assert decide("refund", 0.9, 0.5, None, unknown_score=1.0, unknown_threshold=None) == ("auto", "confident")


def test_route_batch_carries_reasons_and_scores_to_the_output(manifest: Manifest) -> None:
    probs = np.array([[0.9, 0.05, 0.05], [0.05, 0.9, 0.05], [0.4, 0.3, 0.3], [0.05, 0.05, 0.9]])
    out = route_batch(
        [_event(i) for i in range(4)],
        probs,
        CLASSES,
        threshold=0.5,
        top_k=1,
        window_seconds=300,
        per_class={"refund": 0.95},
        unknown_scores=np.array([0.1, 0.812345678, 0.2, 0.3]),
        unknown_threshold=0.8,
    )
    assert [(c.route, c.route_reason) for c in out] == [
        ("auto", "confident"),
        ("review", "unknown"),
        ("review", "low_confidence"),
        ("review", "low_confidence"),
    ]
    detail = out[1].to_output(manifest)
    assert (detail["route"], detail["route_reason"], detail["unknown_score"]) == ("review", "unknown", 0.812346)
    assert ROUTE_REASONS == ("confident", "low_confidence", "unknown")


def test_without_a_score_the_output_says_so(manifest: Manifest) -> None:
    (c,) = route_batch([_event(0)], np.array([[0.9, 0.05, 0.05]]), CLASSES, 0.5, 1, 300)
    detail = c.to_output(manifest)
    assert (detail["route_reason"], detail["unknown_score"]) == ("confident", None)


@pytest.fixture(scope="module")
def manifest() -> Manifest:
    return load_manifest(Path(__file__).resolve().parents[2] / "layers" / "model")
