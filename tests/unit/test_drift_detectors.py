"""Detectors: verdict rules, minimum counts, threshold sweeps and config round trips."""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

import numpy as np
import pytest

from pigeonhole.drift import statistics as st
from pigeonhole.drift.counters import CounterLayout, WindowCounters
from pigeonhole.drift.detectors import (
    AccuracyDetector,
    DetectionResult,
    Detector,
    ExpectedAccuracyDetector,
    HistogramDriftDetector,
    MonitorThresholds,
    Severity,
    signal_counts,
    worst,
)
from pigeonhole.model.manifest import DriftThresholds

SEVERITY_ORDER = {"insufficient_data": 0, "ok": 1, "warn": 2, "page": 3}


def _no_nan(result: DetectionResult) -> None:
    text = json.dumps(result.to_dict(), allow_nan=False)  # raises on NaN / inf
    assert "NaN" not in text


# --- thresholds -------------------------------------------------------------------------------------


def test_thresholds_default_to_the_manifest_and_can_be_overridden() -> None:
    t = MonitorThresholds.from_manifest(DriftThresholds())
    assert (t.psi_warn, t.psi_page, t.js_distance, t.p_value, t.min_window_events) == (0.1, 0.25, 0.1, 0.05, 200)
    custom = MonitorThresholds.from_manifest(DriftThresholds(psi_page=0.3, min_window_events=500), psi_warn=0.15)
    assert (custom.psi_warn, custom.psi_page, custom.min_window_events) == (0.15, 0.3, 500)
    assert MonitorThresholds.from_dict(custom.to_dict()) == custom


@pytest.mark.parametrize(
    "overrides",
    [{"psi_warn": 0.3, "psi_page": 0.2}, {"p_value": 0.0}, {"min_window_events": 0}, {"accuracy_page_drop": 0.01}],
)
def test_inconsistent_thresholds_are_rejected(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"need|must"):
        MonitorThresholds.from_manifest(None, **overrides)


def test_unknown_threshold_names_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown threshold"):
        MonitorThresholds.from_manifest(None, psi_wran=0.2)


def test_worst_ranks_insufficient_data_below_ok() -> None:
    assert worst(["insufficient_data", "ok"]) == "ok"
    assert worst(["ok", "warn", "insufficient_data"]) == "warn"
    assert worst(["warn", "page"]) == "page"
    assert worst([]) == "insufficient_data"


# --- histogram detector -------------------------------------------------------------------------------

REFERENCE = np.array([5000.0, 5000.0])


@pytest.mark.parametrize("n", [0, 1, 199])
def test_no_verdict_below_the_minimum_count(n: int) -> None:
    detector = HistogramDriftDetector(REFERENCE, signal="class_mix")
    result = detector.detect([n, 0])  # wildly different, but too few events to judge
    assert result.severity == "insufficient_data"
    assert not result.is_drift
    assert result.statistics["psi"] is None
    assert "minimum" in result.reasons[0]
    _no_nan(result)


def test_reference_below_the_minimum_gives_no_verdict() -> None:
    result = HistogramDriftDetector([10, 10], signal="class_mix").detect([500, 500])
    assert result.severity == "insufficient_data"
    assert "reference" in result.reasons[0]


def test_identical_distribution_is_ok_at_the_minimum_count() -> None:
    result = HistogramDriftDetector(REFERENCE, signal="class_mix").detect([100, 100])
    assert result.severity == "ok"
    assert result.statistics["psi"] == pytest.approx(0.0)
    assert result.statistics["js"] == pytest.approx(0.0)
    assert result.statistics["p_value"] == pytest.approx(1.0)
    assert set(result.to_dict()) == {"signal", "is_drift", "severity", "statistics", "thresholds", "reasons"}
    _no_nan(result)


@pytest.mark.parametrize(
    ("window", "severity"),
    [
        ([1000, 1000], "ok"),
        ([1190, 810], "warn"),  # psi 0.058 < 0.1, but JS 0.10 and chi-square p ≪ 0.05 warn
        ([1300, 700], "warn"),  # psi 0.147
        ([1500, 500], "page"),  # psi 0.549
    ],
)
def test_psi_tiers(window: list[int], severity: Severity) -> None:
    assert HistogramDriftDetector(REFERENCE, signal="class_mix").detect(window).severity == severity


