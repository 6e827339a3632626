"""The build's unknown score: a third training that never sees some intents, and what it scores.

A seeded share of the intents (10 of 77 on BANKING77) is left out of a model trained on the fit rows;
its calibrated int8 probabilities on (a) the validation rows of the known intents and (b) every training
row of the left-out intents give the per-event features, and a logistic regression on them is the
unknown score. The build calls in with its own train / export / score steps, so this module does not
import build.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from pigeonhole.model import unknown
from pigeonhole.model.features import normalize_batch
from pigeonhole.model.manifest import UnknownSpec
from pigeonhole_tools.training import calibrate, routes
from pigeonhole_tools.training import defaults as d
from pigeonhole_tools.training.progress import Reporter
from pigeonhole_tools.training.train import TrainedModel


class _SplitLike(Protocol):
    @property
    def train_texts(self) -> list[str]: ...
    @property
    def train_labels(self) -> list[str]: ...
    @property
    def validation_texts(self) -> list[str]: ...
    @property
    def validation_labels(self) -> list[str]: ...


TrainFn = Callable[[list[str], list[str], str], TrainedModel]
# export + quantize + score int8: probabilities and (when the graph has them) hidden distances
ScoreFn = Callable[[TrainedModel, Path, list[str]], tuple[NDArray[np.float32], NDArray[np.float32] | None]]


def _indices(labels: Sequence[str], classes: list[str]) -> NDArray[np.int64]:
    index = {c: i for i, c in enumerate(classes)}
    return np.asarray([index[label] for label in labels], dtype=np.int64)


def fit(
    split: _SplitLike,
    holdout_share: float,
    target_known_share: float,
    features: Sequence[str] | None,
    seed: int,
    calibrate_on: bool,
    train_fn: TrainFn,
    score_fn: ScoreFn,
    scratch: Path,
    ui: Reporter,
) -> tuple[routes.UnknownFit | None, dict[str, object]]:
    """(the fitted score or None, its manifest record); None when there are too few classes to spare some."""
    classes = sorted(set(split.train_labels))
    if holdout_share <= 0 or len(classes) < d.MIN_CLASSES_FOR_UNKNOWN:
        reason = (
            f"{len(classes)} classes: fewer than {d.MIN_CLASSES_FOR_UNKNOWN}, no intents to leave out"
            if holdout_share > 0
            else "disabled (--unknown-holdout-share 0)"
        )
        ui.info(f"no unknown score: {reason}")
        return None, {"fitted": False, "reason": reason}
    unseen = routes.held_out_intents(classes, holdout_share, seed)
    left_out = set(unseen)
    keep = [i for i, label in enumerate(split.train_labels) if label not in left_out]
    model = train_fn(
        [split.train_texts[i] for i in keep],
        [split.train_labels[i] for i in keep],
        f"training (unknown score: {len(unseen)} of {len(classes)} intents left out)",
    )
    known_texts = [
        t for t, lab in zip(split.validation_texts, split.validation_labels, strict=True) if lab not in left_out
    ]
    known_labels = [lab for lab in split.validation_labels if lab not in left_out]
    unseen_texts = [t for t, lab in zip(split.train_texts, split.train_labels, strict=True) if lab in left_out]
    unseen_texts += [
        t for t, lab in zip(split.validation_texts, split.validation_labels, strict=True) if lab in left_out
    ]
    with ui.step("Fitting the unknown score on intents that model never saw"):
        p_raw, distance = score_fn(model, scratch, known_texts + unseen_texts)
        n_known = len(known_texts)
        p_known_raw, p_unseen_raw = p_raw[:n_known], p_raw[n_known:]
        d_known, d_unseen = (None, None) if distance is None else (distance[:n_known], distance[n_known:])
        y_known = _indices(known_labels, model.classes)
        temperature = calibrate.fit_temperature(p_known_raw, y_known) if calibrate_on else 1.0
        vocabulary = frozenset(model.unigram_vocabulary())
        names = tuple(features) if features is not None else routes.feature_names(distance is not None)
        f_known = routes.unknown_features(
            calibrate.apply_temperature(p_known_raw, temperature),
            normalize_batch(known_texts),
            vocabulary,
            d_known,
            names,
        )
        f_unseen = routes.unknown_features(
            calibrate.apply_temperature(p_unseen_raw, temperature),
            normalize_batch(unseen_texts),
            vocabulary,
            d_unseen,
            names,
        )
        result = routes.fit_unknown(names, f_known, f_unseen, target_known_share, seed)
    ui.info(
        f"unknown score: threshold {result.threshold:.4f} flags {result.known_share:.1%} of known and "
        f"{result.unknown_recall:.1%} of never-seen events (fitting rows)"
    )
    record: dict[str, object] = {
        "fitted": True,
        "features": result.features,
        "weights": result.weights,
        "bias": result.bias,
        "threshold": result.threshold,
        "target": {"max_known_share_unknown": target_known_share},
        "fitted_on": {
            "left_out_intents": unseen,
            "seed": seed,
            "known_events": result.n_known,
            "never_seen_events": result.n_unknown,
            "temperature_of_fitting_model": temperature,
            **({} if model.hidden is None or distance is None else {"hidden_distance": model.hidden.record()}),
            "note": "known = validation rows of the other intents; never seen = every training row of the "
            "left-out intents; scored by the int8 graph of a model trained on the fit rows without them",
        },
        "evaluation": {
            "fitting_rows": {"known_share_unknown": result.known_share, "never_seen_recall": result.unknown_recall},
            "held_out_intents": "see docs/model.md (pigeonhole model evaluate-unknown)",
        },
        "training": {"seconds": round(model.seconds, 2), "rows": model.rows, "n_features": model.n_features},
    }
    return result, record


def scores(
    fit_: routes.UnknownFit,
    probs: NDArray[np.floating],
    texts: Sequence[str],
    vocabulary: frozenset[str],
    hidden_distance: NDArray[np.floating] | None = None,
) -> NDArray[np.float64]:
    """The runtime's unknown score (pigeonhole.model.unknown) of raw texts."""
    result: NDArray[np.float64] = unknown.unknown_scores(
        np.asarray(probs), normalize_batch(texts), vocabulary, fit_.features, fit_.weights, fit_.bias, hidden_distance
    )
    return result


