"""Drift and accuracy statistics computed from counts only (numpy + math, no scipy).

Everything here takes bin counts, sums or confusion counts, never raw events, so the inputs can
come from merged DynamoDB window counters. Functions raise ``ValueError`` on an empty
distribution instead of returning NaN: the detectors check the minimum count first and report
"insufficient data", so NaN never reaches a report or a metric.

scipy is deliberately not used: it is not a Lambda runtime dependency (the runtime layer is
onnxruntime + numpy), and the one function we need from it, the chi-square survival function, is
a few lines of Numerical Recipes (regularized upper incomplete gamma: series / continued fraction).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

# Zero shares are floored at this value before taking logs in PSI. 1e-4 is the value Evidently
# (``get_binned_data(feel_zeroes=True)``) and most PSI write-ups use: small enough not to matter for
# populated bins, large enough that one empty bin adds a bounded term (about |p| * 9.2) rather than inf.
PSI_EPSILON = 1e-4
# Cochran's rule of thumb: the chi-square approximation needs expected cell counts of about 5.
CHI2_MIN_EXPECTED = 5.0

_GAMMA_EPS = 1e-15
_GAMMA_FPMIN = 1e-300
_GAMMA_MAXIT = 10_000


# --- distributions ---------------------------------------------------------------------------


def _counts(values: ArrayLike, name: str) -> NDArray[np.float64]:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-d array of counts, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"{name} must hold finite, non-negative counts")
    return arr


def proportions(counts: ArrayLike, name: str = "counts") -> NDArray[np.float64]:
    """Counts → shares summing to 1. Raises on an all-zero distribution (a statistic of nothing)."""
    arr = _counts(counts, name)
    total = float(arr.sum())
    if total <= 0.0:
        raise ValueError(f"{name} is empty (total 0): no distribution to compare")
    return arr / total


def _pair(expected: ArrayLike, actual: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    p = proportions(expected, "expected")
    q = proportions(actual, "actual")
    if p.shape != q.shape:
        raise ValueError(f"distributions have different bin counts: {p.size} vs {q.size}")
    return p, q


def psi_noise_floor(bins: int, n: float, n_reference: float, z: float) -> float:
    """PSI a window of ``n`` events reaches by chance against a reference of ``n_reference`` events.

    Without drift, PSI is about Σ (a − e)² / e, a scaled chi-square: mean (bins − 1)(1/n + 1/n_ref),
    standard deviation √(2(bins − 1)) (1/n + 1/n_ref). Returns mean + z · sd. Why it matters: for a
    77-class mix at 500 events the mean alone is 0.18, so a fixed page line of 0.25 is only ~2.5 sd
    above pure sampling noise (measured in docs/drift-harness.md: 2 % of stationary windows paged).
    """
    if n <= 0 or n_reference <= 0 or bins < 2:
        return 0.0
    scale = 1.0 / n + 1.0 / n_reference
    return (bins - 1) * scale + z * math.sqrt(2.0 * (bins - 1)) * scale


def js_noise_floor(psi_floor: float) -> float:
    """The Jensen–Shannon distance (base 2) that matches a PSI noise floor.

    For small differences PSI ≈ Σ (a − e)² / e and the JS divergence ≈ Σ (a − e)² / (8 m) nats, so
    JSD ≈ PSI / (8 ln 2) bits and the distance is its square root. A 77-bin class mix at 500 events
    has a no-drift JS distance of about 0.17, above the fixed 0.1 line; this lifts the line with PSI's.
    """
    if psi_floor <= 0.0:
        return 0.0
    return math.sqrt(psi_floor / (8.0 * math.log(2.0)))


def psi(expected: ArrayLike, actual: ArrayLike, epsilon: float = PSI_EPSILON) -> float:
    """Population stability index Σ (a − e) · ln(a / e) over bins, natural log.

    The usual reading (credit scoring, then Evidently / NannyML / WhyLabs defaults): < 0.1 stable,
    0.1–0.25 moderate shift, >= 0.25 major shift. Shares are floored at ``epsilon`` after
    normalizing (not renormalized), so an empty bin on either side gives a finite value.
    """
    if not 0.0 < epsilon < 1.0:
        raise ValueError("epsilon must be within (0, 1)")
    e, a = _pair(expected, actual)
    e = np.maximum(e, epsilon)
    a = np.maximum(a, epsilon)
    return float(np.sum((a - e) * np.log(a / e)))


def js_distance(p_counts: ArrayLike, q_counts: ArrayLike) -> float:
    """Jensen–Shannon *distance* (square root of the divergence), base 2, so it lies in [0, 1].

    0 for identical distributions, 1 for disjoint supports. The default threshold 0.1 applies to
    this distance (as in Evidently's ``jensenshannon`` test, which wraps scipy's distance). No
    epsilon is needed: 0 · log 0 = 0 and the mixture is positive wherever either side is.
    """
    p, q = _pair(p_counts, q_counts)
    m = 0.5 * (p + q)

    def _kl(x: NDArray[np.float64]) -> float:
        mask = x > 0
        return float(np.sum(x[mask] * np.log2(x[mask] / m[mask])))

    divergence = 0.5 * _kl(p) + 0.5 * _kl(q)
    return math.sqrt(min(max(divergence, 0.0), 1.0))  # clamp float rounding just outside [0, 1]


# --- chi-square ------------------------------------------------------------------------------


def _gamma_p_series(a: float, x: float) -> float:
    """Regularized lower incomplete gamma P(a, x) by its series; converges fast for x < a + 1."""
    ap = a
    term = total = 1.0 / a
    for _ in range(_GAMMA_MAXIT):
        ap += 1.0
        term *= x / ap
        total += term
        if abs(term) < abs(total) * _GAMMA_EPS:
            return total * math.exp(-x + a * math.log(x) - math.lgamma(a))
    raise ArithmeticError(f"incomplete gamma series did not converge for a={a}, x={x}")


def _gamma_q_continued_fraction(a: float, x: float) -> float:
    """Regularized upper incomplete gamma Q(a, x) by its continued fraction (modified Lentz), x >= a + 1."""
    b = x + 1.0 - a
    c = 1.0 / _GAMMA_FPMIN
    d = 1.0 / b
    h = d
    for i in range(1, _GAMMA_MAXIT):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        if abs(d) < _GAMMA_FPMIN:
            d = _GAMMA_FPMIN
        c = b + an / c
        if abs(c) < _GAMMA_FPMIN:
            c = _GAMMA_FPMIN
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _GAMMA_EPS:
            return math.exp(-x + a * math.log(x) - math.lgamma(a)) * h
    raise ArithmeticError(f"incomplete gamma continued fraction did not converge for a={a}, x={x}")


def gammaincc(a: float, x: float) -> float:
    """Regularized upper incomplete gamma Q(a, x) = Γ(a, x) / Γ(a) (Numerical Recipes §6.2)."""
    if a <= 0.0:
        raise ValueError("a must be > 0")
    if x < 0.0 or math.isnan(x):
        raise ValueError("x must be >= 0")
    if x == 0.0:
        return 1.0
    if math.isinf(x):
        return 0.0
    if x < a + 1.0:
        return min(max(1.0 - _gamma_p_series(a, x), 0.0), 1.0)
    return min(max(_gamma_q_continued_fraction(a, x), 0.0), 1.0)


def chi2_sf(statistic: float, dof: int) -> float:
    """P(X >= statistic) for X ~ chi-square(dof): Q(dof / 2, statistic / 2)."""
    if dof <= 0:
        raise ValueError("dof must be >= 1")
    if statistic <= 0.0:
        return 1.0
    return gammaincc(dof / 2.0, statistic / 2.0)


@dataclass(frozen=True)
class ChiSquareResult:
    statistic: float
    dof: int
    p_value: float
    bins_used: int  # columns after dropping empty and pooling sparse bins


def pool_sparse_bins(
    window: ArrayLike, reference: ArrayLike, min_expected: float = CHI2_MIN_EXPECTED
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Merge adjacent bins until every cell's expected count reaches ``min_expected``.

    Why: histogram tails (and rare classes) have expected counts well below 5 in a 200-event
    window, where one stray event would dominate the chi-square sum and fire a false alarm.
    Bins are merged left to right in order (they are ordered histogram bins); a sparse remainder
    joins the last pooled bin. Bins empty on both sides are dropped first. ``min_expected=0``
    only drops empty bins.
    """
    w = _counts(window, "window")
    r = _counts(reference, "reference")
    if w.shape != r.shape:
        raise ValueError(f"window and reference have different bin counts: {w.size} vs {r.size}")
    keep = (w + r) > 0
    w, r = w[keep], r[keep]
    total = float(w.sum() + r.sum())
    if total <= 0.0 or min_expected <= 0.0:
        return w, r
    # The smallest expected cell of a column is column total × the smaller row share.
    smaller_row_share = min(float(w.sum()), float(r.sum())) / total
    pooled_w: list[float] = []
    pooled_r: list[float] = []
    acc_w = acc_r = 0.0
    for wi, ri in zip(w, r, strict=True):
        acc_w += float(wi)
        acc_r += float(ri)
        if (acc_w + acc_r) * smaller_row_share >= min_expected:
            pooled_w.append(acc_w)
            pooled_r.append(acc_r)
            acc_w = acc_r = 0.0
    if acc_w + acc_r > 0.0:
        if pooled_w:
            pooled_w[-1] += acc_w
            pooled_r[-1] += acc_r
        else:
            pooled_w.append(acc_w)
            pooled_r.append(acc_r)
    return np.asarray(pooled_w, dtype=np.float64), np.asarray(pooled_r, dtype=np.float64)


