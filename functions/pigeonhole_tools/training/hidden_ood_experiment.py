"""Experiment (issue 11, item 2): does a score from the MLP's hidden layer beat the top-1 probability?

One training of the committed recipe on 67 of BANKING77's 77 intents (the 10 left out are
`evaluate-unknown`'s draw for the given seed), on the training rows of the known intents minus the
build's 10 % validation split. Then, on the test rows of the 67 known intents and of the 10 never-seen
ones, the AUROC and the held-out recall at known-intent accuracy >= 0.90 / 0.85 of:

- ``max_prob``        1 - top-1 probability (temperature fitted on validation, as the build does);
- ``energy``          -logsumexp of the MLP's pre-softmax logits (Liu et al. 2020);
- ``cosine``          1 - max cosine of the hidden (ReLU) activation to the per-class centroids of the
                      training rows' activations;
- ``mahalanobis``     min over classes of the Mahalanobis distance to the class means, shared
                      Ledoit-Wolf-shrunk covariance (Lee et al. 2018), in the full hidden space and after
                      PCA to 64 / 32 dimensions;
- ``knn``             1 - cosine to the nearest / 10th nearest training activation (not shippable cheaply:
                      it needs every training activation at run time; an upper reference);
- ``feature_*``       the shipped unknown score's other inputs alone (margin, entropy, oov_share, ...);
- ``combo_*``         logistic regressions on standardized columns, 2-fold cross-fitted on the test rows
                      (known rows split in halves, never-seen intents in two groups of five), so each row is
                      scored by a fit that never saw it or its intent; ``combo_current_features`` is the
                      shipped score's recipe, ``combo_current_plus_hidden`` adds energy, cosine, Mahalanobis-32;
- ``sibling_fit_*``   the same logistic regressions fitted as the build fits its unknown score (a sibling
                      model trained without 9 more of the 67 intents; its validation rows = known, every row
                      of the 9 = never seen), then applied to this model's columns: what wiring would ship.

The MLP is computed in numpy from ``coefs_`` / ``intercepts_`` (fp32 scikit-learn, not the int8 graph).
Run: ``python -m pigeonhole_tools.training.hidden_ood_experiment --seed 0 --out hidden.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from sklearn.covariance import LedoitWolf
from sklearn.linear_model import LogisticRegression

from pigeonhole.model import unknown
from pigeonhole.model.features import normalize_batch
from pigeonhole_tools.training import calibrate, hidden, routes
from pigeonhole_tools.training import defaults as d
from pigeonhole_tools.training.data import load_labelled, stratified_split, take
from pigeonhole_tools.training.train import TrainedModel, TrainParams, train
from pigeonhole_tools.training.unknown_eval import auroc, curve, recall_at

F64 = NDArray[np.float64]
# The runtime's features this experiment compares with (all but the hidden distance it measures itself).
_PROBABILITY_AND_TEXT = tuple(n for n in unknown.UNKNOWN_FEATURES if n != unknown.HIDDEN_DISTANCE)
LEVELS = (0.9, 0.85, 0.8)


def hidden_and_logits(model: TrainedModel, texts: list[str]) -> tuple[F64, F64]:
    """The last hidden (ReLU) activation and the output logits, from the fitted MLP's weights."""
    x = model.features.transform(texts).astype(np.float32)  # sparse: never densify the TF-IDF rows
    a = hidden.activations(model.mlp, x)
    return a, a @ model.mlp.coefs_[-1] + model.mlp.intercepts_[-1]


def softmax(z: F64) -> F64:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    out: F64 = e / e.sum(axis=1, keepdims=True)
    return out


def logsumexp(z: F64) -> F64:
    m = z.max(axis=1)
    out: F64 = m + np.log(np.exp(z - m[:, None]).sum(axis=1))
    return out


def unit(x: F64) -> F64:
    out: F64 = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return out


