"""Experiment (issue 11, item 4): can an ensemble, or a student distilled from one, beat the recipe within budget?

Every model is the committed recipe (``train.train`` with ``TrainParams``; only ``hidden`` and ``seed``
change) trained on the build's fit rows of BANKING77 (the training file minus the build's 10 %
validation split, seed 0 + 1). All share one featurizer: ``train`` fits the same TF-IDF vocabulary on
the same rows every time (checked below), so only the MLPs differ. Evaluated in fp32 numpy on the
3,080 test rows (``hidden_ood_experiment.hidden_and_logits`` / ``softmax``; not the int8 graph):

- ``baseline_1x128_seed{s}``  one MLP of 128 hidden units, seeds 0..N-1 (``--seeds``, default 8: the
                              seed-to-seed spread, the yardstick for "pays");
- ``ensemble_KxH``            K MLPs of H hidden units (seeds 0..K-1), probabilities averaged; K·H = 128
                              has the baseline's int8 bytes (2 x 64, 4 x 32), 2 x 128 / 4 x 128 do not (each
                              row also lists its members' correct counts alone);
- ``student_1x128_T{t}``      an ``MLPRegressor`` (128 ReLU units, the recipe's alpha / learning rate /
                              batch / epochs, trained epoch by epoch like ``train``) regressing the
                              4 x 128 teacher's centred log averaged probabilities divided by t
                              (Ba & Caruana 2014 logit matching) on the fit rows' TF-IDF; its
                              probabilities are softmax(t · output); t in {1, 2}, and t = 1 with
                              twice the epochs (``--student``);
- ``word_only_1x128_seed{s}`` / ``char_only_1x128_seed{s}``  the recipe's MLP on ONE view of the featurizer:
                              the word 1-2 (or char 1-4) TF-IDF vectorizer alone, fitted on the same rows
                              (so the same vocabulary and idf as the baseline's half; checked);
- ``word_char_pair_seed{s}``  their probabilities averaged: two views, each member 128 units, the first-layer
                              weights of ONE 128-unit model on the union (``--word-char`` seeds, default 3);
- ``word_char_weighted_seed{s}``  the same pair weighted w : 1 - w, w in {1/3, 1/2, 2/3} chosen on the
                              validation rows only (most correct, then lowest NLL; never the test rows).

Per variant: accuracy, macro-F1, ECE (15 bins) / Brier / NLL before and after a temperature fitted on
the validation rows (``calibrate.fit_temperature``), training seconds (members summed; a student adds
its teacher's) and an int8 size estimate (``int8_size_estimate``). Fitted models are cached with joblib
under ``--cache`` (default in /tmp) so a re-run does not retrain; results are rewritten to ``--out``
after each variant. Run: ``python -m pigeonhole_tools.training.ensemble_experiment --out ens.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import cast

import joblib  # type: ignore[import-untyped]
import numpy as np
from numpy.typing import NDArray
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import FeatureUnion

from pigeonhole.model.features import normalize_batch
from pigeonhole_tools.training import calibrate
from pigeonhole_tools.training import defaults as d
from pigeonhole_tools.training.data import load_labelled, stratified_split, take
from pigeonhole_tools.training.evaluate import classification_metrics
from pigeonhole_tools.training.hidden_ood_experiment import hidden_and_logits, softmax
from pigeonhole_tools.training.train import TrainedModel, TrainParams, make_features, mlp_settings, train

F64 = NDArray[np.float64]

# The committed package (layers/model): int8 model.onnx bytes, TF-IDF features, hidden units, classes.
# Its bytes per weight (first + output layer weights; the vocabulary strings and biases ride along) scale
# the estimate; tests/unit/test_training_ensemble_experiment.py checks these against the package.
COMMITTED_INT8_BYTES = 6_141_548
COMMITTED_FEATURES = 40_235
COMMITTED_HIDDEN = 128
N_CLASSES = 77


def int8_size_estimate(n_features: int, hidden_total: int, n_classes: int = N_CLASSES) -> int:
    """Bytes of an int8 graph whose first layer is n_features x hidden_total and output hidden_total x classes.

    An estimate, not a measurement: the committed package's measured bytes per such weight times the count.
    """
    per_weight = COMMITTED_INT8_BYTES / (COMMITTED_FEATURES * COMMITTED_HIDDEN + COMMITTED_HIDDEN * N_CLASSES)
    return round(per_weight * (n_features * hidden_total + hidden_total * n_classes))


def average_probabilities(members: Sequence[F64]) -> F64:
    """The ensemble's probabilities: the plain mean of its members' probability matrices."""
    out: F64 = np.mean(np.stack(members), axis=0)
    return out


def logit_targets(averaged: F64, temperature: float = 1.0) -> F64:
    """The student's regression target: log of the averaged probabilities, centred per row, divided by T.

    Centring removes the per-row constant that softmax ignores (the logits are only defined up to it).
    """
    z = calibrate.log_probabilities(averaged)
    out: F64 = (z - z.mean(axis=1, keepdims=True)) / temperature
    return out


def train_student(x: object, targets: F64, params: TrainParams) -> MLPRegressor:
    """An MLPRegressor with the recipe's settings, one partial_fit per epoch on train's seeded shuffle."""
    reg = MLPRegressor(**mlp_settings(params))
    order_rng = np.random.default_rng(params.seed)
    rows = targets.shape[0]
    for _ in range(params.epochs):
        order = order_rng.permutation(rows)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            reg.partial_fit(x[order], targets[order])  # type: ignore[index]
    return reg


def as_model(base: TrainedModel, student: MLPRegressor, seconds: float) -> TrainedModel:
    """The student behind the base model's featurizer, so ``hidden_and_logits`` (which reads only
    ``coefs_`` / ``intercepts_``, attributes both MLP kinds share) computes its outputs."""
    return replace(base, mlp=cast(MLPClassifier, student), seconds=seconds, history=[], hidden=None)


VIEWS = ("word", "char")
PAIR_WEIGHTS = (1 / 3, 1 / 2, 2 / 3)


def view_features(params: TrainParams, view: str, normalized_texts: Sequence[str]) -> FeatureUnion:
    """The recipe's featurizer keeping only one view ("word" or "char"): the member sees nothing of the other."""
    union = make_features(params, normalized_texts)
    kept = [(name, vec) for name, vec in union.transformer_list if name == view]
    if not kept:
        raise ValueError(f"no view {view!r}: the recipe has {[name for name, _ in union.transformer_list]}")
    return FeatureUnion(kept)


