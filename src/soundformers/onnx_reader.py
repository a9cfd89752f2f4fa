"""Read the weights and the node list of an ONNX model without the `onnx` package.

An `.onnx` file is one protobuf message (`ModelProto`). We need only a small part of it:
the graph's initializers (the weights, as `TensorProto`s) and its nodes (name, op type, inputs,
outputs), to tell which module a constant-folded weight belongs to. The protobuf wire format
is a sequence of (field number, wire type, value) records, so a reader for those few messages is
short; it memory-maps the file and returns tensors that view the mapped bytes (no copy for
`raw_data`).

Field numbers (from onnx/onnx.proto3):

- ModelProto: 7 graph
- GraphProto: 1 node, 5 initializer
- NodeProto: 1 input, 2 output, 3 name, 4 op_type, 5 attribute
- AttributeProto: 1 name, 5 t (tensor), 6 g (graph)
- TensorProto: 1 dims, 2 data_type, 4 float_data, 5 int32_data, 7 int64_data, 8 name,
  9 raw_data, 10 double_data, 14 data_location (1 = external, which we do not read)
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .errors import CheckpointError

__all__ = ["OnnxGraph", "OnnxNode", "read_onnx"]

# TensorProto.DataType -> numpy dtype
_DTYPES: dict[int, np.dtype] = {
    1: np.dtype("<f4"),
    2: np.dtype("u1"),
    3: np.dtype("i1"),
    5: np.dtype("<i2"),
    6: np.dtype("<i4"),
    7: np.dtype("<i8"),
    9: np.dtype("bool"),
    10: np.dtype("<f2"),
    11: np.dtype("<f8"),
}
# typed (non-raw) storage: field number -> how its packed values are encoded
_FLOAT_DATA, _INT32_DATA, _INT64_DATA, _DOUBLE_DATA = 4, 5, 7, 10


@dataclass(frozen=True)
class OnnxNode:
    """One graph node: name, op_type, inputs and outputs (value names), and its int, float
    and int-list attributes (e.g. a Conv's `dilations`, `strides`, `pads`)."""

    name: str
    op_type: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attributes: dict[str, int | float | tuple[int, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class OnnxGraph:
    """The parts of an ONNX model a weight loader needs.

    Attributes:
        initializers: name -> tensor, as stored (dtype and shape of the TensorProto).
        nodes: the main graph's nodes, in file order; `Constant` nodes' tensors are not in
            `initializers`.
        path: the file read.
    """

    initializers: dict[str, torch.Tensor]
    nodes: list[OnnxNode] = field(default_factory=list)
    path: Path | None = None

    def consumers(self) -> dict[str, list[OnnxNode]]:
        """value name -> the nodes that take it as an input."""
        out: dict[str, list[OnnxNode]] = {}
        for node in self.nodes:
            for name in node.inputs:
                out.setdefault(name, []).append(node)
        return out


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")


def _fields(buf: memoryview):
    """Yield (field number, wire type, value) of one message; a length-delimited value is a
    memoryview, a varint an int, fixed32/fixed64 their raw bytes."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            n, pos = _varint(buf, pos)
            if pos + n > end:
                raise ValueError(f"field {number} runs past the end of its message")
            value, pos = buf[pos : pos + n], pos + n
        elif wire == 1:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == 5:
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire} (field {number})")
        yield number, wire, value


def _packed_varints(value: memoryview | int) -> list[int]:
    if isinstance(value, int):
        return [value]
    out, pos = [], 0
    while pos < len(value):
        v, pos = _varint(value, pos)
        out.append(v)
    return out


def _signed64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _tensor(buf: memoryview) -> tuple[str, torch.Tensor]:
    dims: list[int] = []
    dtype_id = 1
    name = ""
    raw: memoryview | None = None
    typed: dict[int, list] = {}
    for number, wire, value in _fields(buf):
        if number == 1:
            dims.extend(_signed64(v) for v in _packed_varints(value))
        elif number == 2:
            dtype_id = int(value)
        elif number == 8:
            name = bytes(value).decode("utf-8")
        elif number == 9:
            raw = value
        elif number == 14 and value == 1:
            raise CheckpointError(f"tensor {name!r} is stored in an external file, not read here")
        elif number in (_FLOAT_DATA, _DOUBLE_DATA):
            fmt = "<f" if number == _FLOAT_DATA else "<d"
            if wire == 2:
                typed.setdefault(number, []).extend(x for (x,) in struct.iter_unpack(fmt, value))
            else:
                typed.setdefault(number, []).append(struct.unpack(fmt, value)[0])
        elif number in (_INT32_DATA, _INT64_DATA):
            typed.setdefault(number, []).extend(_signed64(v) for v in _packed_varints(value))
    if dtype_id not in _DTYPES:
        raise CheckpointError(f"tensor {name!r} has ONNX data type {dtype_id}, not read here")
    dtype = _DTYPES[dtype_id]
    if raw is not None:
        array = np.frombuffer(raw, dtype=dtype) if len(raw) else np.zeros(0, dtype)
        if not array.flags.aligned:
            array = array.copy()
    else:
        values = next(iter(typed.values()), [])
        if dtype_id == 10:  # float16 in int32_data holds the bit patterns
            array = np.asarray(values, np.uint16).view(np.float16)
        else:
            array = np.asarray(values, dtype=dtype)
    count = int(np.prod(dims)) if dims else 1
    if array.size != count:
        raise CheckpointError(f"tensor {name!r}: {array.size} values for dims {dims}")
    return name, torch.from_numpy(array).reshape(dims)


def _node(buf: memoryview) -> OnnxNode:
    inputs: list[str] = []
    outputs: list[str] = []
    name = op_type = ""
    attributes: dict[str, int | float | tuple[int, ...]] = {}
    for number, _, value in _fields(buf):
        if number == 1:
            inputs.append(bytes(value).decode("utf-8"))
        elif number == 2:
            outputs.append(bytes(value).decode("utf-8"))
        elif number == 3:
            name = bytes(value).decode("utf-8")
        elif number == 4:
            op_type = bytes(value).decode("utf-8")
        elif number == 5:
            key, attr = _attribute(value)
            if attr is not None:
                attributes[key] = attr
    return OnnxNode(name, op_type, tuple(inputs), tuple(outputs), attributes)


def _attribute(buf: memoryview) -> tuple[str, int | float | tuple[int, ...] | None]:
    """(name, value) of an AttributeProto holding an int, a float or ints; else value None."""
    name, value, ints = "", None, []
    for number, wire, raw in _fields(buf):
        if number == 1:
            name = bytes(raw).decode("utf-8")
        elif number == 3:
            value = _signed64(int(raw))
        elif number == 2 and wire == 5:
            value = struct.unpack("<f", raw)[0]
        elif number == 8:
            ints.extend(_signed64(v) for v in _packed_varints(raw))
    return name, tuple(ints) if ints else value


def read_onnx(path: str | Path) -> OnnxGraph:
    """Read an `.onnx` file's initializers and node list (memory-mapped).

    Args:
        path: the model file (weights inside it; external data files are not supported).

    Returns:
        The main graph's initializers and nodes.

    Raises:
        CheckpointError: the file is missing, not an ONNX model, or stores its weights in
            external data files.
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            # copy-on-write: tensors may be written to by torch without touching the file
            data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
    except (OSError, ValueError) as e:
        raise CheckpointError(f"cannot read ONNX model {path}: {e}") from e
    model = memoryview(data)
    try:
        graph = next((v for n, w, v in _fields(model) if n == 7 and w == 2), None)
        if graph is None:
            raise CheckpointError(f"{path} is not an ONNX model: it has no graph")
        initializers: dict[str, torch.Tensor] = {}
        nodes: list[OnnxNode] = []
        for number, wire, value in _fields(graph):
            if number == 1 and wire == 2:
                nodes.append(_node(value))
            elif number == 5 and wire == 2:
                name, tensor = _tensor(value)
                initializers[name] = tensor
    except (ValueError, IndexError, struct.error, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is not a readable ONNX model ({e})") from e
    return OnnxGraph(initializers, nodes, path)
