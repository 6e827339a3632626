"""The build's decisions on validation rows, and their records: temperature, review thresholds, unknown score.

Kept apart from build.py (which trains and exports) so each decision is a function of probability
matrices and labels, with the record the manifest keeps next to it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from pigeonhole_tools.training import calibrate, evaluate, routes


@dataclass(frozen=True)
class Decisions:
    """What the validation rows decided for the shipped model."""

    temperature: float  # 1.0 when calibration is off
    review: evaluate.ThresholdChoice
    per_class: list[routes.ClassThreshold]
    validation_quality: dict[str, dict[str, float]]  # calibration before/after on the validation rows
    calibration: calibrate.TemperatureChoice | None = None  # None when calibration is off
    wilson_z: float = routes.WILSON_Z  # of the per-class test (routes.wilson_z_for)
    per_class_correction: str = "none"


def decide(
    p_val_raw: NDArray[np.floating],
    y_val: NDArray[np.int64],
    classes: list[str],
    target: float,
    calibrate_on: bool,
    per_class_correction: str = "none",
) -> tuple[Decisions, NDArray[np.float64]]:
    """Fit T on uncalibrated validation probabilities (guarded: T = 1 if it raises validation ECE), then choose
    the thresholds on the calibrated ones."""
    choice = calibrate.choose_temperature(p_val_raw, y_val) if calibrate_on else None
    temperature = choice.temperature if choice is not None else 1.0
    p_val = calibrate.apply_temperature(p_val_raw, temperature)
    conf, pred = p_val.max(axis=1), p_val.argmax(axis=1)
    correct = pred == y_val
    review = evaluate.select_threshold(conf, correct, target)
    z = routes.wilson_z_for(per_class_correction, len(classes))
    per_class = routes.per_class_thresholds(conf, pred, correct, classes, review.threshold, target, z=z)
    quality = {"before": calibrate.quality(p_val_raw, y_val), "after": calibrate.quality(p_val, y_val)}
    return Decisions(temperature, review, per_class, quality, choice, z, per_class_correction), p_val


def calibration_summary(decisions: Decisions) -> str:
    """One line for the build's output: the temperature, validation ECE, and the guard's verdict."""
    quality = decisions.validation_quality
    line = (
        f"temperature {decisions.temperature:.4f}: validation ECE {quality['before']['ece_15']:.4f} -> "
        f"{quality['after']['ece_15']:.4f}; {len(decisions.per_class)} class(es) get their own threshold"
    )
    if decisions.calibration is not None and not decisions.calibration.kept_fitted:
        line += f" (calibration guard: {decisions.calibration.reason})"
    return line


def class_threshold_vector(classes: list[str], review: float, per_class: dict[str, float]) -> NDArray[np.float64]:
    return np.asarray([per_class.get(c, review) for c in classes], dtype=np.float64)


def per_class_record(
    decisions: Decisions,
    classes: list[str],
    target: float,
    eval_probs: NDArray[np.floating],
    y_eval: NDArray[np.int64],
) -> dict[str, object]:
    """Per-class thresholds, the rule that chose them, and coverage/accuracy with and without them on eval."""
    conf, pred = eval_probs.max(axis=1), eval_probs.argmax(axis=1)
    correct = pred == y_eval
    review = decisions.review.threshold
    picked = {c.label: c.threshold for c in decisions.per_class}
    vector = class_threshold_vector(classes, review, picked)
    coverage, accuracy = routes.per_class_routed(conf, pred, correct, vector)
    global_cov, global_acc = evaluate.routed(conf, correct, review)
    per_label: dict[str, object] = {}
    for c in decisions.per_class:
        index = classes.index(c.label)
        mine = pred == index
        cls_cov, cls_acc = evaluate.routed(conf[mine], correct[mine], c.threshold) if mine.any() else (0.0, 1.0)
        g_cov, g_acc = evaluate.routed(conf[mine], correct[mine], review) if mine.any() else (0.0, 1.0)
        per_label[c.label] = {
            "threshold": c.threshold,
            "validation": {
                "n_auto_at_global": c.n_predicted,
                "precision_at_global": round(c.precision_at_global, 6),
                "precision_after": round(c.precision_after, 6),
                "coverage_after": round(c.coverage_after, 6),
            },
            "eval": {
                "n_predicted": int(mine.sum()),
                "global": {"coverage": round(g_cov, 6), "auto_accuracy": round(g_acc, 6)},
                "own": {"coverage": round(cls_cov, 6), "auto_accuracy": round(cls_acc, 6)},
            },
        }
    return {
        "target_auto_precision": target,
        "rule": (
            f"a class gets its own threshold when its validation auto-routed precision at the global threshold "
            f"is significantly below the target (Wilson {decisions.wilson_z} upper bound < target, >= "
            f"{routes.MIN_CLASS_EVENTS} events); the threshold is the lowest reaching the target on its events"
            + (
                ""
                if decisions.per_class_correction == "none"
                else f"; z corrected for {len(classes)} classes ({decisions.per_class_correction})"
            )
        ),
        "thresholds": picked,
        "classes": per_label,
        "eval": {
            "global_only": {"coverage": round(global_cov, 6), "auto_accuracy": round(global_acc, 6)},
            "with_per_class": {"coverage": round(coverage, 6), "auto_accuracy": round(accuracy, 6)},
        },
    }


def calibration_record(
    temperature: float,
    decisions: Decisions,
    fp32: NDArray[np.floating],
    int8: NDArray[np.floating],
    y_eval: NDArray[np.int64],
    refit: bool,
) -> dict[str, object]:
    fitted_on = "validation rows (NLL), int8 probabilities of the model trained without them"
    if refit:
        fitted_on += "; the same T is applied to the refit shipped model"
    choice = decisions.calibration
    guard: dict[str, object] = {"rule": "off (--no-calibrate)"}
    if choice is not None:
        guard = {
            "rule": "keep the NLL-fitted T only if it does not raise validation ECE (15 bins); else T = 1",
            "fitted_temperature": choice.fitted,
            "kept_fitted": choice.kept_fitted,
            "reason": choice.reason,
            "validation_with_fitted": choice.validation["with_fitted"],
        }
    return {
        "method": "temperature" if temperature != 1.0 else "none",
        "temperature": temperature,
        "guard": guard,
        "fitted_on": fitted_on,
        "in_graph": "Mul(logits, 1/T) before the final Softmax; fp32 and int8 share T"
        if temperature != 1.0
        else "nothing (T = 1)",
        "validation": decisions.validation_quality,
        "eval": {
            "fp32": calibrate.before_after(fp32, y_eval, temperature),
            "int8": calibrate.before_after(int8, y_eval, temperature),
        },
    }


def selection_record(per_class: dict[str, object]) -> dict[str, object]:
    """thresholds.selection: the target, the rule and the measured coverage (the full record is in metrics)."""
    return {k: per_class[k] for k in ("target_auto_precision", "rule", "eval", "classes") if k in per_class}


def threshold_record(
    choice: evaluate.ThresholdChoice,
    y_eval: NDArray[np.int64],
    int8: NDArray[np.floating],
    refit: bool,
    target: float,
) -> dict[str, object]:
    """The global threshold, what it did on validation, and what it does with the shipped int8 model on eval."""
    coverage, auto_accuracy = evaluate.routed(int8.max(axis=1), int8.argmax(axis=1) == y_eval, choice.threshold)
    chosen_on = (
        "validation rows carved from the training data, scored by the int8 graph of a model trained without them"
        " (calibrated with the fitted temperature)"
    )
    if refit:
        chosen_on += "; the shipped model was then refit on all training rows (same recipe and seed)"
    return {
        "target_auto_precision": target,
        "review_confidence": choice.threshold,
        "reached_target": choice.reached_target,
        "chosen_on": chosen_on,
        "validation": {"n_events": choice.n_events, "coverage": choice.coverage, "auto_accuracy": choice.auto_accuracy},
        "eval": {"n_events": int(y_eval.size), "coverage": coverage, "auto_accuracy": auto_accuracy},
    }


def routing_summary(threshold: dict[str, object]) -> str:
    parts = []
    for split_name in ("validation", "eval"):
        numbers = threshold[split_name]
        if isinstance(numbers, dict):
            parts.append(
                f"{split_name}: {numbers['coverage']:.1%} auto-routed at {numbers['auto_accuracy']:.4f} accuracy"
            )
    return "; ".join(parts)