def fit_mlp(x: object, labels: Sequence[str], params: TrainParams) -> MLPClassifier:
    """``train``'s MLP loop (same settings, classes, seeded per-epoch shuffle) on a given feature matrix."""
    y = np.asarray(labels, dtype=object)
    classes = np.array(sorted(set(labels)), dtype=object)
    mlp = MLPClassifier(**mlp_settings(params))
    order_rng = np.random.default_rng(params.seed)
    for _ in range(params.epochs):
        order = order_rng.permutation(y.size)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            mlp.partial_fit(x[order], y[order], classes=classes)  # type: ignore[index]
    return mlp


def train_view(normalized_texts: Sequence[str], labels: Sequence[str], params: TrainParams, view: str) -> TrainedModel:
    """The recipe on one view; a TrainedModel whose ``features`` has that vectorizer only (no hidden stats)."""
    started = time.perf_counter()
    features = view_features(params, view, normalized_texts)
    x = features.fit_transform(list(normalized_texts)).astype(np.float32)
    mlp = fit_mlp(x, labels, params)
    return TrainedModel(features, mlp, params, time.perf_counter() - started, int(x.shape[1]), int(x.shape[0]))


def weighted_average(first: F64, second: F64, weight: float) -> F64:
    """weight · first + (1 - weight) · second (weight 1/2 is ``average_probabilities``)."""
    out: F64 = weight * first + (1.0 - weight) * second
    return out


def choose_weight(first: F64, second: F64, y: NDArray[np.int64], weights: Sequence[float] = PAIR_WEIGHTS) -> float:
    """The weight with the most correct rows, then the lowest NLL, on the rows given (the validation rows)."""

    def score(w: float) -> tuple[int, float]:
        p = weighted_average(first, second, w)
        return int((p.argmax(axis=1) == y).sum()), -calibrate.quality(p, y)["nll"]

    return max(weights, key=score)


@dataclass
class Split:
    fit_texts: list[str]
    fit_labels: list[str]
    val_texts: list[str]
    val_labels: list[str]
    test_texts: list[str]
    test_labels: list[str]

    def digest(self) -> str:
        h = hashlib.sha256()
        for part in (self.fit_texts, self.fit_labels):
            h.update("\x00".join(part).encode())
        return h.hexdigest()[:12]


