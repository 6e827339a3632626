"""The unknown score: its features from probabilities and text, the logistic score, and the manifest block."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pigeonhole.exceptions import ManifestError
from pigeonhole.model.manifest import Manifest, load_manifest
from pigeonhole.model.unknown import (
    UNKNOWN_FEATURES,
    feature_matrix,
    logistic_score,
    probability_features,
    unknown_features,
    unknown_scores,
)

PACKAGE = Path(__file__).resolve().parents[2] / "layers" / "model"
VOCAB = frozenset({"my", "card", "has", "not", "arrived"})


def test_probability_features_of_a_sure_and_a_flat_row() -> None:
    probs = np.array([[1.0, 0.0, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25], [0.5, 0.3, 0.2, 0.0]], dtype=np.float32)
    f = probability_features(probs)
    assert f["max_prob"].tolist() == pytest.approx([1.0, 0.25, 0.5])
    assert f["margin"].tolist() == pytest.approx([1.0, 0.0, 0.2])
    # normalized by log(k): 0 for a one-hot row, 1 for a uniform row; zeros contribute nothing
    expected = -(0.5 * math.log(0.5) + 0.3 * math.log(0.3) + 0.2 * math.log(0.2)) / math.log(4)
    assert f["entropy"].tolist() == pytest.approx([0.0, 1.0, expected])


def test_probability_features_refuse_a_single_column() -> None:
    with pytest.raises(ValueError, match="k >= 2"):
        probability_features(np.ones((3, 1)))


def test_text_features_use_the_vocabulary_and_token_count() -> None:
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.5, 0.5]])
    texts = ["my card has not arrived", "my zorblax card", ""]
    f = unknown_features(probs, texts, VOCAB)
    assert list(f) == [n for n in UNKNOWN_FEATURES if n != "hidden_distance"]  # none given: not computed
    assert f["oov_share"].tolist() == pytest.approx([0.0, 1 / 3, 1.0])  # no tokens: all unknown
    assert f["log_tokens"].tolist() == pytest.approx([math.log1p(5), math.log1p(3), 0.0])
    assert f["log_chars"].tolist() == pytest.approx([math.log1p(23), math.log1p(15), 0.0])


def test_only_the_named_features_in_the_named_order() -> None:
    f = unknown_features(np.array([[0.7, 0.3]]), ["my card"], VOCAB, names=["oov_share", "max_prob"])
    assert list(f) == ["oov_share", "max_prob"]
    assert feature_matrix(f, ["oov_share", "max_prob"]).tolist() == [[0.0, pytest.approx(0.7)]]


def test_unknown_feature_names_and_mismatched_lengths_raise() -> None:
    with pytest.raises(ValueError, match="not computed here"):
        unknown_features(np.array([[0.7, 0.3]]), ["x"], VOCAB, names=["distance"])
    with pytest.raises(ValueError, match="2 texts for 1"):
        unknown_features(np.array([[0.7, 0.3]]), ["x", "y"], VOCAB)


def test_logistic_score_matches_the_formula_and_does_not_overflow() -> None:
    m = np.array([[0.0, 0.0], [1.0, 2.0], [1e4, 0.0], [-1e4, 0.0]])
    s = logistic_score(m, [1.5, -0.5], bias=0.25)
    assert s[0] == pytest.approx(1 / (1 + math.exp(-0.25)))
    assert s[1] == pytest.approx(1 / (1 + math.exp(-(0.25 + 1.5 - 1.0))))
    assert s[2] == 1.0
    assert s[3] == pytest.approx(0.0, abs=1e-300)
    assert np.all(np.isfinite(s))
    with pytest.raises(ValueError, match="does not fit 3 weights"):
        logistic_score(m, [1.0, 2.0, 3.0], bias=0.0)


def test_an_off_topic_text_scores_higher_than_a_confident_known_one() -> None:
    names = ["max_prob", "oov_share"]
    weights, bias = [-6.0, 4.0], 2.0
    probs = np.array([[0.95, 0.05], [0.55, 0.45]])
    s = unknown_scores(probs, ["my card has not arrived", "quel temps fait il"], VOCAB, names, weights, bias)
    assert s[0] < 0.1
    assert s[1] > 0.9
    assert unknown_scores(np.zeros((0, 2)), [], VOCAB, names, weights, bias).shape == (0,)


# -- the manifest's optional blocks ------------------------------------------------------------------


def _raw() -> dict[str, Any]:
    raw: dict[str, Any] = json.loads((PACKAGE / "manifest.json").read_text(encoding="utf-8"))
    return raw


def _unknown(**overrides: Any) -> dict[str, Any]:
    block: dict[str, Any] = {
        "features": ["max_prob", "margin", "entropy", "oov_share", "log_tokens"],
        "weights": [-3.0, -1.0, 2.0, 4.0, -0.5],
        "bias": 1.0,
        "threshold": 0.5,
        "target": {"known_accuracy_min": 0.9},
        "evaluation": {"recall": 0.8},
    }
    return {**block, **overrides}


def test_the_committed_package_loads_with_or_without_the_new_blocks() -> None:
    manifest = load_manifest(PACKAGE)
    raw = _raw()
    raw.pop("unknown", None)
    raw["thresholds"].pop("per_class", None)
    old = Manifest.model_validate(raw)
    assert old.unknown is None
    assert old.thresholds.per_class == {}
    assert old.thresholds.for_label(old.classes[0]) == old.thresholds.review_confidence
    assert manifest.classes == old.classes


def test_unknown_block_and_per_class_thresholds_parse_and_round_trip() -> None:
    raw = _raw()
    label = raw["classes"][3]
    raw["unknown"] = _unknown()
    raw["thresholds"]["per_class"] = {label: 0.9}
    raw["thresholds"]["selection"] = {"precision_target": 0.95, "coverage": {label: 0.7}}
    raw["drift_baseline"]["unknown_rate"] = 0.02
    manifest = Manifest.model_validate(raw)
    assert manifest.unknown is not None
    assert manifest.unknown.threshold == 0.5
    assert manifest.thresholds.for_label(label) == 0.9
    assert manifest.thresholds.for_label(raw["classes"][0]) == raw["thresholds"]["review_confidence"]
    assert manifest.drift_baseline.unknown_rate == 0.02
    assert Manifest.model_validate_json(manifest.dump()) == manifest


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.update(unknown=_unknown(features=["max_prob", "distance"], weights=[1.0, 1.0])), "distance"),
        (lambda r: r.update(unknown=_unknown(weights=[1.0])), "one per feature"),
        (lambda r: r.update(unknown=_unknown(features=["max_prob", "max_prob"], weights=[1, 1])), "unique"),
        (lambda r: r.update(unknown=_unknown(threshold=1.5)), "less than or equal to 1"),
        (lambda r: r.update(unknown=_unknown(bias=float("inf"))), "finite"),
        (lambda r: r["thresholds"].update(per_class={"no_such_intent": 0.5}), "no_such_intent"),
        (lambda r: r["thresholds"].update(per_class={r["classes"][0]: -0.1}), "greater than or equal to 0"),
        (lambda r: r["drift_baseline"].update(unknown_rate=2.0), "less than or equal to 1"),
        (lambda r: r.update(unknown=_unknown(), vocabulary=None), "no vocabulary"),
    ],
)
def test_invalid_blocks_are_refused_with_a_clear_error(change: Any, message: str, tmp_path: Path) -> None:
    raw = _raw()
    change(raw)
    (tmp_path / "manifest.json").write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(ManifestError, match=message):
        load_manifest(tmp_path)
