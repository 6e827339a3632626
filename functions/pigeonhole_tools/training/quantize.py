"""Dynamic int8 quantization and the check, read from the graph itself, that it really happened.

`quantize_dynamic` silently leaves weights it cannot handle in float (a logistic regression exported
as `LinearClassifier` does not shrink at all), so the build counts initializer bytes by data type
and refuses a package whose dominant weights are not int8.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import onnx
from onnx import TensorProto, numpy_helper

from pigeonhole_tools.training.errors import BuildRefusedError

DEFAULT_MIN_INT8_SHARE = 0.5


def quantize_int8(src: Path, dst: Path, exclude: Sequence[str] = ()) -> None:
    """QInt8 weights for MatMul (the MLP), except the nodes named in `exclude` (kept in float). The ORT
    pre-processing step is skipped: it fails on string graphs."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _without_preprocessing_advice():
        quantize_dynamic(
            model_input=src,
            model_output=dst,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=list(exclude),
            # Type inference can lose track after the Normalizer op; everything there is float.
            extra_options={"DefaultTensorType": TensorProto.FLOAT},
        )


class _DropPreprocessingAdvice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


@contextmanager
def _without_preprocessing_advice() -> Iterator[None]:
    """Silence ORT's root-logger advice to pre-process: we skip that step on purpose (it fails here)."""
    root = logging.getLogger()
    advice = _DropPreprocessingAdvice()
    root.addFilter(advice)
    try:
        yield
    finally:
        root.removeFilter(advice)


@dataclass(frozen=True)
class WeightReport:
    """Bytes of the graph's initializers by data type, the int8 share and the largest tensors."""

    bytes_by_dtype: dict[str, int]
    largest: list[tuple[str, str, int]]  # (name, dtype, bytes), biggest first
    attribute_bytes: int  # node attributes (the vectorizers' n-gram pools and idf weights live there)
    float_by_design_bytes: int = 0  # tensors kept in float on purpose (the hidden distance): not counted above

    @property
    def total_bytes(self) -> int:
        return sum(self.bytes_by_dtype.values())

    @property
    def int8_bytes(self) -> int:
        return self.bytes_by_dtype.get("int8", 0)

    @property
    def int8_share(self) -> float:
        return self.int8_bytes / self.total_bytes if self.total_bytes else 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "initializer_bytes_by_dtype": dict(sorted(self.bytes_by_dtype.items())),
            "initializer_bytes": self.total_bytes,
            "int8_initializer_bytes": self.int8_bytes,
            "int8_share": round(self.int8_share, 6),
            "largest_initializers": [{"name": n, "dtype": d, "bytes": b} for n, d, b in self.largest],
            "node_attribute_bytes": self.attribute_bytes,
            "float_by_design_bytes": self.float_by_design_bytes,
        }


def tensor_bytes(tensor: onnx.TensorProto) -> int:
    """Payload size of an initializer (string tensors count their UTF-8 bytes)."""
    if tensor.data_type == TensorProto.STRING:
        return sum(len(s) for s in tensor.string_data)
    return int(numpy_helper.to_array(tensor).nbytes)


def weight_report(model: onnx.ModelProto, top: int = 5, keep_float: tuple[str, ...] = ()) -> WeightReport:
    """Initializer bytes by type; tensors whose name starts with a `keep_float` prefix were excluded from
    quantization on purpose and are counted apart, so they can neither fail nor pass the int8 check."""
    by_dtype: dict[str, int] = {}
    sizes: list[tuple[str, str, int]] = []
    by_design = 0
    for init in model.graph.initializer:
        dtype = TensorProto.DataType.Name(init.data_type).lower()
        size = tensor_bytes(init)
        if keep_float and init.name.startswith(keep_float):
            by_design += size
            continue
        by_dtype[dtype] = by_dtype.get(dtype, 0) + size
        sizes.append((init.name, dtype, size))
    sizes.sort(key=lambda item: (-item[2], item[0]))
    attribute_bytes = sum(attr.ByteSize() for node in model.graph.node for attr in node.attribute)
    return WeightReport(
        bytes_by_dtype=by_dtype, largest=sizes[:top], attribute_bytes=attribute_bytes, float_by_design_bytes=by_design
    )


def check_int8(report: WeightReport, min_share: float = DEFAULT_MIN_INT8_SHARE) -> None:
    """Refuse unless the largest initializer is int8 and int8 holds at least `min_share` of initializer bytes."""
    if not report.largest:
        raise BuildRefusedError("the quantized graph has no initializers: nothing was quantized")
    name, dtype, size = report.largest[0]
    if dtype != "int8":
        raise BuildRefusedError(
            f"quantization did not take: the largest weight tensor {name!r} ({size} bytes) is {dtype}, not int8"
        )
    if report.int8_share < min_share:
        raise BuildRefusedError(
            f"quantization did not take: int8 holds {report.int8_share:.1%} of initializer bytes, "
            f"below the required {min_share:.0%} ({report.as_dict()['initializer_bytes_by_dtype']})"
        )


def size_budget(int8_bytes: int, max_model_mb: float, n_features: int) -> dict[str, object]:
    """The int8 model.onnx against the size budget (decimal MB, as the docs report sizes); 0 = no budget."""
    return {
        "max_model_mb": max_model_mb,
        "int8_mb": round(int8_bytes / 1e6, 3),
        "n_features": n_features,
        "within": max_model_mb <= 0 or int8_bytes <= max_model_mb * 1e6,
    }


def check_size(int8_path: Path, max_model_mb: float, n_features: int, which: str) -> dict[str, object]:
    """Refuse a graph over the budget (like the other gates: nothing is written), naming the knob that helps.

    The build checks the held-out model first: the shipped model is trained on a superset of its rows with
    the same vocabulary rule, so it has at least as many features; refusing early saves the other trainings.
    """
    int8_bytes = int8_path.stat().st_size
    record = size_budget(int8_bytes, max_model_mb, n_features)
    if not record["within"]:
        raise BuildRefusedError(
            f"the int8 graph of the {which} is {int8_bytes / 1e6:.2f} MB ({n_features} features), over "
            f"--max-model-mb {max_model_mb}: cap the vocabulary with --max-features (per vectorizer), narrow "
            "the n-gram ranges or lower --hidden (or pass --max-model-mb 0 to build it anyway)"
        )
    return record


def size_summary(record: dict[str, object]) -> str:
    budget = record["max_model_mb"]
    limit = f"budget {budget} MB" if isinstance(budget, int | float) and budget > 0 else "no size budget"
    return f"int8 model {record['int8_mb']} MB ({record['n_features']} features), {limit}"