def load_split(data: Path, test_path: Path) -> Split:
    """The build's rows: validation = stratified_split(fraction 0.1, seed 0 + 1) of the training file."""
    train_set = load_labelled(data, "text", "category")
    test_set = load_labelled(test_path, "text", "category")
    texts = normalize_batch(train_set.texts)
    fit_idx, val_idx = stratified_split(train_set.labels, d.VALIDATION_FRACTION, d.SEED + 1)
    return Split(
        take(texts, fit_idx),
        take(train_set.labels, fit_idx),
        take(texts, val_idx),
        take(train_set.labels, val_idx),
        normalize_batch(test_set.texts),
        test_set.labels,
    )


class Cache:
    """Fitted models pickled by joblib under one directory (in /tmp, never in the repository)."""

    def __init__(self, root: Path, digest: str) -> None:
        self.root = root / digest
        self.root.mkdir(parents=True, exist_ok=True)

    def get(self, name: str, make: Callable[[], object]) -> object:
        path = self.root / f"{name}.joblib"
        if path.exists():
            return joblib.load(path)
        value = make()
        joblib.dump(value, path)
        return value


def member(cache: Cache, split: Split, hidden: int, seed: int) -> TrainedModel:
    params = TrainParams(hidden=hidden, seed=seed)
    print(f"[ensemble] member hidden={hidden} seed={seed}", flush=True)
    model = cache.get(f"mlp_h{hidden}_s{seed}", lambda: train(split.fit_texts, split.fit_labels, params))
    return cast(TrainedModel, model)


def same_featurizer(a: TrainedModel, b: TrainedModel) -> bool:
    return bool(
        a.word_vectorizer.vocabulary_ == b.word_vectorizer.vocabulary_
        and a.char_vectorizer.vocabulary_ == b.char_vectorizer.vocabulary_
    )


def evaluate(
    p_val: F64, p_test: F64, y_val: NDArray[np.int64], y_test: NDArray[np.int64], classes: list[str]
) -> dict[str, object]:
    """Test quality before and after the temperature fitted on the validation rows' probabilities."""
    temperature = calibrate.fit_temperature(p_val, y_val)
    metrics = classification_metrics(p_test, y_test, classes)
    return {
        "accuracy": round(cast(float, metrics["accuracy"]), 4),
        "macro_f1": round(cast(float, metrics["macro_f1"]), 4),
        "correct": int((p_test.argmax(axis=1) == y_test).sum()),
        "temperature": temperature,
        "before": calibrate.quality(p_test, y_test),
        "after": calibrate.quality(calibrate.apply_temperature(p_test, temperature), y_test),
    }