def spec(fit_: routes.UnknownFit, record: dict[str, object]) -> UnknownSpec:
    """The manifest's unknown block: what the runtime applies, the target it was chosen for, what it measured."""
    evaluation = {
        "fitting_rows": record.get("evaluation", {}),
        "eval_known_events": record.get("eval", {}),
        "fitted_on": {k: v for k, v in dict(record.get("fitted_on", {})).items() if k != "note"},  # type: ignore[call-overload]
    }
    return UnknownSpec(
        features=fit_.features,
        weights=fit_.weights,
        bias=fit_.bias,
        threshold=fit_.threshold,
        target={"max_known_share_unknown": fit_.target_known_share, "chosen_on": "validation rows (known intents)"},
        evaluation=evaluation,
    )


def on_eval(
    fit_: routes.UnknownFit,
    probs: NDArray[np.floating],
    y: NDArray[np.int64],
    texts: Sequence[str],
    vocabulary: frozenset[str],
    class_thresholds: NDArray[np.float64],
    hidden_distance: NDArray[np.floating] | None = None,
) -> dict[str, object]:
    """On the (all known) eval set with the shipped model: share routed unknown, and the whole routing.

    Routing as the runtime does it: unknown score >= threshold -> review (unknown); else confidence below the
    predicted class's threshold -> review (low confidence); else auto. Right = auto with the right label.
    """
    flagged, low = routes.route_masks(
        probs, scores(fit_, probs, texts, vocabulary, hidden_distance), fit_.threshold, class_thresholds
    )
    pred = probs.argmax(axis=1)
    auto = ~flagged & ~low
    right = auto & (pred == y)
    n = max(int(y.size), 1)
    return {
        "n_events": int(y.size),
        "share_unknown": round(float(flagged.sum()) / n, 6),
        "share_low_confidence": round(float(low.sum()) / n, 6),
        "share_auto": round(float(auto.sum()) / n, 6),
        "auto_accuracy": round(float(right.sum()) / max(int(auto.sum()), 1), 6),
        "known_accuracy": round(float(right.sum()) / n, 6),
        "right_label_but_unknown": round(float((flagged & (pred == y)).sum()) / n, 6),
    }
