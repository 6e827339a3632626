"""The model recipe: word + char TF-IDF in a FeatureUnion, then a one-hidden-layer MLP.

Every choice here is constrained by what converts exactly to ONNX (see docs/model.md): no
`sublinear_tf`, no `char_wb`, `token_pattern=\\b\\w+\\b`, lower-casing done in Python by
`normalize_text` (so `lowercase=False`). The MLP is trained one epoch at a time with `partial_fit`
so progress can be shown, with our own seeded shuffle per epoch (scikit-learn re-seeds an integer
`random_state` on every `partial_fit` call, which would replay the same order each epoch).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import FeatureUnion

from pigeonhole.model.features import TOKEN_PATTERN
from pigeonhole_tools.training import defaults as d
from pigeonhole_tools.training import hidden as hidden_layer
from pigeonhole_tools.training.errors import DataError

EpochCallback = Callable[["EpochReport"], None]


@dataclass(frozen=True)
class TrainParams:
    """Hyper-parameters of the recipe; recorded verbatim in the manifest's build info."""

    hidden: int = d.HIDDEN
    layers: int = d.LAYERS
    epochs: int = d.EPOCHS
    batch_size: int = d.BATCH_SIZE
    alpha: float = d.ALPHA
    learning_rate: float = d.LEARNING_RATE
    seed: int = d.SEED
    word_ngrams: tuple[int, int] = d.WORD_NGRAMS
    char_ngrams: tuple[int, int] = d.CHAR_NGRAMS
    min_df: int = d.MIN_DF
    max_features: int | None = d.MAX_FEATURES  # per vectorizer: at most this many n-grams (capped_vocabulary)

    def as_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["word_ngrams"] = list(self.word_ngrams)
        d["char_ngrams"] = list(self.char_ngrams)
        return d


@dataclass(frozen=True)
class EpochReport:
    epoch: int
    epochs: int
    loss: float
    monitor_accuracy: float | None  # on the validation split, for information only (never used to select)
    seconds: float


@dataclass
class TrainedModel:
    """The fitted featurizer and classifier, kept apart so the MLP can be fed float32 features."""

    features: FeatureUnion
    mlp: MLPClassifier
    params: TrainParams
    seconds: float
    n_features: int
    rows: int
    history: list[EpochReport] = field(default_factory=list)
    hidden: hidden_layer.HiddenStats | None = None  # the unknown score's distance statistics, on the training rows

    @property
    def classes(self) -> list[str]:
        return [str(c) for c in self.mlp.classes_]

    @property
    def word_vectorizer(self) -> TfidfVectorizer:
        vec: TfidfVectorizer = self.features.transformer_list[0][1]
        return vec

    @property
    def char_vectorizer(self) -> TfidfVectorizer:
        vec: TfidfVectorizer = self.features.transformer_list[1][1]
        return vec

    def unigram_vocabulary(self) -> list[str]:
        """The word vectorizer's single-token terms, sorted: the runtime's out-of-vocabulary reference."""
        return sorted(term for term in self.word_vectorizer.vocabulary_ if " " not in term)

    def predict_proba(self, normalized_texts: Sequence[str]) -> np.ndarray:
        """scikit-learn's probabilities (the reference the ONNX graph must reproduce)."""
        x = self.features.transform(list(normalized_texts)).astype(np.float32)
        return np.asarray(self.mlp.predict_proba(x), dtype=np.float32)


def make_features(params: TrainParams, normalized_texts: Sequence[str] | None = None) -> FeatureUnion:
    """Word 1-2 grams + char 1-4 grams; both exactly convertible to ONNX's Tokenizer + TfIdfVectorizer.

    With `params.max_features` each vectorizer gets a fixed vocabulary chosen on `normalized_texts` by
    `capped_vocabulary` (not TfidfVectorizer's own `max_features`, see there). The int8 size is about
    features × hidden bytes, so this is the knob that keeps a noisy corpus inside the size budget.
    """
    word = TfidfVectorizer(
        lowercase=False, token_pattern=TOKEN_PATTERN, ngram_range=params.word_ngrams, min_df=params.min_df
    )
    char = TfidfVectorizer(lowercase=False, analyzer="char", ngram_range=params.char_ngrams, min_df=params.min_df)
    if params.max_features is not None:
        if normalized_texts is None:
            raise ValueError("a capped vocabulary is chosen on the training texts: pass them")
        for vec, length in ((word, _word_count), (char, len)):
            vocabulary = capped_vocabulary(vec, normalized_texts, params.max_features)
            # The ONNX TfIdfVectorizer refuses a max n-gram length its pool has no n-gram of; counting
            # n-grams the vocabulary lacks adds nothing, so the range ends at the longest one kept.
            longest = max((length(term) for term in vocabulary), default=vec.ngram_range[0])
            vec.set_params(vocabulary=vocabulary, ngram_range=(vec.ngram_range[0], min(vec.ngram_range[1], longest)))
    return FeatureUnion([("word", word), ("char", char)])


