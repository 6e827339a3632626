"""Drift and accuracy monitoring: pure logic over mergeable window counters (numpy only, no AWS calls).

* :mod:`~pigeonhole.drift.counters` — what a DynamoDB window item holds, and how windows merge;
* :mod:`~pigeonhole.drift.statistics` — PSI, Jensen–Shannon, chi-square, ECE, Brier, quantiles;
* :mod:`~pigeonhole.drift.detectors` — alibi-detect style detectors with serialisable configs;
* :mod:`~pigeonhole.drift.unknown_rate` — the share routed ``unknown`` against the baseline's rate;
* :mod:`~pigeonhole.drift.report` — one window judged against the baseline and a trailing reference.
"""

from pigeonhole.drift.counters import LATENCY_EDGES_SECONDS, CounterLayout, WindowCounters
from pigeonhole.drift.detectors import (
    AccuracyDetector,
    DetectionResult,
    Detector,
    ExpectedAccuracyDetector,
    HistogramDriftDetector,
    MonitorThresholds,
    Severity,
)
from pigeonhole.drift.report import WindowReport, evaluate_for_manifest, evaluate_window
from pigeonhole.drift.unknown_rate import UnknownRateDetector

__all__ = [
    "LATENCY_EDGES_SECONDS",
    "AccuracyDetector",
    "CounterLayout",
    "DetectionResult",
    "Detector",
    "ExpectedAccuracyDetector",
    "HistogramDriftDetector",
    "MonitorThresholds",
    "Severity",
    "UnknownRateDetector",
    "WindowCounters",
    "WindowReport",
    "evaluate_for_manifest",
    "evaluate_window",
]
