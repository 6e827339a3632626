"""The ONNX Runtime session: created lazily, with explicit threads and telemetry off."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pigeonhole.model.features import normalize_batch


def make_session(model: Path | bytes, threads: int = 1) -> object:
    """Create an InferenceSession on the CPU; Lambda's vCPUs are fractional, so threads are explicit."""
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    import onnxruntime as ort  # imported here: importing it costs ~100 ms of cold start

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    source = str(model) if isinstance(model, Path) else model
    return ort.InferenceSession(source, sess_options=options, providers=["CPUExecutionProvider"])


def run_probabilities(
    session: object, texts: Sequence[str], input_name: str = "text", output_name: str = "probabilities"
) -> np.ndarray:
    """Class probabilities for raw texts, shape (n, n_classes), float32. Normalizes first."""
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    (probs,) = run_outputs(session, texts, input_name, [output_name])
    return probs


def run_outputs(
    session: object, texts: Sequence[str], input_name: str, output_names: Sequence[str]
) -> list[np.ndarray]:
    """Several graph outputs from one run over raw (normalized here) texts, each as float32."""
    batch = np.array(normalize_batch(texts), dtype=object).reshape(-1, 1)
    outputs = session.run(list(output_names), {input_name: batch})  # type: ignore[attr-defined]
    return [np.asarray(out, dtype=np.float32) for out in outputs]
