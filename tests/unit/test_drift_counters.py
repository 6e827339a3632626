"""Window counters: binning, merging (associative, commutative, exact) and the DynamoDB item round trip."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import numpy as np
import pytest

from pigeonhole.drift.counters import LATENCY_EDGES_SECONDS, CounterLayout, WindowCounters, bin_counts
from pigeonhole.model.manifest import DriftBaseline, Histogram

LAYOUT = CounterLayout(
    n_classes=3,
    confidence_edges=tuple(np.round(np.linspace(0.0, 1.0, 11), 10)),
    feature_edges={
        "length_chars": (0.0, 20.0, 50.0, 100.0, 200.0, 2000.0),
        "tokens": (0.0, 4.0, 10.0, 20.0, 400.0),
        "oov_share": (0.0, 0.05, 0.2, 1.0),
    },
)


def _batch(seed: int, n: int, layout: CounterLayout = LAYOUT) -> WindowCounters:
    rng = np.random.default_rng(seed)
    features = {
        "length_chars": rng.lognormal(4.0, 0.8, size=n),
        "tokens": rng.integers(1, 60, size=n).astype(float),
        "oov_share": rng.beta(1, 8, size=n),
    }
    conf = rng.uniform(0.34, 1.0, size=n)
    return WindowCounters.from_batch(
        layout, rng.integers(0, 3, size=n), conf, features, review=conf < 0.5, quarantined=int(rng.integers(0, 3))
    )


def _labels(seed: int, n: int) -> WindowCounters:
    rng = np.random.default_rng(seed)
    pred = rng.integers(0, 3, size=n)
    true = np.where(rng.uniform(size=n) < 0.8, pred, rng.integers(0, 3, size=n))
    return WindowCounters.from_labels(LAYOUT, pred, true, rng.uniform(0.34, 1.0, size=n), rng.exponential(3600, n))


def _assert_same(a: WindowCounters, b: WindowCounters) -> None:
    ia, ib = a.to_item_updates(include_zeros=True), b.to_item_updates(include_zeros=True)
    assert ia.keys() == ib.keys()
    for key, value in ia.items():
        if isinstance(value, float):
            assert ib[key] == pytest.approx(value, rel=1e-12, abs=1e-12), key
        else:
            assert ib[key] == value, key


# --- binning --------------------------------------------------------------------------------------


def test_bins_are_left_closed_and_outer_bins_take_everything_beyond_the_edges() -> None:
    edges = (0.0, 1.0, 2.0, 3.0)
    assert bin_counts([-5.0, 0.0, 0.99, 1.0, 2.5, 3.0, 1e9], edges).tolist() == [3, 1, 3]


def test_binning_matches_numpy_histogram_inside_the_edges() -> None:
    rng = np.random.default_rng(0)
    values = rng.uniform(0, 10, 1000)
    edges = np.linspace(0, 10, 8)
    assert bin_counts(values, edges).tolist() == np.histogram(values, bins=edges)[0].tolist()


def test_non_finite_values_are_rejected_not_silently_binned() -> None:
    with pytest.raises(ValueError, match="non-finite"):
        bin_counts([1.0, np.nan], (0.0, 1.0, 2.0))


# --- building ---------------------------------------------------------------------------------------


def test_from_batch_counts_everything() -> None:
    w = WindowCounters.from_batch(
        LAYOUT,
        predicted=[0, 2, 2, 1],
        confidence=[0.95, 0.45, 1.0, 0.7],
        features={
            "length_chars": [5, 60, 5000, 20],
            "tokens": [1, 12, 300, 3],
            "oov_share": [0, 0.5, 1, 0.1],
            "x": [1],
        },
        review=[False, True, False, False],
        quarantined=2,
    )
    assert (w.events, w.review, w.quarantined) == (4, 1, 2)
    assert w.class_counts.tolist() == [1, 1, 2]
    assert w.confidence_counts.tolist() == [0, 0, 0, 0, 1, 0, 0, 1, 0, 2]  # 1.0 lands in the last bin
    assert w.confidence_sum == pytest.approx(3.1)
    assert w.confidence_sq_sum == pytest.approx(0.95**2 + 0.45**2 + 1.0 + 0.49)
    assert w.feature_counts["length_chars"].tolist() == [1, 1, 1, 0, 1]  # 5000 → outer bin
    assert w.feature_counts["oov_share"].tolist() == [1, 1, 2]
    assert "x" not in w.feature_counts  # the baseline decides what is monitored


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"predicted": [3]}, "class index"),
        ({"predicted": [-1]}, "class index"),
        ({"predicted": [0.5]}, "integers"),
        ({"confidence": [np.nan]}, "finite"),
        ({"confidence": [0.5, 0.5]}, "confidences"),
        ({"features": {"length_chars": [1.0], "tokens": [1.0]}}, "lacks features"),
        ({"features": {"length_chars": [1.0, 2.0], "tokens": [1.0], "oov_share": [0.0]}}, "values for 1"),
        ({"features": {"length_chars": [np.inf], "tokens": [1.0], "oov_share": [0.0]}}, "non-finite"),
        ({"review": 2}, "review"),
    ],
)
def test_from_batch_rejects_inconsistent_input(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {
        "predicted": [0],
        "confidence": [0.9],
        "features": {"length_chars": [1.0], "tokens": [1.0], "oov_share": [0.0]},
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        WindowCounters.from_batch(LAYOUT, **args)


def test_empty_batch_gives_zero_counters_and_no_updates() -> None:
    w = WindowCounters.from_batch(LAYOUT, [], [], {"length_chars": [], "tokens": [], "oov_share": []})
    assert w == WindowCounters.empty(LAYOUT)
    assert w.to_item_updates() == {}


def test_from_labels_hand_computed() -> None:
    w = WindowCounters.from_labels(
        LAYOUT, predicted=[0, 1, 2], true=[0, 0, 2], confidence=[0.9, 0.6, 0.85], latency_seconds=[-3, 10, 100]
    )
    assert w.events == 0
    assert w.labelled == 3
    assert w.correct == 2
    assert w.confusion_pairs() == {(0, 0): 1, (1, 0): 1, (2, 2): 1}
    # (0.9 - 1)² + (0.6 - 0)² + (0.85 - 1)² = 0.01 + 0.36 + 0.0225
    assert w.brier_sum == pytest.approx(0.3925)
    assert w.labelled_confidence_counts.tolist() == [0, 0, 0, 0, 0, 0, 1, 0, 1, 1]
    assert w.labelled_correct_counts.tolist() == [0, 0, 0, 0, 0, 0, 0, 0, 1, 1]
    assert w.labelled_confidence_sum[9] == pytest.approx(0.9)
    assert w.latency_counts.sum() == 3
    assert w.latency_counts[0] == 1  # negative latency (clock skew) counts as 0
    # Label counters touch label attributes only.
    label_attribute = re.compile(r"^(nl|cm_\d+_\d+|lconf_\d+|lcorr_\d+|lcsum_\d+|brier|lat_\d+)$")
    assert all(label_attribute.match(k) for k in w.to_item_updates())


def test_latency_edges_are_fixed_and_log_spaced() -> None:
    edges = np.array(LATENCY_EDGES_SECONDS)
    assert edges[0] == 0.0
    assert edges[1] == 1.0
    assert np.allclose(edges[2:] / edges[1:-1], np.sqrt(2))
    assert edges[-1] > 90 * 86_400  # covers labels arriving months later


# --- merging ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(12))
def test_merge_is_associative_and_commutative(seed: int) -> None:
    a, b, c = _batch(seed, 37) + _labels(seed, 11), _batch(seed + 100, 5), _labels(seed + 200, 23)
    _assert_same((a.merge(b)).merge(c), a.merge(b.merge(c)))
    _assert_same(a.merge(b), b.merge(a))
    _assert_same(a.merge(WindowCounters.empty(LAYOUT)), a)


@pytest.mark.parametrize("splits", [[1], [3, 7], [2, 2, 2, 94], [50, 50], [10] * 10])
def test_counting_in_batches_equals_counting_at_once(splits: list[int]) -> None:
    rng = np.random.default_rng(sum(splits) * len(splits))
    n = sum(splits)
    pred = rng.integers(0, 3, n)
    conf = rng.uniform(0, 1, n)
    feats = {"length_chars": rng.uniform(0, 500, n), "tokens": rng.uniform(0, 50, n), "oov_share": rng.uniform(0, 1, n)}
    whole = WindowCounters.from_batch(LAYOUT, pred, conf, feats)
    parts = []
    start = 0
    for size in splits:
        sl = slice(start, start + size)
        parts.append(WindowCounters.from_batch(LAYOUT, pred[sl], conf[sl], {k: v[sl] for k, v in feats.items()}))
        start += size
    _assert_same(WindowCounters.merge_all(LAYOUT, parts), whole)
    # Integer counts merge exactly, not approximately.
    assert WindowCounters.merge_all(LAYOUT, parts).class_counts.tolist() == whole.class_counts.tolist()


def test_merge_rejects_a_different_layout() -> None:
    other = CounterLayout(n_classes=2, confidence_edges=(0.0, 1.0), feature_edges={})
    with pytest.raises(ValueError, match="layouts"):
        _batch(0, 3).merge(WindowCounters.empty(other))


def test_merge_does_not_mutate_its_inputs() -> None:
    a, b = _batch(1, 10), _batch(2, 10)
    before = a.to_item_updates()
    _ = a + b
    assert a.to_item_updates() == before


# --- DynamoDB item ------------------------------------------------------------------------------------


def _dynamo_add(item: dict[str, Any], updates: dict[str, int | float]) -> None:
    """What DynamoDB does for ``ADD #a :v``: missing attributes start at 0; numbers are Decimal."""
    for key, value in updates.items():
        item[key] = item.get(key, Decimal(0)) + Decimal(repr(value))


