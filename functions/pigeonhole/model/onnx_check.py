"""Checks on an ONNX file's bytes that need no `onnx` package (training-only): external data.

Why: a package is one self-contained, hashed file. A tensor stored as *external data* names another
file that onnxruntime opens by path when the session is built, a file the manifest's hash does not
cover (and a path that can point anywhere). The runtime refuses such a model before building a session.
This walks the protobuf wire format over the messages that can hold tensors (field numbers from
onnx.proto: ModelProto.graph 7 / functions 25, GraphProto.node 1 / initializer 5 / sparse_initializer 15,
NodeProto.attribute 5, FunctionProto.node 7, AttributeProto t 5 / g 6 / tensors 10 / graphs 11 /
sparse_tensor 22 / sparse_tensors 23, SparseTensorProto values 1 / indices 2, TensorProto
external_data 13 / data_location 14 where EXTERNAL = 1).
"""

from __future__ import annotations

from collections.abc import Iterator

MAX_DEPTH = 64
_EXTERNAL = 1


class MalformedModelError(ValueError):
    """The bytes are not a well-formed protobuf message."""


def _varint(buf: memoryview, i: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise MalformedModelError("truncated varint")
        byte = buf[i]
        i += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, i
        shift += 7


def _fields(buf: memoryview) -> Iterator[tuple[int, int, memoryview | int]]:
    i, n = 0, len(buf)
    while i < n:
        key, i = _varint(buf, i)
        field, wire = key >> 3, key & 7
        value: memoryview | int
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 1:
            value, i = buf[i : i + 8], i + 8
        elif wire == 2:
            length, i = _varint(buf, i)
            value, i = buf[i : i + length], i + length
        elif wire == 5:
            value, i = buf[i : i + 4], i + 4
        else:
            raise MalformedModelError(f"unsupported wire type {wire}")
        if i > n:
            raise MalformedModelError("truncated field")
        yield field, wire, value


# message kind -> {field number: message kind of that (length-delimited) field}
_CHILDREN: dict[str, dict[int, str]] = {
    "model": {7: "graph", 25: "function"},
    "graph": {1: "node", 5: "tensor", 15: "sparse"},
    "function": {7: "node"},
    "node": {5: "attribute"},
    "attribute": {5: "tensor", 6: "graph", 10: "tensor", 11: "graph", 22: "sparse", 23: "sparse"},
    "sparse": {1: "tensor", 2: "tensor"},
    "tensor": {},
}


def _external(buf: memoryview, kind: str, depth: int) -> int:
    if depth > MAX_DEPTH:
        raise MalformedModelError("graphs nest too deeply")
    found = 0
    for field, wire, value in _fields(buf):
        if kind == "tensor":
            if (field == 14 and wire == 0 and value == _EXTERNAL) or field == 13:
                return 1
            continue
        child = _CHILDREN[kind].get(field)
        if child is not None and wire == 2 and isinstance(value, memoryview):
            found += _external(value, child, depth + 1)
    return found


# Every external tensor names its file in an external_data entry whose key (field 1) is "location";
# without these bytes no tensor can be external, and the walk (about a second for a 6 MB TF-IDF model
# with a large string vocabulary) is skipped.
_LOCATION_KEY = b"\x0a\x08location"


def external_tensors(model: bytes) -> int:
    """How many tensors of the model keep their data in another file (0 for a self-contained model)."""
    if _LOCATION_KEY not in model:
        return 0
    return _external(memoryview(model), "model", 0)
