"""Routing: labels, top-k, thresholds and windows, from probabilities alone."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from pigeonhole.classify.contract import InputEvent
from pigeonhole.classify.routing import route_batch, window_start

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
