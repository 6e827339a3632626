"""Temperature scaling: fitted on held-out rows, applied inside the ONNX graph, measured before/after.

Why temperature: one scalar T divides the logits before the softmax, so the label order (and with it
accuracy and the top-k) cannot change; only the confidence is rescaled. It is fitted by minimizing the
negative log-likelihood on validation rows the fitting model never saw. The graph's probabilities are
softmax(logits), so log(p) equals the logits up to a per-row constant and softmax(log(p) / T) equals
softmax(logits / T): T is fitted on the probabilities the int8 graph already emits, no logits output needed.

In the graph, a `Mul` by 1/T goes on the input of the final `Softmax`, after the last `MatMul`: dynamic
quantization (which touches only MatMul) leaves it in float, and the int8 graph is quantized from the
calibrated fp32 graph, so fp32 and int8 share one T (fitted on int8 scores, the ones that ship).

The guard: NLL is what T minimizes, but ECE is what the review route relies on. On an already calibrated
model (BANKING77 with `--layers 2`: T = 1.10) the NLL-optimal T raised ECE on validation and on test, so
the build keeps T = 1 whenever the fitted T raises the *validation* ECE (the only rows it may look at) and
records why (`choose_temperature`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import TensorProto, helper

from pigeonhole_tools.training.evaluate import expected_calibration_error

TEMPERATURE_NAME = "pigeonhole_inverse_temperature"
_LOG_FLOOR = 1e-30  # float32 probabilities can underflow to 0; log(0) would poison the fit
_T_RANGE = (0.05, 20.0)


def log_probabilities(probs: NDArray[np.floating]) -> NDArray[np.float64]:
    return np.log(np.clip(np.asarray(probs, dtype=np.float64), _LOG_FLOOR, 1.0))


def apply_temperature(probs: NDArray[np.floating], temperature: float) -> NDArray[np.float64]:
    """softmax(log(p) / T): what the calibrated graph computes, in numpy (float64)."""
    z = log_probabilities(probs) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    out: NDArray[np.float64] = e / e.sum(axis=1, keepdims=True)
    return out


def negative_log_likelihood(probs: NDArray[np.floating], y: NDArray[np.int64]) -> float:
    p = np.clip(np.asarray(probs, dtype=np.float64)[np.arange(y.size), y], _LOG_FLOOR, 1.0)
    return float(-np.mean(np.log(p)))


def brier(probs: NDArray[np.floating], y: NDArray[np.int64]) -> float:
    """Multi-class Brier score: mean over events of Σ_c (p_c − 1[c = y])²  (0 is perfect, 2 is worst)."""
    p = np.asarray(probs, dtype=np.float64).copy()
    p[np.arange(y.size), y] -= 1.0
    return float(np.mean(np.sum(p * p, axis=1)))


def fit_temperature(probs: NDArray[np.floating], y: NDArray[np.int64]) -> float:
    """The T in [0.05, 20] minimizing validation NLL (golden-section search on log T; NLL is convex in 1/T)."""
    if y.size == 0:
        raise ValueError("cannot fit a temperature without validation events")
    logp = log_probabilities(probs)

    def nll(log_t: float) -> float:
        z = logp / math.exp(log_t)
        z -= z.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(z).sum(axis=1))
        return float(np.mean(log_norm - z[np.arange(y.size), y]))

    lo, hi = math.log(_T_RANGE[0]), math.log(_T_RANGE[1])
    ratio = (math.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = nll(a), nll(b)
    for _ in range(80):
        if fa <= fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = nll(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = nll(b)
    return round(math.exp((lo + hi) / 2), 6)


def quality(probs: NDArray[np.floating], y: NDArray[np.int64]) -> dict[str, float]:
    """ECE (15 bins), Brier and NLL of one probability matrix."""
    p = np.asarray(probs, dtype=np.float64)
    correct = p.argmax(axis=1) == y
    return {
        "ece_15": round(expected_calibration_error(p.max(axis=1), correct), 6),
        "brier": round(brier(p, y), 6),
        "nll": round(negative_log_likelihood(p, y), 6),
        "accuracy": round(float(correct.mean()), 6) if y.size else 0.0,
    }


def before_after(calibrated: NDArray[np.floating], y: NDArray[np.int64], temperature: float) -> dict[str, object]:
    """Quality of the calibrated graph's probabilities and of the same graph without T (inverted exactly)."""
    uncalibrated = apply_temperature(calibrated, 1.0 / temperature)
    return {"before": quality(uncalibrated, y), "after": quality(calibrated, y)}


