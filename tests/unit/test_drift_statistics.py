"""Statistics from counts: hand-computed cases, textbook table values and parameter sweeps."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from pigeonhole.drift import statistics as st

# --- PSI --------------------------------------------------------------------------------------


def test_psi_hand_computed() -> None:
    # expected 50/50, actual 25/75 (counts 50,50 vs 25,75):
    # (0.25 - 0.5) ln(0.25 / 0.5) + (0.75 - 0.5) ln(0.75 / 0.5)
    # = 0.25 · ln 2 + 0.25 · ln 1.5 = 0.173287 + 0.101366 = 0.274653
    assert st.psi([50, 50], [25, 75]) == pytest.approx(0.274653, abs=1e-6)


def test_psi_is_zero_for_identical_shares_and_ignores_scale() -> None:
    assert st.psi([1, 2, 3], [10, 20, 30]) == pytest.approx(0.0, abs=1e-15)


def test_psi_is_symmetric() -> None:
    assert st.psi([10, 30, 60], [30, 30, 40]) == pytest.approx(st.psi([30, 30, 40], [10, 30, 60]))


def test_psi_empty_bin_is_floored_at_epsilon() -> None:
    # expected [1, 0] → floored to [1, 1e-4] (not renormalized); actual [0.5, 0.5]:
    # (0.5 - 1) ln(0.5 / 1) + (0.5 - 1e-4) ln(0.5 / 1e-4) = 0.5 ln 2 + 0.4999 ln 5000
    by_hand = 0.5 * math.log(2) + 0.4999 * math.log(5000)
    value = st.psi([100, 0], [50, 50])
    assert value == pytest.approx(by_hand, rel=1e-12)
    assert math.isfinite(value)
    # A smaller epsilon penalises an empty bin more; the default is the documented 1e-4.
    assert st.psi([100, 0], [50, 50], epsilon=1e-6) > value
    assert st.PSI_EPSILON == 1e-4


def test_psi_bins_empty_on_both_sides_contribute_nothing() -> None:
    assert st.psi([50, 0, 50], [25, 0, 75]) == pytest.approx(st.psi([50, 50], [25, 75]))


@pytest.mark.parametrize(
    ("expected", "actual"),
    [([0, 0], [1, 1]), ([1, 1], [0, 0]), ([1, 2], [1, 2, 3]), ([], []), ([1, -1], [1, 1]), ([1, np.nan], [1, 1])],
)
def test_psi_rejects_empty_or_malformed(expected: list[float], actual: list[float]) -> None:
    with pytest.raises(ValueError, match=r"empty|different|non-empty|finite"):
        st.psi(expected, actual)


def _shifted_normal_counts(shift: float, n: int = 100_000) -> np.ndarray:
    """Exact expected counts of N(shift, 1) over fixed bins (no sampling noise)."""
    edges = np.linspace(-4, 4, 17)
    cdf = np.array([0.5 * math.erfc(-(e - shift) / math.sqrt(2)) for e in edges])
    cdf[0], cdf[-1] = 0.0, 1.0  # outer bins are open-ended
    return np.diff(cdf) * n


def test_psi_grows_monotonically_with_the_shift() -> None:
    reference = _shifted_normal_counts(0.0)
    shifts = np.linspace(0.0, 2.0, 21)
    values = [st.psi(reference, _shifted_normal_counts(s)) for s in shifts]
    assert values[0] == pytest.approx(0.0, abs=1e-12)
    assert all(b > a for a, b in itertools.pairwise(values))
    # For a mean shift of d standard deviations PSI ≈ d² (the symmetric KL of two normals).
    assert values[5] == pytest.approx(0.25, rel=0.1)


# --- Jensen–Shannon ---------------------------------------------------------------------------


def test_js_identical_is_zero_and_disjoint_is_one() -> None:
    assert st.js_distance([3, 1, 0], [30, 10, 0]) == pytest.approx(0.0, abs=1e-12)
    assert st.js_distance([1, 0], [0, 1]) == pytest.approx(1.0)
    assert st.js_distance([5, 5, 0, 0], [0, 0, 2, 8]) == pytest.approx(1.0)


def test_js_hand_computed() -> None:
    # p = [1, 0], q = [0.5, 0.5], m = [0.75, 0.25]
    # KL(p||m) = log2(1 / 0.75) = 0.415037; KL(q||m) = 0.5 log2(0.5/0.75) + 0.5 log2(0.5/0.25) = 0.207519
    # JSD = 0.5 (0.415037 + 0.207519) = 0.311278 bits; distance = sqrt(0.311278) = 0.557923
    assert st.js_distance([1, 0], [1, 1]) == pytest.approx(0.557923, abs=1e-6)
    assert st.js_distance([1, 1], [1, 0]) == pytest.approx(0.557923, abs=1e-6)


@pytest.mark.parametrize("seed", range(20))
def test_js_stays_within_unit_interval(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = rng.integers(0, 5, size=6)
    q = rng.integers(0, 5, size=6)
    p[0] += 1
    q[1] += 1
    assert 0.0 <= st.js_distance(p, q) <= 1.0


def test_js_grows_with_the_shift() -> None:
    reference = _shifted_normal_counts(0.0)
    values = [st.js_distance(reference, _shifted_normal_counts(s)) for s in np.linspace(0, 3, 13)]
    assert all(b > a for a, b in itertools.pairwise(values))
    assert values[-1] < 1.0


# --- chi-square -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("statistic", "dof", "p"),
    [
        # Critical values from any chi-square table (e.g. NIST/SEMATECH e-Handbook 1.3.6.7.4).
        (3.841, 1, 0.05),
        (6.635, 1, 0.01),
        (5.991, 2, 0.05),
        (7.815, 3, 0.05),
        (9.488, 4, 0.05),
        (11.070, 5, 0.05),
        (15.086, 5, 0.01),
        (18.307, 10, 0.05),
        (23.209, 10, 0.01),
        (31.410, 20, 0.05),
        (124.342, 100, 0.05),
        (2.706, 1, 0.10),
        (0.455, 1, 0.50),
    ],
)
def test_chi2_sf_matches_table_values(statistic: float, dof: int, p: float) -> None:
    assert st.chi2_sf(statistic, dof) == pytest.approx(p, abs=5e-4)


@pytest.mark.parametrize("x", [0.01, 0.5, 1.0, 2.0, 3.841, 10.0, 30.0, 80.0])
def test_chi2_sf_matches_closed_forms(x: float) -> None:
    # dof = 2: exp(-x/2); dof = 1: erfc(sqrt(x/2)).
    assert st.chi2_sf(x, 2) == pytest.approx(math.exp(-x / 2), rel=1e-10)
    assert st.chi2_sf(x, 1) == pytest.approx(math.erfc(math.sqrt(x / 2)), rel=1e-9)


def test_chi2_sf_matches_scipy_on_a_grid() -> None:
    scipy_stats = pytest.importorskip("scipy.stats")  # dev-only cross-check; scipy never ships to Lambda
    for dof in (1, 2, 3, 7, 19, 50, 200):
        for x in np.linspace(0.01, 3 * dof + 40, 60):
            assert st.chi2_sf(float(x), dof) == pytest.approx(float(scipy_stats.chi2.sf(x, dof)), rel=1e-9, abs=1e-300)


def test_chi2_sf_edges() -> None:
    assert st.chi2_sf(0.0, 3) == 1.0
    assert st.chi2_sf(-1.0, 3) == 1.0
    assert st.chi2_sf(math.inf, 3) == 0.0
    assert st.chi2_sf(1e5, 3) == pytest.approx(0.0, abs=1e-300)
    with pytest.raises(ValueError, match="dof"):
        st.chi2_sf(1.0, 0)


def test_chi2_homogeneity_hand_computed() -> None:
    # Table [[30, 70], [50, 50]]: column totals 80, 120; each row has 100, so expected [[40, 60], [40, 60]].
    # chi2 = 100/40 + 100/60 + 100/40 + 100/60 = 8.3333; dof 1; p = erfc(sqrt(8.3333 / 2)) = 0.003892
    result = st.chi2_homogeneity([30, 70], [50, 50])
    assert result.statistic == pytest.approx(25 / 3)
    assert result.dof == 1
    assert result.p_value == pytest.approx(math.erfc(math.sqrt(25 / 6)), rel=1e-9)
    assert result.p_value == pytest.approx(0.003892, abs=1e-6)


def test_chi2_homogeneity_identical_and_degenerate() -> None:
    same = st.chi2_homogeneity([10, 20, 30], [20, 40, 60])
    assert same.statistic == pytest.approx(0.0, abs=1e-12)
    assert same.p_value == pytest.approx(1.0)
    one_bin = st.chi2_homogeneity([0, 40, 0], [0, 90, 0])  # empty bins dropped → one bin → nothing to test
    assert (one_bin.dof, one_bin.p_value, one_bin.bins_used) == (0, 1.0, 1)
    with pytest.raises(ValueError, match="empty"):
        st.chi2_homogeneity([0, 0], [5, 5])


def test_chi2_pools_sparse_bins_so_one_stray_event_does_not_alarm() -> None:
    # A window of 200 with one event in a tail bin the reference never saw.
    window = [1, 0, 49, 100, 50]
    reference = [0, 2, 2500, 5000, 2498]
    pooled_w, pooled_r = st.pool_sparse_bins(window, reference)
    share = min(sum(window), sum(reference)) / (sum(window) + sum(reference))
    assert all((w + r) * share >= st.CHI2_MIN_EXPECTED for w, r in zip(pooled_w, pooled_r, strict=True))
    assert pooled_w.sum() == sum(window)
    assert pooled_r.sum() == sum(reference)
    assert st.chi2_homogeneity(window, reference).p_value > 0.5
    # Without pooling the stray event alone would be "significant".
    assert st.chi2_homogeneity(window, reference, min_expected=0.0).p_value < 1e-6


@pytest.mark.parametrize(("alpha", "k", "expected"), [(0.05, 1, 0.05), (0.05, 3, 0.05 / 3), (0.05, 0, 0.05)])
def test_bonferroni(alpha: float, k: int, expected: float) -> None:
    assert st.bonferroni(alpha, k) == pytest.approx(expected)


def test_chi2_false_alarm_rate_is_close_to_alpha() -> None:
    """Same distribution on both sides: about 5% of windows fall below p = 0.05."""
    rng = np.random.default_rng(7)
    shares = np.array([0.4, 0.3, 0.2, 0.1])
    p_values = [
        st.chi2_homogeneity(rng.multinomial(400, shares), rng.multinomial(5000, shares)).p_value for _ in range(400)
    ]
    assert 0.02 <= float(np.mean(np.array(p_values) < 0.05)) <= 0.09


# --- accuracy and calibration ----------------------------------------------------------------


def test_ece_hand_computed() -> None:
    # bin 0: 10 events, 5 correct (acc 0.5), mean confidence 0.4  → gap 0.1,  weight 10/30
    # bin 1: empty                                                  → ignored
    # bin 2: 20 events, 18 correct (acc 0.9), mean confidence 0.95 → gap 0.05, weight 20/30
    # ECE = (10 · 0.1 + 20 · 0.05) / 30 = 2 / 30 = 0.066667
    assert st.expected_calibration_error([10, 0, 20], [5, 0, 18], [4.0, 0.0, 19.0]) == pytest.approx(2 / 30)


def test_ece_is_zero_when_perfectly_calibrated_and_rejects_bad_counters() -> None:
    assert st.expected_calibration_error([10, 10], [3, 8], [3.0, 8.0]) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="more correct"):
        st.expected_calibration_error([1], [2], [0.5])
    with pytest.raises(ValueError, match="no labelled"):
        st.expected_calibration_error([0, 0], [0, 0], [0.0, 0.0])


def test_brier_and_expected_accuracy() -> None:
    # confidences 0.9 (right), 0.6 (wrong), 0.8 (right): (0.01 + 0.36 + 0.04) / 3 = 0.136667
    assert st.brier_score(0.01 + 0.36 + 0.04, 3) == pytest.approx(0.136667, abs=1e-6)
    assert st.expected_accuracy(2.3, 3) == pytest.approx(2.3 / 3)
    for fn in (st.brier_score, st.expected_accuracy):
        with pytest.raises(ValueError, match=r"empty|no labelled"):
            fn(0.0, 0)


def test_accuracy_and_per_class_metrics_hand_computed() -> None:
    # [predicted, true]
    m = np.array([[5, 1, 0], [2, 3, 0], [0, 0, 0]])
    assert st.accuracy(m) == pytest.approx(8 / 11)
    c0, c1, c2 = st.per_class_metrics(m)
    # class 0: TP 5, predicted 6, support 7 → P 5/6, R 5/7, F1 = 10 / (10 + 1 + 2) = 10/13
    assert (c0.precision, c0.recall, c0.f1) == pytest.approx((5 / 6, 5 / 7, 10 / 13))
    # class 1: TP 3, predicted 5, support 4 → P 0.6, R 0.75, F1 = 6 / (6 + 2 + 1) = 2/3
    assert (c1.precision, c1.recall, c1.f1) == pytest.approx((0.6, 0.75, 2 / 3))
    # class 2: never predicted, never true → undefined, reported as None (not NaN, not 0)
    assert (c2.precision, c2.recall, c2.f1, c2.support) == (None, None, None, 0)
    assert st.macro_f1([c0, c1, c2]) == pytest.approx((10 / 13 + 2 / 3) / 2)


def test_class_with_support_but_no_predictions_has_f1_zero() -> None:
    (_, missed) = st.per_class_metrics([[4, 3], [0, 0]])
    assert missed.precision is None
    assert missed.recall == 0.0
    assert missed.f1 == 0.0


def test_confusion_matrix_from_mapping() -> None:
    m = st.confusion_matrix({(0, 0): 5, (1, 0): 2, (0, 1): 1}, 2)
    assert m.tolist() == [[5, 1], [2, 0]]
    with pytest.raises(ValueError, match="outside"):
        st.confusion_matrix({(2, 0): 1}, 2)
    with pytest.raises(ValueError, match="no labelled"):
        st.accuracy(np.zeros((2, 2)))


def test_wilson_interval_contains_the_estimate() -> None:
    low, high = st.wilson_interval(90, 100)
    assert low < 0.9 < high
    assert (low, high) == pytest.approx((0.8256, 0.9448), abs=1e-3)
    assert st.wilson_interval(0, 10)[0] == 0.0


# --- histogram quantiles and means --------------------------------------------------------------


def test_histogram_quantile_hand_computed() -> None:
    edges = [0, 10, 20, 30]
    counts = [10, 20, 10]
    # p50: rank 20 → bin [10, 20) holds ranks 10..30 → 10 + (20 - 10) / 20 · 10 = 15
    assert st.histogram_quantile(edges, counts, 0.5) == pytest.approx(15.0)
    # p95: rank 38 → bin [20, 30) holds ranks 30..40 → 20 + (38 - 30) / 10 · 10 = 28
    assert st.histogram_quantile(edges, counts, 0.95) == pytest.approx(28.0)
    assert st.histogram_quantile(edges, [0, 5, 0], 0.0) == pytest.approx(10.0)
    assert st.histogram_quantile(edges, [0, 5, 0], 1.0) == pytest.approx(20.0)
    with pytest.raises(ValueError, match="empty"):
        st.histogram_quantile(edges, [0, 0, 0], 0.5)


@pytest.mark.parametrize("q", [0.1, 0.5, 0.9, 0.95])
def test_histogram_quantile_approximates_sample_quantiles(q: float) -> None:
    rng = np.random.default_rng(3)
    values = rng.uniform(0, 100, size=20_000)
    edges = np.linspace(0, 100, 21)
    counts, _ = np.histogram(values, bins=edges)
    assert st.histogram_quantile(edges.tolist(), counts, q) == pytest.approx(np.quantile(values, q), abs=0.5)


def test_histogram_mean_by_midpoints() -> None:
    assert st.histogram_mean([0, 1, 2], [1, 3]) == pytest.approx((0.5 + 3 * 1.5) / 4)
