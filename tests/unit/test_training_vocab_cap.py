"""The vocabulary cap (`--max-features`): at most N n-grams per vectorizer, ties at the cut kept or dropped
together, so every kept word bigram's words are kept and the ONNX graph computes what scikit-learn computes."""

from __future__ import annotations

import warnings

import numpy as np
import onnxruntime as ort
import pytest
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import StringTensorType
from sklearn.feature_extraction.text import TfidfVectorizer

from pigeonhole_tools.training.train import TrainParams, capped_vocabulary, make_features

# "on" x3; "call", "0800", "on 0800", "call on" x2 each; the rest once: a cut at 3 terms falls inside a tie.
_TEXTS = ["call on 0800 now", "call on 0800 today", "reply on time", "stop"]


def _word() -> TfidfVectorizer:
    return make_features(TrainParams()).transformer_list[0][1]  # type: ignore[no-any-return]


def test_the_cap_keeps_terms_by_count_and_ties_together() -> None:
    assert capped_vocabulary(_word(), _TEXTS, 100) == sorted(_word().fit(_TEXTS).vocabulary_)  # no cut needed
    assert capped_vocabulary(_word(), _TEXTS, 1) == ["on"]
    # 5 terms seen twice tie for places 2-6: a limit of 3 cannot split them, so only "on" survives ...
    assert capped_vocabulary(_word(), _TEXTS, 3) == ["on"]
    # ... and a limit of 6 keeps the whole tie: every kept bigram's words are kept.
    kept = capped_vocabulary(_word(), _TEXTS, 6)
    assert kept == ["0800", "call", "call on", "on", "on 0800"]
    for term in kept:
        assert all(word in kept for word in term.split())


def test_make_features_needs_the_texts_only_when_capped() -> None:
    make_features(TrainParams())  # uncapped: the vectorizers learn their vocabulary in fit, as before
    with pytest.raises(ValueError, match="training texts"):
        make_features(TrainParams(max_features=5))


def test_the_onnx_tfidf_matches_scikit_learn_with_a_capped_vocabulary() -> None:
    """scikit-learn's own max_features breaks the tie arbitrarily (it may keep "on 0800" without "0800",
    a bigram the ONNX TfIdfVectorizer then never counts); the count cut-off keeps the two in step."""
    texts = [*_TEXTS, "call me on 0800 please", "on the way"]
    features = make_features(TrainParams(max_features=4), texts)
    features.fit(texts)
    for _, vec in features.transformer_list:
        assert 0 < len(vec.vocabulary_) <= 4
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            graph = convert_sklearn(
                vec,
                initial_types=[("text", StringTensorType([None, 1]))],
                options={id(vec): {"locale": "C.UTF-8"}},
                target_opset={"": 17, "ai.onnx.ml": 3},
            )
        session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
        (onnx_x,) = session.run(None, {"text": np.asarray(texts, dtype=object).reshape(-1, 1)})
        assert np.allclose(onnx_x, vec.transform(texts).toarray(), atol=1e-6)
