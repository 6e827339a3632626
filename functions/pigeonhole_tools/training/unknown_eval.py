"""`pigeonhole model evaluate-unknown`: the unknown route measured on intents no model ever saw.

For each seed, a fixed number of intents is removed from the training and eval data; the real build
(`run_build`, the same one `make model` runs) makes a package from the remaining intents; the package is
loaded as the runtime loads it and scores the eval rows of the known intents and of the removed ones.
Reported per seed and averaged: the trade-off curves (held-out recall routed away vs known-intent
accuracy, where an event of a known intent is right only if auto-routed with the right label) for the
unknown score alone and for a confidence threshold alone (the published baselines' method), and the
operating point the build chose (unknown score + per-class confidence thresholds, as the runtime routes).
"""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from pigeonhole.model import unknown
from pigeonhole.model.features import normalize_batch
from pigeonhole.model.runtime import ModelRuntime
from pigeonhole_tools.training import graphs, routes
from pigeonhole_tools.training.build import BuildOptions, run_build
from pigeonhole_tools.training.data import LabelledData, load_labelled
from pigeonhole_tools.training.progress import Reporter

KNOWN_ACCURACY_LEVELS = (0.95, 0.93, 0.9, 0.85, 0.8)


def _write_csv(path: Path, texts: Sequence[str], labels: Sequence[str]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "category"])
        writer.writerows(zip(texts, labels, strict=True))


def curve(
    known_right_at: NDArray[np.float64], known_flag: NDArray[np.float64], unseen_flag: NDArray[np.float64]
) -> list[dict[str, float]]:
    """Trade-off curve of a score where higher = more likely unknown, swept over every distinct value.

    known_right_at: 1.0 where the known event's label is right (before any routing), else 0.0.
    known_flag / unseen_flag: the score of known and never-seen events.
    """
    thresholds = np.unique(np.r_[known_flag, unseen_flag, np.inf])
    points = []
    for t in thresholds:
        auto = known_flag < t
        points.append(
            {
                "threshold": float(t),
                "known_accuracy": float(np.mean(auto * known_right_at)),
                "unseen_recall": float(np.mean(unseen_flag >= t)),
            }
        )
    return points


def recall_at(points: list[dict[str, float]], level: float) -> float | None:
    """Best held-out recall among points whose known-intent accuracy is at least `level` (None: unreachable)."""
    ok = [p["unseen_recall"] for p in points if p["known_accuracy"] >= level]
    return max(ok) if ok else None