def insert_temperature(model: onnx.ModelProto, output_name: str, temperature: float) -> None:
    """Divide the logits by T: a `Mul` by 1/T on the input of the one Softmax (multi-class MLP) or Sigmoid
    (binary MLP: p = sigmoid(z), output [1 - p, p]) that the output `output_name` depends on.

    For two classes sigmoid(z / T) equals softmax(log p / T), so `apply_temperature` describes both.
    Raises unless exactly one such node feeds the output: calibration must then be rethought, not skipped.
    """
    producers = {out: node for node in model.graph.node for out in node.output}
    visited: set[str] = set()  # tensor names
    found: list[onnx.NodeProto] = []
    stack = [output_name]
    while stack:
        name = stack.pop()
        node = producers.get(name)
        if node is None or name in visited:
            continue
        visited.update(node.output)
        if node.op_type in ("Softmax", "Sigmoid"):
            found.append(node)
            continue  # the logits above it are not searched further
        stack.extend(node.input)
    if len(found) != 1:
        kinds = sorted({n.op_type for n in found})
        raise RuntimeError(
            f"cannot calibrate: {output_name!r} depends on {len(found)} Softmax/Sigmoid nodes {kinds}, not 1"
        )
    (node,) = found
    logits = node.input[0]
    scaled = f"{logits}_over_temperature"
    model.graph.initializer.append(
        helper.make_tensor(TEMPERATURE_NAME, TensorProto.FLOAT, [], [float(np.float32(1.0 / temperature))])
    )
    mul = helper.make_node("Mul", [logits, TEMPERATURE_NAME], [scaled], name="pigeonhole_temperature")
    node.input[0] = scaled
    nodes = list(model.graph.node)
    nodes.insert(nodes.index(node), mul)
    del model.graph.node[:]
    model.graph.node.extend(nodes)


@dataclass(frozen=True)
class TemperatureChoice:
    """The temperature that ships, the one NLL fitted, and why they differ when they do."""

    temperature: float  # in the graph (1.0 = none)
    fitted: float  # the NLL-optimal T on validation
    kept_fitted: bool
    reason: str
    validation: dict[str, dict[str, float]]  # quality before / with the fitted T / as shipped


def keeps_fitted_temperature(ece_before: float, ece_with_fitted: float) -> bool:
    """The guard's rule: ship the fitted T unless it raises validation ECE (a tie keeps it: NLL still fell)."""
    return ece_with_fitted <= ece_before


def choose_temperature(probs: NDArray[np.floating], y: NDArray[np.int64]) -> TemperatureChoice:
    """Fit T by NLL on validation, then keep it only if validation ECE does not rise (else T = 1)."""
    fitted = fit_temperature(probs, y)
    before = quality(probs, y)
    with_fitted = quality(apply_temperature(probs, fitted), y)
    keep = keeps_fitted_temperature(before["ece_15"], with_fitted["ece_15"])
    if keep:
        reason = f"fitted T = {fitted:g} kept: validation ECE {before['ece_15']:.4f} -> {with_fitted['ece_15']:.4f}"
    else:
        reason = (
            f"fitted T = {fitted:g} lowers validation NLL ({before['nll']:.4f} -> {with_fitted['nll']:.4f}) but "
            f"raises validation ECE ({before['ece_15']:.4f} -> {with_fitted['ece_15']:.4f}): T = 1 kept"
        )
    return TemperatureChoice(
        temperature=fitted if keep else 1.0,
        fitted=fitted,
        kept_fitted=keep,
        reason=reason,
        validation={"before": before, "with_fitted": with_fitted, "after": with_fitted if keep else before},
    )