def test_severity_never_decreases_as_the_shift_grows() -> None:
    """Parameter sweep: PSI and severity are monotone in the size of the shift."""
    detector = HistogramDriftDetector(REFERENCE, signal="class_mix")
    results = [detector.detect([1000 + d, 1000 - d]) for d in range(0, 900, 25)]
    psis = [float(r.statistics["psi"] or 0.0) for r in results]
    ranks = [SEVERITY_ORDER[r.severity] for r in results]
    assert all(b > a for a, b in itertools.pairwise(psis))
    assert ranks == sorted(ranks)
    assert results[0].severity == "ok"
    assert results[-1].severity == "page"


def test_js_alone_warns_but_never_pages() -> None:
    # shares 0.62 / 0.38 vs 0.5 / 0.5: PSI 0.0587 (below warn), JS distance 0.1028 (above 0.1)
    detector = HistogramDriftDetector(REFERENCE, signal="class_mix", tests=("psi", "js"))
    result = detector.detect([1240, 760])
    assert result.severity == "warn"
    assert result.reasons == (f"js distance {result.statistics['js']:.4f} >= 0.1",)


def test_chi_square_alone_warns_on_a_huge_window_but_never_pages() -> None:
    # 100 000 events at 51 / 49 against a 1 000 000-event reference at 50 / 50: PSI 0.0008, JS 0.014,
    # yet p ≈ 1e-9 — statistically, not practically, different.
    result = HistogramDriftDetector(REFERENCE * 100, signal="class_mix").detect([51_000, 49_000])
    assert float(result.statistics["psi"] or 1.0) < 0.01
    assert float(result.statistics["p_value"] or 1.0) < 1e-6
    assert result.severity == "warn"
    assert len(result.reasons) == 1
    assert result.reasons[0].startswith("chi-square")


def test_bonferroni_across_feature_tests() -> None:
    # 1055 / 945 of 2000 vs 50 / 50: p = 0.0247, between 0.05 / 3 and 0.05 (PSI 0.003, JS 0.023)
    window = [1055, 945]
    single = HistogramDriftDetector(REFERENCE, signal="feature:a", n_tests=1).detect(window)
    family = HistogramDriftDetector(REFERENCE, signal="feature:a", n_tests=3).detect(window)
    assert 0.05 / 3 < float(single.statistics["p_value"] or 0.0) < 0.05
    assert single.severity == "warn"
    assert family.severity == "ok"
    assert family.thresholds["p_value"] == pytest.approx(0.05 / 3)
    assert family.thresholds["p_value_family"] == 0.05


def test_overridden_thresholds_change_the_verdict() -> None:
    loose = MonitorThresholds(psi_warn=0.2, psi_page=0.6, js_distance=0.5, min_window_events=50)
    detector = HistogramDriftDetector(REFERENCE, loose, signal="class_mix", tests=("psi", "js"))
    assert detector.detect([1300, 700]).severity == "ok"
    assert detector.detect([60, 40]).severity == "ok"  # 100 events is enough with min 50


def test_empty_reference_bins_do_not_produce_infinities() -> None:
    detector = HistogramDriftDetector([5000, 5000, 0], signal="confidence")
    result = detector.detect([400, 400, 200])  # a bin the reference never saw
    assert result.severity == "page"
    assert math.isfinite(float(result.statistics["psi"] or math.inf))
    _no_nan(result)


def test_bin_count_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="bins"):
        HistogramDriftDetector(REFERENCE, signal="class_mix").detect([1, 2, 3])


def test_from_distribution_scales_a_prior_by_the_sample_size() -> None:
    detector = HistogramDriftDetector.from_distribution([0.25, 0.75], 8000, signal="class_mix")
    assert detector.reference_counts.tolist() == [2000.0, 6000.0]
    assert detector.detect([40, 150]).severity == "insufficient_data"  # 190 < 200
    assert detector.detect([250, 750]).severity == "ok"


