"""A small, fast run of the drift harness: real recorder, feedback and drift runs over moto, BANKING77 text.

The full measurement (hundreds of windows, the shipped model, a held-out model trained by the training
package) is `pigeonhole drift harness` and its numbers live in docs/drift-harness.md. Here a small
TF-IDF + logistic-regression (SGD) package is built in a fixture (a few seconds) without the held-out intents,
so one model serves every scenario and the test does not wait for a two-minute training run.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pigeonhole.model.features import NORMALIZATION, TOKEN_PATTERN, normalize_batch
from pigeonhole.model.manifest import (
    DataFingerprint,
    FileRef,
    InputField,
    InputSpec,
    Manifest,
    Thresholds,
)
from pigeonhole.model.runtime import ModelRuntime
from pigeonhole_tools.monitoring.harness import (
    HELDOUT_INTENTS,
    HarnessConfig,
    HarnessResult,
    detection,
    read_csv,
    recorded_verdicts,
    run_harness,
)

pytestmark = pytest.mark.slow


def _small_package(target: Path, data_dir: Path, leave_out: tuple[str, ...]) -> Path:
    """Word TF-IDF + logistic regression (SGD, a few epochs) on BANKING77 minus ``leave_out``, converted to
    ONNX, with a manifest whose drift baseline and per-class metrics are measured on the test split through
    the runtime."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import StringTensorType
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import SGDClassifier
    from sklearn.pipeline import Pipeline

    from pigeonhole_tools.training.baseline import drift_baseline

    train_texts, train_labels = read_csv(data_dir / "train.csv")
    test_texts, test_labels = read_csv(data_dir / "test.csv")
    keep = [i for i, label in enumerate(train_labels) if label not in leave_out]
    pipe = Pipeline(
        [
            ("tfidf", TfidfVectorizer(lowercase=False, token_pattern=TOKEN_PATTERN)),
            ("clf", SGDClassifier(loss="log_loss", alpha=2e-5, max_iter=8, tol=None, random_state=0)),
        ]
    )
    with warnings.catch_warnings():  # a few epochs are plenty for a test model
        warnings.simplefilter("ignore", ConvergenceWarning)
        pipe.fit(normalize_batch([train_texts[i] for i in keep]), [train_labels[i] for i in keep])
    classes = [str(c) for c in pipe.classes_]
    onx = convert_sklearn(
        pipe, initial_types=[("text", StringTensorType([None, 1]))], options={id(pipe.steps[-1][1]): {"zipmap": False}}
    )
    target.mkdir(parents=True, exist_ok=True)
    model_bytes = onx.SerializeToString()
    (target / "model.onnx").write_bytes(model_bytes)
    vocabulary = sorted(pipe.steps[0][1].vocabulary_)
    vocab_bytes = ("\n".join(vocabulary) + "\n").encode("utf-8")
    (target / "vocabulary.txt").write_bytes(vocab_bytes)

    def ref(name: str, data: bytes) -> FileRef:
        return FileRef(file=name, sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data))

    from pigeonhole.model.session import make_session, run_probabilities

    session = make_session(model_bytes)
    eval_rows = [i for i, label in enumerate(test_labels) if label not in leave_out]
    eval_texts = [test_texts[i] for i in eval_rows]
    probs = np.vstack([run_probabilities(session, eval_texts[i : i + 10]) for i in range(0, len(eval_texts), 10)])
    truth = np.array([classes.index(test_labels[i]) for i in eval_rows])
    pred = probs.argmax(axis=1)
    per_class = {}
    for k, name in enumerate(classes):
        predicted = int((pred == k).sum())
        per_class[name] = {
            "precision": float(((pred == k) & (truth == k)).sum() / predicted) if predicted else 0.0,
            "support": int((truth == k).sum()),
        }
    manifest = Manifest(
        name="banking77-small-lr",
        version="test-small",
        created_at="2026-11-29T00:00:00Z",
        model=ref("model.onnx", model_bytes),
        vocabulary=ref("vocabulary.txt", vocab_bytes),
        classes=classes,
        input=InputSpec(fields=[InputField(name="text")], normalization=NORMALIZATION),
        thresholds=Thresholds(review_confidence=0.3, top_k=3),
        drift_baseline=drift_baseline(normalize_batch(eval_texts), probs, frozenset(vocabulary), len(classes)),
        training_data=DataFingerprint(
            train_sha256="0" * 64,
            train_rows=len(keep),
            eval_sha256="0" * 64,
            eval_rows=len(eval_rows),
            text_column="text",
            label_column="category",
            source="BANKING77 (test fixture)",
        ),
        metrics={"int8": {"accuracy": float((pred == truth).mean()), "per_class": per_class}},
    )
    (target / "manifest.json").write_text(manifest.dump(), encoding="utf-8")
    ModelRuntime.load(target)  # the package verifies and loads
    return target


