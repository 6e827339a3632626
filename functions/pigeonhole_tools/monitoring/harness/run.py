"""The whole measurement: pools, models, every scenario, the sweep, and the results as plain JSON."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pigeonhole.model.manifest import Manifest
from pigeonhole_tools.monitoring.harness.analysis import (
    FalseAlarms,
    Verdicts,
    candidate_verdicts,
    detection,
    false_alarms,
    mean_window_psi,
    merged_stationary,
    recorded_verdicts,
    rejudge,
    shift_psi,
    trigger_counts,
    wilson,
)
from pigeonhole_tools.monitoring.harness.config import HarnessConfig
from pigeonhole_tools.monitoring.harness.models import LoadedModel, heldout_model, load_model
from pigeonhole_tools.monitoring.harness.monte_carlo import counters_monte_carlo
from pigeonhole_tools.monitoring.harness.pools import build_pools, classify_pool
from pigeonhole_tools.monitoring.harness.scenarios import Scenario, scenarios
from pigeonhole_tools.monitoring.harness.simulation import RunResult, Simulator

SWEEPS: tuple[tuple[str, Mapping[str, Any]], ...] = (
    ("fixed 0.25 line (psi_noise_z null)", {"psi_noise_z": None}),
    ("fixed line, psi_page 0.30", {"psi_noise_z": None, "psi_page": 0.30}),
    ("fixed line, psi_page 0.35", {"psi_noise_z": None, "psi_page": 0.35}),
    ("fixed line, psi_epsilon 1e-3", {"psi_noise_z": None, "psi_epsilon": 1e-3}),
    ("noise floor z=3", {"psi_noise_z": 3.0}),
    ("psi_warn 0.2, js 0.2", {"psi_warn": 0.2, "js_distance": 0.2}),
)


@dataclass
class HarnessResult:
    config: HarnessConfig
    runs: list[RunResult]
    scenarios: list[Scenario]
    manifests: dict[str, Manifest]
    model_dirs: dict[str, str]
    seconds: float
    classify_seconds: float
    sweeps: list[Verdicts] = field(default_factory=list)
    monte_carlo: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Every number the report shows, as plain JSON."""
        recorded = recorded_verdicts(self.runs)
        all_verdicts = [recorded, *self.sweeps]
        out: dict[str, Any] = {
            "config": self.config.describe(),
            "models": {
                k: {"dir": self.model_dirs[k], "name": m.name, "version": m.version, "int8": _int8_summary(m)}
                for k, m in self.manifests.items()
            },
            "seconds": round(self.seconds, 1),
            "classify_seconds": round(self.classify_seconds, 1),
            "events": sum(r.events for r in self.runs),
            "windows": sum(len(r.windows) for r in self.runs),
            "labels_sent": sum(r.labels_sent for r in self.runs),
            "label_statuses": _sum_dicts(r.label_statuses for r in self.runs),
            "settings": [],
        }
        for v in all_verdicts:
            fa = false_alarms(v, self.runs)
            entry: dict[str, Any] = {
                "name": v.name,
                "overrides": dict(v.overrides),
                "stationary": {
                    "windows": fa.windows,
                    "page": fa.page,
                    "page_rate": fa.page_rate,
                    "page_rate_ci95": wilson(fa.page, fa.windows),
                    "warn_or_page": fa.warn_or_page,
                    "warn_rate": fa.warn_rate,
                    "warn_rate_ci95": wilson(fa.warn_or_page, fa.windows),
                },
                "shifts": {},
            }
            for s in self.scenarios:
                if s.after is None:
                    continue
                d = detection(v, self.runs, s.key)
                entry["shifts"][s.key] = {
                    "delays": d.delays,
                    "warn_delays": d.warn_delays,
                    "paged_within_1": d.within(1),
                    "paged_within_2": d.within(2),
                    "pre_shift_pages": d.pre_shift_pages,
                    "pre_shift_windows": d.pre_shift_windows,
                }
            out["settings"].append(entry)
        manifest = self.manifests["default"]
        out["merged_windows"] = {
            str(f * self.config.events_per_window): _fa_dict(
                merged_stationary(
                    self.runs, manifest, f, self.config.threshold_overrides, self.config.reference_windows
                )
            )
            for f in (2, 4)
            if any(r.scenario == "stationary" for r in self.runs)
        }
        out["scenarios"] = [
            {
                "key": s.key,
                "kind": s.kind,
                "title": s.title,
                "model": s.model,
                "listed": s.listed,
                "population_psi": shift_psi(self.runs, self.manifests, s.key),
                "mean_window_psi": mean_window_psi(self.runs, s.key),
                "runs": sum(r.scenario == s.key for r in self.runs),
            }
            for s in self.scenarios
        ]
        out["stationary_triggers"] = trigger_counts(self.runs)
        out["monte_carlo"] = self.monte_carlo
        return _json_safe(out)