# --- label-free expected accuracy -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "severity"), [(0.92, "ok"), (0.85, "ok"), (0.849, "warn"), (0.70, "warn"), (0.5, "warn")]
)
def test_expected_accuracy_warns_on_a_drop_beyond_the_margin(value: float, severity: Severity) -> None:
    detector = ExpectedAccuracyDetector(0.9)
    result = detector.detect(value, 1000)
    assert result.severity == severity
    assert result.statistics["drop"] == pytest.approx(0.9 - value)


def test_expected_accuracy_pages_only_when_a_page_margin_is_configured() -> None:
    paging = ExpectedAccuracyDetector(0.9, MonitorThresholds(expected_accuracy_page_drop=0.15))
    assert paging.detect(0.7, 1000).severity == "page"
    assert ExpectedAccuracyDetector(0.9).detect(0.7, 1000).severity == "warn"


def test_expected_accuracy_needs_the_minimum_count() -> None:
    result = ExpectedAccuracyDetector(0.9).detect(0.1, 10)
    assert result.severity == "insufficient_data"
    _no_nan(result)


LAYOUT = CounterLayout(n_classes=2, confidence_edges=(0.5, 0.75, 1.0), feature_edges={})


def test_expected_accuracy_histogram_method_compares_like_with_like() -> None:
    # Baseline: all confidence in [0.75, 1.0] → midpoint estimate 0.875 (the true mean may be 0.98).
    detector = ExpectedAccuracyDetector.from_confidence_histogram(LAYOUT.confidence_edges, [0, 1000])
    assert detector.reference == pytest.approx(0.875)
    window = WindowCounters.from_batch(LAYOUT, np.zeros(300, dtype=int), np.full(300, 0.98), {})
    # Exact mean 0.98 vs a midpoint reference would look like a *rise*; same-method comparison shows no change.
    result = detector.detect_window(window)
    assert result.statistics["expected_accuracy"] == pytest.approx(0.875)
    assert result.severity == "ok"
    assert ExpectedAccuracyDetector(0.98).detect_window(window).statistics["drop"] == pytest.approx(0.0)
    assert detector.detect_window(WindowCounters.empty(LAYOUT)).severity == "insufficient_data"


# --- realised accuracy -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("correct", "labelled", "severity"),
    [(0, 0, "insufficient_data"), (50, 99, "insufficient_data"), (90, 100, "ok"), (80, 100, "warn"), (70, 100, "page")],
)
def test_accuracy_detector(correct: int, labelled: int, severity: Severity) -> None:
    result = AccuracyDetector(0.9).detect(correct, labelled)
    assert result.severity == severity
    _no_nan(result)
    if severity != "insufficient_data":
        low, high = result.statistics["ci_low"], result.statistics["ci_high"]
        assert low is not None
        assert high is not None
        assert low <= correct / labelled <= high


def test_accuracy_detector_coverage_rule() -> None:
    detector = AccuracyDetector(0.9, MonitorThresholds(min_label_coverage=0.2))
    assert detector.detect(70, 100, events=1000).severity == "insufficient_data"  # 10% of the window labelled
    assert detector.detect(70, 100, events=400).severity == "page"


def test_accuracy_detector_reads_a_window() -> None:
    pred = np.array([0] * 150 + [1] * 50)
    true = np.array([0] * 120 + [1] * 30 + [1] * 50)
    labels = WindowCounters.from_labels(LAYOUT, pred, true, np.full(200, 0.9))
    result = AccuracyDetector(0.95).detect_window(labels)
    assert result.statistics["accuracy"] == pytest.approx(0.85)
    assert result.severity == "warn"
    with pytest.raises(ValueError, match="correct"):
        AccuracyDetector(0.9).detect(5, 4)


