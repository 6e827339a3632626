"""Evaluation numbers on hand-computed cases: ECE, per-class metrics, agreement, the review threshold."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_recall_fscore_support

from pigeonhole_tools.training.evaluate import (
    agreement,
    batch_dependence,
    classification_metrics,
    expected_calibration_error,
    measure_latency,
    routed,
    score_in_batches,
    select_threshold,
)


def test_ece_hand_computed() -> None:
    # Bin 14 (0.933, 1]: two events at 0.95, one right -> |0.5 - 0.95| * 2/4 = 0.225.
    # Bin 8 (0.533, 0.6]: two events at 0.55, both right -> |1.0 - 0.55| * 2/4 = 0.225.
    conf = np.array([0.95, 0.95, 0.55, 0.55])
    correct = np.array([True, False, True, True])
    assert expected_calibration_error(conf, correct) == pytest.approx(0.45)


def test_ece_is_zero_when_confidence_matches_accuracy() -> None:
    conf = np.full(10, 0.8)
    correct = np.array([True] * 8 + [False] * 2)
    assert expected_calibration_error(conf, correct) == pytest.approx(0.0)


def test_ece_bins_are_closed_on_the_right() -> None:
    # 1/15 exactly belongs to the first bin (0, 1/15]; 1.0 to the last; 0.0 joins the first.
    conf = np.array([1 / 15, 0.0, 1.0])
    correct = np.array([False, False, True])
    # first bin: two events, accuracy 0, mean confidence 1/30 -> 2/3 * 1/30; last bin exact.
    assert expected_calibration_error(conf, correct) == pytest.approx(2 / 3 * (1 / 30))


def test_ece_of_nothing_is_zero() -> None:
    assert expected_calibration_error(np.array([]), np.array([], dtype=bool)) == 0.0


def test_classification_metrics_match_scikit_learn() -> None:
    rng = np.random.default_rng(3)
    k = 5
    probs = rng.dirichlet(np.ones(k), size=200).astype(np.float32)
    probs[:, 4] = 0.0  # class 4 is never predicted: precision must be 0, not NaN
    y = rng.integers(0, k, size=200)
    classes = [f"c{i}" for i in range(k)]
    m = classification_metrics(probs, y, classes)
    pred = probs.argmax(axis=1)
    precision, recall, _, support = precision_recall_fscore_support(y, pred, labels=list(range(k)), zero_division=0)
    assert m["accuracy"] == pytest.approx(float(np.mean(pred == y)))
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, labels=list(range(k)), average="macro", zero_division=0))
    per_class = m["per_class"]
    assert isinstance(per_class, dict)
    for i, name in enumerate(classes):
        assert per_class[name]["precision"] == pytest.approx(precision[i], abs=1e-6)
        assert per_class[name]["recall"] == pytest.approx(recall[i], abs=1e-6)
        assert per_class[name]["support"] == support[i]
    assert per_class["c4"]["precision"] == 0.0


def test_agreement() -> None:
    a = np.array([[0.9, 0.1], [0.4, 0.6], [0.7, 0.3]], dtype=np.float32)
    b = np.array([[0.8, 0.2], [0.6, 0.4], [0.7, 0.3]], dtype=np.float32)
    result = agreement(a, b)
    assert result["top1_agreement"] == pytest.approx(2 / 3)
    assert result["max_abs_prob_diff"] == pytest.approx(0.2, abs=1e-6)


def test_threshold_is_the_lowest_confidence_that_reaches_the_target() -> None:
    # Auto-routed accuracy by threshold: 0.9 -> 1, 0.8 -> 1, 0.7 -> 2/3, 0.6 -> 3/4, 0.5 -> 3/5.
    # Not monotone: the lowest threshold reaching 0.75 is 0.6, below a failing 0.7.
    conf = np.array([0.5, 0.9, 0.7, 0.6, 0.8])
    correct = np.array([False, True, False, True, True])
    choice = select_threshold(conf, correct, target=0.75)
    assert choice.threshold == pytest.approx(0.6)
    assert choice.coverage == pytest.approx(0.8)
    assert choice.auto_accuracy == pytest.approx(0.75)
    assert choice.reached_target
    assert choice.n_events == 5


def test_threshold_counts_ties_together() -> None:
    # At 0.8 both tied events are auto-routed (one wrong): 2/3 fails 0.9, so the threshold stays at 0.9.
    conf = np.array([0.9, 0.8, 0.8, 0.5])
    correct = np.array([True, True, False, True])
    choice = select_threshold(conf, correct, target=0.9)
    assert choice.threshold == pytest.approx(0.9)
    assert choice.coverage == pytest.approx(0.25)


def test_threshold_sends_everything_to_review_when_the_target_is_unreachable() -> None:
    conf = np.array([0.9, 0.6, 0.4])
    correct = np.array([False, False, False])
    choice = select_threshold(conf, correct, target=0.5)
    assert choice.threshold == 1.0
    assert not choice.reached_target
    assert choice.coverage == 0.0


def test_threshold_accepts_everything_when_all_are_right() -> None:
    conf = np.array([0.9, 0.3, 0.6])
    choice = select_threshold(conf, np.array([True, True, True]), target=0.99)
    assert choice.threshold == pytest.approx(0.3)
    assert choice.coverage == 1.0


def test_threshold_needs_events() -> None:
    with pytest.raises(ValueError, match="validation events"):
        select_threshold(np.array([]), np.array([], dtype=bool), target=0.9)


def test_routed_auto_routes_events_at_the_threshold() -> None:
    coverage, accuracy = routed(np.array([0.5, 0.7, 0.9]), np.array([False, True, True]), 0.7)
    assert coverage == pytest.approx(2 / 3)
    assert accuracy == 1.0


class _CountingSession:
    """Stands in for an onnxruntime session: records batch sizes, returns uniform probabilities."""

    def __init__(self) -> None:
        self.batch_sizes: list[int] = []

    def run(self, outputs: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        (batch,) = feeds.values()
        self.batch_sizes.append(batch.shape[0])
        return [np.full((batch.shape[0], 2), 0.5, dtype=np.float32)]


def test_latency_times_single_events_and_batches_of_ten() -> None:
    session = _CountingSession()
    result = measure_latency(session, ["a b", "c d", "e"], "text", "probabilities", repeats=7)
    assert set(result) == {"single_event_ms", "batch_of_10_ms", "repeats"}
    assert result["repeats"] == 7
    assert result["single_event_ms"] >= 0
    timed = session.batch_sizes[7:]  # after the warm-up runs
    assert timed.count(1) == 7
    assert timed.count(10) == 7


class _BatchSensitiveSession:
    """Like int8 dynamic quantization: each row's scores depend on the largest input of its run."""

    def run(self, outputs: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        (batch,) = feeds.values()
        lengths = np.array([len(str(t)) for t in batch[:, 0]], dtype=np.float32)
        first = lengths / (lengths.max() * 2)
        return [np.stack([first, 1 - first], axis=1)]


def test_scoring_in_runs_of_ten_keeps_order_and_composition() -> None:
    texts = [f"event {'x' * i}" for i in range(23)]
    probs = score_in_batches(_BatchSensitiveSession(), texts, "text", "probabilities", batch=10)
    assert probs.shape == (23, 2)
    # Row 3 sits in the first run (texts 0-9): scaled by the longest text of that run, text 9.
    assert probs[3, 0] == pytest.approx(len(texts[3]) / (len(texts[9]) * 2))
    assert probs[22, 0] == pytest.approx(0.5)  # the last run is texts 20-22, 22 is its longest


def test_batch_dependence_shows_scores_that_change_with_the_run() -> None:
    texts = ["a", "bbbb", "cc", "dddddddd"]
    session = _BatchSensitiveSession()
    in_runs = score_in_batches(session, texts, "text", "probabilities", batch=2)
    result = batch_dependence(session, texts, "text", "probabilities", in_batches=in_runs)
    assert result["max_abs_prob_diff"] > 0.1  # alone, every text scores 0.5
    assert 0.0 <= result["top1_agreement"] <= 1.0
