"""The int8 check reads the graph: bytes of initializers by data type, on graphs built here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from pigeonhole_tools.training.errors import BuildRefusedError
from pigeonhole_tools.training.quantize import check_int8, quantize_int8, tensor_bytes, weight_report


def _matmul_graph(rows: int = 64, cols: int = 32) -> onnx.ModelProto:
    """x [N, rows] @ W [rows, cols] + b: a float graph the size of a tiny MLP layer."""
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.normal(size=(rows, cols)).astype(np.float32), name="W")
    bias = numpy_helper.from_array(np.zeros(cols, dtype=np.float32), name="b")
    nodes = [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["y"])]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, rows])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, cols])],
        initializer=[weight, bias],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_report_counts_bytes_by_dtype() -> None:
    report = weight_report(_matmul_graph(64, 32))
    assert report.bytes_by_dtype == {"float": 64 * 32 * 4 + 32 * 4}
    assert report.int8_share == 0.0
    assert report.largest[0] == ("W", "float", 64 * 32 * 4)


def test_string_tensors_count_their_bytes() -> None:
    tensor = onnx.TensorProto(name="s", data_type=TensorProto.STRING, dims=[2], string_data=[b"abc", b"de"])
    assert tensor_bytes(tensor) == 5


def test_a_float_graph_is_refused() -> None:
    with pytest.raises(BuildRefusedError, match=r"largest weight tensor 'W'.*float, not int8"):
        check_int8(weight_report(_matmul_graph()))


def test_an_empty_graph_is_refused() -> None:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None])],
    )
    with pytest.raises(BuildRefusedError, match="no initializers"):
        check_int8(weight_report(helper.make_model(graph)))


def test_int8_must_also_hold_the_required_share() -> None:
    # The largest tensor is int8, but float tensors together outweigh it.
    tensors = [
        numpy_helper.from_array(np.zeros(100, dtype=np.int8), name="q"),
        numpy_helper.from_array(np.zeros(20, dtype=np.float32), name="f1"),  # 80 bytes
        numpy_helper.from_array(np.zeros(20, dtype=np.float32), name="f2"),  # 80 bytes
    ]
    graph = helper.make_graph([], "g", [], [], initializer=tensors)
    report = weight_report(helper.make_model(graph))
    assert report.int8_share == pytest.approx(100 / 260)
    with pytest.raises(BuildRefusedError, match=r"int8 holds 38\.5% of initializer bytes"):
        check_int8(report, min_share=0.5)
    check_int8(report, min_share=0.3)


def test_real_dynamic_quantization_makes_the_weights_int8(tmp_path: Path) -> None:
    src, dst = tmp_path / "f.onnx", tmp_path / "q.onnx"
    onnx.save(_matmul_graph(256, 64), str(src))
    quantize_int8(src, dst)
    report = weight_report(onnx.load(str(dst)))
    assert report.largest[0][1] == "int8"
    assert report.int8_share > 0.9
    check_int8(report)
    assert report.as_dict()["int8_initializer_bytes"] == 256 * 64 + 1  # the weights and their zero point
