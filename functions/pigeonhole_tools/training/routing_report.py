"""The routing numbers of a package for `pigeonhole model verify`: calibration, the unknown operating
point and the per-class thresholds, read from the manifest only (what the runtime will apply, and what
the build measured when it chose it).

Why read leniently: the blocks are optional (older packages have none) and the build's measurement
records are free-form dicts that grow; a missing number prints as "–" instead of failing the verify.
"""

from __future__ import annotations

from collections.abc import Iterator

from rich.table import Table

from pigeonhole.model.manifest import Manifest

_DASH = "–"
_MAX_LEAVES = 24  # a free-form record prints at most this many rows


def _get(tree: object, *path: str) -> object:
    for key in path:
        if not isinstance(tree, dict) or key not in tree:
            return None
        tree = tree[key]
    return tree


def _fmt(value: object, spec: str = ".4f") -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return format(value, spec) if isinstance(value, float) else str(value)
    if isinstance(value, str):
        return value if len(value) <= 60 else value[:57] + "…"
    return _DASH


def _leaves(tree: object, prefix: str = "") -> Iterator[tuple[str, object]]:
    """Scalar leaves of a nested record as (dotted.key, value), lists of scalars joined."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _leaves(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(tree, list):
        if all(isinstance(v, str | int | float) for v in tree) and len(tree) <= 12:
            yield prefix, ", ".join(_fmt(v) for v in tree)
    elif tree is not None:
        yield prefix, tree


def calibration_record(manifest: Manifest) -> object:
    """The build's calibration record: a top-level manifest block if the schema has one, else metrics."""
    block = getattr(manifest, "calibration", None)
    if block is not None:
        return block.model_dump(mode="json") if hasattr(block, "model_dump") else block
    return manifest.metrics.get("calibration")


def calibration_table(manifest: Manifest) -> Table:
    record = calibration_record(manifest)
    method, temperature = _get(record, "method"), _get(record, "temperature")
    title = f"Calibration: {_fmt(method)}" + (f", T = {_fmt(temperature)}" if temperature is not None else "")
    table = Table(title=title, show_header=True)
    table.add_column("eval set")
    for column in ("fp32 before", "fp32 after", "int8 before", "int8 after"):
        table.add_column(column, justify="right")
    if record is None:
        table.add_row("not recorded (a package built before calibration)", "", "", "", "")
        return table
    reason = _get(record, "guard", "reason")
    if isinstance(reason, str):
        table.caption = f"guard: {reason}"
    for label, key in (("ECE (15 bins)", "ece_15"), ("Brier", "brier"), ("NLL", "nll"), ("accuracy", "accuracy")):
        table.add_row(
            label,
            *(_fmt(_get(record, "eval", p, when, key)) for p in ("fp32", "int8") for when in ("before", "after")),
        )
    return table


def unknown_table(manifest: Manifest) -> Table:
    spec = manifest.unknown
    table = Table(title="Unknown route (unknown score >= threshold -> review)", show_header=True)
    table.add_column("measure")
    table.add_column("value", justify="right")
    if spec is None:
        reason = _get(manifest.metrics, "unknown", "reason")
        table.add_row("unknown score", "none in this package" + (f" ({_fmt(reason)})" if reason else ""))
        return table
    table.add_row("threshold", _fmt(spec.threshold))
    table.add_row("bias", _fmt(spec.bias))
    for name, weight in zip(spec.features, spec.weights, strict=True):
        table.add_row(f"weight {name}", _fmt(weight))
    rows = [(f"target {k}", v) for k, v in _leaves(spec.target)]
    rows += [(f"measured {k}", v) for k, v in _leaves(spec.evaluation)]
    rows += [(f"eval {k}", v) for k, v in _leaves(_get(manifest.metrics, "unknown", "eval"))]
    for key, value in rows[:_MAX_LEAVES]:
        table.add_row(key, _fmt(value))
    table.add_row("drift baseline unknown rate", _fmt(manifest.drift_baseline.unknown_rate))
    return table


def per_class_table(manifest: Manifest) -> Table:
    """Thresholds and their measured coverage: from ``thresholds.selection`` (the build's summary), else
    from the fuller ``metrics.per_class_thresholds`` record."""
    thresholds = manifest.thresholds
    records = [thresholds.selection, manifest.metrics.get("per_class_thresholds")]

    def first(*path: str) -> object:
        return next((v for v in (_get(r, *path) for r in records) if v is not None), None)

    target = _fmt(first("target_auto_precision"))
    table = Table(title=f"Thresholds (review below; per-class target auto-routed precision {target})", show_header=True)
    table.add_column("label")
    table.add_column("threshold", justify="right")
    table.add_column("coverage (eval)", justify="right")
    table.add_column("auto accuracy (eval)", justify="right")
    overall = first("eval", "with_per_class") or _get(manifest.metrics, "review_threshold", "eval")
    table.add_row(
        "every other class",
        _fmt(thresholds.review_confidence),
        _fmt(_get(overall, "coverage")),
        _fmt(_get(overall, "auto_accuracy")),
    )
    for label, value in sorted(thresholds.per_class.items()):
        own = first("classes", label, "eval", "own")
        coverage = first("coverage", label)
        table.add_row(
            label,
            _fmt(value),
            _fmt(coverage if coverage is not None else _get(own, "coverage")),
            _fmt(_get(own, "auto_accuracy")),
        )
    if not thresholds.per_class:
        table.add_row("(no per-class thresholds)", "", "", "")
    return table


def routing_tables(manifest: Manifest) -> list[Table]:
    """The three tables `pigeonhole model verify` prints after the headline numbers."""
    return [calibration_table(manifest), unknown_table(manifest), per_class_table(manifest)]
