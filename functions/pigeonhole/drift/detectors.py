"""Drift and accuracy detectors in the alibi-detect style, over window counters.

A detector is built from reference counts (the manifest baseline, or a trailing reference made of
merged recent windows) and thresholds; ``detect(...)`` returns a :class:`DetectionResult`
``{signal, is_drift, severity, statistics, thresholds}``; ``get_config()`` / ``Detector.from_config``
round-trip it through plain JSON.

Why one module: three detectors (PSI/JS, chi-square, accuracy) share one contract
(MonitorThresholds, DetectionResult, get_config/from_config) and its noise-floor rules; split apart,
each would import the same private helpers back. It ships to Lambda, where one import is cheaper.

Verdict rules (defaults from the most used open-source monitors, see ``DESIGN.md``):

* fewer than ``min_window_events`` events (or labels) → ``insufficient_data``, never a verdict;
* PSI >= max(0.25, noise floor at ``psi_noise_z`` = 4 sd) → ``page``;
  PSI >= max(0.1, noise floor at ``warn_noise_z`` = 3.5 sd) → ``warn``;
* Jensen–Shannon distance >= max(0.1, the same warn noise floor as a JS distance) → ``warn``;
* chi-square homogeneity p < 0.05 / k (Bonferroni across the k chi-square tests of a report: class
  mix and every feature, against the baseline and the trailing reference) → ``warn``: only PSI
  pages, because on large windows a chi-square test flags shifts too small to matter;
* expected accuracy (mean top-1 probability, label-free) below the reference by more than a margin
  → ``warn`` (``page`` only if a page margin is configured);
* realised accuracy (labelled events) below the reference by more than a margin → ``warn`` /
  ``page``, once at least ``min_labelled_events`` labels (and ``min_label_coverage`` of the window)
  are in;
* the unknown rate above the baseline's by more than a margin → ``warn`` (its detector lives in
  :mod:`pigeonhole.drift.unknown_rate`; its thresholds here, with the others).
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, cast

import numpy as np
from numpy.typing import ArrayLike

from pigeonhole.drift import statistics as st
from pigeonhole.drift.counters import WindowCounters
from pigeonhole.model.manifest import DriftThresholds

Severity = Literal["ok", "warn", "page", "insufficient_data"]
OK: Severity = "ok"
WARN: Severity = "warn"
PAGE: Severity = "page"
INSUFFICIENT: Severity = "insufficient_data"

# "Worst" ordering: a window where some signals are ok and the rest lack data is ok.
SEVERITY_RANK: Mapping[Severity, int] = {INSUFFICIENT: 0, OK: 1, WARN: 2, PAGE: 3}
# Value of the DriftSeverity metric (metrics_catalog): insufficient data emits nothing.
SEVERITY_METRIC_VALUE: Mapping[Severity, int] = {OK: 0, WARN: 1, PAGE: 2}

# Signal names, as used for the ``Signal`` metric dimension.
SIGNAL_CLASS_MIX = "class_mix"
SIGNAL_CONFIDENCE = "confidence"
SIGNAL_EXPECTED_ACCURACY = "expected_accuracy"
SIGNAL_ACCURACY = "accuracy"
FEATURE_SIGNAL_PREFIX = "feature:"

Statistic = float | int | None
HistogramTest = Literal["psi", "js", "chi2"]
ALL_HISTOGRAM_TESTS: tuple[HistogramTest, ...] = ("psi", "js", "chi2")
_DROP_TOLERANCE = 1e-9


def feature_signal(name: str) -> str:
    return f"{FEATURE_SIGNAL_PREFIX}{name}"


def worst(severities: Iterable[Severity]) -> Severity:
    """The most severe verdict; ``insufficient_data`` only if no signal had enough data."""
    return max(severities, key=lambda s: SEVERITY_RANK[s], default=INSUFFICIENT)


def signal_counts(window: WindowCounters, signal: str) -> np.ndarray:
    """The histogram a distribution signal reads from a window."""
    if signal == SIGNAL_CLASS_MIX:
        return window.class_counts
    if signal == SIGNAL_CONFIDENCE:
        return window.confidence_counts
    if signal.startswith(FEATURE_SIGNAL_PREFIX):
        name = signal[len(FEATURE_SIGNAL_PREFIX) :]
        if name in window.feature_counts:
            return window.feature_counts[name]
    raise KeyError(f"window has no histogram for signal {signal!r}")


@dataclass(frozen=True)
class MonitorThresholds:
    """Every threshold the detectors use: the manifest's :class:`DriftThresholds` plus label-based ones.

    Build with :meth:`from_manifest` so the manifest stays the source of truth, overriding per
    deployment if needed (``from_manifest(m.drift_thresholds, accuracy_page_drop=0.08)``).
    """

    psi_warn: float = 0.1
    psi_page: float = 0.25
    js_distance: float = 0.1
    p_value: float = 0.05  # family-wise; divided by the number of tests (Bonferroni)
    min_window_events: int = 200
    psi_epsilon: float = st.PSI_EPSILON
    # Page on a histogram's PSI only above max(psi_page, its sampling-noise floor at z sd); None: off.
    psi_noise_z: float | None = 4.0
    # Warn (PSI and JS) only above the same noise floor at a lower z; None: the fixed lines alone.
    # Why: at 500 events the 77-class mix's no-drift PSI averages 0.18, above psi_warn, so every
    # window warned (docs/drift-harness.md); z = 3.5 measured 4.65 % stationary warns (z = 3: 5.7 %).
    warn_noise_z: float | None = 3.5
    chi2_min_expected: float = st.CHI2_MIN_EXPECTED
    expected_accuracy_warn_drop: float = 0.05
    expected_accuracy_page_drop: float | None = None  # label-free: ticket, not a page, unless configured
    accuracy_warn_drop: float = 0.05
    accuracy_page_drop: float | None = 0.10
    min_labelled_events: int = 100
    min_label_coverage: float = 0.0  # share of the window's events that must be labelled
    # Unknown rate (pigeonhole.drift.unknown_rate): a rise over the baseline's rate, in absolute points.
    unknown_rate_warn_rise: float = 0.05
    unknown_rate_page_rise: float | None = None  # label-free: ticket, not a page, unless configured

    def __post_init__(self) -> None:
        if not 0.0 < self.psi_warn <= self.psi_page:
            raise ValueError("thresholds need 0 < psi_warn <= psi_page")
        if not 0.0 < self.js_distance <= 1.0:
            raise ValueError("js_distance must be within (0, 1]")
        if not 0.0 < self.p_value < 1.0:
            raise ValueError("p_value must be within (0, 1)")
        if self.min_window_events < 1 or self.min_labelled_events < 1:
            raise ValueError("minimum counts must be >= 1")
        if self.psi_noise_z is not None and self.psi_noise_z < 0.0:
            raise ValueError("psi_noise_z must be >= 0 (or None to page on psi_page alone)")
        if self.warn_noise_z is not None and self.warn_noise_z < 0.0:
            raise ValueError("warn_noise_z must be >= 0 (or None to warn on psi_warn / js_distance alone)")
        if not 0.0 < self.psi_epsilon < 1.0 or self.chi2_min_expected < 0.0:
            raise ValueError("psi_epsilon must be within (0, 1) and chi2_min_expected >= 0")
        if not 0.0 <= self.min_label_coverage <= 1.0:
            raise ValueError("min_label_coverage must be within [0, 1]")
        for warn_drop, page_drop, what in (
            (self.expected_accuracy_warn_drop, self.expected_accuracy_page_drop, "expected_accuracy"),
            (self.accuracy_warn_drop, self.accuracy_page_drop, "accuracy"),
            (self.unknown_rate_warn_rise, self.unknown_rate_page_rise, "unknown_rate"),
        ):
            if warn_drop < 0.0 or (page_drop is not None and page_drop < warn_drop):
                raise ValueError(f"{what}: need 0 <= warn drop <= page drop")

    @classmethod
    def from_manifest(cls, drift: DriftThresholds | None = None, **overrides: Any) -> MonitorThresholds:
        """Manifest thresholds first, then explicit overrides; unknown names raise."""
        values: dict[str, Any] = drift.model_dump() if drift is not None else {}
        values.update(overrides)
        return cls.from_dict(values)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> MonitorThresholds:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown threshold names: {sorted(unknown)}")
        return cls(**dict(values))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class DetectionResult:
    """One signal's verdict with the statistics and the thresholds it was judged against."""

    signal: str
    severity: Severity
    statistics: Mapping[str, Statistic]
    thresholds: Mapping[str, Statistic]
    reasons: tuple[str, ...] = field(default=())  # which rules fired (or why there is no verdict)

    @property
    def is_drift(self) -> bool:
        return self.severity in (WARN, PAGE)

    def to_dict(self) -> dict[str, Any]:
        return {
            "signal": self.signal,
            "is_drift": self.is_drift,
            "severity": self.severity,
            "statistics": dict(self.statistics),
            "thresholds": dict(self.thresholds),
            "reasons": list(self.reasons),
        }


