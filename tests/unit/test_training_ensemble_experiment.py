"""The ensemble / distillation experiment computes what docs/model.md says it computes."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from pigeonhole.model.features import normalize_batch
from pigeonhole_tools.training import ensemble_experiment as exp
from pigeonhole_tools.training.build import BuildOptions, make_splits
from pigeonhole_tools.training.hidden_ood_experiment import hidden_and_logits, softmax
from pigeonhole_tools.training.progress import Reporter
from pigeonhole_tools.training.train import TrainedModel, TrainParams, train

from .conftest import INTENT_LABELS as LABELS
from .conftest import INTENT_TEXTS as TEXTS

PACKAGE = Path(__file__).resolve().parents[2] / "layers" / "model"
PARAMS = TrainParams(hidden=8, epochs=30, batch_size=16, seed=1)
STUDENT = TrainParams(hidden=16, epochs=60, batch_size=16, seed=1)  # regression needs more steps than 30


@pytest.fixture(scope="module")
def members(intent_model: TrainedModel) -> list[TrainedModel]:
    """The shared tiny model (seed 0) and the same recipe with seed 1."""
    return [intent_model, train(normalize_batch(TEXTS), LABELS, PARAMS)]


def test_the_ensemble_probability_is_the_mean_of_its_members_predict_proba(members: list[TrainedModel]) -> None:
    texts = normalize_batch(["where is my card", "rate for yen", "my top up failed", "something else entirely"])
    assert exp.same_featurizer(*members)  # one featurizer: only the MLPs differ
    ours = [softmax(hidden_and_logits(m, texts)[1]) for m in members]
    averaged = exp.average_probabilities(ours)
    reference = (members[0].predict_proba(texts) + members[1].predict_proba(texts)) / 2
    np.testing.assert_allclose(averaged, reference, atol=1e-5)
    np.testing.assert_allclose(averaged.sum(axis=1), 1.0, rtol=1e-9)
    assert not np.allclose(ours[0], ours[1], atol=1e-3)  # two seeds: two different members, a real average


def test_the_student_targets_are_the_centred_log_of_the_averaged_probabilities() -> None:
    p = exp.average_probabilities(
        [np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]), np.array([[0.5, 0.4, 0.1], [0.3, 0.3, 0.4]])]
    )
    np.testing.assert_allclose(p, [[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]])
    z = exp.logit_targets(p)
    expected = np.log(p) - np.log(p).mean(axis=1, keepdims=True)
    np.testing.assert_allclose(z, expected, rtol=1e-12)
    np.testing.assert_allclose(z.sum(axis=1), 0.0, atol=1e-12)  # centred per row
    np.testing.assert_allclose(softmax(z), p, rtol=1e-12)  # softmax of the target gives the teacher back
    np.testing.assert_allclose(exp.logit_targets(p, 2.0), z / 2, rtol=1e-12)
    np.testing.assert_allclose(softmax(2.0 * exp.logit_targets(p, 2.0)), p, rtol=1e-12)  # what the student uses


def test_a_student_regressing_the_teacher_logits_learns_the_teachers_labels(members: list[TrainedModel]) -> None:
    texts = normalize_batch(TEXTS)
    x = members[0].features.transform(texts).astype(np.float32)
    p = exp.average_probabilities([softmax(hidden_and_logits(m, texts)[1]) for m in members])
    reg = exp.train_student(x, exp.logit_targets(p), STUDENT)
    again = exp.train_student(x, exp.logit_targets(p), STUDENT)
    np.testing.assert_array_equal(reg.coefs_[0], again.coefs_[0])  # seeded: a re-run trains the same student
    student = exp.as_model(members[0], reg, 0.0)
    _, z = hidden_and_logits(student, texts)
    np.testing.assert_allclose(z, reg.predict(x), atol=1e-4)  # the numpy forward pass is the regressor's
    assert (z.argmax(axis=1) == p.argmax(axis=1)).mean() >= 0.95


def test_the_size_estimate_scales_the_committed_packages_bytes_per_weight() -> None:
    committed = exp.int8_size_estimate(exp.COMMITTED_FEATURES, exp.COMMITTED_HIDDEN)
    assert committed == exp.COMMITTED_INT8_BYTES
    per_weight = exp.COMMITTED_INT8_BYTES / (40_235 * 128 + 128 * 77)
    assert exp.int8_size_estimate(38_435, 128) == round(per_weight * (38_435 * 128 + 128 * 77))
    # Same total hidden units, same bytes: 2 x 64 and 4 x 32 cost what 1 x 128 costs; 2 x 128 twice that.
    assert exp.int8_size_estimate(38_435, 2 * 64) == exp.int8_size_estimate(38_435, 128)
    assert exp.int8_size_estimate(38_435, 256) == pytest.approx(2 * exp.int8_size_estimate(38_435, 128), abs=1)
    assert exp.int8_size_estimate(38_435, 128) < 10e6 < exp.int8_size_estimate(38_435, 256)


def test_the_size_constants_describe_the_committed_package() -> None:
    """Within 10 % per weight: a rebuilt package moves the bytes a little; another recipe would move them a lot."""
    manifest = json.loads((PACKAGE / "manifest.json").read_text(encoding="utf-8"))
    parameters = manifest["build"]["parameters"]
    weights = parameters["n_features"] * parameters["hidden"] + parameters["hidden"] * len(manifest["classes"])
    measured = (PACKAGE / "model.onnx").stat().st_size / weights
    ours = exp.COMMITTED_INT8_BYTES / (exp.COMMITTED_FEATURES * exp.COMMITTED_HIDDEN + exp.COMMITTED_HIDDEN * 77)
    assert parameters["layers"] == 1
    assert measured == pytest.approx(ours, rel=0.10)


def test_the_split_is_the_builds(tmp_path: Path) -> None:
    labels = [f"intent{i % 7}" for i in range(140)]
    texts = [f"Row {i} About {lab}!" for i, lab in enumerate(labels)]
    for name in ("train", "test"):
        with (tmp_path / f"{name}.csv").open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["text", "category"])
            writer.writerows(zip(texts, labels, strict=True))
    ours = exp.load_split(tmp_path / "train.csv", tmp_path / "test.csv")
    opts = BuildOptions(
        data=tmp_path / "train.csv", name="x", version="0.0.1", out=tmp_path / "out", eval_data=tmp_path / "test.csv"
    )
    build = make_splits(opts, Reporter(Console(file=io.StringIO())))
    assert ours.fit_texts == build.train_texts
    assert ours.fit_labels == build.train_labels
    assert ours.val_texts == normalize_batch(build.validation_texts)
    assert ours.val_labels == build.validation_labels
    assert len(ours.val_texts) == 14  # 10 % of 140, stratified
    assert ours.test_texts == normalize_batch(texts)


@pytest.fixture(scope="module")
def views(intent_model: TrainedModel) -> dict[str, TrainedModel]:
    """A word-only and a char-only member with the shared tiny model's recipe (only the view differs)."""
    texts = normalize_batch(TEXTS)
    return {v: exp.train_view(texts, LABELS, intent_model.params, v) for v in exp.VIEWS}


