"""One trained recipe as the two ONNX graphs the build compares, and how they score texts.

The fp32 graph is the reference and the int8 graph ships. Both run through the runtime's own session
factory and `run_outputs`, in runs of 10 events as the classifier batches them, so every number the
build records is what the runtime will compute. When the input spec names a hidden-distance output,
the graph gains it (pigeonhole_tools.training.hidden) before quantization, which leaves it in float.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from numpy.typing import NDArray

from pigeonhole.model.features import normalize_batch
from pigeonhole.model.manifest import InputSpec
from pigeonhole.model.session import make_session
from pigeonhole_tools.training import calibrate, evaluate, export, hidden, quantize
from pigeonhole_tools.training.train import TrainedModel


@dataclass(frozen=True)
class Graphs:
    """One trained recipe as the two ONNX files the build compares (fp32 reference, int8 shipped)."""

    model: TrainedModel
    fp32: Path
    int8: Path
    weights: quantize.WeightReport


@dataclass(frozen=True)
class Scored:
    """Eval-set probabilities of both graphs and the scikit-learn reference, with their metrics."""

    fp32: NDArray[np.float32]
    int8: NDArray[np.float32]
    int8_distance: NDArray[np.float32] | None  # the int8 graph's hidden distances, one per event
    sklearn: NDArray[np.float32]
    metrics_fp32: dict[str, object]
    metrics_int8: dict[str, object]
    int8_alone_vs_in_batch: dict[str, float]

    @property
    def accuracy_drop(self) -> float:
        return float(self.metrics_fp32["accuracy"]) - float(self.metrics_int8["accuracy"])  # type: ignore[arg-type]


def export_and_quantize(
    model: TrainedModel,
    spec: InputSpec,
    opset: int,
    min_int8_share: float,
    directory: Path,
    temperature: float | None = None,
) -> Graphs:
    """fp32 graph (logits / temperature inside it when given, the hidden distance when the spec names it),
    then int8; refuse unless int8 really dominates."""
    directory.mkdir(parents=True, exist_ok=True)
    fp32_path, int8_path = directory / "model.fp32.onnx", directory / "model.int8.onnx"
    graph = export.to_onnx(model, spec.onnx_input, spec.onnx_probabilities_output, opset)
    if temperature is not None:
        calibrate.insert_temperature(graph, spec.onnx_probabilities_output, temperature)
    if spec.onnx_hidden_distance_output is not None:
        if model.hidden is None:
            raise RuntimeError("the input spec names a hidden-distance output but the model has no hidden statistics")
        hidden.add_distance_output(graph, model.hidden, spec.onnx_hidden_distance_output)
    onnx.checker.check_model(graph)
    export.save(graph, fp32_path)
    quantize.quantize_int8(fp32_path, int8_path, exclude=hidden.excluded_from_quantization(graph))
    weights = quantize.weight_report(onnx.load(str(int8_path)), keep_float=(hidden.NODE_PREFIX,))
    quantize.check_int8(weights, min_int8_share)
    return Graphs(model=model, fp32=fp32_path, int8=int8_path, weights=weights)


def output_names(spec: InputSpec) -> list[str]:
    names = [spec.onnx_probabilities_output]
    if spec.onnx_hidden_distance_output is not None:
        names.append(spec.onnx_hidden_distance_output)
    return names


def score_int8(
    graphs: Graphs, texts: Sequence[str], spec: InputSpec, threads: int
) -> tuple[NDArray[np.float32], NDArray[np.float32] | None]:
    """The int8 graph's probabilities and (when it has them) hidden distances for raw texts."""
    return score_session(make_session(graphs.int8.read_bytes(), threads=threads), texts, spec)


def score_session(
    session: object, texts: Sequence[str], spec: InputSpec
) -> tuple[NDArray[np.float32], NDArray[np.float32] | None]:
    outputs = evaluate.outputs_in_batches(session, texts, spec.onnx_input, output_names(spec))
    return outputs[0], (outputs[1].reshape(-1) if len(outputs) > 1 else None)


def score(
    graphs: Graphs, texts: list[str], labels: list[str], spec: InputSpec, threads: int, temperature: float
) -> Scored:
    """Both graphs through the runtime's own session factory, in runs of 10 events."""
    model = graphs.model
    index = {c: i for i, c in enumerate(model.classes)}
    y = np.asarray([index[label] for label in labels], dtype=np.int64)
    reference = model.predict_proba(normalize_batch(texts))
    io_names = (spec.onnx_input, spec.onnx_probabilities_output)
    fp32 = make_session(graphs.fp32.read_bytes(), threads=threads)
    int8 = make_session(graphs.int8.read_bytes(), threads=threads)
    p_fp32 = evaluate.score_in_batches(fp32, texts, *io_names)
    p_int8, d_int8 = score_session(int8, texts, spec)
    return Scored(
        fp32=p_fp32,
        int8=p_int8,
        int8_distance=d_int8,
        # scikit-learn knows nothing of the temperature: apply it, so parity compares like with like.
        sklearn=calibrate.apply_temperature(reference, temperature).astype(np.float32),
        metrics_fp32=evaluate.classification_metrics(p_fp32, y, model.classes),
        metrics_int8=evaluate.classification_metrics(p_int8, y, model.classes),
        int8_alone_vs_in_batch=evaluate.batch_dependence(int8, texts, *io_names, in_batches=p_int8),
    )


def latency(fp32_path: Path, int8_path: Path, texts: list[str], spec: InputSpec, repeats: int) -> dict[str, object]:
    """Per event and per batch of 10 at 1 thread, through the runtime path; medians."""
    io_names = (spec.onnx_input, spec.onnx_probabilities_output)
    result: dict[str, object] = {"threads": 1}
    for label, path in (("fp32", fp32_path), ("int8", int8_path)):
        session = make_session(path.read_bytes(), threads=1)
        result[label] = evaluate.measure_latency(session, texts, *io_names, repeats=repeats)
    return result
