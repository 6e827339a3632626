"""One closed window judged against the manifest baseline and (optionally) a trailing reference.

Which verdict pages: **the baseline's**. The manifest baseline is what the model was validated on,
so drifting away from it is what threatens the model's promises. The trailing reference (merged
recent windows, excluding the window under test) catches abrupt changes that are still inside the
baseline thresholds; its verdicts can raise the overall severity to ``warn`` (a ticket) but never to
``page``, because a reference that itself drifted slowly would otherwise make paging depend on history.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from pigeonhole.drift import statistics as st
from pigeonhole.drift.counters import WindowCounters
from pigeonhole.drift.detectors import (
    INSUFFICIENT,
    PAGE,
    SEVERITY_METRIC_VALUE,
    SEVERITY_RANK,
    SIGNAL_ACCURACY,
    SIGNAL_CLASS_MIX,
    SIGNAL_CONFIDENCE,
    SIGNAL_EXPECTED_ACCURACY,
    WARN,
    AccuracyDetector,
    DetectionResult,
    Detector,
    ExpectedAccuracyDetector,
    HistogramDriftDetector,
    MonitorThresholds,
    Severity,
    feature_signal,
    worst,
)
from pigeonhole.drift.unknown_rate import UnknownRateDetector
from pigeonhole.model.manifest import DriftBaseline, DriftThresholds, Manifest


def reference_accuracy_from_metrics(metrics: Mapping[str, object]) -> float | None:
    """The evaluated accuracy of the shipped model from a manifest's ``metrics``, if present.

    Looks for ``metrics["int8"]["accuracy"]`` (the quantized model is what ships), then
    ``metrics["accuracy"]``; returns None if neither is a number in [0, 1].
    """
    candidates: list[object] = []
    int8 = metrics.get("int8")
    if isinstance(int8, Mapping):
        candidates.append(int8.get("accuracy"))
    candidates.append(metrics.get("accuracy"))
    for value in candidates:
        if isinstance(value, int | float) and not isinstance(value, bool) and 0.0 <= float(value) <= 1.0:
            return float(value)
    return None


def _thresholds(thresholds: MonitorThresholds | DriftThresholds | None) -> MonitorThresholds:
    if isinstance(thresholds, MonitorThresholds):
        return thresholds
    return MonitorThresholds.from_manifest(thresholds)


def chi2_family(k_features: int) -> int:
    """How many chi-square tests can raise a report's verdict: the class mix and each feature, against
    the baseline and against the trailing reference. Bonferroni divides the family-wise p by this, so
    one report warns on chance with probability <= p, not p per test (the confidence histogram's
    chi-square does not vote)."""
    return 2 * (1 + k_features)


def build_baseline_detectors(
    baseline: DriftBaseline,
    thresholds: MonitorThresholds | DriftThresholds | None = None,
    baseline_accuracy: float | None = None,
) -> list[Detector]:
    """Detectors against the manifest baseline: class mix, confidence, each feature, expected accuracy,
    realised accuracy when the manifest carries an evaluated accuracy, and the unknown rate when the
    baseline has one (packages with an unknown score)."""
    t = _thresholds(thresholds)
    k_features = len(baseline.features)
    family = chi2_family(k_features)
    detectors: list[Detector] = [
        HistogramDriftDetector.from_distribution(
            baseline.class_prior, baseline.n_events, t, signal=SIGNAL_CLASS_MIX, n_tests=family
        ),
        # The confidence histogram votes with PSI and JS; its chi-square p-value is reported only.
        HistogramDriftDetector(baseline.confidence.counts, t, signal=SIGNAL_CONFIDENCE, tests=("psi", "js")),
    ]
    detectors += [
        HistogramDriftDetector(hist.counts, t, signal=feature_signal(name), n_tests=family)
        for name, hist in sorted(baseline.features.items())
    ]
    confidence = baseline.confidence
    detectors.append(ExpectedAccuracyDetector.from_confidence_histogram(confidence.edges, confidence.counts, t))
    if baseline_accuracy is not None:
        detectors.append(AccuracyDetector(baseline_accuracy, t))
    if baseline.unknown_rate is not None:
        detectors.append(UnknownRateDetector(baseline.unknown_rate, t))
    return detectors


def build_reference_detectors(
    reference: WindowCounters, thresholds: MonitorThresholds | DriftThresholds | None = None
) -> list[Detector]:
    """Detectors against a trailing reference (merged recent windows). Expected and realised accuracy
    are included only when the reference itself has enough events / labels to be trusted."""
    t = _thresholds(thresholds)
    family = chi2_family(len(reference.feature_counts))
    # Class mix and features vote by chi-square alone here (all statistics are still reported). Why: the
    # reference can only warn, and PSI/JS have a heavier no-drift tail than their noise floor assumes when
    # window cells are nearly empty (77 classes at 500 events: ~6 expected per class; an empty cell
    # adds e·ln(e/epsilon)). Measured (docs/drift-harness.md): the reference class-mix PSI alone warned on
    # 2.6 % of stationary windows even at z = 4; the chi-square test pools small cells instead.
    detectors: list[Detector] = [
        HistogramDriftDetector(reference.class_counts, t, signal=SIGNAL_CLASS_MIX, n_tests=family, tests=("chi2",)),
        HistogramDriftDetector(reference.confidence_counts, t, signal=SIGNAL_CONFIDENCE, tests=("psi", "js")),
    ]
    detectors += [
        HistogramDriftDetector(counts, t, signal=feature_signal(name), n_tests=family, tests=("chi2",))
        for name, counts in sorted(reference.feature_counts.items())
    ]
    if reference.events >= t.min_window_events:
        detectors.append(ExpectedAccuracyDetector(st.expected_accuracy(reference.confidence_sum, reference.events), t))
    if reference.labelled >= t.min_labelled_events:
        detectors.append(AccuracyDetector(reference.correct / reference.labelled, t))
    return detectors


def _missing(signal: str, why: str) -> DetectionResult:
    return DetectionResult(signal, INSUFFICIENT, {}, {}, (why,))


@dataclass(frozen=True)
class ClassScore:
    label: str
    precision: float | None
    recall: float | None
    f1: float | None
    support: int
    predicted: int


@dataclass(frozen=True)
class AccuracyMetrics:
    """Label-based metrics of the window's predictions that received feedback."""

    labelled: int
    label_coverage: float | None  # labelled / classified events of the window
    accuracy: float
    accuracy_ci_low: float  # Wilson 95%
    accuracy_ci_high: float
    macro_f1: float | None
    ece: float | None
    brier: float
    label_latency_p50_seconds: float | None
    label_latency_p95_seconds: float | None
    per_class: tuple[ClassScore, ...]