def test_the_word_and_char_members_see_only_their_view(
    intent_model: TrainedModel, views: dict[str, TrainedModel]
) -> None:
    word, char = views["word"], views["char"]
    assert [name for name, _ in word.features.transformer_list] == ["word"]
    assert [name for name, _ in char.features.transformer_list] == ["char"]
    # Each view's vocabulary is the full recipe's half for that view, and the halves split its features.
    assert word.features.transformer_list[0][1].vocabulary_ == intent_model.word_vectorizer.vocabulary_
    assert char.features.transformer_list[0][1].vocabulary_ == intent_model.char_vectorizer.vocabulary_
    assert word.n_features + char.n_features == intent_model.n_features
    assert not any(t != t.strip() for t in word.features.transformer_list[0][1].vocabulary_)  # no " c" char grams
    assert any(t != t.strip() for t in char.features.transformer_list[0][1].vocabulary_)
    texts = normalize_batch(["where is my card", "where is my card banana", "rate for yen"])
    full = intent_model.features.transform(texts).toarray()
    np.testing.assert_allclose(word.features.transform(texts).toarray(), full[:, : word.n_features])
    np.testing.assert_allclose(char.features.transform(texts).toarray(), full[:, word.n_features :])
    # "banana" is no word it knows, but its letters are known n-grams: only the char-only member sees it.
    assert "banana" not in str(word.features.transformer_list[0][1].vocabulary_)
    assert {"an", " b", "a"} <= set(char.features.transformer_list[0][1].vocabulary_)
    p_word, p_char = word.predict_proba(texts), char.predict_proba(texts)
    np.testing.assert_array_equal(p_word[0], p_word[1])
    assert not np.allclose(p_char[0], p_char[1], atol=1e-6)


def test_fit_mlp_is_the_recipes_mlp_loop(intent_model: TrainedModel) -> None:
    x = intent_model.features.transform(normalize_batch(TEXTS)).astype(np.float32)
    mlp = exp.fit_mlp(x, LABELS, intent_model.params)
    for ours, theirs in zip(mlp.coefs_, intent_model.mlp.coefs_, strict=True):
        np.testing.assert_array_equal(ours, theirs)  # the same weights train() fitted: a fair comparison