@pytest.fixture(scope="module")
def small_model(banking77_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _small_package(tmp_path_factory.mktemp("small-model"), banking77_dir, HELDOUT_INTENTS)


@pytest.fixture(scope="module")
def result(banking77_dir: Path, small_model: Path, tmp_path_factory: pytest.TempPathFactory) -> HarnessResult:
    model = small_model
    cfg = HarnessConfig(
        data_dir=banking77_dir,
        model_dir=model,
        heldout_model_dir=model,
        work_dir=tmp_path_factory.mktemp("harness"),
        seed=11,
        events_per_window=500,
        stationary_windows=0,
        repeats=1,
        warmup_windows=1,
        shift_windows=1,
        label_coverage=0.3,
        scenarios=("prior-30", "offdomain-50", "unseen-25", "concept-12"),
    )
    return run_harness(cfg)


SHIFTS = ["prior-30", "offdomain-50", "unseen-25", "concept-12"]


def test_stationary_windows_do_not_page(result: HarnessResult) -> None:
    """Each run starts with a stationary window (BANKING77 test distribution): none of them pages."""
    verdicts = recorded_verdicts(result.runs)
    for scenario in SHIFTS:
        d = detection(verdicts, result.runs, scenario)
        assert (d.pre_shift_windows, d.pre_shift_pages) == (1, 0)
        run = next(r for r in result.runs if r.scenario == scenario)
        assert run.windows[0].severity in ("ok", "warn")


@pytest.mark.parametrize("scenario", SHIFTS)
def test_every_shift_is_paged_in_its_first_window(result: HarnessResult, scenario: str) -> None:
    d = detection(recorded_verdicts(result.runs), result.runs, scenario)
    assert d.delays == [1]


def test_every_window_went_through_the_real_counters(result: HarnessResult) -> None:
    data: dict[str, Any] = result.to_dict()
    assert data["events"] == 500 * 4 * 2
    assert data["windows"] == 4 * 2
    for run in result.runs:
        for w in run.windows:
            assert w.counters.events == 500  # the window item read back from DynamoDB
            assert w.labelled in (w.counters.labelled, 0)
    statuses = data["label_statuses"]
    assert statuses["labelled"] > 0
    assert set(statuses) <= {"labelled", "unknown_label"}  # unseen intents are labels the model lacks
    unseen = next(s for s in data["scenarios"] if s["key"] == "unseen-25")
    assert max(unseen["population_psi"].values()) >= 0.25
    assert data["settings"][0]["name"] == "as deployed (run_drift)"


def test_fast_path_counts_what_the_classifier_service_counts(
    banking77_dir: Path, small_model: Path, tmp_path: Path
) -> None:
    """The shortcut (cached probabilities → routing → recorder) and the full path (SQS records through
    ClassifierService.classify_batch with ONNX per batch of 10, publishing to moto) give the same window."""
    counters = {}
    for mode in ("fast", "full"):
        cfg = HarnessConfig(
            data_dir=banking77_dir,
            model_dir=small_model,
            work_dir=tmp_path,
            seed=5,
            events_per_window=120,
            stationary_windows=1,
            label_coverage=0.5,
            mode=mode,
            scenarios=("stationary",),
        )
        counters[mode] = run_harness(cfg).runs[0].windows[0].counters
    fast, full = counters["fast"], counters["full"]
    assert full.events == fast.events == 120
    assert full.review == fast.review
    assert full.class_counts.tolist() == fast.class_counts.tolist()
    assert full.confidence_counts.tolist() == fast.confidence_counts.tolist()
    assert full.feature_counts.keys() == fast.feature_counts.keys()
    for name, values in full.feature_counts.items():
        assert values.tolist() == fast.feature_counts[name].tolist()
    assert full.confidence_sum == pytest.approx(fast.confidence_sum, abs=1e-3)
    assert full.labelled == fast.labelled > 0
    assert full.confusion.tolist() == fast.confusion.tolist()