def auroc(known: NDArray[np.float64], unseen: NDArray[np.float64]) -> float:
    """P(score of a never-seen event > score of a known one), ties counted half."""
    both = np.r_[known, unseen]
    ranks = np.empty(both.size, dtype=np.float64)
    order = np.argsort(both, kind="stable")
    sorted_vals = both[order]
    i = 0
    while i < both.size:
        j = i
        while j + 1 < both.size and sorted_vals[j + 1] == sorted_vals[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    r_unseen = ranks[known.size :].sum()
    return float((r_unseen - unseen.size * (unseen.size + 1) / 2) / (known.size * unseen.size))


def one_seed(
    train: LabelledData, test: LabelledData, seed: int, n_unseen: int, base: BuildOptions, workdir: Path, ui: Reporter
) -> dict[str, object]:
    classes = sorted(set(train.labels))
    rng = np.random.default_rng(10_000 + seed)
    unseen = sorted(str(c) for c in rng.choice(np.array(classes, dtype=object), size=n_unseen, replace=False))
    left_out = set(unseen)
    pick = [(t, lab) for t, lab in zip(train.texts, train.labels, strict=True) if lab not in left_out]
    known_test = [(t, lab) for t, lab in zip(test.texts, test.labels, strict=True) if lab not in left_out]
    unseen_test = [t for t, lab in zip(test.texts, test.labels, strict=True) if lab in left_out]
    directory = workdir / f"seed-{seed}"
    directory.mkdir(parents=True)
    _write_csv(directory / "train.csv", [t for t, _ in pick], [lab for _, lab in pick])
    _write_csv(directory / "test.csv", [t for t, _ in known_test], [lab for _, lab in known_test])
    opts = replace(
        base,
        data=directory / "train.csv",
        eval_data=directory / "test.csv",
        text_column="text",
        label_column="category",
        out=directory / "package",
        name=f"unknown-eval-seed-{seed}",
    )
    manifest = run_build(opts, ui)
    runtime = ModelRuntime.load(opts.out)
    spec = manifest.input
    known_texts = [t for t, _ in known_test]
    p_known, d_known = graphs.score_session(runtime.session, known_texts, spec)
    p_unseen, d_unseen = graphs.score_session(runtime.session, unseen_test, spec)
    index = {c: i for i, c in enumerate(manifest.classes)}
    y = np.asarray([index[lab] for _, lab in known_test])
    right = (p_known.argmax(axis=1) == y).astype(np.float64)
    record = manifest.metrics["unknown"]
    if not isinstance(record, dict) or not record.get("fitted"):
        raise RuntimeError("the build fitted no unknown score")
    spec_u = manifest.unknown
    if spec_u is None:
        raise RuntimeError("the package has no unknown block")
    u_threshold = spec_u.threshold

    def score(p: NDArray[np.float32], texts: Sequence[str], dist: NDArray[np.float32] | None) -> NDArray[np.float64]:
        result: NDArray[np.float64] = unknown.unknown_scores(
            p, normalize_batch(texts), runtime.vocabulary, spec_u.features, spec_u.weights, spec_u.bias, dist
        )
        return result

    s_known, s_unseen = score(p_known, known_texts, d_known), score(p_unseen, unseen_test, d_unseen)
    c_known, c_unseen = -p_known.max(axis=1).astype(np.float64), -p_unseen.max(axis=1).astype(np.float64)
    picked = manifest.thresholds.per_class
    review = manifest.thresholds.review_confidence
    vector = np.asarray([manifest.thresholds.for_label(c) for c in manifest.classes])

    k_unknown, k_low = routes.route_masks(p_known, s_known, u_threshold, vector)
    u_unknown, u_low = routes.route_masks(p_unseen, s_unseen, u_threshold, vector)
    auto_known = ~k_unknown & ~k_low
    score_curve, conf_curve = curve(right, s_known, s_unseen), curve(right, c_known, c_unseen)
    ui.info(
        f"seed {seed}: unseen {unseen}; operating point known acc {np.mean(auto_known * right):.4f}, "
        f"unseen routed away {np.mean(u_unknown | u_low):.4f} (unknown {np.mean(u_unknown):.4f})"
    )
    return {
        "seed": seed,
        "unseen_intents": unseen,
        "n_known_test": len(known_test),
        "n_unseen_test": len(unseen_test),
        "known_accuracy_no_routing": float(right.mean()),
        "operating_point": {
            "unknown_threshold": u_threshold,
            "review_confidence": review,
            "per_class_thresholds": len(picked),
            "known_accuracy": float(np.mean(auto_known * right)),
            "known_auto_share": float(auto_known.mean()),
            "known_auto_accuracy": float(right[auto_known].mean()) if auto_known.any() else 1.0,
            "known_share_unknown": float(k_unknown.mean()),
            "unseen_routed_away": float(np.mean(u_unknown | u_low)),
            "unseen_unknown": float(u_unknown.mean()),
            "unseen_low_confidence": float(u_low.mean()),
        },
        "auroc": {"unknown_score": auroc(s_known, s_unseen), "max_prob": auroc(c_known, c_unseen)},
        "recall_at_known_accuracy": {
            "unknown_score": {str(a): recall_at(score_curve, a) for a in KNOWN_ACCURACY_LEVELS},
            "max_prob": {str(a): recall_at(conf_curve, a) for a in KNOWN_ACCURACY_LEVELS},
        },
        "curves": {"unknown_score": _thin(score_curve), "max_prob": _thin(conf_curve)},
        "metrics": {k: manifest.metrics[k] for k in ("calibration", "unknown") if k in manifest.metrics},
    }


def _thin(points: list[dict[str, float]], n: int = 60) -> list[dict[str, float]]:
    """At most n points of a curve, evenly by index (the whole curve is thousands of points)."""
    if len(points) <= n:
        return points
    keep = np.unique(np.linspace(0, len(points) - 1, n).round().astype(int))
    return [points[int(i)] for i in keep]


def summarize(runs: list[dict[str, object]]) -> dict[str, object]:
    """Mean and standard deviation over seeds of the operating point, AUROC and recall at each accuracy level."""

    def stats(values: list[float]) -> dict[str, float]:
        arr = np.asarray(values, dtype=np.float64)
        return {"mean": float(arr.mean()), "sd": float(arr.std(ddof=1)) if arr.size > 1 else 0.0}

    def get(run: dict[str, object], *path: str) -> object:
        node: object = run
        for key in path:
            node = node[key] if isinstance(node, dict) else None
        return node

    out: dict[str, object] = {"seeds": [r["seed"] for r in runs]}
    op_keys = ("known_accuracy", "known_auto_accuracy", "known_share_unknown", "unseen_routed_away", "unseen_unknown")
    out["operating_point"] = {k: stats([float(get(r, "operating_point", k)) for r in runs]) for k in op_keys}  # type: ignore[arg-type]
    out["known_accuracy_no_routing"] = stats([float(r["known_accuracy_no_routing"]) for r in runs])  # type: ignore[arg-type]
    out["auroc"] = {k: stats([float(get(r, "auroc", k)) for r in runs]) for k in ("unknown_score", "max_prob")}  # type: ignore[arg-type]
    levels: dict[str, object] = {}
    for method in ("unknown_score", "max_prob"):
        levels[method] = {}
        for a in KNOWN_ACCURACY_LEVELS:
            vals = [get(r, "recall_at_known_accuracy", method, str(a)) for r in runs]
            got = [float(v) for v in vals if isinstance(v, int | float)]
            levels[method][str(a)] = {**stats(got), "reached_in": len(got)} if got else None  # type: ignore[index]
    out["recall_at_known_accuracy"] = levels
    return out


def evaluate_unknown(
    base: BuildOptions, seeds: Sequence[int], n_unseen: int, ui: Reporter, workdir: Path | None = None
) -> dict[str, object]:
    train = load_labelled(base.data, base.text_column, base.label_column)
    if base.eval_data is None:
        raise ValueError("evaluate-unknown needs --eval-data (a test set whose intents can be held out)")
    test = load_labelled(base.eval_data, base.text_column, base.label_column)
    with tempfile.TemporaryDirectory(prefix="pigeonhole-unknown-eval-", dir=workdir) as scratch:
        runs = [one_seed(train, test, seed, n_unseen, base, Path(scratch), ui) for seed in seeds]
    return {
        "n_unseen_intents": n_unseen,
        "data_sha256": train.sha256,  # lets `pigeonhole model verify --unknown-report` match it to a package
        "unknown_features": report_features(runs),
        "summary": summarize(runs),
        "runs": runs,
    }


def report_features(runs: Sequence[dict[str, object]]) -> list[str] | None:
    """The unknown score's inputs the report's packages used (one list when every seed used the same)."""
    found: set[tuple[str, ...] | None] = set()
    for run in runs:
        node: object = run.get("metrics", {})
        for key in ("unknown", "features"):
            node = node.get(key) if isinstance(node, dict) else None
        found.add(tuple(str(n) for n in node) if isinstance(node, list) else None)
    (only,) = found if len(found) == 1 else (None,)
    return None if only is None else list(only)
