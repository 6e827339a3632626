"""The build's golden set: stratified held-out events with their TRUE labels, scored by the staged package.

Kept apart from build.py so a later change to the build (calibration, another recipe) merges without
touching it: the build calls ``add_golden`` once on the staged package, and ``pigeonhole model golden``
calls the same function to add a golden set to an existing package without retraining.

The events come from the evaluation data (never from training rows), ``per_class`` of each class, drawn
with a seeded generator. ``predicted`` is what the staged package itself answers, replayed through the
runtime path in runs of ``batch`` (int8 dynamic quantization makes a label depend slightly on its run),
so the pre-traffic hook reproduces it exactly unless the deployed runtime or package differs.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pigeonhole.constants import GOLDEN_FILE
from pigeonhole.model.golden import GoldenEvent, GoldenSet, evaluate_golden, runtime_classifier
from pigeonhole.model.manifest import GoldenSpec, Manifest, load_manifest
from pigeonhole_tools.training.errors import BuildRefusedError

GOLDEN_PER_CLASS = 4  # 77 classes -> 308 events: "a few hundred", every class present
GOLDEN_BATCH = 10  # the classifier's batch size, and the build's scoring runs
# The manifest's bar: the build's own accuracy on the set minus this margin (a 308-event estimate of a
# ~92 % accuracy has a standard error of ~1.5 points; 5 points is over three of them).
GOLDEN_ACCURACY_MARGIN = 0.05
# Labels the deployed runtime must reproduce; int8 labels flip for ~1 event in 1,500 across batchings.
GOLDEN_MIN_AGREEMENT = 0.98


def select_golden(labels: Sequence[str], classes: Sequence[str], per_class: int, seed: int) -> list[int]:
    """Indices of ``per_class`` rows of every class (all of a class's rows if it has fewer), in row order."""
    rng = np.random.default_rng(seed)
    by_class: dict[str, list[int]] = {c: [] for c in classes}
    for i, label in enumerate(labels):
        if label in by_class:
            by_class[label].append(i)
    chosen: list[int] = []
    for cls in classes:
        rows = by_class[cls]
        take = min(per_class, len(rows))
        if take:
            chosen.extend(int(i) for i in rng.choice(rows, size=take, replace=False))
    return sorted(chosen)


def add_golden(
    directory: Path,
    texts: Sequence[str],
    labels: Sequence[str],
    *,
    source: str,
    per_class: int = GOLDEN_PER_CLASS,
    seed: int = 0,
    margin: float = GOLDEN_ACCURACY_MARGIN,
    min_agreement: float = GOLDEN_MIN_AGREEMENT,
) -> Manifest:
    """Write ``golden.jsonl`` into a package folder and record it in the manifest (rewritten in place).

    Refuses a set that misses a class or that the package's own replay does not pass: a build must never
    ship a golden set its own model fails.
    """
    from pigeonhole.model.runtime import ModelRuntime
    from pigeonhole_tools.training.package import write_manifest

    try:
        runtime = ModelRuntime.load(directory, threads=1)
    except Exception as exc:  # any failure to load means the package is unusable
        raise BuildRefusedError(f"the written package does not load with ModelRuntime.load: {exc}") from exc
    manifest = runtime.manifest
    if len(manifest.input.fields) != 1:
        raise BuildRefusedError("a golden set is built for single-field models only (the eval data has one text)")
    field = manifest.input.fields[0].name
    rows = select_golden(labels, manifest.classes, per_class, seed)
    missing = set(manifest.classes) - {labels[i] for i in rows}
    if missing:
        raise BuildRefusedError(f"the evaluation data has no row of {len(missing)} class(es) for the golden set")
    classify = runtime_classifier(runtime)
    chosen = [{field: texts[i]} for i in rows]
    predicted: list[str] = []
    for start in range(0, len(chosen), GOLDEN_BATCH):
        predicted.extend(classify(chosen[start : start + GOLDEN_BATCH]))
    events = tuple(
        GoldenEvent(id=f"golden-{n:04d}", fields=f, label=labels[i], predicted=p)
        for n, (i, f, p) in enumerate(zip(rows, chosen, predicted, strict=True))
    )
    data = "".join(e.to_json() + "\n" for e in events).encode("utf-8")
    (directory / GOLDEN_FILE).write_bytes(data)
    accuracy = sum(e.label == e.predicted for e in events) / len(events)
    spec = GoldenSpec(
        file=GOLDEN_FILE,
        sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        n_events=len(events),
        n_classes=len({e.label for e in events}),
        source=source,
        accuracy_int8=accuracy,
        min_accuracy=max(0.0, math.floor((accuracy - margin) * 1000) / 1000),
        min_agreement=min_agreement,
        scored_in_runs_of=GOLDEN_BATCH,
    )
    verdict = evaluate_golden(GoldenSet(spec=spec, events=events), classify)
    if not verdict.passed:
        raise BuildRefusedError(f"the package fails its own golden set: {'; '.join(verdict.reasons)}")
    manifest = manifest.model_copy(update={"golden": spec})
    write_manifest(manifest, directory)
    load_manifest(directory)  # the rewritten manifest validates
    return manifest
