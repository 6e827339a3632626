"""Every way the runtime refuses a model package, each built in a fixture from the tiny real model
(no binaries committed): tampered vocabulary, file names that are not bare names inside the package,
a file resolving outside it, external-data initializers, a normalization mismatch, a wrong output
shape and wrong output names."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from pigeonhole.exceptions import ManifestError, ModelIntegrityError
from pigeonhole.model.onnx_check import external_tensors
from pigeonhole.model.runtime import ModelRuntime

from .monitoring_support import write_tiny_model


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("pristine") / "model")


def _package(pristine: Path, tmp_path: Path) -> Path:
    target = tmp_path / "model"
    target.mkdir()
    for f in pristine.iterdir():
        (target / f.name).write_bytes(f.read_bytes())
    return target


def _edit(package: Path, **changes: Any) -> None:
    path = package / "manifest.json"
    doc = json.loads(path.read_text())
    doc.update(changes)
    path.write_text(json.dumps(doc))


def _ref(path: Path) -> dict[str, Any]:
    data = path.read_bytes()
    return {"file": path.name, "sha256": hashlib.sha256(data).hexdigest(), "size_bytes": len(data)}


def _with_vocabulary(package: Path) -> Path:
    vocab = package / "vocabulary.txt"
    vocab.write_text("card\nrate\nlost\n")
    _edit(package, vocabulary=_ref(vocab))
    return vocab


def test_the_pristine_package_loads_with_its_vocabulary(pristine: Path, tmp_path: Path) -> None:
    package = _package(pristine, tmp_path)
    _with_vocabulary(package)
    runtime = ModelRuntime.load(package)
    assert runtime.vocabulary == frozenset({"card", "rate", "lost"})


def test_tampered_vocabulary_is_refused(pristine: Path, tmp_path: Path) -> None:
    package = _package(pristine, tmp_path)
    vocab = _with_vocabulary(package)
    vocab.write_text("card\nrate\nlust\n")  # same size, other bytes
    with pytest.raises(ModelIntegrityError, match="sha256"):
        ModelRuntime.load(package)


@pytest.mark.parametrize("name", ["../vocabulary.txt", "sub/vocabulary.txt", "/etc/hostname", "..", ".", "a\\b"])
def test_a_package_file_that_is_not_a_bare_name_is_refused(pristine: Path, tmp_path: Path, name: str) -> None:
    package = _package(pristine, tmp_path)
    vocab = _with_vocabulary(package)
    _edit(package, vocabulary={**_ref(vocab), "file": name})
    with pytest.raises(ManifestError, match="bare file name"):
        ModelRuntime.load(package)


def test_a_model_file_that_is_not_a_bare_name_is_refused(pristine: Path, tmp_path: Path) -> None:
    package = _package(pristine, tmp_path)
    _edit(package, model={**_ref(package / "model.onnx"), "file": "../model/model.onnx"})
    with pytest.raises(ManifestError, match="bare file name"):
        ModelRuntime.load(package)


def test_a_file_linking_outside_the_package_is_refused(pristine: Path, tmp_path: Path) -> None:
    package = _package(pristine, tmp_path)
    outside = tmp_path / "elsewhere.txt"
    outside.write_text("card\nrate\nlost\n")
    os.symlink(outside, package / "vocabulary.txt")
    _edit(package, vocabulary=_ref(outside) | {"file": "vocabulary.txt"})
    with pytest.raises(ModelIntegrityError, match="outside the package"):
        ModelRuntime.load(package)


def _external_data_model(package: Path) -> bytes:
    """A small float graph whose weight lives in `weights.bin` next to it (ONNX external data)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, external_data_helper, helper, numpy_helper

    weight = numpy_helper.from_array(np.arange(64, dtype=np.float32).reshape(8, 8), name="W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["Y"])],
        "external",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 8])],
        initializer=[weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    external_data_helper.convert_model_to_external_data(
        model, all_tensors_to_one_file=True, location="weights.bin", size_threshold=0
    )
    onnx.save_model(model, str(package / "model.onnx"))
    assert (package / "weights.bin").is_file()
    return (package / "model.onnx").read_bytes()


def test_external_data_initializers_are_refused(pristine: Path, tmp_path: Path) -> None:
    package = _package(pristine, tmp_path)
    data = _external_data_model(package)
    assert external_tensors(data) == 1
    _edit(package, model=_ref(package / "model.onnx"))
    with pytest.raises(ModelIntegrityError, match="external data"):
        ModelRuntime.load(package)


def test_a_self_contained_model_has_no_external_tensors(pristine: Path) -> None:
    assert external_tensors((pristine / "model.onnx").read_bytes()) == 0


def test_normalization_mismatch_is_refused(pristine: Path, tmp_path: Path) -> None:
    package = _package(pristine, tmp_path)
    doc = json.loads((package / "manifest.json").read_text())
    _edit(package, input={**doc["input"], "normalization": "nfkc-v2"})
    with pytest.raises(ModelIntegrityError, match="normalization"):
        ModelRuntime.load(package)


def test_wrong_output_shape_is_refused_at_load(pristine: Path, tmp_path: Path) -> None:
    """The graph answers 3 probabilities, the manifest lists 4 classes: refused at cold start by the
    probe inference, not on every batch (where it would retry records until the DLQ)."""
    package = _package(pristine, tmp_path)
    doc = json.loads((package / "manifest.json").read_text())
    baseline = {**doc["drift_baseline"], "class_prior": [0.25, 0.25, 0.25, 0.25]}
    _edit(package, classes=[*doc["classes"], "extra"], drift_baseline=baseline)
    with pytest.raises(ModelIntegrityError, match="shape"):
        ModelRuntime.load(package)


def test_wrong_output_name_is_refused_at_load(pristine: Path, tmp_path: Path) -> None:
    package = _package(pristine, tmp_path)
    doc = json.loads((package / "manifest.json").read_text())
    _edit(package, input={**doc["input"], "onnx_probabilities_output": "scores"})
    with pytest.raises(ModelIntegrityError, match="probe inference"):
        ModelRuntime.load(package)
