"""The warn rule: PSI and JS warn only above their sampling-noise floor (``warn_noise_z``), and the
chi-square tests of a report share one Bonferroni family. Parametrized in the alibi-detect style."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pigeonhole.drift import statistics as st
from pigeonhole.drift.detectors import Detector, HistogramDriftDetector, MonitorThresholds
from pigeonhole.drift.report import chi2_family

PRIOR_77 = np.random.default_rng(0).dirichlet(np.full(77, 20.0))  # a 77-class mix, no tiny classes


@pytest.mark.parametrize("bins", [5, 20, 77])
@pytest.mark.parametrize("n", [200, 500, 2000, 20_000])
@pytest.mark.parametrize("z", [None, 2.0, 3.0])
def test_warn_lines_are_the_fixed_lines_or_the_noise_floor_whichever_is_higher(
    bins: int, n: int, z: float | None
) -> None:
    t = MonitorThresholds(warn_noise_z=z)
    reference = np.full(bins, 3080.0 / bins)
    result = HistogramDriftDetector(reference, t, signal="feature:x").detect(np.full(bins, n / bins))
    stats = result.statistics
    floor = 0.0 if z is None else st.psi_noise_floor(bins, n, 3080.0, z)
    assert stats["psi_warn_effective"] == pytest.approx(min(max(t.psi_warn, floor), float(stats["psi_page_effective"])))
    assert stats["js_distance_effective"] == pytest.approx(max(t.js_distance, st.js_noise_floor(floor)))
    assert float(stats["psi_warn_effective"]) <= float(stats["psi_page_effective"])
    assert result.severity == "ok"  # identical shares: never drift


@pytest.mark.parametrize("n", [500, 1000])
def test_js_noise_floor_matches_the_no_drift_js_distance(n: int) -> None:
    """JSD ≈ PSI / (8 ln 2): the floor's mean (z = 0) is the mean squared JS distance of pure noise."""
    rng = np.random.default_rng(n)
    squared = [
        st.js_distance(rng.multinomial(3080, PRIOR_77), rng.multinomial(n, PRIOR_77)) ** 2 for _ in range(300)
    ]  # both sides sampled, as the floor assumes (a baseline or trailing reference is a sample too)
    expected = st.js_noise_floor(st.psi_noise_floor(77, n, 3080.0, 0.0)) ** 2
    assert float(np.mean(squared)) == pytest.approx(expected, rel=0.15)


@pytest.mark.parametrize(
    ("z", "max_rate"),
    [
        (None, 1.0),  # the old rule: the class mix warns on almost every 500-event window
        (3.0, 0.05),
        (4.0, 0.02),
    ],
)
def test_stationary_class_mix_warn_rate_at_500_events(z: float | None, max_rate: float) -> None:
    rng = np.random.default_rng(7)
    detector = HistogramDriftDetector.from_distribution(
        PRIOR_77, 3080, MonitorThresholds(warn_noise_z=z), signal="class_mix", tests=("psi", "js")
    )
    warned = sum(detector.detect(rng.multinomial(500, PRIOR_77)).is_drift for _ in range(400))
    assert warned / 400 <= max_rate
    if z is None:
        assert warned / 400 >= 0.9


@pytest.mark.parametrize("surge", [0.3, 0.5])
@pytest.mark.parametrize("z", [3.0, 4.0])
def test_a_real_prior_shift_still_pages_in_one_window(surge: float, z: float) -> None:
    rng = np.random.default_rng(11)
    shifted = PRIOR_77 * (1.0 - surge)
    shifted[:3] += surge / 3  # three classes take `surge` of the traffic
    detector = HistogramDriftDetector.from_distribution(
        PRIOR_77, 3080, MonitorThresholds(warn_noise_z=z), signal="class_mix"
    )
    verdicts = [detector.detect(rng.multinomial(500, shifted)).severity for _ in range(50)]
    assert verdicts.count("page") == 50


@pytest.mark.parametrize("k_features", [0, 1, 3])
def test_chi_square_is_corrected_across_the_reports_family(k_features: int) -> None:
    family = chi2_family(k_features)
    assert family == 2 * (1 + k_features)
    detector = HistogramDriftDetector(np.full(5, 100.0), MonitorThresholds(), signal="feature:x", n_tests=family)
    assert detector.p_value_threshold == pytest.approx(0.05 / family)


def test_warn_noise_z_is_validated_and_serialised() -> None:
    with pytest.raises(ValueError, match="warn_noise_z"):
        MonitorThresholds(warn_noise_z=-0.5)
    assert MonitorThresholds().warn_noise_z == 3.5
    detector = HistogramDriftDetector(np.full(5, 100.0), MonitorThresholds(warn_noise_z=2.5), signal="feature:x")
    rebuilt = Detector.from_config(detector.get_config())
    assert rebuilt.thresholds.warn_noise_z == 2.5
    assert math.isclose(st.js_noise_floor(0.0), 0.0)
    assert st.js_noise_floor(-1.0) == 0.0