class Experiment:
    """The members' validation / test probabilities (computed once each) and the results, saved as they come."""

    def __init__(self, split: Split, cache: Cache, out: Path | None) -> None:
        self.split, self.cache, self.out = split, cache, out
        self.base = member(cache, split, 128, 0)
        index = {c: i for i, c in enumerate(self.base.classes)}
        self.y_val = np.asarray([index[lab] for lab in split.val_labels])
        self.y_test = np.asarray([index[lab] for lab in split.test_labels])
        self.variants: dict[str, dict[str, object]] = {}
        self.results: dict[str, object] = {
            "rows": {"fit": len(split.fit_texts), "validation": len(split.val_texts), "test": len(split.test_texts)},
            "n_features": self.base.n_features,
            "note": "fp32 in numpy (scikit-learn weights), not the int8 graph; int8 sizes are estimates",
            "variants": self.variants,
        }
        self.probs: dict[tuple[int, int], tuple[F64, F64]] = {}
        self.seconds: dict[tuple[int, int], float] = {}

    def save(self) -> None:
        if self.out is not None:
            self.out.write_text(json.dumps(self.results, indent=2) + "\n", encoding="utf-8")

    def probabilities(self, hidden: int, seed: int) -> tuple[F64, F64]:
        if (hidden, seed) not in self.probs:
            model = member(self.cache, self.split, hidden, seed)
            if not same_featurizer(model, self.base):
                raise RuntimeError(f"hidden={hidden} seed={seed} fitted another featurizer: not comparable")
            p_val, p_test = (
                softmax(hidden_and_logits(model, t)[1]) for t in (self.split.val_texts, self.split.test_texts)
            )
            self.probs[hidden, seed] = (p_val, p_test)
            self.seconds[hidden, seed] = model.seconds
        return self.probs[hidden, seed]

    def record(
        self, name: str, p_val: F64, p_test: F64, train_seconds: float, hidden_total: int, size: int | None = None
    ) -> None:
        row = evaluate(p_val, p_test, self.y_val, self.y_test, self.base.classes)
        if size is None:
            size = int8_size_estimate(self.base.n_features, hidden_total, len(self.base.classes))
        row.update({"training_seconds": round(train_seconds, 1), "int8_mb_estimate": round(size / 1e6, 2)})
        self.variants[name] = row
        print(f"[ensemble] {name}: acc {row['accuracy']} ({row['correct']}), T {row['temperature']}", flush=True)
        self.save()

    def single(self, seed: int) -> None:
        self.record(f"baseline_1x128_seed{seed}", *self.probabilities(128, seed), self.seconds[128, seed], 128)

    def ensemble(self, k: int, hidden: int) -> None:
        members = [self.probabilities(hidden, s) for s in range(k)]
        p_val = average_probabilities([m[0] for m in members])
        p_test = average_probabilities([m[1] for m in members])
        seconds = sum(self.seconds[hidden, s] for s in range(k))
        self.record(f"ensemble_{k}x{hidden}", p_val, p_test, seconds, k * hidden)
        # Each member alone, to tell the gain of averaging from the luck of the seeds.
        self.variants[f"ensemble_{k}x{hidden}"]["members_correct"] = [
            int((m[1].argmax(axis=1) == self.y_test).sum()) for m in members
        ]
        self.save()

    def students(self, settings: Sequence[tuple[float, int]]) -> None:
        """Students of the 4 x 128 average, one per (target temperature, epochs) (cached like the members)."""
        split, base = self.split, self.base
        teacher = [member(self.cache, split, 128, s) for s in range(4)]
        x_fit = base.features.transform(split.fit_texts).astype(np.float32)
        p_fit = average_probabilities([softmax(hidden_and_logits(m, split.fit_texts)[1]) for m in teacher])
        teacher_seconds = sum(m.seconds for m in teacher)
        for t, epochs in settings:
            suffix = f"T{t:g}" if epochs == d.EPOCHS else f"T{t:g}_{epochs}epochs"
            print(f"[ensemble] student {suffix}", flush=True)

            def fit(t: float = t, epochs: int = epochs) -> tuple[MLPRegressor, float]:
                t0 = time.perf_counter()
                reg = train_student(x_fit, logit_targets(p_fit, t), TrainParams(epochs=epochs))
                return reg, time.perf_counter() - t0

            reg, s = cast(tuple[MLPRegressor, float], self.cache.get(f"student_h128_s0_{suffix}", fit))
            student = as_model(base, reg, s)
            p_val, p_test = (softmax(t * hidden_and_logits(student, x)[1]) for x in (split.val_texts, split.test_texts))
            self.record(f"student_1x128_{suffix}", p_val, p_test, teacher_seconds + s, 128)

    def view_probabilities(self, view: str, seed: int) -> tuple[F64, F64, TrainedModel]:
        """One view's 128-unit member (cached), its validation / test probabilities and the model."""
        params = TrainParams(seed=seed)
        print(f"[ensemble] {view}-only hidden=128 seed={seed}", flush=True)
        split = self.split
        model = cast(
            TrainedModel,
            self.cache.get(
                f"mlp_{view}_h128_s{seed}", lambda: train_view(split.fit_texts, split.fit_labels, params, view)
            ),
        )
        ours = model.features.transformer_list[0][1].vocabulary_
        theirs = dict(self.base.features.transformer_list)[view].vocabulary_
        if ours != theirs or model.classes != self.base.classes:
            raise RuntimeError(f"{view}-only seed={seed} fitted another vocabulary than the baseline's: not comparable")
        p_val, p_test = (softmax(hidden_and_logits(model, t)[1]) for t in (split.val_texts, split.test_texts))
        return p_val, p_test, model

    def word_char(self, seed: int) -> None:
        """A word-only and a char-only member (seed ``seed`` each), alone, averaged and validation-weighted."""
        (wv, wt, word), (cv, ct, char) = (self.view_probabilities(v, seed) for v in VIEWS)
        classes = len(self.base.classes)
        sizes = {v: int8_size_estimate(m.n_features, 128, classes) for v, m in (("word", word), ("char", char))}
        self.record(f"word_only_1x128_seed{seed}", wv, wt, word.seconds, 128, sizes["word"])
        self.record(f"char_only_1x128_seed{seed}", cv, ct, char.seconds, 128, sizes["char"])
        seconds, size = word.seconds + char.seconds, sizes["word"] + sizes["char"]
        pair = f"word_char_pair_seed{seed}"
        self.record(pair, average_probabilities([wv, cv]), average_probabilities([wt, ct]), seconds, 256, size)
        w = choose_weight(wv, cv, self.y_val)
        name = f"word_char_weighted_seed{seed}"
        self.record(name, weighted_average(wv, cv, w), weighted_average(wt, ct, w), seconds, 256, size)
        self.variants[name]["word_weight"] = round(w, 4)
        self.variants[pair]["n_features"] = {"word": word.n_features, "char": char.n_features}
        self.variants[pair]["members_correct"] = [int((p.argmax(axis=1) == self.y_test).sum()) for p in (wt, ct)]
        self.save()

    def word_char_spread(self, seeds: int) -> None:
        """The pair's mean over its seeds against the baseline's, and seed by seed against the same seed."""
        pairs = [self.variants[f"word_char_pair_seed{s}"] for s in range(seeds)]
        for s in range(seeds):
            if f"baseline_1x128_seed{s}" not in self.variants:
                self.single(s)
        bases = [self.variants[f"baseline_1x128_seed{s}"] for s in range(seeds)]
        accs = [cast(float, r["accuracy"]) for r in pairs]
        self.results["word_char_over_seeds"] = {
            "seeds": seeds,
            "accuracy_mean": round(float(np.mean(accs)), 4),
            "accuracy_sd": round(float(np.std(accs, ddof=1)), 4) if seeds > 1 else None,
            "correct": [r["correct"] for r in pairs],
            "minus_baseline_same_seed": [
                cast(int, p["correct"]) - cast(int, b["correct"]) for p, b in zip(pairs, bases, strict=True)
            ],
        }
        self.save()

    def seed_spread(self, seeds: int) -> None:
        for seed in range(seeds):
            if f"baseline_1x128_seed{seed}" not in self.variants:
                self.single(seed)
        rows = [self.variants[f"baseline_1x128_seed{s}"] for s in range(seeds)]
        accs = [cast(float, r["accuracy"]) for r in rows]
        self.results["baseline_over_seeds"] = {
            "seeds": seeds,
            "accuracy_mean": round(float(np.mean(accs)), 4),
            "accuracy_sd": round(float(np.std(accs, ddof=1)), 4),
            "correct": [r["correct"] for r in rows],
        }
        self.save()


