"""The "none of the known classes" score, shared by the build (which fits it) and the runtime (which applies it).

Why one shared module: the build fits weights on these exact features; if the runtime computed them in
any other way, the fitted operating point would mean nothing. The features come from the calibrated
probabilities (calibration lives inside the ONNX graph) and from the normalized input itself:

- ``max_prob``   top-1 probability;
- ``margin``     top-1 minus top-2 probability;
- ``entropy``    Shannon entropy of the row divided by log(number of classes), in [0, 1];
- ``oov_share``  share of word tokens not in the model's vocabulary (1.0 for a text without tokens);
- ``log_tokens`` log1p(word token count);
- ``log_chars``  log1p(character count of the normalized text);
- ``hidden_distance`` the smallest squared Mahalanobis distance of the event's last hidden activation to
  the class means of the training rows; the graph computes it (a second output, named by the manifest's
  ``input.onnx_hidden_distance_output``) and the runtime passes it in.

The score is a linear logistic model, ``sigmoid(bias + weights . features)``, with its weights, bias
and threshold read from the manifest's ``unknown`` block; an event whose score is at or above the
threshold goes to review with route reason ``unknown``. numpy only: no CDK, no scikit-learn.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np

from pigeonhole.model.features import FEATURE_LENGTH_CHARS, FEATURE_OOV_SHARE, FEATURE_TOKENS, input_features

MAX_PROB: Final = "max_prob"
MARGIN: Final = "margin"
ENTROPY: Final = "entropy"
OOV_SHARE: Final = "oov_share"
LOG_TOKENS: Final = "log_tokens"
LOG_CHARS: Final = "log_chars"
HIDDEN_DISTANCE: Final = "hidden_distance"

# Every feature this module computes, in a fixed order (a manifest names any subset, in its own order).
UNKNOWN_FEATURES: Final[tuple[str, ...]] = (
    MAX_PROB,
    MARGIN,
    ENTROPY,
    OOV_SHARE,
    LOG_TOKENS,
    LOG_CHARS,
    HIDDEN_DISTANCE,
)
_TEXT_FEATURES: Final = frozenset({OOV_SHARE, LOG_TOKENS, LOG_CHARS})


def probability_features(probabilities: np.ndarray) -> dict[str, np.ndarray]:
    """max_prob, margin and normalized entropy of each row (float64; rows need not sum exactly to 1)."""
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(f"probabilities must have shape (n, k) with k >= 2, got {p.shape}")
    p = np.clip(p, 0.0, 1.0)
    top2 = -np.partition(-p, 1, axis=1)[:, :2]
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(p > 0.0, p * np.log(np.where(p > 0.0, p, 1.0)), 0.0)
    entropy = -plogp.sum(axis=1) / np.log(p.shape[1])
    return {
        MAX_PROB: top2[:, 0],
        MARGIN: top2[:, 0] - top2[:, 1],
        ENTROPY: np.clip(entropy, 0.0, 1.0),
    }


def unknown_features(
    probabilities: np.ndarray,
    normalized_texts: Sequence[str],
    vocabulary: frozenset[str],
    names: Sequence[str] | None = None,
    hidden_distance: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """The named per-event features (see the module docstring); texts must already be normalized.

    An empty vocabulary (a package without one) makes every token out of vocabulary: a manifest whose
    unknown block uses ``oov_share`` must ship its vocabulary (the manifest checks that). ``hidden_distance``
    (one value per event, from the graph) is required when the names ask for it. Without names: every feature
    this module can compute from what it is given.
    """
    if names is None:
        names = [n for n in UNKNOWN_FEATURES if n != HIDDEN_DISTANCE or hidden_distance is not None]
    bad = [n for n in names if n not in UNKNOWN_FEATURES]
    if bad:
        raise ValueError(f"unknown-score features {bad} are not computed here; known: {list(UNKNOWN_FEATURES)}")
    if len(normalized_texts) != len(probabilities):
        raise ValueError(f"{len(normalized_texts)} texts for {len(probabilities)} probability rows")
    out = probability_features(probabilities)
    if HIDDEN_DISTANCE in names:
        if hidden_distance is None:
            raise ValueError("the unknown score uses hidden_distance but the model gave none")
        distance = np.asarray(hidden_distance, dtype=np.float64).reshape(-1)
        if distance.shape[0] != len(probabilities):
            raise ValueError(f"{distance.shape[0]} hidden distances for {len(probabilities)} probability rows")
        out[HIDDEN_DISTANCE] = distance
    if _TEXT_FEATURES.intersection(names):
        text = input_features(normalized_texts, vocabulary)
        out[OOV_SHARE] = text[FEATURE_OOV_SHARE]
        out[LOG_TOKENS] = np.log1p(text[FEATURE_TOKENS])
        out[LOG_CHARS] = np.log1p(text[FEATURE_LENGTH_CHARS])
    return {n: out[n] for n in names}


def feature_matrix(features: dict[str, np.ndarray], names: Sequence[str]) -> np.ndarray:
    """Stack the named features as columns, shape (n, len(names)), for fitting or scoring."""
    return np.column_stack([np.asarray(features[n], dtype=np.float64) for n in names])


def logistic_score(matrix: np.ndarray, weights: Sequence[float], bias: float) -> np.ndarray:
    """sigmoid(bias + matrix @ weights), computed without overflow for large |z|."""
    w = np.asarray(weights, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[1] != w.shape[0]:
        raise ValueError(f"feature matrix of shape {matrix.shape} does not fit {w.shape[0]} weights")
    z = matrix @ w + float(bias)
    return np.where(z >= 0, 1.0 / (1.0 + np.exp(-np.abs(z))), np.exp(-np.abs(z)) / (1.0 + np.exp(-np.abs(z))))


def unknown_scores(
    probabilities: np.ndarray,
    normalized_texts: Sequence[str],
    vocabulary: frozenset[str],
    names: Sequence[str],
    weights: Sequence[float],
    bias: float,
    hidden_distance: np.ndarray | None = None,
) -> np.ndarray:
    """The unknown score of each event, in [0, 1]: higher means less like any known class."""
    if len(probabilities) == 0:
        return np.zeros(0, dtype=np.float64)
    features = unknown_features(probabilities, normalized_texts, vocabulary, names, hidden_distance)
    return logistic_score(feature_matrix(features, names), weights, bias)
