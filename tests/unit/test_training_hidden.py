"""The hidden-layer distance: the statistics, the graph that computes it, and its way through int8 and the runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from sklearn.covariance import LedoitWolf

from pigeonhole.model.features import normalize_batch
from pigeonhole.model.session import make_session, run_outputs
from pigeonhole_tools.training import export, hidden, quantize
from pigeonhole_tools.training.train import TrainedModel

CLOSE = ["where is my card", "i lost my card", "what is the exchange rate", "my top up failed"]
FAR = ["zebra quantum violin", "el perro come pan", "xx yy zz qq", "the weather in paris is lovely"]


def _graph(model: TrainedModel) -> onnx.ModelProto:
    assert model.hidden is not None
    graph = export.to_onnx(model, "text", "probabilities")
    hidden.add_distance_output(graph, model.hidden)
    onnx.checker.check_model(graph)
    return graph


def test_the_folded_matrices_give_the_textbook_mahalanobis_distance() -> None:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 40)
    h = np.maximum(rng.normal(size=(120, 12)) + y[:, None] * 0.8, 0.0)
    stats = hidden.fit(h, y, 3, dims=5)
    # The same computation written out: PCA to 5, class means, shrunk covariance, (z - m)ᵀ Σ⁻¹ (z - m).
    centre = h.mean(axis=0)
    _, _, vt = np.linalg.svd(h - centre, full_matrices=False)
    z = (h - centre) @ vt[:5].T
    means = np.stack([z[y == c].mean(axis=0) for c in range(3)])
    precision = np.linalg.inv(LedoitWolf().fit(z - means[y]).covariance_)
    diff = z[:, None, :] - means[None, :, :]
    expected = np.einsum("nkd,de,nke->nk", diff, precision, diff).min(axis=1)
    np.testing.assert_allclose(hidden.distance(stats, h), expected, rtol=1e-9)
    assert stats.dims == 5
    assert stats.record()["fitted_on_rows"] == 120


def test_a_layer_narrower_than_the_dims_keeps_all_of_them() -> None:
    rng = np.random.default_rng(1)
    stats = hidden.fit(rng.random((30, 4)), np.arange(30) % 2, 2, dims=32)
    assert stats.transform.shape == (4, 4)


def test_training_records_the_statistics_of_its_own_rows(intent_model: TrainedModel) -> None:
    stats = intent_model.hidden
    assert stats is not None
    assert stats.rows == intent_model.rows
    assert stats.means.shape[0] == len(intent_model.classes)
    assert stats.transform.shape[0] == intent_model.params.hidden


def test_the_graph_computes_the_numpy_distance(intent_model: TrainedModel, tmp_path: Path) -> None:
    assert intent_model.hidden is not None
    path = tmp_path / "fp32.onnx"
    export.save(_graph(intent_model), path)
    texts = CLOSE + FAR
    probs, distance = run_outputs(make_session(path), texts, "text", ["probabilities", hidden.OUTPUT])
    assert distance.shape == (len(texts), 1)
    h = hidden.activations(intent_model.mlp, intent_model.features.transform(normalize_batch(texts)))
    np.testing.assert_allclose(distance[:, 0], hidden.distance(intent_model.hidden, h), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(probs, intent_model.predict_proba(normalize_batch(texts)), atol=1e-5)


def test_text_unlike_every_intent_lies_further_away(intent_model: TrainedModel, tmp_path: Path) -> None:
    path = tmp_path / "fp32.onnx"
    export.save(_graph(intent_model), path)
    (distance,) = run_outputs(make_session(path), CLOSE + FAR, "text", [hidden.OUTPUT])
    close, far = distance[: len(CLOSE), 0], distance[len(CLOSE) :, 0]
    assert far.min() > close.max()


def test_quantization_leaves_the_distance_in_float_and_close(intent_model: TrainedModel, tmp_path: Path) -> None:
    graph = _graph(intent_model)
    fp32, int8 = tmp_path / "fp32.onnx", tmp_path / "int8.onnx"
    export.save(graph, fp32)
    quantize.quantize_int8(fp32, int8, exclude=hidden.excluded_from_quantization(graph))
    quantized = onnx.load(str(int8))
    ours = [n for n in quantized.graph.node if n.name.startswith(hidden.NODE_PREFIX)]
    assert {n.op_type for n in ours} >= {"MatMul", "TopK"}  # not MatMulInteger
    assert any(n.op_type == "MatMulInteger" for n in quantized.graph.node)  # the MLP itself is int8
    report = quantize.weight_report(quantized, keep_float=(hidden.NODE_PREFIX,))
    assert report.float_by_design_bytes > 0
    assert not any(name.startswith(hidden.NODE_PREFIX) for name, _, _ in report.largest)
    texts = CLOSE + FAR
    (d8,) = run_outputs(make_session(int8), texts, "text", [hidden.OUTPUT])
    (d32,) = run_outputs(make_session(fp32), texts, "text", [hidden.OUTPUT])
    # int8 moves the activation a little, never the ranking of near against far.
    assert d8[len(CLOSE) :, 0].min() > d8[: len(CLOSE), 0].max()
    assert np.corrcoef(d8[:, 0], d32[:, 0])[0, 1] > 0.95


def test_a_graph_without_a_hidden_relu_is_refused() -> None:
    graph = onnx.helper.make_model(onnx.helper.make_graph([], "empty", [], []))
    stats = hidden.fit(np.random.default_rng(2).random((10, 3)), np.arange(10) % 2, 2)
    with pytest.raises(RuntimeError, match="no Relu"):
        hidden.add_distance_output(graph, stats)