def test_the_pair_is_the_mean_of_the_word_and_char_members(views: dict[str, TrainedModel]) -> None:
    texts = normalize_batch(["where is my card", "rate for yen", "my top up failed", "something else entirely"])
    p_word, p_char = (softmax(hidden_and_logits(views[v], texts)[1]) for v in exp.VIEWS)
    reference = [views[v].predict_proba(texts) for v in exp.VIEWS]
    np.testing.assert_allclose(p_word, reference[0], atol=1e-5)  # numpy forward pass = scikit-learn's
    pair = exp.average_probabilities([p_word, p_char])
    np.testing.assert_allclose(pair, (reference[0] + reference[1]) / 2, atol=1e-5)
    np.testing.assert_allclose(exp.weighted_average(p_word, p_char, 0.5), pair, rtol=1e-12)
    np.testing.assert_allclose(exp.weighted_average(p_word, p_char, 2 / 3), (2 * p_word + p_char) / 3, rtol=1e-12)
    assert not np.allclose(p_word, p_char, atol=1e-3)  # two views: two different members


def test_the_pair_weight_is_chosen_on_the_rows_given() -> None:
    right, wrong = np.array([[0.8, 0.2]] * 3), np.array([[0.3, 0.7]] * 3)
    y = np.zeros(3, dtype=np.int64)
    assert exp.choose_weight(right, wrong, y) == pytest.approx(2 / 3)  # 1/3 gets all wrong; 2/3 has lower NLL
    assert exp.choose_weight(wrong, right, y) == pytest.approx(1 / 3)
    twin = np.array([[0.9, 0.1], [0.4, 0.6]]), np.array([[0.4, 0.6], [0.9, 0.1]])
    assert exp.choose_weight(*twin, np.zeros(2, dtype=np.int64)) == pytest.approx(1 / 2)  # symmetric: equal


def test_student_settings_parse_temperature_and_epochs() -> None:
    assert exp.student_setting("2") == (2.0, 8)
    assert exp.student_setting("1:16") == (1.0, 16)


def test_a_run_records_every_variant_and_a_cached_rerun_gives_the_same_numbers(tmp_path: Path) -> None:
    for name, rows in (
        ("train", zip(TEXTS * 2, LABELS * 2, strict=True)),
        ("test", zip(TEXTS[:9], LABELS[:9], strict=True)),
    ):
        with (tmp_path / f"{name}.csv").open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["text", "category"])
            writer.writerows(rows)
    args = (tmp_path / "train.csv", tmp_path / "test.csv", tmp_path / "cache", tmp_path / "out.json", True)
    first = exp.run(*args, [(1.0, 2)], 4, 2)
    variants = first["variants"]
    assert isinstance(variants, dict)
    assert set(variants) == {
        *(f"baseline_1x128_seed{s}" for s in range(4)),
        "ensemble_2x64",
        "ensemble_2x128",
        "ensemble_4x128",
        "ensemble_4x32",
        "student_1x128_T1_2epochs",
        *(f"{kind}_seed{s}" for kind in ("word_only_1x128", "char_only_1x128") for s in range(2)),
        *(f"word_char_{kind}_seed{s}" for kind in ("pair", "weighted") for s in range(2)),
    }
    for row in variants.values():
        assert row["correct"] == round(row["accuracy"] * 9)
        assert row["before"]["accuracy"] == row["after"]["accuracy"]  # a temperature never changes the label
    assert len(variants["ensemble_4x32"]["members_correct"]) == 4
    assert variants["ensemble_2x128"]["int8_mb_estimate"] > variants["ensemble_2x64"]["int8_mb_estimate"]
    pair = variants["word_char_pair_seed0"]
    assert sum(pair["n_features"].values()) == first["n_features"]  # the two views split the union's features
    assert pair["int8_mb_estimate"] == pytest.approx(variants["baseline_1x128_seed0"]["int8_mb_estimate"], abs=0.02)
    assert variants["word_char_weighted_seed0"]["word_weight"] in (0.3333, 0.5, 0.6667)
    spread = first["word_char_over_seeds"]
    assert isinstance(spread, dict)
    assert spread["correct"] == [variants[f"word_char_pair_seed{s}"]["correct"] for s in range(2)]
    assert json.loads((tmp_path / "out.json").read_text(encoding="utf-8")) == first
    cached = sorted(p.name for p in (tmp_path / "cache").glob("*/*.joblib"))
    assert len(cached) == 4 + 2 + 4 + 1 + 4  # 128 x 4 seeds, 64 x 2, 32 x 4, one student, word + char x 2
    assert exp.run(*args, [(1.0, 2)], 4, 2) == first  # from the cache: nothing retrained, the same numbers