@dataclass(frozen=True)
class WindowMetrics:
    """Label-free descriptive numbers of the window (always present, None where undefined)."""

    events: int
    review: int
    quarantined: int
    review_rate: float | None  # of classified events
    unknown: int  # of the classified events, routed to review as unknown
    unknown_rate: float | None  # of classified events
    quarantine_rate: float | None  # of all received (classified + quarantined) events
    expected_accuracy: float | None  # exact: csum / n
    confidence_std: float | None
    class_counts: dict[str, int]


@dataclass(frozen=True)
class WindowReport:
    """Verdicts per signal against the baseline (drives paging) and the trailing reference (warn at most)."""

    severity: Severity  # what alarms act on: baseline verdicts, plus reference verdicts capped at warn
    baseline_severity: Severity
    reference_severity: Severity | None
    baseline: tuple[DetectionResult, ...]
    reference: tuple[DetectionResult, ...] | None
    metrics: WindowMetrics
    accuracy: AccuracyMetrics | None
    thresholds: MonitorThresholds

    @property
    def severity_value(self) -> int | None:
        """DriftSeverity metric value (0 ok, 1 warn, 2 page); None (emit nothing) for insufficient data."""
        return SEVERITY_METRIC_VALUE.get(self.severity)

    def result(self, signal: str, *, against: str = "baseline") -> DetectionResult:
        results = self.baseline if against == "baseline" else (self.reference or ())
        for r in results:
            if r.signal == signal:
                return r
        raise KeyError(f"no {against} result for signal {signal!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON (no NaN, no numpy types): ``json.dumps(report.to_dict(), allow_nan=False)`` works."""
        out = {
            "severity": self.severity,
            "severity_value": self.severity_value,
            "baseline_severity": self.baseline_severity,
            "reference_severity": self.reference_severity,
            "signals": {r.signal: r.to_dict() for r in self.baseline},
            "reference_signals": None if self.reference is None else {r.signal: r.to_dict() for r in self.reference},
            "metrics": asdict(self.metrics),
            "accuracy": None if self.accuracy is None else asdict(self.accuracy),
            "thresholds": self.thresholds.to_dict(),
        }
        return _json_safe(out)


def _json_safe(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if hasattr(value, "item"):  # numpy scalar
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, int):
        return value
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def _check_layout(window: WindowCounters, baseline: DriftBaseline) -> None:
    lay = window.layout
    if lay.n_classes != len(baseline.class_prior):
        raise ValueError(f"window counts {lay.n_classes} classes, the baseline {len(baseline.class_prior)}")
    if lay.confidence_edges != tuple(baseline.confidence.edges):
        raise ValueError("window confidence bins differ from the baseline's")
    if {k: tuple(v.edges) for k, v in baseline.features.items()} != dict(lay.feature_edges):
        raise ValueError("window feature bins differ from the baseline's")


def _window_metrics(window: WindowCounters, classes: Sequence[str]) -> WindowMetrics:
    n = window.events
    received = n + window.quarantined
    mean = st.expected_accuracy(window.confidence_sum, n) if n else None
    std = math.sqrt(max(window.confidence_sq_sum / n - mean * mean, 0.0)) if n and mean is not None else None
    return WindowMetrics(
        events=n,
        review=window.review,
        quarantined=window.quarantined,
        review_rate=window.review / n if n else None,
        unknown=window.unknown,
        unknown_rate=window.unknown / n if n else None,
        quarantine_rate=window.quarantined / received if received else None,
        expected_accuracy=mean,
        confidence_std=std,
        class_counts={label: int(c) for label, c in zip(classes, window.class_counts, strict=True)},
    )


def _accuracy_metrics(window: WindowCounters, classes: Sequence[str]) -> AccuracyMetrics | None:
    if window.labelled <= 0 or int(window.confusion.sum()) <= 0:
        return None
    labelled = int(window.confusion.sum())
    low, high = st.wilson_interval(window.correct, labelled)
    per_class = st.per_class_metrics(window.confusion)
    ece = (
        st.expected_calibration_error(
            window.labelled_confidence_counts, window.labelled_correct_counts, window.labelled_confidence_sum
        )
        if int(window.labelled_confidence_counts.sum()) > 0
        else None
    )
    has_latency = int(window.latency_counts.sum()) > 0
    edges = window.layout.latency_edges
    return AccuracyMetrics(
        labelled=labelled,
        label_coverage=labelled / window.events if window.events else None,
        accuracy=st.accuracy(window.confusion),
        accuracy_ci_low=low,
        accuracy_ci_high=high,
        macro_f1=st.macro_f1(per_class),
        ece=ece,
        brier=st.brier_score(window.brier_sum, labelled),
        label_latency_p50_seconds=st.histogram_quantile(edges, window.latency_counts, 0.5) if has_latency else None,
        label_latency_p95_seconds=st.histogram_quantile(edges, window.latency_counts, 0.95) if has_latency else None,
        per_class=tuple(
            ClassScore(label, m.precision, m.recall, m.f1, m.support, m.predicted)
            for label, m in zip(classes, per_class, strict=True)
        ),
    )


def evaluate_window(
    window: WindowCounters,
    baseline: DriftBaseline,
    thresholds: MonitorThresholds | DriftThresholds | None = None,
    reference: WindowCounters | None = None,
    classes: Sequence[str] | None = None,
    *,
    baseline_accuracy: float | None = None,
) -> WindowReport:
    """Judge a closed window. ``classes`` labels the per-class numbers (default: class indices);
    ``baseline_accuracy`` is the manifest's evaluated accuracy (see :func:`reference_accuracy_from_metrics`)."""
    t = _thresholds(thresholds)
    _check_layout(window, baseline)
    labels = [str(i) for i in range(window.layout.n_classes)] if classes is None else list(classes)
    if len(labels) != window.layout.n_classes:
        raise ValueError(f"{len(labels)} class names for {window.layout.n_classes} classes")

    base_results = [d.detect_window(window) for d in build_baseline_detectors(baseline, t, baseline_accuracy)]
    if baseline_accuracy is None:
        base_results.append(_missing(SIGNAL_ACCURACY, "no evaluated accuracy in the manifest to compare with"))
    baseline_severity = worst(r.severity for r in base_results)

    ref_results: list[DetectionResult] | None = None
    reference_severity: Severity | None = None
    severity = baseline_severity
    if reference is not None:
        if reference.layout != window.layout:
            raise ValueError("reference and window have different layouts (different model packages?)")
        ref_results = [d.detect_window(window) for d in build_reference_detectors(reference, t)]
        present = {r.signal for r in ref_results}
        if SIGNAL_EXPECTED_ACCURACY not in present:
            ref_results.append(
                _missing(SIGNAL_EXPECTED_ACCURACY, f"reference has {reference.events} events < {t.min_window_events}")
            )
        if SIGNAL_ACCURACY not in present:
            ref_results.append(
                _missing(SIGNAL_ACCURACY, f"reference has {reference.labelled} labels < {t.min_labelled_events}")
            )
        reference_severity = worst(r.severity for r in ref_results)
        capped: Severity = WARN if reference_severity == PAGE else reference_severity
        severity = baseline_severity if SEVERITY_RANK[baseline_severity] >= SEVERITY_RANK[capped] else capped

    return WindowReport(
        severity=severity,
        baseline_severity=baseline_severity,
        reference_severity=reference_severity,
        baseline=tuple(base_results),
        reference=None if ref_results is None else tuple(ref_results),
        metrics=_window_metrics(window, labels),
        accuracy=_accuracy_metrics(window, labels),
        thresholds=t,
    )


def evaluate_for_manifest(
    window: WindowCounters,
    manifest: Manifest,
    reference: WindowCounters | None = None,
    **threshold_overrides: Any,
) -> WindowReport:
    """:func:`evaluate_window` with everything taken from the manifest (baseline, thresholds, classes,
    evaluated accuracy), thresholds overridable by keyword."""
    return evaluate_window(
        window,
        manifest.drift_baseline,
        MonitorThresholds.from_manifest(manifest.drift_thresholds, **threshold_overrides),
        reference,
        manifest.classes,
        baseline_accuracy=reference_accuracy_from_metrics(manifest.metrics),
    )