def chi2_homogeneity(
    window: ArrayLike, reference: ArrayLike, min_expected: float = CHI2_MIN_EXPECTED
) -> ChiSquareResult:
    """Pearson chi-square test of homogeneity on the 2 × k table (window counts, reference counts).

    Tests whether both samples come from the same distribution over the bins, accounting for the
    sampling noise of both (the reference may be fractional, e.g. class prior × baseline size).
    Sparse bins are pooled first (see :func:`pool_sparse_bins`). With fewer than two usable bins
    there is nothing to test: statistic 0, dof 0, p-value 1.
    Note: on very large windows any tiny shift is "significant"; that is why this test only warns.
    """
    w, r = pool_sparse_bins(window, reference, min_expected)
    n_w, n_r = float(w.sum()), float(r.sum())
    if n_w <= 0.0 or n_r <= 0.0:
        raise ValueError("chi-square homogeneity needs a non-empty window and reference")
    k = int(w.size)
    if k < 2:
        return ChiSquareResult(statistic=0.0, dof=0, p_value=1.0, bins_used=k)
    observed = np.vstack([w, r])
    columns = observed.sum(axis=0)
    expected = np.outer(np.array([n_w, n_r]), columns) / (n_w + n_r)
    statistic = float(np.sum((observed - expected) ** 2 / expected))
    dof = k - 1
    return ChiSquareResult(statistic=statistic, dof=dof, p_value=chi2_sf(statistic, dof), bins_used=k)


