"""The unknown-rate signal: the share of a window's events routed ``unknown`` against the baseline's.

The build measures ``drift_baseline.unknown_rate`` on held-out data with the shipped model; a window
whose unknown rate rises well above it is receiving events of intents the model does not know (a new
product, spam, another language). Label-free, so a ticket (``warn``) by default; ``page`` only if a
page margin is configured. Only a rise counts: fewer unknown events than the baseline is no threat.

Rule: fewer than ``min_window_events`` events -> ``insufficient_data``; else the rise
``rate - baseline`` above ``unknown_rate_page_rise`` (if set) -> ``page``, above
``unknown_rate_warn_rise`` -> ``warn``. The binomial z of the rise is reported so a reader can tell
noise from a shift (at 200 events and a 3 % baseline one standard deviation is 1.2 points).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pigeonhole.drift.counters import WindowCounters
from pigeonhole.drift.detectors import OK, PAGE, WARN, DetectionResult, Detector, MonitorThresholds, Statistic

SIGNAL_UNKNOWN_RATE = "unknown_rate"
_TOLERANCE = 1e-9  # float rounding of rate - baseline must not flip a verdict at the boundary


class UnknownRateDetector(Detector):
    """The window's unknown rate against a reference rate (the manifest baseline's)."""

    def __init__(
        self, reference_rate: float, thresholds: MonitorThresholds | None = None, *, signal: str = SIGNAL_UNKNOWN_RATE
    ) -> None:
        if not 0.0 <= reference_rate <= 1.0:
            raise ValueError("reference unknown rate must be within [0, 1]")
        self.reference = float(reference_rate)
        self.thresholds = thresholds or MonitorThresholds()
        self.signal = signal

    def _threshold_view(self) -> dict[str, Statistic]:
        t = self.thresholds
        return {
            "warn_rise": t.unknown_rate_warn_rise,
            "page_rise": t.unknown_rate_page_rise,
            "min_events": t.min_window_events,
        }

    def detect(self, unknown: int, events: int) -> DetectionResult:
        if not 0 <= unknown <= events:
            raise ValueError("need 0 <= unknown <= events")
        t = self.thresholds
        stats: dict[str, Statistic] = {
            "n": int(events),
            "unknown": int(unknown),
            "unknown_rate": None,
            "reference": self.reference,
            "rise": None,
            "z": None,
        }
        view = self._threshold_view()
        if events < t.min_window_events:
            return self._insufficient(stats, view, f"{int(events)} events < minimum {t.min_window_events}")
        rate = unknown / events
        rise = rate - self.reference
        sd = math.sqrt(self.reference * (1.0 - self.reference) / events)
        stats.update(unknown_rate=rate, rise=rise, z=rise / sd if sd > 0 else None)
        page = t.unknown_rate_page_rise
        if page is not None and rise > page + _TOLERANCE:
            return DetectionResult(self.signal, PAGE, stats, view, (f"rise {rise:.4f} > page {page}",))
        if rise > t.unknown_rate_warn_rise + _TOLERANCE:
            reason = f"rise {rise:.4f} > warn {t.unknown_rate_warn_rise}"
            return DetectionResult(self.signal, WARN, stats, view, (reason,))
        return DetectionResult(self.signal, OK, stats, view)

    def detect_window(self, window: WindowCounters) -> DetectionResult:
        return self.detect(window.unknown, window.events)

    def _config_body(self) -> dict[str, Any]:
        return {"reference_rate": self.reference}

    @classmethod
    def _from_config_body(cls, body: Mapping[str, Any], thresholds: MonitorThresholds) -> UnknownRateDetector:
        return cls(float(body["reference_rate"]), thresholds, signal=str(body["signal"]))
