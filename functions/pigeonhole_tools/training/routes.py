"""Choosing the routing numbers on validation data: per-class thresholds and the unknown score.

Pure numpy (plus scikit-learn's logistic regression), so every choice can be checked on a hand-made case.

Per-class thresholds: one global review threshold promises an auto-routed precision; a class whose
auto-routed events are clearly worse than that promise (the upper end of the Wilson 95 % interval of its
precision below the target, with enough events to say so) gets its own, higher threshold, chosen on the
same validation rows for the same target. Easier classes keep the global one: with a dozen validation
events per class a lower per-class threshold would be noise fitted to noise.

Unknown score: a logistic regression over per-event features (from the calibrated probabilities and the
text), fitted with events of intents the fitting model never saw as positives and validation events of
known intents as negatives. Fitted on standardized features, stored as weights on the raw features, so the
runtime computes `sigmoid(w · x + b)` with no scaler.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from numpy.typing import NDArray

from pigeonhole.model import unknown
from pigeonhole_tools.training.evaluate import select_threshold

WILSON_Z = 1.96
MIN_CLASS_EVENTS = 10
PER_CLASS_CORRECTIONS = ("none", "bonferroni")


def wilson_z_for(correction: str, n_classes: int) -> float:
    """The z of the per-class test. "none": 1.96 for each class on its own (the default package's rule).
    "bonferroni": the family of all `n_classes` tests keeps a 2.5 % one-sided error, z = Φ⁻¹(1 − 0.025 / k):
    with 77 classes tested on ~12 events each, the uncorrected test flags noise (docs/model.md)."""
    if correction == "none":
        return WILSON_Z
    if correction == "bonferroni":
        return round(NormalDist().inv_cdf(1 - 0.025 / max(1, n_classes)), 4)
    raise ValueError(f"unknown per-class correction {correction!r}; expected one of {PER_CLASS_CORRECTIONS}")


def wilson_upper(hits: int, n: int, z: float = WILSON_Z) -> float:
    """Upper end of the Wilson score interval for a proportion hits / n."""
    if n == 0:
        return 1.0
    p = hits / n
    denom = 1 + z * z / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return min(1.0, (centre + half) / denom)


@dataclass(frozen=True)
class ClassThreshold:
    label: str
    threshold: float
    n_predicted: int  # validation events predicted as this class at or above the global threshold
    precision_at_global: float
    precision_after: float
    coverage_after: float  # share of those events still auto-routed with the class's threshold


def per_class_thresholds(
    confidence: NDArray[np.floating],
    predicted: NDArray[np.int64],
    correct: NDArray[np.bool_],
    classes: Sequence[str],
    global_threshold: float,
    target: float,
    min_events: int = MIN_CLASS_EVENTS,
    z: float = WILSON_Z,
) -> list[ClassThreshold]:
    """Raise the threshold of each class whose auto-routed precision is significantly below `target`."""
    conf = np.asarray(confidence, dtype=np.float64)
    hit = np.asarray(correct, dtype=bool)
    chosen: list[ClassThreshold] = []
    for index, label in enumerate(classes):
        mine = (np.asarray(predicted) == index) & (conf >= global_threshold)
        n = int(mine.sum())
        if n < min_events:
            continue
        hits = int(hit[mine].sum())
        if wilson_upper(hits, n, z) >= target:
            continue
        pick = select_threshold(conf[mine], hit[mine], target)
        threshold = max(pick.threshold, global_threshold)
        kept = conf[mine] >= threshold
        chosen.append(
            ClassThreshold(
                label=label,
                threshold=threshold,
                n_predicted=n,
                precision_at_global=hits / n,
                precision_after=float(hit[mine][kept].mean()) if kept.any() else 1.0,
                coverage_after=float(kept.mean()),
            )
        )
    return chosen


def per_class_routed(
    confidence: NDArray[np.floating],
    predicted: NDArray[np.int64],
    correct: NDArray[np.bool_],
    thresholds: NDArray[np.float64],
) -> tuple[float, float]:
    """(coverage, auto-routed accuracy) when each event is compared with its predicted class's threshold."""
    auto = np.asarray(confidence) >= thresholds[np.asarray(predicted)]
    coverage = float(auto.mean()) if auto.size else 0.0
    accuracy = float(np.asarray(correct)[auto].mean()) if auto.any() else 1.0
    return coverage, accuracy


@dataclass(frozen=True)
class UnknownFit:
    features: list[str]
    weights: list[float]
    bias: float
    threshold: float
    target_known_share: float  # at most this share of known validation events may be scored unknown
    known_share: float  # measured on the fitting rows
    unknown_recall: float  # share of never-seen-intent events at or above the threshold (fitting rows)
    n_known: int
    n_unknown: int


def sigmoid(z: NDArray[np.float64]) -> NDArray[np.float64]:
    out: NDArray[np.float64] = 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))
    return out