def bonferroni(alpha: float, n_tests: int) -> float:
    """Per-test significance level keeping the family-wise error rate at ``alpha`` across ``n_tests``."""
    if not 0.0 < alpha < 1.0:
        raise ValueError("alpha must be within (0, 1)")
    return alpha / max(int(n_tests), 1)


# --- accuracy and calibration ----------------------------------------------------------------


def expected_accuracy(confidence_sum: float, n: int) -> float:
    """Label-free accuracy estimate: the mean top-1 probability (exact for a calibrated model)."""
    if n <= 0:
        raise ValueError("expected accuracy of an empty window")
    return float(confidence_sum) / n


def histogram_mean(edges: Sequence[float], counts: ArrayLike) -> float:
    """Mean of a histogram by bin midpoints (outer bins use their finite edges)."""
    c = _counts(counts, "counts")
    e = np.asarray(edges, dtype=np.float64)
    if e.size != c.size + 1:
        raise ValueError("histogram needs len(edges) == len(counts) + 1")
    total = float(c.sum())
    if total <= 0.0:
        raise ValueError("mean of an empty histogram")
    mid = 0.5 * (e[:-1] + e[1:])
    return float(np.dot(mid, c) / total)


def histogram_quantile(edges: Sequence[float], counts: ArrayLike, q: float) -> float:
    """Quantile of a histogram, linear within the bin where the cumulative count crosses q·N.

    Same approach as Prometheus' ``histogram_quantile``; values are assumed uniform within a bin,
    and the outer (open-ended) bins are read as bounded by their finite edges, so results saturate
    at the outermost edges.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError("q must be within [0, 1]")
    c = _counts(counts, "counts")
    e = np.asarray(edges, dtype=np.float64)
    if e.size != c.size + 1:
        raise ValueError("histogram needs len(edges) == len(counts) + 1")
    total = float(c.sum())
    if total <= 0.0:
        raise ValueError("quantile of an empty histogram")
    rank = q * total
    cumulative = np.cumsum(c)
    i = int(np.searchsorted(cumulative, rank, side="left"))
    i = min(i, c.size - 1)
    while c[i] == 0 and i < c.size - 1:  # q = 0: skip leading empty bins
        i += 1
    before = float(cumulative[i] - c[i])
    fraction = 0.0 if c[i] == 0 else min(max((rank - before) / float(c[i]), 0.0), 1.0)
    return float(e[i] + fraction * (e[i + 1] - e[i]))


def expected_calibration_error(bin_counts: ArrayLike, bin_correct: ArrayLike, bin_confidence_sum: ArrayLike) -> float:
    """ECE = Σ_b (n_b / N) · |accuracy_b − mean confidence_b| (Guo et al. 2017), from per-bin counters."""
    n = _counts(bin_counts, "bin_counts")
    k = _counts(bin_correct, "bin_correct")
    s = _counts(bin_confidence_sum, "bin_confidence_sum")
    if not n.shape == k.shape == s.shape:
        raise ValueError("ECE counters need the same number of bins")
    if np.any(k > n):
        raise ValueError("a bin cannot have more correct than labelled events")
    total = float(n.sum())
    if total <= 0.0:
        raise ValueError("ECE of no labelled events")
    used = n > 0
    gaps = np.abs(k[used] / n[used] - s[used] / n[used])
    return float(np.sum(n[used] * gaps) / total)


def brier_score(brier_sum: float, n: int) -> float:
    """Mean squared error of the top-1 probability against correctness (top-label Brier score).

    The counters keep Σ (confidence − 1[pred == true])² because only the top-1 probability is known
    when a label is joined; this is the binary Brier score of the "prediction is correct" event.
    """
    if n <= 0:
        raise ValueError("Brier score of no labelled events")
    return float(brier_sum) / n


def confusion_matrix(confusion: Mapping[tuple[int, int], float] | ArrayLike, n_classes: int) -> NDArray[np.int64]:
    """A dense [predicted, true] matrix from a ``{(pred, true): count}`` mapping or an array."""
    if isinstance(confusion, Mapping):
        matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
        for (pred, true), count in confusion.items():
            if not (0 <= pred < n_classes and 0 <= true < n_classes):
                raise ValueError(f"confusion pair {(pred, true)} outside {n_classes} classes")
            matrix[pred, true] += int(count)
        return matrix
    matrix = np.asarray(confusion, dtype=np.int64)
    if matrix.shape != (n_classes, n_classes):
        raise ValueError(f"confusion matrix must be {n_classes}x{n_classes}, got {matrix.shape}")
    return matrix


def accuracy(confusion: ArrayLike) -> float:
    """Share of labelled events whose prediction matched the label (trace / total)."""
    m = np.asarray(confusion, dtype=np.int64)
    total = int(m.sum())
    if total <= 0:
        raise ValueError("accuracy of no labelled events")
    return float(np.trace(m)) / total


@dataclass(frozen=True)
class ClassMetrics:
    """Per-class scores; None where undefined (no predictions / no support), never NaN or a fake 0."""

    precision: float | None
    recall: float | None
    f1: float | None
    support: int  # labelled events whose true class is this one
    predicted: int  # labelled events predicted as this class


def per_class_metrics(confusion: ArrayLike) -> list[ClassMetrics]:
    """Precision, recall and F1 per class from a [predicted, true] confusion matrix.

    F1 is computed as 2·TP / (2·TP + FP + FN), equal to the harmonic mean whenever both are
    defined and 0 (not undefined) when a class with support was never predicted.
    """
    m = np.asarray(confusion, dtype=np.int64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError("confusion must be a square [predicted, true] matrix")
    out: list[ClassMetrics] = []
    for i in range(m.shape[0]):
        tp = int(m[i, i])
        predicted = int(m[i, :].sum())
        support = int(m[:, i].sum())
        fp, fn = predicted - tp, support - tp
        out.append(
            ClassMetrics(
                precision=tp / predicted if predicted else None,
                recall=tp / support if support else None,
                f1=(2 * tp) / (2 * tp + fp + fn) if (2 * tp + fp + fn) else None,
                support=support,
                predicted=predicted,
            )
        )
    return out


def macro_f1(metrics: Sequence[ClassMetrics]) -> float | None:
    """Unweighted mean F1 over classes that have support (classes absent from the labels are skipped)."""
    scores = [m.f1 for m in metrics if m.support > 0 and m.f1 is not None]
    return float(np.mean(scores)) if scores else None


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a proportion: honest error bars on accuracy from few labels."""
    if n <= 0:
        raise ValueError("interval of no trials")
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)