class Mahalanobis:
    """Class means + one shared shrunk covariance; optional PCA (fitted on the training activations)."""

    def __init__(self, h: F64, y: NDArray[np.int64], n_classes: int, dims: int | None) -> None:
        self.center = h.mean(axis=0)
        self.proj: F64 = np.eye(h.shape[1])
        if dims is not None and dims < h.shape[1]:
            _, _, vt = np.linalg.svd(h - self.center, full_matrices=False)
            self.proj = vt[:dims].T
        z = (h - self.center) @ self.proj
        self.means = np.stack([z[y == c].mean(axis=0) for c in range(n_classes)])
        lw = LedoitWolf().fit(z - self.means[y])
        self.precision: F64 = np.linalg.inv(lw.covariance_)
        self.shrinkage = float(lw.shrinkage_)

    def score(self, h: F64) -> F64:
        z = (h - self.center) @ self.proj
        diff = z[:, None, :] - self.means[None, :, :]
        d2 = np.einsum("nkd,de,nke->nk", diff, self.precision, diff)
        out: F64 = d2.min(axis=1)
        return out


def knn_score(h_train: F64, h: F64, k: int) -> F64:
    sims = unit(h) @ unit(h_train).T
    kth = -np.partition(-sims, k - 1, axis=1)[:, k - 1]
    out: F64 = 1.0 - kth
    return out


def cross_fitted_combo(known: F64, unseen: F64, unseen_group: NDArray[np.int64], seed: int) -> tuple[F64, F64]:
    """Two-fold cross-fitted logistic regression on standardized columns (see module docstring)."""
    rng = np.random.default_rng(seed)
    k_fold = rng.permutation(known.shape[0]) % 2
    out_k, out_u = np.empty(known.shape[0]), np.empty(unseen.shape[0])
    for fold in (0, 1):
        xk, xu = known[k_fold != fold], unseen[unseen_group != fold]
        x = np.r_[xk, xu]
        mu, sd = x.mean(axis=0), x.std(axis=0) + 1e-12
        clf = LogisticRegression(C=1.0, max_iter=1000).fit((x - mu) / sd, np.r_[np.zeros(len(xk)), np.ones(len(xu))])
        out_k[k_fold == fold] = clf.decision_function((known[k_fold == fold] - mu) / sd)
        out_u[unseen_group == fold] = clf.decision_function((unseen[unseen_group == fold] - mu) / sd)
    return out_k, out_u


SIBLING_SETS: dict[str, list[str]] = {
    "current_features": ["max_prob", *(f"feature_{n}" for n in _PROBABILITY_AND_TEXT[1:])],
    "max_prob_mahalanobis_32": ["max_prob", "mahalanobis_32"],
    "current_plus_hidden": [
        "max_prob",
        *(f"feature_{n}" for n in _PROBABILITY_AND_TEXT[1:]),
        "energy",
        "cosine",
        "mahalanobis_32",
    ],
}


def columns(
    model: TrainedModel, fit_texts: list[str], y_fit: NDArray[np.int64], temperature: float, texts: list[str]
) -> dict[str, F64]:
    """The shippable per-event columns of one model (its own training-row statistics) for normalized texts."""
    h_fit, _ = hidden_and_logits(model, fit_texts)
    h, z = hidden_and_logits(model, texts)
    n_classes = len(model.classes)
    centroids = unit(np.stack([unit(h_fit)[y_fit == c].mean(axis=0) for c in range(n_classes)]))
    p = softmax(z / temperature)
    out = {
        "max_prob": 1.0 - p.max(axis=1),
        "energy": -logsumexp(z),
        "cosine": 1.0 - (unit(h) @ centroids.T).max(axis=1),
        "mahalanobis_32": Mahalanobis(h_fit, y_fit, n_classes, 32).score(h),
    }
    vocabulary = frozenset(model.unigram_vocabulary())
    feats = unknown.unknown_features(p, texts, vocabulary, _PROBABILITY_AND_TEXT)
    out.update({f"feature_{n}": feats[n] for n in _PROBABILITY_AND_TEXT[1:]})
    return out