class Detector(ABC):
    """Base class: reference + thresholds in, verdict out, config serialisable as JSON."""

    name: ClassVar[str]
    _registry: ClassVar[dict[str, type[Detector]]] = {}

    signal: str
    thresholds: MonitorThresholds

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.name = cls.__name__
        Detector._registry[cls.__name__] = cls

    @abstractmethod
    def detect_window(self, window: WindowCounters) -> DetectionResult:
        """Judge one window (or merged windows) against the reference."""

    @abstractmethod
    def _config_body(self) -> dict[str, Any]: ...

    @classmethod
    @abstractmethod
    def _from_config_body(cls, body: Mapping[str, Any], thresholds: MonitorThresholds) -> Detector: ...

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "config_version": 1,
            "signal": self.signal,
            "thresholds": self.thresholds.to_dict(),
            **self._config_body(),
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Detector:
        """Rebuild any detector from ``get_config()`` output (dispatches on ``config["name"]``)."""
        name = config.get("name")
        target = Detector._registry.get(str(name))
        if target is None:
            raise ValueError(f"unknown detector {name!r}")
        if cls is not Detector and not issubclass(target, cls):
            raise ValueError(f"config describes a {name}, not a {cls.__name__}")
        if config.get("config_version") != 1:
            raise ValueError(f"unsupported detector config version {config.get('config_version')!r}")
        return target._from_config_body(config, MonitorThresholds.from_dict(config["thresholds"]))

    def _insufficient(
        self, statistics: Mapping[str, Statistic], thresholds: Mapping[str, Statistic], why: str
    ) -> DetectionResult:
        return DetectionResult(self.signal, INSUFFICIENT, dict(statistics), dict(thresholds), (why,))