# --- configs ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "detector",
    [
        HistogramDriftDetector([10.0, 2000.0, 30.5], MonitorThresholds(psi_warn=0.2), signal="feature:x", n_tests=3),
        HistogramDriftDetector(REFERENCE, signal="confidence", tests=("psi", "js")),
        ExpectedAccuracyDetector(0.88, method="histogram_midpoint"),
        AccuracyDetector(0.91, MonitorThresholds(accuracy_page_drop=None)),
    ],
)
def test_config_round_trips_through_json(detector: Detector) -> None:
    config = json.loads(json.dumps(detector.get_config()))
    rebuilt = Detector.from_config(config)
    assert type(rebuilt) is type(detector)
    assert rebuilt.get_config() == detector.get_config()
    assert type(detector).from_config(config).get_config() == config


def test_from_config_rejects_unknown_or_mismatched_configs() -> None:
    config = AccuracyDetector(0.9).get_config()
    with pytest.raises(ValueError, match="unknown detector"):
        Detector.from_config({**config, "name": "KSDrift"})
    with pytest.raises(ValueError, match="not a HistogramDriftDetector"):
        HistogramDriftDetector.from_config(config)
    with pytest.raises(ValueError, match="version"):
        Detector.from_config({**config, "config_version": 99})


def test_signal_counts() -> None:
    layout = CounterLayout(n_classes=2, confidence_edges=(0.0, 1.0), feature_edges={"tokens": (0.0, 1.0, 2.0)})
    w = WindowCounters.from_batch(layout, [1, 1], [0.9, 0.8], {"tokens": [0.5, 1.5]})
    assert signal_counts(w, "class_mix").tolist() == [0, 2]
    assert signal_counts(w, "confidence").tolist() == [2]
    assert signal_counts(w, "feature:tokens").tolist() == [1, 1]
    with pytest.raises(KeyError):
        signal_counts(w, "feature:nope")


def test_psi_noise_floor_matches_hand_computation() -> None:
    # 77 bins, n = 500, N = 3,080: scale = 1/500 + 1/3080 = 0.0023247;
    # mean = 76 × scale = 0.17667; sd = √152 × scale = 0.028661; mean + 4 sd = 0.29131
    assert st.psi_noise_floor(77, 500, 3080, 4.0) == pytest.approx(0.29131, abs=1e-4)
    assert st.psi_noise_floor(77, 500, 3080, 0.0) == pytest.approx(0.17667, abs=1e-4)
    assert st.psi_noise_floor(1, 500, 3080, 4.0) == 0.0
    assert st.psi_noise_floor(77, 0, 3080, 4.0) == 0.0


def _noisy_class_mix() -> tuple[np.ndarray, np.ndarray]:
    """77 uniform classes (3,080 reference events) and a 500-event window with PSI 0.2776."""
    reference = np.full(77, 40.0)
    window = np.full(77, 3.2)
    window[38:] = (500 - 38 * 3.2) / 39
    return reference, window


def test_psi_between_page_line_and_noise_floor_warns_instead_of_paging() -> None:
    reference, window = _noisy_class_mix()
    result = HistogramDriftDetector(reference, MonitorThresholds(), signal="class_mix").detect(window)
    assert result.statistics["psi"] == pytest.approx(0.2776, abs=1e-3)
    assert result.statistics["psi_page_effective"] == pytest.approx(0.2913, abs=1e-3)
    assert result.severity == "warn"


def test_noise_floor_can_be_switched_off() -> None:
    reference, window = _noisy_class_mix()
    thresholds = MonitorThresholds(psi_noise_z=None)
    result = HistogramDriftDetector(reference, thresholds, signal="class_mix").detect(window)
    assert result.severity == "page"
    assert result.statistics["psi_page_effective"] == 0.25


def test_noise_floor_never_lowers_the_page_line() -> None:
    """Few bins or large windows: the floor is below 0.25, and 0.25 stays the line."""
    reference = np.full(10, 300.0)
    window = np.full(10, 200.0)
    window[0] = 20.0
    result = HistogramDriftDetector(reference, MonitorThresholds(), signal="confidence").detect(window)
    assert result.statistics["psi_page_effective"] == 0.25


def test_negative_noise_z_is_rejected() -> None:
    with pytest.raises(ValueError, match="psi_noise_z"):
        MonitorThresholds(psi_noise_z=-1.0)