def sibling_fit(
    fit_texts: list[str], fit_labels: list[str], val_texts: list[str], val_labels: list[str], seed: int
) -> tuple[dict[str, tuple[F64, F64, F64]], list[str], float]:
    """As the build fits its unknown score: a sibling trained without 9 more intents (routes.held_out_intents,
    the build's seed 0 + 2); known = its validation rows, never seen = every row of the 9. Returns per column set
    (weights on standardized columns, mean, scale), the 9 intents and the training seconds."""
    sib_out = set(routes.held_out_intents(sorted(set(fit_labels)), d.UNKNOWN_HOLDOUT_SHARE, 2))
    keep = [i for i, lab in enumerate(fit_labels) if lab not in sib_out]
    t0 = time.perf_counter()
    sib = train([fit_texts[i] for i in keep], [fit_labels[i] for i in keep], TrainParams())
    seconds = time.perf_counter() - t0
    index = {c: i for i, c in enumerate(sib.classes)}
    sib_fit_texts = [fit_texts[i] for i in keep]
    y_sib = np.asarray([index[fit_labels[i]] for i in keep])
    known = [t for t, lab in zip(val_texts, val_labels, strict=True) if lab not in sib_out]
    y_known = np.asarray([index[lab] for lab in val_labels if lab not in sib_out])
    never = [t for t, lab in zip(fit_texts + val_texts, fit_labels + val_labels, strict=True) if lab in sib_out]
    _, z_known = hidden_and_logits(sib, known)
    temperature = calibrate.fit_temperature(softmax(z_known).astype(np.float32), y_known)
    c_known = columns(sib, sib_fit_texts, y_sib, temperature, known)
    c_never = columns(sib, sib_fit_texts, y_sib, temperature, never)
    fits: dict[str, tuple[F64, F64, F64]] = {}
    for name, cols in SIBLING_SETS.items():
        x = np.r_[np.column_stack([c_known[c] for c in cols]), np.column_stack([c_never[c] for c in cols])]
        y = np.r_[np.zeros(len(known)), np.ones(len(never))]
        mu, sd = x.mean(axis=0), x.std(axis=0) + 1e-12
        clf = LogisticRegression(C=1.0, class_weight="balanced", max_iter=1000, random_state=seed).fit((x - mu) / sd, y)
        fits[name] = (clf.coef_[0], mu, sd)
    return fits, sorted(sib_out), seconds


