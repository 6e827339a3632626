"""Evaluation: quality, calibration, fp32/int8 agreement, the review threshold and latency.

Pure numpy over probability matrices, so every number can be checked on a hand-made case. The
probabilities come from `pigeonhole.model.session.run_probabilities`, the runtime's own path.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from pigeonhole.model.session import run_outputs, run_probabilities

ECE_BINS = 15
# Events per inference run when scoring: the classifier runs the model once per SQS batch (<= 10),
# and int8 dynamic quantization picks its activation scale per run, so batch size matters (a little).
EVAL_BATCH = 10


def expected_calibration_error(
    confidence: NDArray[np.floating], correct: NDArray[np.bool_], n_bins: int = ECE_BINS
) -> float:
    """Σ_b (n_b / N) · |accuracy_b − mean confidence_b| over equal-width bins (lo, hi] of [0, 1]."""
    conf = np.asarray(confidence, dtype=np.float64)
    hit = np.asarray(correct, dtype=np.float64)
    if conf.size == 0:
        return 0.0
    # Bin b holds confidences in (b/n, (b+1)/n]; a confidence of exactly 0 joins the first bin.
    idx = np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        mask = idx == b
        if mask.any():
            total += mask.sum() / conf.size * abs(hit[mask].mean() - conf[mask].mean())
    return float(total)


def classification_metrics(
    probs: NDArray[np.floating], y_true: NDArray[np.int64], classes: Sequence[str]
) -> dict[str, object]:
    """Accuracy, macro-F1, ECE and per-class precision / recall (a class never predicted has precision 0)."""
    pred = np.argmax(probs, axis=1)
    conf = np.max(probs, axis=1)
    correct = pred == y_true
    k = len(classes)
    tp = np.bincount(y_true[correct], minlength=k).astype(np.float64)
    predicted = np.bincount(pred, minlength=k).astype(np.float64)
    support = np.bincount(y_true, minlength=k).astype(np.float64)
    precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(k), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(k), where=denom > 0)
    return {
        "n_events": int(y_true.size),
        "accuracy": float(correct.mean()) if y_true.size else 0.0,
        "macro_f1": float(f1.mean()),
        "ece_15": expected_calibration_error(conf, correct),
        "mean_confidence": float(conf.mean()) if conf.size else 0.0,
        "per_class": {
            name: {
                "precision": round(float(precision[i]), 6),
                "recall": round(float(recall[i]), 6),
                "f1": round(float(f1[i]), 6),
                "support": int(support[i]),
            }
            for i, name in enumerate(classes)
        },
    }


def agreement(reference: NDArray[np.floating], other: NDArray[np.floating]) -> dict[str, float]:
    """Top-1 agreement and the largest absolute probability difference between two models."""
    return {
        "top1_agreement": float(np.mean(np.argmax(reference, axis=1) == np.argmax(other, axis=1))),
        "max_abs_prob_diff": float(np.max(np.abs(reference.astype(np.float64) - other.astype(np.float64)))),
    }


@dataclass(frozen=True)
class ThresholdChoice:
    """The review threshold and what it does on the data it was chosen on."""

    threshold: float
    coverage: float  # share of events auto-routed (confidence >= threshold)
    auto_accuracy: float  # accuracy among the auto-routed events
    reached_target: bool
    n_events: int


def routed(confidence: NDArray[np.floating], correct: NDArray[np.bool_], threshold: float) -> tuple[float, float]:
    """(coverage, accuracy of the auto-routed events) for a threshold; events at the threshold are auto-routed."""
    auto = np.asarray(confidence) >= threshold
    coverage = float(auto.mean()) if auto.size else 0.0
    accuracy = float(np.asarray(correct)[auto].mean()) if auto.any() else 1.0
    return coverage, accuracy


def select_threshold(confidence: NDArray[np.floating], correct: NDArray[np.bool_], target: float) -> ThresholdChoice:
    """The lowest observed confidence t such that the events with confidence >= t reach `target` accuracy.

    Lowest, so the most events are auto-routed while the promise (precision of auto-routing) holds on
    held-out data. If no threshold reaches the target, everything goes to review (threshold 1.0).
    """
    conf = np.asarray(confidence, dtype=np.float64)
    hit = np.asarray(correct, dtype=bool)
    if conf.size == 0:
        raise ValueError("cannot choose a threshold without validation events")
    order = np.argsort(-conf, kind="stable")
    conf_sorted, hit_sorted = conf[order], hit[order]
    cum_accuracy = np.cumsum(hit_sorted) / np.arange(1, conf.size + 1)
    # A threshold t auto-routes every event with confidence >= t, ties included: evaluate at tie ends.
    tie_end = np.r_[conf_sorted[1:] != conf_sorted[:-1], True]
    ok = tie_end & (cum_accuracy >= target)
    if not ok.any():
        coverage, acc = routed(conf, hit, 1.0)
        return ThresholdChoice(1.0, coverage, acc, reached_target=False, n_events=int(conf.size))
    last = int(np.flatnonzero(ok)[-1])
    threshold = float(conf_sorted[last])
    coverage, acc = routed(conf, hit, threshold)
    return ThresholdChoice(threshold, coverage, acc, reached_target=True, n_events=int(conf.size))


def measure_latency(
    session: object,
    texts: Sequence[str],
    input_name: str,
    output_name: str,
    repeats: int = 200,
    batch: int = 10,
) -> dict[str, float]:
    """Median wall time of one event and of a batch of `batch` events through `run_probabilities`, in ms.

    The session should have 1 intra-op thread (what a Lambda function with a fractional vCPU gets).
    Each repeat uses different texts, cycling through `texts`, so caching cannot flatter the numbers.
    """
    if not texts:
        raise ValueError("latency needs at least one text")
    pool = list(texts)
    for i in range(min(20, repeats)):  # warm up: first runs allocate
        run_probabilities(session, [pool[i % len(pool)]], input_name, output_name)
    singles: list[float] = []
    batches: list[float] = []
    for r in range(repeats):
        one = [pool[r % len(pool)]]
        t0 = time.perf_counter()
        run_probabilities(session, one, input_name, output_name)
        singles.append(time.perf_counter() - t0)
        many = [pool[(r * batch + j) % len(pool)] for j in range(batch)]
        t0 = time.perf_counter()
        run_probabilities(session, many, input_name, output_name)
        batches.append(time.perf_counter() - t0)
    return {
        "single_event_ms": round(statistics.median(singles) * 1e3, 4),
        f"batch_of_{batch}_ms": round(statistics.median(batches) * 1e3, 4),
        "repeats": repeats,
    }


def score_in_batches(
    session: object, texts: Sequence[str], input_name: str, output_name: str, batch: int = EVAL_BATCH
) -> NDArray[np.float32]:
    """Probabilities for `texts` in consecutive runs of `batch` events, as the classifier would see them."""
    if batch < 1:
        raise ValueError("batch must be >= 1")
    parts = [
        run_probabilities(session, list(texts[i : i + batch]), input_name, output_name)
        for i in range(0, len(texts), batch)
    ]
    return np.concatenate(parts, axis=0) if parts else np.zeros((0, 0), dtype=np.float32)


def outputs_in_batches(
    session: object, texts: Sequence[str], input_name: str, output_names: Sequence[str], batch: int = EVAL_BATCH
) -> list[NDArray[np.float32]]:
    """Several outputs for `texts` in runs of `batch` events (one graph run each), concatenated per output."""
    runs = [
        run_outputs(session, list(texts[i : i + batch]), input_name, output_names) for i in range(0, len(texts), batch)
    ]
    if not runs:
        return [np.zeros((0, 0), dtype=np.float32) for _ in output_names]
    return [np.concatenate([run[k] for run in runs], axis=0) for k in range(len(output_names))]


def batch_dependence(
    session: object, texts: Sequence[str], input_name: str, output_name: str, in_batches: NDArray[np.float32]
) -> dict[str, float]:
    """How much an event's probabilities depend on the other events of its run: alone vs in its batch.

    `DynamicQuantizeLinear` takes one scale for the whole input tensor, so with int8 the same event
    can score slightly differently alone and within a batch. (One run over a whole eval set is not
    measured: the graph's TF-IDF output is dense, [N, n_features] floats, gigabytes for N in thousands.)
    """
    alone = score_in_batches(session, texts, input_name, output_name, batch=1)
    return agreement(alone, in_batches)
