"""Temperature scaling: it fits the temperature that made the data, lowers ECE, keeps the label order,
and the graph with the Mul inserted computes exactly what the numpy reference computes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from pigeonhole.model.manifest import load_manifest
from pigeonhole.model.session import make_session
from pigeonhole_tools.training import calibrate, decide
from pigeonhole_tools.training.evaluate import expected_calibration_error


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def overconfident() -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from softmax(logits); the 'model' reports softmax(3 · logits): overconfident by T = 3."""
    rng = np.random.default_rng(7)
    logits = rng.normal(0.0, 1.5, size=(4000, 6))
    true_p = _softmax(logits)
    y = np.asarray([rng.choice(6, p=row) for row in true_p])
    return _softmax(3.0 * logits).astype(np.float32), y


def test_the_fitted_temperature_recovers_the_one_that_made_the_data(
    overconfident: tuple[np.ndarray, np.ndarray],
) -> None:
    probs, y = overconfident
    assert calibrate.fit_temperature(probs, y) == pytest.approx(3.0, rel=0.08)


def test_ece_brier_and_nll_fall_and_the_label_order_is_kept(overconfident: tuple[np.ndarray, np.ndarray]) -> None:
    probs, y = overconfident
    t = calibrate.fit_temperature(probs, y)
    calibrated = calibrate.apply_temperature(probs, t)
    before, after = calibrate.quality(probs, y), calibrate.quality(calibrated, y)
    assert after["ece_15"] < before["ece_15"] / 3
    assert after["brier"] < before["brier"]
    assert after["nll"] < before["nll"]
    assert np.array_equal(np.argsort(-calibrated, axis=1), np.argsort(-probs.astype(np.float64), axis=1))
    assert after["accuracy"] == before["accuracy"]


def test_before_after_inverts_the_temperature(overconfident: tuple[np.ndarray, np.ndarray]) -> None:
    probs, y = overconfident
    calibrated = calibrate.apply_temperature(probs, 2.5)
    record = calibrate.before_after(calibrated, y, 2.5)
    direct = calibrate.quality(probs, y)
    for key in ("ece_15", "brier", "nll"):
        assert record["before"][key] == pytest.approx(direct[key], abs=1e-5)  # type: ignore[index]


def test_a_calibrated_model_is_left_nearly_alone() -> None:
    rng = np.random.default_rng(3)
    logits = rng.normal(0.0, 2.0, size=(5000, 4))
    p = _softmax(logits)
    y = np.asarray([rng.choice(4, p=row) for row in p])
    assert calibrate.fit_temperature(p, y) == pytest.approx(1.0, abs=0.1)
    assert expected_calibration_error(p.max(axis=1), p.argmax(axis=1) == y) < 0.03


def test_brier_on_a_hand_made_case() -> None:
    probs = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    y = np.array([0, 0, 0])
    # (0) + (0.25 + 0.25) + (1 + 1), over 3 events
    assert calibrate.brier(probs, y) == pytest.approx(2.5 / 3)


def _tiny_graph() -> onnx.ModelProto:
    """x [N, 3] -> MatMul -> Softmax -> probabilities [N, 4]: the shape of the exported classifier's tail."""
    w = np.arange(12, dtype=np.float32).reshape(3, 4) / 5.0
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor("w", TensorProto.FLOAT, [3, 4], w.flatten().tolist())],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_the_temperature_inside_the_graph_matches_the_numpy_reference() -> None:
    model = _tiny_graph()
    x = np.random.default_rng(0).normal(size=(8, 3)).astype(np.float32)
    raw = make_session(model.SerializeToString(), threads=1).run(["probabilities"], {"x": x})[0]
    calibrate.insert_temperature(model, "probabilities", 2.0)
    onnx.checker.check_model(model)
    scaled = make_session(model.SerializeToString(), threads=1).run(["probabilities"], {"x": x})[0]
    np.testing.assert_allclose(scaled, calibrate.apply_temperature(raw, 2.0), atol=1e-6)
    assert np.array_equal(scaled.argmax(axis=1), raw.argmax(axis=1))
    assert scaled.max(axis=1).mean() < raw.max(axis=1).mean()


def test_a_graph_without_a_final_softmax_is_refused() -> None:
    model = _tiny_graph()
    model.graph.node[1].op_type = "Relu"
    del model.graph.node[1].attribute[:]
    with pytest.raises(RuntimeError, match="0 Softmax/Sigmoid"):
        calibrate.insert_temperature(model, "probabilities", 2.0)