def run(data: Path, test_path: Path, seed: int, n_unseen: int) -> dict[str, object]:
    train_set = load_labelled(data, "text", "category")
    test_set = load_labelled(test_path, "text", "category")
    classes = sorted(set(train_set.labels))
    rng = np.random.default_rng(10_000 + seed)  # evaluate-unknown's draw for this seed
    unseen = sorted(str(c) for c in rng.choice(np.array(classes, dtype=object), size=n_unseen, replace=False))
    left_out = set(unseen)
    keep = [i for i, lab in enumerate(train_set.labels) if lab not in left_out]
    texts = normalize_batch([train_set.texts[i] for i in keep])
    labels = [train_set.labels[i] for i in keep]
    fit_idx, val_idx = stratified_split(labels, 0.1, 1)  # the build's validation split (seed 0 + 1)
    fit_texts, fit_labels = take(texts, fit_idx), take(labels, fit_idx)
    t0 = time.perf_counter()
    model = train(fit_texts, fit_labels, TrainParams())
    seconds = time.perf_counter() - t0
    index = {c: i for i, c in enumerate(model.classes)}
    y_fit = np.asarray([index[lab] for lab in fit_labels])
    y_val = np.asarray([index[lab] for lab in take(labels, val_idx)])

    known_rows = [(t, lab) for t, lab in zip(test_set.texts, test_set.labels, strict=True) if lab not in left_out]
    unseen_rows = [(t, lab) for t, lab in zip(test_set.texts, test_set.labels, strict=True) if lab in left_out]
    h_fit, _ = hidden_and_logits(model, fit_texts)
    _, z_val = hidden_and_logits(model, take(texts, val_idx))
    h_k, z_k = hidden_and_logits(model, normalize_batch([t for t, _ in known_rows]))
    h_u, z_u = hidden_and_logits(model, normalize_batch([t for t, _ in unseen_rows]))
    temperature = calibrate.fit_temperature(softmax(z_val).astype(np.float32), y_val)
    y_k = np.asarray([index[lab] for _, lab in known_rows])
    right = (z_k.argmax(axis=1) == y_k).astype(np.float64)

    centroids = unit(np.stack([unit(h_fit)[y_fit == c].mean(axis=0) for c in range(len(model.classes))]))
    maha = {dims: Mahalanobis(h_fit, y_fit, len(model.classes), dims) for dims in (None, 64, 32)}
    scores: dict[str, tuple[F64, F64]] = {
        "max_prob": (
            1.0 - softmax(z_k / temperature).max(axis=1),
            1.0 - softmax(z_u / temperature).max(axis=1),
        ),
        "energy": (-logsumexp(z_k), -logsumexp(z_u)),
        "cosine": (1.0 - (unit(h_k) @ centroids.T).max(axis=1), 1.0 - (unit(h_u) @ centroids.T).max(axis=1)),
    }
    for dims, m in maha.items():
        scores[f"mahalanobis_{dims or h_fit.shape[1]}"] = (m.score(h_k), m.score(h_u))
    for k in (1, 10):
        scores[f"knn_{k}"] = (knn_score(h_fit, h_k, k), knn_score(h_fit, h_u, k))
    # The shipped score's features (pigeonhole.model.unknown), on the calibrated fp32 probabilities.
    vocabulary = frozenset(model.unigram_vocabulary())
    for side, z, rows in ((0, z_k, known_rows), (1, z_u, unseen_rows)):
        feats = unknown.unknown_features(
            softmax(z / temperature), normalize_batch([t for t, _ in rows]), vocabulary, _PROBABILITY_AND_TEXT
        )
        for name in _PROBABILITY_AND_TEXT[1:]:
            pair = scores.setdefault(f"feature_{name}", (np.empty(0), np.empty(0)))
            scores[f"feature_{name}"] = (feats[name], pair[1]) if side == 0 else (pair[0], feats[name])
    current = ["max_prob", *(f"feature_{n}" for n in _PROBABILITY_AND_TEXT[1:])]
    group = np.asarray([unseen.index(lab) % 2 for _, lab in unseen_rows])
    combos = {
        "combo_current_features": current,
        "combo_max_prob_cosine": ["max_prob", "cosine"],
        "combo_max_prob_mahalanobis_32": ["max_prob", "mahalanobis_32"],
        "combo_prob_energy_cosine_mahalanobis": ["max_prob", "energy", "cosine", f"mahalanobis_{h_fit.shape[1]}"],
        "combo_current_plus_hidden": [*current, "energy", "cosine", "mahalanobis_32"],
    }
    for name, cols in combos.items():
        scores[name] = cross_fitted_combo(
            np.column_stack([scores[n][0] for n in cols]), np.column_stack([scores[n][1] for n in cols]), group, seed
        )
    val_texts, val_labels = take(texts, val_idx), take(labels, val_idx)
    fits, sib_out, sib_seconds = sibling_fit(fit_texts, fit_labels, val_texts, val_labels, seed)
    main_k = columns(model, fit_texts, y_fit, temperature, normalize_batch([t for t, _ in known_rows]))
    main_u = columns(model, fit_texts, y_fit, temperature, normalize_batch([t for t, _ in unseen_rows]))
    for name, (w, mu, sd) in fits.items():
        cols = SIBLING_SETS[name]
        scores[f"sibling_fit_{name}"] = (
            ((np.column_stack([main_k[c] for c in cols]) - mu) / sd) @ w,
            ((np.column_stack([main_u[c] for c in cols]) - mu) / sd) @ w,
        )
    table: dict[str, object] = {}
    for name, (s_k, s_u) in scores.items():
        points = curve(right, s_k, s_u)
        table[name] = {"auroc": round(auroc(s_k, s_u), 4), **{f"recall@{a}": recall_at(points, a) for a in LEVELS}}
    return {
        "seed": seed,
        "unseen_intents": unseen,
        "n_known_test": len(known_rows),
        "n_unseen_test": len(unseen_rows),
        "known_accuracy_no_routing": float(right.mean()),
        "temperature": temperature,
        "training_seconds": round(seconds, 1),
        "sibling": {"left_out_intents": sib_out, "training_seconds": round(sib_seconds, 1)},
        "mahalanobis_shrinkage": {str(k): round(m.shrinkage, 4) for k, m in maha.items()},
        "scores": table,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/banking77/train.csv"))
    parser.add_argument("--eval-data", type=Path, default=Path("../shared/datasets/banking77/test.csv"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--unseen", type=int, default=10)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    result = run(args.data, args.eval_data, args.seed, args.unseen)
    text = json.dumps(result, indent=2)
    if args.out is not None:
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