def test_item_round_trip_with_decimal_values() -> None:
    w = _batch(5, 250) + _labels(6, 40)
    item: dict[str, Any] = {k: Decimal(repr(v)) for k, v in w.to_item_updates().items()}
    item.update({"pk": "model#1.0.0", "sk": "window#2026-11-29T07:20:00Z", "ttl": Decimal(1_800_000_000)})
    back = WindowCounters.from_item(item, LAYOUT)
    _assert_same(back, w)
    assert back.class_counts.dtype == np.int64


def test_accumulating_updates_like_dynamodb_add_equals_merging() -> None:
    batches = [_batch(i, 10) for i in range(8)] + [_labels(50 + i, 4) for i in range(3)]
    item: dict[str, Any] = {}
    for b in batches:
        _dynamo_add(item, b.to_item_updates())
    _assert_same(WindowCounters.from_item(item, LAYOUT), WindowCounters.merge_all(LAYOUT, batches))


def test_from_item_accepts_the_client_wire_format_and_plain_numbers() -> None:
    w = _batch(9, 30)
    wire = {k: {"N": str(v)} for k, v in w.to_item_updates().items()}
    _assert_same(WindowCounters.from_item(wire, LAYOUT), w)
    plain = dict(w.to_item_updates())
    _assert_same(WindowCounters.from_item(plain, LAYOUT), w)
    assert WindowCounters.from_item({}, LAYOUT) == WindowCounters.empty(LAYOUT)


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"n": Decimal("2.5")}, "integer"),
        ({"n": "x"}, "not a number"),
        ({"n": True}, "boolean"),
        ({"csum": [1]}, "type"),
    ],
)
def test_from_item_rejects_bad_values(item: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        WindowCounters.from_item(item, LAYOUT)


def test_item_attribute_names_are_safe_unique_and_documented() -> None:
    names = list((_batch(0, 300) + _labels(1, 30)).to_item_updates(include_zeros=True))
    assert len(names) == len(set(names))
    assert all(re.fullmatch(r"[A-Za-z0-9_]+", n) for n in names)
    expected = {
        "n",
        "rev",
        "q",
        "unk",
        "csum",
        "csq",
        "nl",
        "brier",
        "c_0",
        "c_2",
        "conf_0",
        "conf_9",
        "f_length_chars_0",
    }
    expected |= {"f_oov_share_2", "cm_0_0", "cm_2_1", "lconf_9", "lcorr_0", "lcsum_3", "lat_0", "lat_46"}
    assert expected <= set(names)
    k, cb, nf = 3, 10, 5 + 4 + 3
    assert len(names) == 8 + k + cb + nf + k * k + 3 * cb + len(LATENCY_EDGES_SECONDS) - 1


def test_small_batch_update_stays_far_below_the_update_expression_limit() -> None:
    updates = _batch(3, 10).to_item_updates()
    # "ADD #a0 :a0, #a1 :a1, …": about 14 characters per attribute; the limit is 4 KB.
    assert len(updates) * 14 < 1024


# --- layout ---------------------------------------------------------------------------------------------


def test_layout_from_baseline() -> None:
    baseline = DriftBaseline(
        n_events=100,
        class_prior=[0.5, 0.5],
        confidence=Histogram(edges=[0.0, 0.5, 1.0], counts=[10, 90]),
        features={"tokens": Histogram(edges=[0.0, 5.0, 10.0], counts=[50, 50])},
    )
    layout = CounterLayout.from_baseline(baseline)
    assert layout.n_classes == 2
    assert layout.confidence_edges == (0.0, 0.5, 1.0)
    assert dict(layout.feature_edges) == {"tokens": (0.0, 5.0, 10.0)}
    assert layout == CounterLayout.from_baseline(baseline)


@pytest.mark.parametrize(
    ("features", "confidence_edges"),
    [({"bad name": (0.0, 1.0)}, (0.0, 1.0)), ({"x": (1.0, 0.0)}, (0.0, 1.0)), ({}, (0.0,)), ({}, (0.0, np.inf))],
)
def test_layout_rejects_unsafe_names_and_bad_edges(
    features: dict[str, tuple[float, ...]], confidence_edges: tuple[float, ...]
) -> None:
    with pytest.raises(ValueError, match=r"attribute name|edges"):
        CounterLayout(n_classes=2, confidence_edges=confidence_edges, feature_edges=features)
