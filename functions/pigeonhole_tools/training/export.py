"""Export the fitted recipe to a single-file ONNX graph that takes raw (normalized) strings.

The graph holds the whole featurizer, so the runtime needs only onnxruntime + `normalize_text`.
It has exactly one input (strings, shape [None, 1]) and one output (float probabilities in the
order of `TrainedModel.classes`); the string `label` output skl2onnx adds is pruned. The graph name
(skl2onnx draws a random one) is fixed and the opset imports sorted, so the same seed gives the
same bytes in every process.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import onnx
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import StringTensorType
from sklearn.pipeline import Pipeline

from pigeonhole_tools.training.train import TrainedModel

# onnxruntime's StringNormalizer otherwise asks for en_US.UTF-8, which Lambda may lack. With
# lowercase=False no StringNormalizer should be emitted at all; the option is a second safety net.
LOCALE = "C.UTF-8"
DEFAULT_OPSET = 17
ML_OPSET = 3
_SKL2ONNX_PROBABILITIES = "probabilities"
GRAPH_NAME = "pigeonhole"


def to_onnx(
    model: TrainedModel, input_name: str = "text", output_name: str = "probabilities", opset: int = DEFAULT_OPSET
) -> onnx.ModelProto:
    """Convert featurizer + MLP into one graph: `input_name` (string [N,1]) -> `output_name` (float [N,C])."""
    pipeline = Pipeline([("features", model.features), ("mlp", model.mlp)])
    options: dict[int, dict[str, object]] = {
        id(model.word_vectorizer): {"locale": LOCALE},
        id(model.char_vectorizer): {"locale": LOCALE},
        id(model.mlp): {"zipmap": False},
    }
    with warnings.catch_warnings():
        # skl2onnx warns that the char analyzer "may not work"; the build measures parity instead.
        warnings.filterwarnings("ignore", message=".*may not work.*", category=UserWarning)
        graph = convert_sklearn(
            pipeline,
            initial_types=[(input_name, StringTensorType([None, 1]))],
            options=options,
            target_opset={"": opset, "ai.onnx.ml": ML_OPSET},
        )
    keep_only_outputs(graph, [_SKL2ONNX_PROBABILITIES])
    if output_name != _SKL2ONNX_PROBABILITIES:
        rename_output(graph, _SKL2ONNX_PROBABILITIES, output_name)
    graph.graph.name = GRAPH_NAME
    sort_opset_imports(graph)
    onnx.checker.check_model(graph)
    inputs = [i.name for i in graph.graph.input]
    outputs = [o.name for o in graph.graph.output]
    if inputs != [input_name] or outputs != [output_name]:
        raise RuntimeError(
            f"exported graph has inputs {inputs} and outputs {outputs}, expected [{input_name}] -> [{output_name}]"
        )
    return graph


def sort_opset_imports(model: onnx.ModelProto) -> None:
    """skl2onnx lists opset domains in set order, which changes with PYTHONHASHSEED: sort them for stable bytes."""
    ordered = sorted(model.opset_import, key=lambda o: o.domain)
    copies = [onnx.helper.make_opsetid(o.domain, o.version) for o in ordered]
    del model.opset_import[:]
    model.opset_import.extend(copies)


def rename_output(model: onnx.ModelProto, old: str, new: str) -> None:
    """Rename a graph output everywhere it is produced or consumed."""
    for node in model.graph.node:
        node.output[:] = [new if name == old else name for name in node.output]
        node.input[:] = [new if name == old else name for name in node.input]
    for out in model.graph.output:
        if out.name == old:
            out.name = new


def keep_only_outputs(model: onnx.ModelProto, names: list[str]) -> None:
    """Drop the other graph outputs, the nodes only they needed, and constants no remaining node reads.

    (skl2onnx's `select_model_inputs_outputs` drops the output's type, which the checker rejects.)
    """
    graph = model.graph
    missing = set(names) - {o.name for o in graph.output}
    if missing:
        raise RuntimeError(f"the converted graph has no output(s) {sorted(missing)}")
    kept_outputs = [o for o in graph.output if o.name in names]
    del graph.output[:]
    graph.output.extend(kept_outputs)
    needed = set(names)
    kept_nodes = []
    for node in reversed(graph.node):  # nodes are topologically sorted: walk back from the outputs
        if needed.intersection(node.output):
            kept_nodes.append(node)
            needed.update(node.input)
    kept_nodes.reverse()
    del graph.node[:]
    graph.node.extend(kept_nodes)
    kept_inits = [init for init in graph.initializer if init.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(kept_inits)
    kept_info = [vi for vi in graph.value_info if vi.name in needed]
    del graph.value_info[:]
    graph.value_info.extend(kept_info)


def save(model: onnx.ModelProto, path: Path) -> None:
    """Write one self-contained file (no external data), as the manifest contract requires."""
    onnx.save_model(model, str(path), save_as_external_data=False)