def run(
    data: Path,
    test_path: Path,
    cache_root: Path,
    out: Path | None,
    small: bool,
    students: Sequence[tuple[float, int]],
    seeds: int,
    word_char_seeds: int = 0,
) -> dict[str, object]:
    """Every variant, cheapest-to-most-informative first, so an interrupted run still leaves results."""
    split = load_split(data, test_path)
    exp = Experiment(split, Cache(cache_root, split.digest()), out)
    exp.single(0)
    exp.single(1)
    exp.ensemble(2, 64)
    exp.single(2)
    exp.ensemble(2, 128)
    exp.single(3)
    exp.ensemble(4, 128)
    if students:
        exp.students(students)
    if small:
        exp.ensemble(4, 32)
    for seed in range(word_char_seeds):
        exp.word_char(seed)
    if word_char_seeds:
        exp.word_char_spread(word_char_seeds)
    exp.seed_spread(seeds)
    return exp.results


def student_setting(text: str) -> tuple[float, int]:
    """``T`` or ``T:EPOCHS`` (epochs default to the recipe's)."""
    t, _, epochs = text.partition(":")
    return float(t), int(epochs) if epochs else d.EPOCHS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/banking77/train.csv"))
    parser.add_argument("--eval-data", type=Path, default=Path("../shared/datasets/banking77/test.csv"))
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "pigeonhole-ensemble-cache")
    parser.add_argument("--no-4x32", dest="small", action="store_false", help="skip the 4 x 32 ensemble")
    parser.add_argument(
        "--student",
        type=student_setting,
        nargs="*",
        default=[(1.0, d.EPOCHS), (2.0, d.EPOCHS), (1.0, 2 * d.EPOCHS)],
        help="students as T or T:EPOCHS (default: 1 2 1:16)",
    )
    parser.add_argument("--seeds", type=int, default=8, help="baseline seeds 0..N-1 for the seed-to-seed spread")
    parser.add_argument("--word-char", type=int, default=3, help="word-only + char-only pairs, seeds 0..N-1")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    result = run(args.data, args.eval_data, args.cache, args.out, args.small, args.student, args.seeds, args.word_char)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
