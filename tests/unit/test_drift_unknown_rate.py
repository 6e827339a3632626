"""The unknown rate in the drift windows: counted per window, merged, stored, and judged against the
baseline's rate (a rise beyond the margin warns; below the minimum window size there is no verdict)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pigeonhole.drift import batches
from pigeonhole.drift.counters import CounterLayout, WindowCounters
from pigeonhole.drift.detectors import Detector, MonitorThresholds
from pigeonhole.drift.report import evaluate_window
from pigeonhole.drift.unknown_rate import SIGNAL_UNKNOWN_RATE, UnknownRateDetector
from pigeonhole.model.manifest import DriftBaseline, Histogram

EDGES = [0.0, 0.25, 0.5, 0.75, 1.0]
LAYOUT = CounterLayout(n_classes=3, confidence_edges=tuple(EDGES), feature_edges={})


def _window(n: int, unknown: int, seed: int = 0) -> WindowCounters:
    rng = np.random.default_rng(seed)
    mask = np.zeros(n, dtype=bool)
    mask[rng.choice(n, size=unknown, replace=False)] = True
    review = mask | (rng.uniform(size=n) < 0.1)
    return WindowCounters.from_batch(
        LAYOUT, rng.integers(0, 3, n), rng.uniform(0.4, 1.0, n), {}, review=review, unknown=mask
    )


def test_the_unknown_count_is_counted_merged_and_stored() -> None:
    a, b = _window(50, 7, seed=1), _window(30, 2, seed=2)
    assert (a.unknown, b.unknown) == (7, 2)
    merged = a.merge(b)
    assert merged.unknown == 9
    item = merged.to_item_updates()
    assert item["unk"] == 9
    assert WindowCounters.from_item(item, LAYOUT).unknown == 9
    old = {k: v for k, v in item.items() if k != "unk"}  # an item written before the counter existed
    assert WindowCounters.from_item(old, LAYOUT).unknown == 0
    assert "unk" not in _window(10, 0).to_item_updates()  # zeros are left out of the ADD


def test_unknown_events_are_a_subset_of_review() -> None:
    with pytest.raises(ValueError, match="unknown <= review"):
        WindowCounters.from_batch(LAYOUT, [0, 1], [0.9, 0.9], {}, review=1, unknown=2)
    with pytest.raises(ValueError, match="unknown mask has 1 entries for 2"):
        WindowCounters.from_batch(LAYOUT, [0, 1], [0.9, 0.9], {}, review=2, unknown=[True])


@pytest.mark.parametrize(
    ("unknown", "severity"),
    [(6, "ok"), (16, "ok"), (17, "warn"), (40, "warn")],  # baseline 3 %, margin 5 points: 8 % of 200 = 16
)
def test_a_rise_beyond_the_margin_warns(unknown: int, severity: str) -> None:
    result = UnknownRateDetector(0.03).detect(unknown, 200)
    assert result.severity == severity
    assert result.statistics["unknown_rate"] == pytest.approx(unknown / 200)
    assert result.statistics["rise"] == pytest.approx(unknown / 200 - 0.03)
    assert result.statistics["z"] == pytest.approx((unknown / 200 - 0.03) / np.sqrt(0.03 * 0.97 / 200))


def test_a_page_margin_pages_when_configured_and_a_fall_is_no_alarm() -> None:
    thresholds = MonitorThresholds(unknown_rate_page_rise=0.15)
    assert UnknownRateDetector(0.03, thresholds).detect(40, 200).severity == "page"
    assert UnknownRateDetector(0.30).detect(0, 200).severity == "ok"


def test_small_windows_get_no_verdict() -> None:
    result = UnknownRateDetector(0.03).detect(150, 199)
    assert result.severity == "insufficient_data"
    assert result.statistics["unknown_rate"] is None


def test_the_detector_round_trips_through_its_config() -> None:
    detector = UnknownRateDetector(0.042, MonitorThresholds(unknown_rate_warn_rise=0.02))
    config = json.loads(json.dumps(detector.get_config()))
    rebuilt = Detector.from_config(config)
    assert isinstance(rebuilt, UnknownRateDetector)
    assert rebuilt.get_config() == detector.get_config()


def test_margins_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="unknown_rate"):
        MonitorThresholds(unknown_rate_warn_rise=0.1, unknown_rate_page_rise=0.05)


def _baseline(unknown_rate: float | None) -> DriftBaseline:
    return DriftBaseline(
        n_events=1000,
        class_prior=[1 / 3, 1 / 3, 1 / 3],
        confidence=Histogram(edges=EDGES, counts=[0, 100, 300, 600]),
        features={},
        unknown_rate=unknown_rate,
    )


def test_the_report_judges_the_window_rate_against_the_baseline_rate() -> None:
    window = _window(400, 60)  # 15 % against 3 %
    report = evaluate_window(window, _baseline(0.03))
    result = report.result(SIGNAL_UNKNOWN_RATE)
    assert result.severity == "warn"
    assert report.severity in ("warn", "page")
    assert (report.metrics.unknown, report.metrics.unknown_rate) == (60, pytest.approx(0.15))
    out = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert out["signals"][SIGNAL_UNKNOWN_RATE]["statistics"]["reference"] == 0.03
    assert out["metrics"]["unknown_rate"] == pytest.approx(0.15)


def test_a_baseline_without_a_rate_has_no_unknown_signal() -> None:
    report = evaluate_window(_window(400, 60), _baseline(None))
    assert SIGNAL_UNKNOWN_RATE not in report.to_dict()["signals"]
    assert report.metrics.unknown == 60  # still counted and shown


def test_batch_records_carry_the_unknown_flag_in_the_review_byte() -> None:
    """bit 0 review, bit 1 unknown; a record written before the flag existed (rev 1) reads as no unknown."""
    units = [
        batches.Contribution("P#v#a", 0, 0.9),
        batches.Contribution("P#v#b", 1, 0.4, review=True),
        batches.Contribution("P#v#c", 2, 0.95, review=True, unknown=True),
        batches.Contribution("P#v#d", 1, 0.2, unknown=True),  # unknown implies review
        batches.Contribution("Q#v#e"),  # quarantined
    ]
    records = batches.decode(batches.encode(LAYOUT, units).tobytes(), 0)
    counters = batches.counters_from_records(LAYOUT, records)
    assert (counters.events, counters.review, counters.unknown, counters.quarantined) == (4, 3, 2, 1)
    assert batches.totals_from_records(records) == {"n": 4, "rev": 3, "q": 1}
    old = records.copy()
    old["rev"] = np.minimum(old["rev"], 1)
    assert batches.counters_from_records(LAYOUT, old).unknown == 0