def fit_unknown(
    names: Sequence[str],
    known: NDArray[np.float64],
    unknown: NDArray[np.float64],
    target_known_share: float,
    seed: int = 0,
) -> UnknownFit:
    """Logistic regression unknown-vs-known, then the threshold that flags at most `target_known_share` of known.

    known / unknown: [n, len(names)] feature matrices. Classes are weighted to balance, so the score does
    not just learn the ratio of the fitting rows.
    """
    from sklearn.linear_model import LogisticRegression

    if known.shape[0] == 0 or unknown.shape[0] == 0:
        raise ValueError("fitting the unknown score needs both known and never-seen events")
    x = np.vstack([known, unknown]).astype(np.float64)
    y = np.r_[np.zeros(known.shape[0]), np.ones(unknown.shape[0])]
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    clf = LogisticRegression(C=1.0, class_weight="balanced", random_state=seed, max_iter=1000)
    clf.fit((x - mean) / scale, y)
    w_std = clf.coef_[0]
    # Rounded first, so the threshold is chosen on exactly the scores the stored numbers give.
    weights = np.round(w_std / scale, 8)
    bias = round(float(clf.intercept_[0] - np.sum(w_std * mean / scale)), 8)
    score_known = sigmoid(known @ weights + bias)
    score_unknown = sigmoid(unknown @ weights + bias)
    threshold = known_share_threshold(score_known, target_known_share)
    return UnknownFit(
        features=list(names),
        weights=[float(v) for v in weights],
        bias=bias,
        threshold=threshold,
        target_known_share=target_known_share,
        known_share=float(np.mean(score_known >= threshold)),
        unknown_recall=float(np.mean(score_unknown >= threshold)),
        n_known=int(known.shape[0]),
        n_unknown=int(unknown.shape[0]),
    )


def route_masks(
    probs: NDArray[np.floating],
    scores: NDArray[np.floating] | None,
    unknown_threshold: float | None,
    class_thresholds: NDArray[np.floating],
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """(routed unknown, routed low_confidence) per event, in the runtime's order (classify.routing): unknown
    score >= its threshold first, whatever the confidence; else confidence below the predicted class's threshold.
    No scores (a package without an unknown score): nothing is unknown."""
    p = np.asarray(probs)
    if scores is None or unknown_threshold is None:
        unknown = np.zeros(p.shape[0], dtype=bool)
    else:
        unknown = np.asarray(scores) >= unknown_threshold
    low = ~unknown & (p.max(axis=1) < np.asarray(class_thresholds)[p.argmax(axis=1)])
    return unknown, low


def known_share_threshold(known_scores: NDArray[np.float64], target_share: float) -> float:
    """The lowest threshold t with share(known score >= t) <= target_share (events at t are flagged)."""
    s = np.sort(np.asarray(known_scores, dtype=np.float64))[::-1]
    allowed = math.floor(target_share * s.size + 1e-9)
    if allowed >= s.size:
        return 0.0
    # Flag everything strictly above the (allowed+1)-th highest known score.
    return float(np.nextafter(s[allowed], np.inf))


def held_out_intents(classes: Sequence[str], share: float, seed: int) -> list[str]:
    """A seeded choice of round(share · k) intents (at least 1, leaving at least 2 known), sorted."""
    k = len(classes)
    n = min(max(1, round(share * k)), k - 2)
    if n < 1:
        return []
    rng = np.random.default_rng(seed)
    picked = rng.choice(np.array(sorted(classes), dtype=object), size=n, replace=False)
    return sorted(str(c) for c in picked)


# The unknown score's inputs, all computed by pigeonhole.model.unknown (the runtime's own code). With the
# graph's hidden-layer distance: max-prob, that distance and the out-of-vocabulary share (measured best on
# never-seen intents, docs/model.md "The unknown route"; oov_share adds little there but is what marks
# off-domain text). Without it (a graph that has none): the features of the first packages.
UNKNOWN_FEATURES = (unknown.MAX_PROB, unknown.HIDDEN_DISTANCE, unknown.OOV_SHARE)
UNKNOWN_FEATURES_WITHOUT_HIDDEN = (
    unknown.MAX_PROB,
    unknown.MARGIN,
    unknown.ENTROPY,
    unknown.OOV_SHARE,
    unknown.LOG_TOKENS,
)


def feature_names(has_hidden_distance: bool) -> tuple[str, ...]:
    return UNKNOWN_FEATURES if has_hidden_distance else UNKNOWN_FEATURES_WITHOUT_HIDDEN


def unknown_features(
    probs: NDArray[np.floating],
    normalized_texts: Sequence[str],
    vocabulary: frozenset[str],
    hidden_distance: NDArray[np.floating] | None = None,
    names: Sequence[str] | None = None,
) -> NDArray[np.float64]:
    """[n, len(names)]: the runtime's features, stacked in the order the weights use (names default to the
    set `feature_names` picks for whether a hidden distance is given)."""
    names = tuple(names) if names is not None else feature_names(hidden_distance is not None)
    features = unknown.unknown_features(np.asarray(probs), normalized_texts, vocabulary, names, hidden_distance)
    matrix: NDArray[np.float64] = unknown.feature_matrix(features, names)
    return matrix
