"""The exported graph: one string input, one probability output, stable bytes, parity with scikit-learn."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

from pigeonhole.model.features import normalize_batch
from pigeonhole.model.session import make_session, run_probabilities
from pigeonhole_tools.training import export
from pigeonhole_tools.training.train import TrainedModel


@pytest.fixture(scope="module")
def model(intent_model: TrainedModel) -> TrainedModel:
    return intent_model


def test_the_graph_has_one_string_input_and_one_probability_output(model: TrainedModel) -> None:
    graph = export.to_onnx(model, "text", "probabilities")
    assert [i.name for i in graph.graph.input] == ["text"]
    assert [o.name for o in graph.graph.output] == ["probabilities"]
    assert graph.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert "label" not in {out for node in graph.graph.node for out in node.output}
    assert all(init.data_type != onnx.TensorProto.STRING for init in graph.graph.initializer)
    assert not any(node.op_type == "StringNormalizer" for node in graph.graph.node)  # no locale needed


def test_outputs_can_be_renamed(model: TrainedModel) -> None:
    graph = export.to_onnx(model, "utterance", "scores")
    assert [i.name for i in graph.graph.input] == ["utterance"]
    assert [o.name for o in graph.graph.output] == ["scores"]


def test_the_graph_reproduces_scikit_learn_through_the_runtime_path(model: TrainedModel, tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    export.save(export.to_onnx(model), path)
    raw = ["Where is   my CARD", "a b c d card", "rate for EUROS", "completely unrelated words"]
    onnx_probs = run_probabilities(make_session(path), raw)
    np.testing.assert_allclose(onnx_probs, model.predict_proba(normalize_batch(raw)), atol=1e-5)


def test_opset_imports_are_sorted_so_bytes_do_not_depend_on_hash_seeds(model: TrainedModel) -> None:
    graph = export.to_onnx(model)
    domains = [o.domain for o in graph.opset_import]
    assert domains == sorted(domains)
    assert graph.graph.name == export.GRAPH_NAME
    shuffled = helper.make_model(helper.make_graph([], "g", [], []), opset_imports=[])
    shuffled.opset_import.extend(
        [helper.make_opsetid("com.microsoft", 1), helper.make_opsetid("", 16), helper.make_opsetid("ai.onnx.ml", 1)]
    )
    export.sort_opset_imports(shuffled)
    assert [(o.domain, o.version) for o in shuffled.opset_import] == [("", 16), ("ai.onnx.ml", 1), ("com.microsoft", 1)]


def test_the_unigram_vocabulary_is_the_word_vectorizer_single_tokens(model: TrainedModel) -> None:
    vocab = model.unigram_vocabulary()
    assert vocab == sorted(vocab)
    assert {"card", "a", "euros"} <= set(vocab)
    assert all(" " not in term for term in vocab)