def test_a_binary_graph_is_calibrated_on_its_sigmoid() -> None:
    """A binary MLP exports p = sigmoid(z) and outputs [1 - p, p]: T goes before the Sigmoid."""
    w = np.array([[0.8], [-1.3], [2.1]], dtype=np.float32)
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["p"]),
        helper.make_node("Sub", ["one", "p"], ["q"]),
        helper.make_node("Concat", ["q", "p"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "binary",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2])],
        [
            helper.make_tensor("w", TensorProto.FLOAT, [3, 1], w.flatten().tolist()),
            helper.make_tensor("one", TensorProto.FLOAT, [], [1.0]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = np.random.default_rng(1).normal(size=(8, 3)).astype(np.float32)
    raw = make_session(model.SerializeToString(), threads=1).run(["probabilities"], {"x": x})[0]
    calibrate.insert_temperature(model, "probabilities", 0.5)
    onnx.checker.check_model(model)
    scaled = make_session(model.SerializeToString(), threads=1).run(["probabilities"], {"x": x})[0]
    np.testing.assert_allclose(scaled, calibrate.apply_temperature(raw, 0.5), atol=1e-5)


# --- The guard: keep T = 1 when the NLL-fitted T raises validation ECE ---------------------------------


@pytest.fixture(scope="module")
def calibrated_with_confident_mistakes() -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from the reported probabilities (calibrated), plus 2 % of mistakes at confidence ~1 with
    ~1e-9 on the true class: their log-loss pulls the NLL-optimal T above 1, which makes the calibrated bulk
    under-confident (ECE rises) -- the shape of the `--layers 2` BANKING77 model."""
    rng = np.random.default_rng(11)
    probs = _softmax(rng.normal(0.0, 2.0, size=(3000, 5)))
    y = np.asarray([rng.choice(5, p=row) for row in probs])
    for i in rng.choice(3000, 60, replace=False):
        top = int(probs[i].argmax())
        y[i] = (top + 1) % 5
        probs[i] = np.full(5, 1e-9)
        probs[i][top] = 1 - 4e-9
    return probs.astype(np.float32), y


def test_the_guard_keeps_t_1_when_the_fitted_t_raises_validation_ece(
    calibrated_with_confident_mistakes: tuple[np.ndarray, np.ndarray],
) -> None:
    probs, y = calibrated_with_confident_mistakes
    choice = calibrate.choose_temperature(probs, y)
    assert choice.fitted > 1.2  # NLL did want to soften ...
    assert choice.validation["with_fitted"]["nll"] < choice.validation["before"]["nll"]
    assert choice.validation["with_fitted"]["ece_15"] > choice.validation["before"]["ece_15"]  # ... at ECE's cost
    assert not choice.kept_fitted
    assert choice.temperature == 1.0
    assert choice.validation["after"] == choice.validation["before"]
    assert "raises validation ECE" in choice.reason
    assert "T = 1 kept" in choice.reason


def test_the_guard_keeps_a_fitted_t_that_lowers_validation_ece(overconfident: tuple[np.ndarray, np.ndarray]) -> None:
    probs, y = overconfident
    choice = calibrate.choose_temperature(probs, y)
    assert choice.kept_fitted
    assert choice.temperature == choice.fitted == calibrate.fit_temperature(probs, y)
    assert choice.validation["after"]["ece_15"] < choice.validation["before"]["ece_15"]
    assert choice.validation["after"] == choice.validation["with_fitted"]


def test_the_guard_rule_on_its_edges() -> None:
    assert calibrate.keeps_fitted_temperature(0.05, 0.03)
    assert calibrate.keeps_fitted_temperature(0.03, 0.03)  # a tie keeps it: NLL still fell
    assert not calibrate.keeps_fitted_temperature(0.0126, 0.0250)  # --layers 2 on BANKING77 validation


def test_the_guard_does_not_fire_for_the_committed_default_package() -> None:
    """The decision on the validation numbers the committed BANKING77 build recorded: T = 0.8133 stays,
    so the default package is what the guarded build makes (no rebuild needed to know it)."""
    manifest = load_manifest(Path(__file__).resolve().parents[2] / "layers" / "model")
    record = manifest.metrics["calibration"]
    assert isinstance(record, dict)
    validation = record["validation"]
    assert record["temperature"] != 1.0
    assert calibrate.keeps_fitted_temperature(validation["before"]["ece_15"], validation["after"]["ece_15"])


def test_decide_ships_t_1_and_records_why_when_the_guard_fires(
    calibrated_with_confident_mistakes: tuple[np.ndarray, np.ndarray],
) -> None:
    probs, y = calibrated_with_confident_mistakes
    classes = [f"c{i}" for i in range(5)]
    decisions, p_val = decide.decide(probs, y, classes, target=0.9, calibrate_on=True)
    assert decisions.temperature == 1.0
    assert np.allclose(p_val, probs, atol=1e-6)  # thresholds chosen on the uncalibrated probabilities
    record = decide.calibration_record(1.0, decisions, probs, probs, y, refit=False)
    assert record["method"] == "none"
    guard = record["guard"]
    assert isinstance(guard, dict)
    assert guard["kept_fitted"] is False
    assert guard["fitted_temperature"] > 1.2
    assert "calibration guard" in decide.calibration_summary(decisions)