class HistogramDriftDetector(Detector):
    """Distribution drift of one histogram (class mix, confidence, an input feature): PSI, JS, chi-square.

    All three statistics are always computed and reported; ``tests`` says which of them may raise
    a verdict (e.g. the confidence signal votes with PSI and JS only). ``n_tests`` is the size of
    the Bonferroni family the chi-square test belongs to (the number of feature tests).
    """

    def __init__(
        self,
        reference_counts: ArrayLike,
        thresholds: MonitorThresholds | None = None,
        *,
        signal: str,
        n_tests: int = 1,
        tests: Sequence[HistogramTest] = ALL_HISTOGRAM_TESTS,
    ) -> None:
        ref = np.asarray(reference_counts, dtype=np.float64)
        if ref.ndim != 1 or ref.size < 1 or not np.all(np.isfinite(ref)) or np.any(ref < 0):
            raise ValueError("reference_counts must be a 1-d array of finite, non-negative counts")
        unknown = set(tests) - set(ALL_HISTOGRAM_TESTS)
        if unknown or not tests:
            raise ValueError(f"tests must be a non-empty subset of {ALL_HISTOGRAM_TESTS}")
        self.reference_counts = ref
        self.thresholds = thresholds or MonitorThresholds()
        self.signal = signal
        self.n_tests = max(int(n_tests), 1)
        self.tests: tuple[HistogramTest, ...] = tuple(t for t in ALL_HISTOGRAM_TESTS if t in tests)

    @classmethod
    def from_distribution(
        cls,
        shares: ArrayLike,
        n: int,
        thresholds: MonitorThresholds | None = None,
        *,
        signal: str,
        n_tests: int = 1,
        tests: Sequence[HistogramTest] = ALL_HISTOGRAM_TESTS,
    ) -> HistogramDriftDetector:
        """Reference counts from shares × sample size (e.g. the manifest's class prior × n_events)."""
        return cls(np.asarray(shares, dtype=np.float64) * n, thresholds, signal=signal, n_tests=n_tests, tests=tests)

    @property
    def p_value_threshold(self) -> float:
        return st.bonferroni(self.thresholds.p_value, self.n_tests)

    def _threshold_view(self) -> dict[str, Statistic]:
        t = self.thresholds
        return {
            "psi_warn": t.psi_warn,
            "psi_page": t.psi_page,
            "js_distance": t.js_distance,
            "p_value": self.p_value_threshold,
            "p_value_family": t.p_value,
            "n_tests": self.n_tests,
            "min_events": t.min_window_events,
        }

    def detect(self, counts: ArrayLike) -> DetectionResult:
        """Compare a window histogram (same bins as the reference) with the reference."""
        cur = np.asarray(counts, dtype=np.float64)
        if cur.shape != self.reference_counts.shape:
            raise ValueError(f"{self.signal}: window has {cur.size} bins, the reference {self.reference_counts.size}")
        t = self.thresholds
        n, n_ref = float(cur.sum()), float(self.reference_counts.sum())
        empty: dict[str, Statistic] = {
            "n": int(n),
            "reference_n": n_ref,
            "psi": None,
            "js": None,
            "chi2": None,
            "dof": None,
            "p_value": None,
        }
        view = self._threshold_view()
        if n < t.min_window_events:
            return self._insufficient(empty, view, f"{int(n)} events < minimum {t.min_window_events}")
        if n_ref < t.min_window_events:
            return self._insufficient(empty, view, f"reference has {n_ref:g} events < minimum {t.min_window_events}")
        psi_value = st.psi(self.reference_counts, cur, t.psi_epsilon)
        js_value = st.js_distance(self.reference_counts, cur)
        chi = st.chi2_homogeneity(cur, self.reference_counts, t.chi2_min_expected)
        stats: dict[str, Statistic] = {
            **empty,
            "psi": psi_value,
            "js": js_value,
            "chi2": chi.statistic,
            "dof": chi.dof,
            "p_value": chi.p_value,
        }
        page_line = t.psi_page
        if t.psi_noise_z is not None:
            page_line = max(page_line, st.psi_noise_floor(cur.size, n, n_ref, t.psi_noise_z))
        warn_line, js_line = t.psi_warn, t.js_distance
        if t.warn_noise_z is not None:
            warn_floor = st.psi_noise_floor(cur.size, n, n_ref, t.warn_noise_z)
            warn_line = max(warn_line, warn_floor)
            js_line = max(js_line, st.js_noise_floor(warn_floor))
        warn_line = min(warn_line, page_line)
        stats["psi_page_effective"] = page_line
        stats["psi_warn_effective"] = warn_line
        stats["js_distance_effective"] = js_line
        reasons: list[str] = []
        severity: Severity = OK
        if "psi" in self.tests and psi_value >= page_line:
            severity = PAGE
            reasons.append(f"psi {psi_value:.4f} >= page {page_line:.4g}")
        elif "psi" in self.tests and psi_value >= warn_line:
            severity = WARN
            reasons.append(f"psi {psi_value:.4f} >= warn {warn_line:.4g}")
        if "js" in self.tests and js_value >= js_line:
            severity = worst((severity, WARN))
            reasons.append(f"js distance {js_value:.4f} >= {js_line:.4g}")
        if "chi2" in self.tests and chi.p_value < self.p_value_threshold:
            severity = worst((severity, WARN))
            reasons.append(
                f"chi-square p {chi.p_value:.3g} < {self.p_value_threshold:.3g} (Bonferroni k={self.n_tests})"
            )
        return DetectionResult(self.signal, severity, stats, view, tuple(reasons))

    def detect_window(self, window: WindowCounters) -> DetectionResult:
        return self.detect(signal_counts(window, self.signal))

    def _config_body(self) -> dict[str, Any]:
        return {
            "reference_counts": [float(x) for x in self.reference_counts],
            "n_tests": self.n_tests,
            "tests": list(self.tests),
        }

    @classmethod
    def _from_config_body(cls, body: Mapping[str, Any], thresholds: MonitorThresholds) -> HistogramDriftDetector:
        return cls(
            body["reference_counts"],
            thresholds,
            signal=str(body["signal"]),
            n_tests=int(body["n_tests"]),
            tests=cast(Sequence[HistogramTest], tuple(body["tests"])),
        )


