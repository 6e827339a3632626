"""The drift baseline: what the shipped (int8) model sees and says on held-out data.

Counting uses `pigeonhole.drift.counters.bin_counts`, the very function that fills the live
windows, so baseline and windows bin a value the same way (left-closed bins, outer bins open).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from pigeonhole.drift.counters import bin_counts
from pigeonhole.model.features import FEATURE_OOV_SHARE, input_features
from pigeonhole.model.manifest import DriftBaseline, Histogram

CONFIDENCE_BINS = 20
FEATURE_BINS = 10
# Outer edges of the feature histograms: features are >= 0, and the last edge is far beyond any
# plausible value (the outer bins are open-ended anyway; the edges must be finite).
FEATURE_LOWER_EDGE = 0.0
FEATURE_UPPER_EDGE = 1e9
# The out-of-vocabulary share is 0 for most in-domain events (94 % of BANKING77's test set), so its
# quantiles collapse into a single bin. Fixed edges instead: a bin for exactly 0, then widening steps.
OOV_SHARE_EDGES = (0.0, 1e-9, 0.05, 0.1, 0.2, 0.5, 1.0)


def confidence_edges(n_bins: int = CONFIDENCE_BINS) -> list[float]:
    """Fixed, equal-width edges on [0, 1]: comparable across model versions."""
    return [round(i / n_bins, 10) for i in range(n_bins + 1)]


def quantile_edges(values: NDArray[np.floating], n_bins: int, lower: float, upper: float) -> list[float]:
    """Edges at the inner quantiles of the baseline data (about equal mass per bin, good for PSI).

    Repeated quantiles of discrete or point-massed data (token counts, a share that is mostly 0)
    are merged, so there may be fewer than `n_bins` bins; `lower` and `upper` close the range.
    """
    v = np.asarray(values, dtype=np.float64)
    # Observed values as edges ("inverted_cdf"), so integer features get integer edges.
    inner = np.quantile(v, np.linspace(0.0, 1.0, n_bins + 1)[1:-1], method="inverted_cdf") if v.size else np.array([])
    edges = sorted({float(lower), float(upper), *(float(q) for q in inner if lower < q < upper)})
    return edges


def drift_baseline(
    normalized_texts: Sequence[str], probs: NDArray[np.floating], vocabulary: frozenset[str], n_classes: int
) -> DriftBaseline:
    """Class prior (of predictions: windows have no labels), confidence and input-feature histograms."""
    if len(normalized_texts) != probs.shape[0] or probs.shape[0] == 0:
        raise ValueError("the baseline needs one probability row per text, and at least one text")
    pred = np.argmax(probs, axis=1)
    prior = np.bincount(pred, minlength=n_classes) / pred.size
    conf = np.max(probs, axis=1)
    c_edges = confidence_edges()
    features: dict[str, Histogram] = {}
    for name, values in input_features(list(normalized_texts), vocabulary).items():
        if name == FEATURE_OOV_SHARE:
            edges = list(OOV_SHARE_EDGES)
        else:
            edges = quantile_edges(values, FEATURE_BINS, FEATURE_LOWER_EDGE, FEATURE_UPPER_EDGE)
        features[name] = Histogram(edges=edges, counts=bin_counts(values, edges).tolist())
    return DriftBaseline(
        n_events=int(pred.size),
        class_prior=[float(p) for p in prior],
        confidence=Histogram(edges=c_edges, counts=bin_counts(conf, c_edges).tolist()),
        features=features,
    )
