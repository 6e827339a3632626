"""Many more stationary windows, counters only: a tighter page false-alarm estimate without DynamoDB."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from pigeonhole.drift import layout as keys
from pigeonhole.drift.counters import WindowCounters
from pigeonhole.drift.report import evaluate_for_manifest
from pigeonhole_tools.monitoring.harness.analysis import _rate, wilson
from pigeonhole_tools.monitoring.harness.models import LoadedModel
from pigeonhole_tools.monitoring.harness.pools import Pool

MONTE_CARLO_SETTINGS: tuple[tuple[str, Mapping[str, Any]], ...] = (
    ("as deployed (noise floor z=4)", {}),
    ("fixed 0.25 line (psi_noise_z null)", {"psi_noise_z": None}),
    ("fixed line, psi_page 0.30", {"psi_noise_z": None, "psi_page": 0.30}),
    ("noise floor z=3", {"psi_noise_z": 3.0}),
)


def counters_monte_carlo(
    pool: Pool, model: LoadedModel, windows: int, events: int, seed: int
) -> dict[str, dict[str, Any]]:
    """Page rates of stationary windows built straight from cached predictions, without DynamoDB.

    Each window samples ``events`` rows of the pool (with replacement), counts them with the recorder's
    own ``WindowCounters.from_batch`` (class, confidence as routed, input features) and is judged by
    ``evaluate_for_manifest`` against the baseline only: no labels and no trailing reference, which can
    only warn. So this measures page false alarms of the label-free signals (every stationary page of
    the full run came from them) on thousands of windows, where 200 windows give a wide interval.
    """
    from pigeonhole.model.features import input_features, normalize_batch

    manifest = model.runtime.manifest
    layout = keys.counter_layout(manifest)
    rows = pool.indices(None, model.unknown_intents)
    probs = pool.probabilities[model.key][rows]
    pred = probs.argmax(axis=1)
    conf = np.round(probs.max(axis=1).astype(np.float64), 6)
    review = conf < manifest.thresholds.review_confidence
    features = input_features(normalize_batch([pool.texts[i] for i in rows]), model.runtime.vocabulary)
    rng = np.random.default_rng([seed, windows, events])
    settings = {name: dict(overrides) for name, overrides in MONTE_CARLO_SETTINGS}
    pages = dict.fromkeys(settings, 0)
    for _ in range(windows):
        idx = rng.integers(rows.size, size=events)
        window = WindowCounters.from_batch(
            layout, pred[idx], conf[idx], {k: v[idx] for k, v in features.items()}, review=review[idx]
        )
        for name, overrides in settings.items():
            pages[name] += evaluate_for_manifest(window, manifest, **overrides).severity == "page"
    return {
        name: {
            "windows": windows,
            "page": hits,
            "page_rate": _rate(hits, windows),
            "page_rate_ci95": wilson(hits, windows),
        }
        for name, hits in pages.items()
    }