ExpectedAccuracyMethod = Literal["mean", "histogram_midpoint"]


class ExpectedAccuracyDetector(Detector):
    """Label-free accuracy signal: the window's mean top-1 probability against the reference's.

    ``method="mean"`` uses the exact sums (``csum / n``; a trailing reference has them).
    ``method="histogram_midpoint"`` reads both sides from the confidence histogram by bin midpoints:
    the manifest baseline only has the histogram, and estimating the window the same way makes the
    binning bias (up to half a bin width) cancel instead of masquerading as a drop.
    """

    def __init__(
        self,
        reference_expected_accuracy: float,
        thresholds: MonitorThresholds | None = None,
        *,
        signal: str = SIGNAL_EXPECTED_ACCURACY,
        method: ExpectedAccuracyMethod = "mean",
    ) -> None:
        if not 0.0 <= reference_expected_accuracy <= 1.0:
            raise ValueError("reference expected accuracy must be within [0, 1]")
        if method not in ("mean", "histogram_midpoint"):
            raise ValueError(f"unknown method {method!r}")
        self.reference = float(reference_expected_accuracy)
        self.thresholds = thresholds or MonitorThresholds()
        self.signal = signal
        self.method: ExpectedAccuracyMethod = method

    @classmethod
    def from_confidence_histogram(
        cls, edges: Sequence[float], counts: ArrayLike, thresholds: MonitorThresholds | None = None
    ) -> ExpectedAccuracyDetector:
        """Reference from a baseline confidence histogram (midpoint method on both sides)."""
        return cls(st.histogram_mean(edges, counts), thresholds, method="histogram_midpoint")

    def _threshold_view(self) -> dict[str, Statistic]:
        t = self.thresholds
        return {
            "warn_drop": t.expected_accuracy_warn_drop,
            "page_drop": t.expected_accuracy_page_drop,
            "min_events": t.min_window_events,
        }

    def detect(self, expected_accuracy: float | None, events: int) -> DetectionResult:
        t = self.thresholds
        stats: dict[str, Statistic] = {
            "n": int(events),
            "expected_accuracy": None,
            "reference": self.reference,
            "drop": None,
        }
        view = self._threshold_view()
        if events < t.min_window_events or expected_accuracy is None:
            return self._insufficient(stats, view, f"{int(events)} events < minimum {t.min_window_events}")
        drop = self.reference - float(expected_accuracy)
        stats.update(expected_accuracy=float(expected_accuracy), drop=drop)
        warn_drop, page_drop = t.expected_accuracy_warn_drop, t.expected_accuracy_page_drop
        return _drop_verdict(self.signal, drop, warn_drop, page_drop, stats, view)

    def detect_window(self, window: WindowCounters) -> DetectionResult:
        if window.events <= 0:
            return self.detect(None, 0)
        if self.method == "mean":
            value = st.expected_accuracy(window.confidence_sum, window.events)
        else:
            value = st.histogram_mean(window.layout.confidence_edges, window.confidence_counts)
        return self.detect(value, window.events)

    def _config_body(self) -> dict[str, Any]:
        return {"reference_expected_accuracy": self.reference, "method": self.method}

    @classmethod
    def _from_config_body(cls, body: Mapping[str, Any], thresholds: MonitorThresholds) -> ExpectedAccuracyDetector:
        return cls(
            float(body["reference_expected_accuracy"]),
            thresholds,
            signal=str(body["signal"]),
            method=cast(ExpectedAccuracyMethod, body["method"]),
        )