def _fa_dict(fa: FalseAlarms) -> dict[str, Any]:
    return {
        "windows": fa.windows,
        "page": fa.page,
        "page_rate": fa.page_rate,
        "warn_or_page": fa.warn_or_page,
        "warn_rate": fa.warn_rate,
    }


def _int8_summary(m: Manifest) -> dict[str, Any]:
    int8 = m.metrics.get("int8")
    if not isinstance(int8, Mapping):
        return {}
    return {k: int8.get(k) for k in ("accuracy", "macro_f1", "mean_confidence", "n_events")}


def _sum_dicts(items: Iterator[dict[str, int]] | Sequence[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for d in items:
        for k, v in d.items():
            total[k] = total.get(k, 0) + v
    return total


def _json_safe(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float):
        return None if not math.isfinite(value) else round(value, 6)
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    return value


def run_harness(cfg: HarnessConfig, progress: Callable[[str], None] = lambda _: None) -> HarnessResult:
    """Build the pools, classify them once per model, run every scenario, and re-judge for the sweep."""
    started = time.perf_counter()
    chosen = scenarios(cfg)
    pools = build_pools(cfg.data_dir, cfg.seed, cfg.heldout_intents)
    all_intents = sorted({lab for lab in pools["test"].labels if lab is not None})
    models: dict[str, LoadedModel] = {"default": load_model("default", cfg.model_dir, all_intents)}
    if any(s.model == "heldout" for s in chosen):
        heldout_dir = cfg.heldout_model_dir or heldout_model(cfg, progress)
        models["heldout"] = load_model("heldout", heldout_dir, all_intents)
    t_classify = time.perf_counter()
    needed = {"test"} | {c.pool for s in chosen for c in (s.after or ())}
    done: dict[Path, str] = {}  # a model directory classified once, whatever its role
    for key, model in models.items():
        same = done.get(model.model_dir.resolve())
        for name in sorted(needed):
            pool = pools[name]
            pool.probabilities[key] = pool.probabilities[same] if same else classify_pool(model.runtime, pool.texts)
        done.setdefault(model.model_dir.resolve(), key)
        progress(f"classified {sum(len(pools[n].texts) for n in needed)} pool texts with the {key} model")
    classify_seconds = time.perf_counter() - t_classify
    simulator = Simulator(cfg, pools, models, progress)
    runs: list[RunResult] = []
    for s in chosen:
        for repeat in range(1 if s.after is None else cfg.repeats):
            run = simulator.run(s, repeat)
            runs.append(run)
            severities = [w.severity for w in run.windows]
            progress(
                f"{s.key} #{repeat}: {len(run.windows)} windows, {run.events} events in {run.seconds:.1f} s; "
                f"page {severities.count('page')}, warn {severities.count('warn')}"
            )
    manifests = {k: m.runtime.manifest for k, m in models.items()}
    result = HarnessResult(
        config=cfg,
        runs=runs,
        scenarios=chosen,
        manifests=manifests,
        model_dirs={k: str(m.model_dir) for k, m in models.items()},
        seconds=0.0,
        classify_seconds=classify_seconds,
    )
    base = rejudge(runs, manifests, "as deployed, re-judged offline", cfg.threshold_overrides, cfg.reference_windows)
    mismatches = sum(
        a != b
        for key, severities in recorded_verdicts(runs).per_run.items()
        for a, b in zip(severities, base.per_run[key], strict=True)
    )
    if mismatches:
        raise RuntimeError(f"offline re-judging disagrees with run_drift on {mismatches} windows: sweep invalid")
    result.sweeps = [
        rejudge(runs, manifests, name, {**cfg.threshold_overrides, **o}, cfg.reference_windows) for name, o in SWEEPS
    ]
    result.sweeps.append(candidate_verdicts(runs, manifests, recorded_verdicts(runs)))
    if cfg.monte_carlo_windows:
        t_mc = time.perf_counter()
        result.monte_carlo = counters_monte_carlo(
            pools["test"],
            models["default"],
            cfg.monte_carlo_windows,
            cfg.events_per_window,
            cfg.seed,
            reference_windows=cfg.reference_windows,
            pools={name: pools[name] for name in needed},
            shifts=chosen,
        )
        progress(f"counters-only Monte Carlo: {cfg.monte_carlo_windows} windows in {time.perf_counter() - t_mc:.0f} s")
    result.seconds = time.perf_counter() - started
    return result
