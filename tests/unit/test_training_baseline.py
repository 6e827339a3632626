"""The drift baseline: edges the drift tracker accepts, counts binned exactly as live windows bin them."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from pigeonhole.drift.counters import CounterLayout, bin_counts
from pigeonhole.model.features import FEATURE_LENGTH_CHARS, FEATURE_OOV_SHARE, FEATURE_TOKENS, input_features
from pigeonhole_tools.training.baseline import (
    FEATURE_UPPER_EDGE,
    OOV_SHARE_EDGES,
    confidence_edges,
    drift_baseline,
    quantile_edges,
)


def test_confidence_edges_are_fixed_twentieths() -> None:
    edges = confidence_edges()
    assert len(edges) == 21
    assert edges[0] == 0.0
    assert edges[-1] == 1.0
    assert edges[1] == pytest.approx(0.05)


def test_quantile_edges_merge_point_masses_and_close_the_range() -> None:
    values = np.array([0.0] * 80 + [0.1] * 10 + [0.25] * 10)
    edges = quantile_edges(values, 10, lower=0.0, upper=1.0)
    assert edges[0] == 0.0
    assert edges[-1] == 1.0
    assert all(b > a for a, b in itertools.pairwise(edges))
    assert 0.1 in edges  # the only inner quantiles above the point mass at 0
    assert len(edges) <= 11


def test_quantile_edges_spread_continuous_values() -> None:
    values = np.arange(1, 101, dtype=float)
    edges = quantile_edges(values, 10, lower=0.0, upper=FEATURE_UPPER_EDGE)
    assert len(edges) == 11
    counts = bin_counts(values, edges)
    assert counts.sum() == 100
    assert counts.max() - counts.min() <= 2  # about equal mass per bin


def test_baseline_histograms_count_every_event_like_the_windows_do() -> None:
    texts = ["where is my card", "my card never arrived", "what is the rate", "zzz qqq", "card card card card"] * 4
    vocabulary = frozenset({"where", "is", "my", "card", "what", "the", "rate", "never", "arrived"})
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(3), size=len(texts)).astype(np.float32)
    baseline = drift_baseline(texts, probs, vocabulary, n_classes=3)

    assert baseline.n_events == len(texts)
    assert sum(baseline.class_prior) == pytest.approx(1.0)
    expected_prior = np.bincount(probs.argmax(axis=1), minlength=3) / len(texts)
    assert baseline.class_prior == pytest.approx(expected_prior.tolist())
    assert baseline.confidence.counts == bin_counts(probs.max(axis=1), baseline.confidence.edges).tolist()
    features = input_features(texts, vocabulary)
    assert set(baseline.features) == {FEATURE_LENGTH_CHARS, FEATURE_TOKENS, FEATURE_OOV_SHARE}
    for name, hist in baseline.features.items():
        assert sum(hist.counts) == len(texts)
        assert hist.counts == bin_counts(features[name], hist.edges).tolist()
        assert hist.edges[0] == 0.0
    assert baseline.features[FEATURE_OOV_SHARE].edges == list(OOV_SHARE_EDGES)
    # "zzz qqq" is all out of vocabulary: last bin; the rest have none: the bin for exactly 0.
    assert baseline.features[FEATURE_OOV_SHARE].counts == [16, 0, 0, 0, 0, 4]
    assert baseline.features[FEATURE_LENGTH_CHARS].edges[-1] == FEATURE_UPPER_EDGE
    # The drift tracker derives its counter layout from exactly these edges.
    layout = CounterLayout.from_baseline(baseline)
    assert layout.n_classes == 3


def test_baseline_needs_one_probability_row_per_text() -> None:
    with pytest.raises(ValueError, match="one probability row per text"):
        drift_baseline(["a", "b"], np.ones((3, 2), dtype=np.float32) / 2, frozenset(), n_classes=2)
