"""Counting what the simulation saw: false alarms, detection delays, PSI, re-judging under other thresholds."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pigeonhole.drift import layout as keys
from pigeonhole.drift import statistics as st
from pigeonhole.drift.counters import WindowCounters
from pigeonhole.drift.detectors import FEATURE_SIGNAL_PREFIX, SIGNAL_CLASS_MIX, SIGNAL_CONFIDENCE
from pigeonhole.drift.report import evaluate_for_manifest
from pigeonhole.model.manifest import Manifest
from pigeonhole_tools.monitoring.harness.simulation import RunResult


def _rate(hits: int, total: int) -> float:
    return hits / total if total else float("nan")


def wilson(hits: int, total: int) -> tuple[float, float]:
    return st.wilson_interval(hits, total) if total else (float("nan"), float("nan"))


def severity_rank(severity: str) -> int:
    return {"insufficient_data": 0, "ok": 1, "warn": 2, "page": 3}[severity]


@dataclass(frozen=True)
class Verdicts:
    """Severities per run and window under one threshold setting (recorded, or re-judged offline)."""

    name: str
    overrides: Mapping[str, Any]
    per_run: Mapping[tuple[str, int], list[str]]


def recorded_verdicts(runs: Sequence[RunResult]) -> Verdicts:
    return Verdicts(
        "as deployed (run_drift)", {}, {(r.scenario, r.repeat): [w.severity for w in r.windows] for r in runs}
    )


def rejudge(
    runs: Sequence[RunResult],
    manifests: Mapping[str, Manifest],
    name: str,
    overrides: Mapping[str, Any],
    reference_windows: int,
) -> Verdicts:
    """Judge the same counters again with other thresholds (pure: ``evaluate_for_manifest``)."""
    per_run: dict[tuple[str, int], list[str]] = {}
    for run in runs:
        manifest = manifests[run.model]
        layout = keys.counter_layout(manifest)
        out: list[str] = []
        for i, w in enumerate(run.windows):
            previous = [x.counters for x in run.windows[max(0, i - reference_windows) : i]]
            reference = WindowCounters.merge_all(layout, previous)
            report = evaluate_for_manifest(
                w.counters, manifest, reference if reference.events > 0 else None, **dict(overrides)
            )
            out.append(report.severity)
        per_run[(run.scenario, run.repeat)] = out
    return Verdicts(name, dict(overrides), per_run)


@dataclass(frozen=True)
class FalseAlarms:
    windows: int
    page: int
    warn_or_page: int
    insufficient: int

    @property
    def page_rate(self) -> float:
        return _rate(self.page, self.windows)

    @property
    def warn_rate(self) -> float:
        return _rate(self.warn_or_page, self.windows)


def false_alarms(verdicts: Verdicts, runs: Sequence[RunResult], scenario: str = "stationary") -> FalseAlarms:
    severities = [s for r in runs if r.scenario == scenario for s in verdicts.per_run[(r.scenario, r.repeat)]]
    return FalseAlarms(
        windows=len(severities),
        page=sum(s == "page" for s in severities),
        warn_or_page=sum(s in ("warn", "page") for s in severities),
        insufficient=sum(s == "insufficient_data" for s in severities),
    )


@dataclass(frozen=True)
class Detection:
    scenario: str
    delays: list[int | None]  # per repeat: windows from the shift start to the first page (1 = the first)
    pre_shift_pages: int  # pages in the stationary warm-up windows of these runs
    pre_shift_windows: int
    warn_delays: list[int | None]

    @property
    def within(self) -> Callable[[int], float]:
        def share(k: int) -> float:
            return _rate(sum(d is not None and d <= k for d in self.delays), len(self.delays))

        return share


def detection(verdicts: Verdicts, runs: Sequence[RunResult], scenario: str) -> Detection:
    delays: list[int | None] = []
    warn_delays: list[int | None] = []
    pre_pages = pre_windows = 0
    for run in (r for r in runs if r.scenario == scenario):
        severities = verdicts.per_run[(run.scenario, run.repeat)]
        k = run.shift_at or 0
        pre_pages += sum(s == "page" for s in severities[:k])
        pre_windows += k
        after = severities[k:]
        delays.append(next((i + 1 for i, s in enumerate(after) if s == "page"), None))
        warn_delays.append(next((i + 1 for i, s in enumerate(after) if s in ("warn", "page")), None))
    return Detection(scenario, delays, pre_pages, pre_windows, warn_delays)


def shift_psi(runs: Sequence[RunResult], manifests: Mapping[str, Manifest], scenario: str) -> dict[str, float]:
    """Population PSI of the shift against the baseline, per signal: all shifted windows of all repeats
    merged (thousands of events, so sampling noise adds only ~(bins − 1) / n)."""
    chosen = [r for r in runs if r.scenario == scenario]
    if not chosen:
        return {}
    manifest = manifests[chosen[0].model]
    layout = keys.counter_layout(manifest)
    merged = WindowCounters.merge_all(layout, (w.counters for r in chosen for w in r.windows if w.shifted))
    if scenario == "stationary" or merged.events == 0:
        merged = WindowCounters.merge_all(layout, (w.counters for r in chosen for w in r.windows))
    return population_psi(merged, manifest)


def population_psi(window: WindowCounters, manifest: Manifest) -> dict[str, float]:
    baseline = manifest.drift_baseline
    eps = st.PSI_EPSILON
    out = {
        SIGNAL_CLASS_MIX: st.psi(np.asarray(baseline.class_prior) * baseline.n_events, window.class_counts, eps),
        SIGNAL_CONFIDENCE: st.psi(baseline.confidence.counts, window.confidence_counts, eps),
    }
    for name, hist in sorted(baseline.features.items()):
        out[f"{FEATURE_SIGNAL_PREFIX}{name}"] = st.psi(hist.counts, window.feature_counts[name], eps)
    return out


def mean_window_psi(runs: Sequence[RunResult], scenario: str, shifted: bool = True) -> dict[str, float]:
    """Mean per-window PSI per signal (what the detector saw) over the shifted (or all) windows."""
    values: dict[str, list[float]] = {}
    for r in runs:
        if r.scenario != scenario:
            continue
        for w in r.windows:
            if shifted and not w.shifted and r.shift_at is not None:
                continue
            for name, (_, psi) in w.signals.items():
                if psi is not None:
                    values.setdefault(name, []).append(psi)
    return {k: float(np.mean(v)) for k, v in values.items()}


def trigger_counts(runs: Sequence[RunResult], scenario: str = "stationary") -> dict[str, dict[str, int]]:
    """Which signals raised the verdicts of stationary windows (baseline page/warn, reference warn)."""
    page: dict[str, int] = {}
    warn: dict[str, int] = {}
    reference: dict[str, int] = {}
    for r in runs:
        if r.scenario != scenario:
            continue
        for w in r.windows:
            for name, (severity, _) in w.signals.items():
                if severity == "page":
                    page[name] = page.get(name, 0) + 1
                elif severity == "warn":
                    warn[name] = warn.get(name, 0) + 1
            for name, severity in w.reference_signals.items():
                if severity in ("warn", "page"):
                    reference[name] = reference.get(name, 0) + 1
    return {"baseline_page": page, "baseline_warn": warn, "reference_warn": reference}


def merged_stationary(
    runs: Sequence[RunResult], manifest: Manifest, factor: int, overrides: Mapping[str, Any], reference_windows: int
) -> FalseAlarms:
    """False alarms if windows were ``factor`` times longer: consecutive stationary windows merged (the
    counters are mergeable), each judged against the previous merged windows as its trailing reference."""
    layout = keys.counter_layout(manifest)
    severities: list[str] = []
    for r in (r for r in runs if r.scenario == "stationary"):
        merged = [
            WindowCounters.merge_all(layout, (w.counters for w in r.windows[i : i + factor]))
            for i in range(0, len(r.windows) - factor + 1, factor)
        ]
        for i, window in enumerate(merged):
            reference = WindowCounters.merge_all(layout, merged[max(0, i - reference_windows) : i])
            report = evaluate_for_manifest(
                window, manifest, reference if reference.events > 0 else None, **dict(overrides)
            )
            severities.append(report.severity)
    return FalseAlarms(
        windows=len(severities),
        page=sum(s == "page" for s in severities),
        warn_or_page=sum(s in ("warn", "page") for s in severities),
        insufficient=sum(s == "insufficient_data" for s in severities),
    )


# -- a candidate detector for concept shift (not in the deployed code) ---------------------------


def precision_alarm(
    window: WindowCounters, manifest: Manifest, alpha: float = 0.01, prior_weight: float = 20.0
) -> bool:
    """Candidate: page when some predicted class's labelled precision is implausibly low.

    One-sided exact binomial test per predicted class p: P(X <= correct_p | n_p, pi_p), with pi_p the
    class's evaluated int8 precision shrunk towards the overall accuracy (``prior_weight`` pseudo-events)
    and capped at 0.98 so a class that was perfect on 40 test rows does not page on its first miss;
    Bonferroni over the classes with labels. A flipped intent drives its precision to ~0 in a window.
    """
    metrics = manifest.metrics.get("int8")
    if not isinstance(metrics, Mapping):
        return False
    per_class = metrics.get("per_class")
    overall = metrics.get("accuracy")
    if not isinstance(per_class, Mapping) or not isinstance(overall, int | float):
        return False
    labelled = window.confusion.sum(axis=1)
    tested = [p for p in range(window.layout.n_classes) if labelled[p] > 0]
    if not tested:
        return False
    level = alpha / len(tested)
    for p in tested:
        info = per_class.get(manifest.classes[p])
        if not isinstance(info, Mapping):
            continue
        support = float(info.get("support", 0) or 0)
        precision = float(info.get("precision", overall) or 0.0)
        pi = min((support * precision + prior_weight * float(overall)) / (support + prior_weight), 0.98)
        n, k = int(labelled[p]), int(window.confusion[p, p])
        if _binom_cdf(k, n, pi) < level:
            return True
    return False


def _binom_cdf(k: int, n: int, p: float) -> float:
    return float(sum(math.comb(n, i) * p**i * (1.0 - p) ** (n - i) for i in range(k + 1)))


def candidate_verdicts(runs: Sequence[RunResult], manifests: Mapping[str, Manifest], base: Verdicts) -> Verdicts:
    """The deployed verdicts, raised to page where the per-class precision candidate fires."""
    per_run: dict[tuple[str, int], list[str]] = {}
    for run in runs:
        manifest = manifests[run.model]
        recorded = base.per_run[(run.scenario, run.repeat)]
        per_run[(run.scenario, run.repeat)] = [
            "page" if precision_alarm(w.counters, manifest) else s for w, s in zip(run.windows, recorded, strict=True)
        ]
    return Verdicts(f"{base.name} + per-class precision test", base.overrides, per_run)
