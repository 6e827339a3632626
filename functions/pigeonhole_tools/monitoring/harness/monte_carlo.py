"""Many more windows, counters only: tight stationary warn and page rates, and first-window verdicts of
the shifts, without DynamoDB."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pigeonhole.drift import layout as keys
from pigeonhole.drift.counters import WindowCounters
from pigeonhole.drift.report import evaluate_for_manifest
from pigeonhole_tools.monitoring.harness.analysis import _rate, wilson
from pigeonhole_tools.monitoring.harness.models import LoadedModel
from pigeonhole_tools.monitoring.harness.pools import Pool
from pigeonhole_tools.monitoring.harness.scenarios import Component, Scenario

MONTE_CARLO_SETTINGS: tuple[tuple[str, Mapping[str, Any]], ...] = (
    ("as deployed (page z=4, warn z=3.5)", {}),
    ("warn noise floor z=3", {"warn_noise_z": 3.0}),
    ("fixed warn lines (warn_noise_z null)", {"warn_noise_z": None}),
)
SHIFT_WINDOWS_PER_SCENARIO = 200


class _Sampler:
    """Window counters straight from a model's cached pool predictions (as the recorder counts them)."""

    def __init__(self, pools: Mapping[str, Pool], model: LoadedModel) -> None:
        from pigeonhole.model.features import input_features, normalize_batch

        self.model = model
        self.manifest = model.runtime.manifest
        self.layout = keys.counter_layout(self.manifest)
        self._columns: dict[str, dict[str, np.ndarray]] = {}
        for name, pool in pools.items():
            if model.key not in pool.probabilities:
                continue
            probs = pool.probabilities[model.key]
            conf = np.round(probs.max(axis=1).astype(np.float64), 6)
            cols = {
                "pred": probs.argmax(axis=1),
                "conf": conf,
                "review": conf < self.manifest.thresholds.review_confidence,
            }
            feats = input_features(normalize_batch(pool.texts), model.runtime.vocabulary)
            cols.update({f"f:{k}": np.asarray(v) for k, v in feats.items()})
            self._columns[name] = cols
        self.pools = pools

    def window(self, rng: np.random.Generator, n: int, mixture: Sequence[Component]) -> WindowCounters:
        weights = np.asarray([c.weight for c in mixture], dtype=np.float64)
        counts = rng.multinomial(n, weights / weights.sum())
        parts: dict[str, list[np.ndarray]] = {}
        for component, k in zip(mixture, counts, strict=True):
            rows = self.pools[component.pool].indices(component.intents, self.model.unknown_intents)
            idx = rows[rng.integers(rows.size, size=int(k))]
            for col, values in self._columns[component.pool].items():
                parts.setdefault(col, []).append(values[idx])
        cat = {col: np.concatenate(v) for col, v in parts.items()}
        features = {col[2:]: v for col, v in cat.items() if col.startswith("f:")}
        return WindowCounters.from_batch(self.layout, cat["pred"], cat["conf"], features, review=cat["review"])


def counters_monte_carlo(
    pool: Pool,
    model: LoadedModel,
    windows: int,
    events: int,
    seed: int,
    *,
    reference_windows: int = 12,
    pools: Mapping[str, Pool] | None = None,
    shifts: Sequence[Scenario] = (),
) -> dict[str, dict[str, Any]]:
    """Warn and page rates of stationary windows built from cached predictions, without DynamoDB.

    Each window samples ``events`` rows of the pool (with replacement), is counted with the recorder's
    own ``WindowCounters.from_batch`` (class, confidence as routed, input features) and judged by
    ``evaluate_for_manifest`` against the baseline and, as the drift run does, against a trailing
    reference merged from the previous ``reference_windows`` windows. No labels (the accuracy signals
    stay silent). ``shifts`` (scenarios of this model) add, per setting, the share of first shifted
    windows that paged and warned, each judged against a reference of stationary windows.
    """
    sampler = _Sampler({"test": pool, **(pools or {})}, model)
    manifest = sampler.manifest
    rng = np.random.default_rng([seed, windows, events])
    settings = {name: dict(overrides) for name, overrides in MONTE_CARLO_SETTINGS}
    pages = dict.fromkeys(settings, 0)
    warns = dict.fromkeys(settings, 0)
    judged = 0
    stationary = (Component("test", 1.0),)
    trailing: deque[WindowCounters] = deque(maxlen=reference_windows)
    for _ in range(windows + reference_windows):
        window = sampler.window(rng, events, stationary)
        if len(trailing) == reference_windows or reference_windows == 0:
            reference = WindowCounters.merge_all(sampler.layout, trailing) if reference_windows else None
            judged += 1
            for name, overrides in settings.items():
                severity = evaluate_for_manifest(window, manifest, reference, **overrides).severity
                pages[name] += severity == "page"
                warns[name] += severity in ("warn", "page")
        trailing.append(window)
    out: dict[str, dict[str, Any]] = {
        name: {
            "windows": judged,
            "page": pages[name],
            "page_rate": _rate(pages[name], judged),
            "page_rate_ci95": wilson(pages[name], judged),
            "warn_or_page": warns[name],
            "warn_rate": _rate(warns[name], judged),
            "warn_rate_ci95": wilson(warns[name], judged),
            "shifts": {},
        }
        for name in settings
    }
    for scenario in shifts:
        if scenario.after is None or scenario.model != model.key or scenario.kind == "concept":
            # concept shifts change only labels, which this Monte Carlo does not simulate
            continue
        hits = {name: [0, 0] for name in settings}
        for _ in range(SHIFT_WINDOWS_PER_SCENARIO):
            reference = WindowCounters.merge_all(
                sampler.layout, [sampler.window(rng, events, stationary) for _ in range(reference_windows)]
            )
            window = sampler.window(rng, events, scenario.after)
            for name, overrides in settings.items():
                severity = evaluate_for_manifest(window, manifest, reference, **overrides).severity
                hits[name][0] += severity == "page"
                hits[name][1] += severity in ("warn", "page")
        for name, (paged, warned) in hits.items():
            out[name]["shifts"][scenario.key] = {
                "windows": SHIFT_WINDOWS_PER_SCENARIO,
                "first_window_page_rate": _rate(paged, SHIFT_WINDOWS_PER_SCENARIO),
                "first_window_warn_rate": _rate(warned, SHIFT_WINDOWS_PER_SCENARIO),
            }
    return out