def _word_count(term: str) -> int:
    return len(term.split(" "))


def capped_vocabulary(vectorizer: TfidfVectorizer, normalized_texts: Sequence[str], limit: int) -> list[str]:
    """At most `limit` n-grams: every one seen at least c times in the corpus, c the smallest count that fits.

    Why not TfidfVectorizer(max_features=...): it keeps the top `limit` by count and breaks ties at the
    cut arbitrarily, so it can keep the bigram "on 0800…" and drop the word "0800…". The ONNX
    TfIdfVectorizer then never counts that bigram (measured on SMS spam: 38 of 1,000 rows' TF-IDF
    differed from scikit-learn's, against 24 uncapped). A count cut-off keeps ties together, and an
    n-gram is never more frequent than its parts, so every kept n-gram's words (or characters) are kept.
    """
    counter = CountVectorizer(
        lowercase=False,
        analyzer=vectorizer.analyzer,
        token_pattern=vectorizer.token_pattern,
        ngram_range=vectorizer.ngram_range,
        min_df=vectorizer.min_df,
    )
    counts = np.asarray(counter.fit_transform(list(normalized_texts)).sum(axis=0)).ravel()
    terms = counter.get_feature_names_out()
    if counts.size > limit:
        cutoff = np.sort(counts)[::-1][limit] + 1  # strictly above the (limit+1)-th largest count
        terms = terms[counts >= cutoff]
    if terms.size == 0:
        raise DataError(f"--max-features {limit} keeps no n-gram: the {limit + 1} most frequent ones tie")
    return [str(t) for t in terms]  # sorted, as scikit-learn sorts a fitted vocabulary


def mlp_settings(params: TrainParams) -> dict[str, object]:
    """The recipe's scikit-learn MLP arguments (shared with the distillation experiment's regressor)."""
    return {
        "hidden_layer_sizes": (params.hidden,) * params.layers,
        "alpha": params.alpha,
        "batch_size": params.batch_size,
        "learning_rate_init": params.learning_rate,
        "random_state": params.seed,
        "shuffle": False,  # we shuffle per epoch ourselves (see module docstring)
    }


def train(
    normalized_texts: Sequence[str],
    labels: Sequence[str],
    params: TrainParams,
    monitor: tuple[Sequence[str], Sequence[str]] | None = None,
    on_epoch: EpochCallback | None = None,
) -> TrainedModel:
    """Fit the featurizer once, then the MLP epoch by epoch; deterministic for a given seed."""
    started = time.perf_counter()
    features = make_features(params, normalized_texts)
    x = features.fit_transform(list(normalized_texts)).astype(np.float32)
    y = np.asarray(labels, dtype=object)
    classes = np.array(sorted(set(labels)), dtype=object)
    x_monitor = y_monitor = None
    if monitor is not None and len(monitor[0]):
        x_monitor = features.transform(list(monitor[0])).astype(np.float32)
        y_monitor = np.asarray(monitor[1], dtype=object)
    mlp = MLPClassifier(**mlp_settings(params))
    order_rng = np.random.default_rng(params.seed)
    history: list[EpochReport] = []
    for epoch in range(1, params.epochs + 1):
        t0 = time.perf_counter()
        order = order_rng.permutation(x.shape[0])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            mlp.partial_fit(x[order], y[order], classes=classes)
        accuracy = None
        if x_monitor is not None and y_monitor is not None:
            accuracy = float(np.mean(mlp.predict(x_monitor) == y_monitor))
        report = EpochReport(epoch, params.epochs, float(mlp.loss_), accuracy, time.perf_counter() - t0)
        history.append(report)
        if on_epoch is not None:
            on_epoch(report)
    return TrainedModel(
        features=features,
        mlp=mlp,
        params=params,
        seconds=time.perf_counter() - started,
        n_features=int(x.shape[1]),
        rows=int(x.shape[0]),
        history=history,
        hidden=hidden_layer.fit_model(mlp, x, y),
    )