class AccuracyDetector(Detector):
    """Realised accuracy on labelled events against a reference accuracy (the manifest's evaluation).

    No verdict until ``min_labelled_events`` labels (and ``min_label_coverage`` of the window's
    events) are in. The Wilson 95% interval is reported so a reader can see how noisy the estimate is.
    """

    def __init__(
        self, reference_accuracy: float, thresholds: MonitorThresholds | None = None, *, signal: str = SIGNAL_ACCURACY
    ) -> None:
        if not 0.0 <= reference_accuracy <= 1.0:
            raise ValueError("reference accuracy must be within [0, 1]")
        self.reference = float(reference_accuracy)
        self.thresholds = thresholds or MonitorThresholds()
        self.signal = signal

    def _threshold_view(self) -> dict[str, Statistic]:
        t = self.thresholds
        return {
            "warn_drop": t.accuracy_warn_drop,
            "page_drop": t.accuracy_page_drop,
            "min_labelled": t.min_labelled_events,
            "min_label_coverage": t.min_label_coverage,
        }

    def detect(self, correct: int, labelled: int, events: int | None = None) -> DetectionResult:
        """``events``: the window's classified events, for the coverage rule (skipped when None)."""
        if not 0 <= correct <= labelled:
            raise ValueError("need 0 <= correct <= labelled")
        t = self.thresholds
        coverage = (labelled / events) if events else None
        stats: dict[str, Statistic] = {
            "labelled": int(labelled),
            "label_coverage": coverage,
            "accuracy": None,
            "reference": self.reference,
            "drop": None,
            "ci_low": None,
            "ci_high": None,
        }
        view = self._threshold_view()
        if labelled < t.min_labelled_events:
            return self._insufficient(stats, view, f"{labelled} labels < minimum {t.min_labelled_events}")
        if events is not None and (coverage or 0.0) < t.min_label_coverage:
            return self._insufficient(stats, view, f"label coverage {coverage or 0.0:.3f} < {t.min_label_coverage}")
        acc = correct / labelled
        low, high = st.wilson_interval(correct, labelled)
        drop = self.reference - acc
        stats.update(accuracy=acc, drop=drop, ci_low=low, ci_high=high)
        return _drop_verdict(self.signal, drop, t.accuracy_warn_drop, t.accuracy_page_drop, stats, view)

    def detect_window(self, window: WindowCounters) -> DetectionResult:
        return self.detect(window.correct, window.labelled, window.events)

    def _config_body(self) -> dict[str, Any]:
        return {"reference_accuracy": self.reference}

    @classmethod
    def _from_config_body(cls, body: Mapping[str, Any], thresholds: MonitorThresholds) -> AccuracyDetector:
        return cls(float(body["reference_accuracy"]), thresholds, signal=str(body["signal"]))


def _drop_verdict(
    signal: str,
    drop: float,
    warn_drop: float,
    page_drop: float | None,
    stats: Mapping[str, Statistic],
    view: Mapping[str, Statistic],
) -> DetectionResult:
    """A drop *more than* the margin fires: a margin of 0.05 tolerates exactly 0.05 (0.90 → 0.85), with a
    tolerance of 1e-9 so float rounding of ``reference − value`` cannot flip a verdict at the boundary."""
    if page_drop is not None and drop > page_drop + _DROP_TOLERANCE:
        return DetectionResult(signal, PAGE, dict(stats), dict(view), (f"drop {drop:.4f} > page {page_drop}",))
    if drop > warn_drop + _DROP_TOLERANCE:
        return DetectionResult(signal, WARN, dict(stats), dict(view), (f"drop {drop:.4f} > warn {warn_drop}",))
    return DetectionResult(signal, OK, dict(stats), dict(view))
