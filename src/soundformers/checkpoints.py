"""Read checkpoint files into `{name: torch.Tensor}`, whatever format they were saved in.

Formats: safetensors (one file or a sharded set with `*.safetensors.index.json`), PyTorch
pickles (`pytorch_model.bin`, OpenAI Whisper `.pt`, loaded with `weights_only=True` and
memory-mapped), and CTranslate2 `model.bin` (faster-whisper's format, parsed here, also split
into `model.bin.part1`, `model.bin.part2`, ...).

Names are returned as the file stores them: each model's `convert.py` holds a table from the
file's names to its own, applied by `rename`.
"""

from __future__ import annotations

import bisect
import ctypes
import functools
import json
import mmap
import re
import struct
import sys
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from .errors import CheckpointError

__all__ = [
    "LAYER_INDEX",
    "Checkpoint",
    "GatherTarget",
    "SplitTarget",
    "read_checkpoint",
    "read_ctranslate2",
    "read_safetensors",
    "read_torch",
    "release_file_pages",
    "rename",
]


@dataclass(frozen=True)
class Checkpoint:
    """The tensors of a checkpoint file plus what else it carries.

    Attributes:
        format: "safetensors", "torch" or "ctranslate2".
        tensors: name -> tensor, names as stored in the file. CTranslate2 scalars (e.g.
            `encoder/num_heads`) are 0-dim tensors; its aliases point at the same tensor as
            their target.
        metadata: non-tensor content: the OpenAI `dims` dict of a Whisper `.pt`, the
            CTranslate2 `spec` name and `revision`, the safetensors header metadata.
        paths: the file(s) read.
    """

    format: str
    tensors: dict[str, torch.Tensor]
    metadata: dict[str, Any] = field(default_factory=dict)
    paths: tuple[Path, ...] = ()


def read_checkpoint(paths: str | Path | Sequence[str | Path]) -> Checkpoint:
    """Read a checkpoint, choosing the reader by the file's content and name.

    Args:
        paths: one file, or the ordered parts of a split CTranslate2 `model.bin`, or the
            shards of a safetensors checkpoint.

    Returns:
        The checkpoint's tensors, as stored (no renaming, no dtype change).

    Raises:
        CheckpointError: a file is missing, truncated or in no format we read.
    """
    files = _as_paths(paths)
    for path in files:
        if not path.is_file():
            raise CheckpointError(f"checkpoint file {path} does not exist")
    kind = _sniff(files[0])
    if kind == "safetensors":
        return read_safetensors(files)
    if kind == "torch":
        if len(files) > 1:
            raise CheckpointError(
                f"got {len(files)} PyTorch files {[str(p) for p in files]}; pass one at a time"
            )
        return read_torch(files[0])
    if kind == "ctranslate2":
        return read_ctranslate2(files)
    raise CheckpointError(
        f"{files[0]} is in no checkpoint format we read: expected safetensors, a PyTorch "
        "zip pickle (.bin/.pt) or a CTranslate2 model.bin"
    )


def _as_paths(paths: str | Path | Sequence[str | Path]) -> list[Path]:
    if isinstance(paths, (str, Path)):
        return [Path(paths)]
    files = [Path(p) for p in paths]
    if not files:
        raise CheckpointError("no checkpoint files given")
    return files


def _sniff(path: Path) -> str:
    """Guess the format from the first bytes (names vary too much to trust)."""
    with path.open("rb") as f:
        head = f.read(64)
    if head[:4] == b"PK\x03\x04":
        return "torch"  # torch.save's zip format
    if path.suffix == ".safetensors" or (len(head) >= 9 and head[8:9] == b"{"):
        return "safetensors"  # u64 header length, then a JSON header
    if len(head) >= 6 and struct.unpack_from("<I", head)[0] < 16:
        name_len = struct.unpack_from("<H", head, 4)[0]
        if 0 < name_len < 60 and head[6 : 6 + name_len - 1].isascii():
            return "ctranslate2"  # u32 version, then the spec name as a string
    if path.suffix in (".bin", ".pt", ".pth", ".ckpt"):
        return "torch"  # legacy (non-zip) pickle: let torch.load judge it
    return "unknown"


# --------------------------------------------------------------------------------------------
# safetensors


def read_safetensors(paths: str | Path | Sequence[str | Path]) -> Checkpoint:
    """Read one or more safetensors files (memory-mapped, zero copy until used).

    Args:
        paths: a `.safetensors` file, several shards, or a `*.safetensors.index.json`.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    files = _as_paths(paths)
    if len(files) == 1 and files[0].name.endswith(".index.json"):
        index = files[0]
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (OSError, ValueError, KeyError) as e:
            raise CheckpointError(f"cannot read the shard index {index}: {e}") from e
        files = [index.parent / name for name in dict.fromkeys(weight_map.values())]
    tensors: dict[str, torch.Tensor] = {}
    metadata: dict[str, Any] = {}
    for path in files:
        try:
            tensors.update(load_file(str(path)))
            metadata.update(_safetensors_metadata(path))
        except (SafetensorError, OSError) as e:
            raise CheckpointError(f"cannot read safetensors file {path}: {e}") from e
    return Checkpoint("safetensors", tensors, metadata, tuple(files))


def _safetensors_metadata(path: Path) -> dict[str, Any]:
    with path.open("rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    return dict(header.get("__metadata__") or {})


# --------------------------------------------------------------------------------------------
# PyTorch pickles (transformers pytorch_model.bin, OpenAI Whisper .pt)


def read_torch(path: str | Path) -> Checkpoint:
    """Read a `torch.save` file safely (`weights_only=True`), memory-mapped when possible.

    A plain state dict gives its tensors. An OpenAI Whisper checkpoint
    (`{"dims": {...}, "model_state_dict": {...}}`) gives the state dict, with `dims` in
    `metadata`. Other wrappers (`{"state_dict": ...}`, `{"model": ...}`) are unwrapped the
    same way; any other non-tensor entries go to `metadata`.
    """
    path = Path(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as e:
        if "mmap" not in str(e):
            raise CheckpointError(f"cannot read PyTorch checkpoint {path}: {e}") from e
        obj = _torch_load_no_mmap(path)  # legacy (non-zip) format cannot be mapped
    except pickle_errors() + (OSError, EOFError, zipfile.BadZipFile) as e:
        raise CheckpointError(
            f"cannot read PyTorch checkpoint {path}: {e}. Only plain tensors, dicts and numbers "
            "are allowed (weights_only=True); re-save it as a state dict or safetensors."
        ) from e
    if not isinstance(obj, dict):
        raise CheckpointError(
            f"{path} holds a {type(obj).__name__}, expected a dict of tensors (a state dict)"
        )
    state = obj
    for key in ("model_state_dict", "state_dict", "model"):
        if isinstance(obj.get(key), dict):
            state = obj[key]
            break
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    metadata = {k: v for k, v in obj.items() if not isinstance(v, torch.Tensor) and v is not state}
    if not tensors:
        raise CheckpointError(f"{path} holds no tensors (keys: {sorted(obj)[:10]})")
    return Checkpoint("torch", tensors, metadata, (path,))


def pickle_errors() -> tuple[type[BaseException], ...]:
    import pickle

    return (pickle.UnpicklingError, ValueError, TypeError, AttributeError)


def _torch_load_no_mmap(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle_errors() + (OSError, EOFError, RuntimeError) as e:
        raise CheckpointError(f"cannot read PyTorch checkpoint {path}: {e}") from e


# --------------------------------------------------------------------------------------------
# CTranslate2 model.bin
#
# Little-endian: u32 version; string spec name; u32 revision; u32 variable count; per variable:
# string name, u8 rank, u32 dims[rank], u8 dtype id, u32 byte count, bytes; then u32 alias
# count and (alias, target) string pairs. A string is a u16 length (counting its trailing NUL)
# followed by the bytes.

_CT2_DTYPES: dict[int, tuple[np.dtype, torch.dtype]] = {
    0: (np.dtype("<f4"), torch.float32),
    1: (np.dtype("i1"), torch.int8),
    2: (np.dtype("<i2"), torch.int16),
    3: (np.dtype("<i4"), torch.int32),
    4: (np.dtype("<f2"), torch.float16),
    5: (np.dtype("<u2"), torch.bfloat16),  # read as raw 16-bit words, viewed as bfloat16
}


class _SplitBuffer:
    """Read-only view over files concatenated end to end, each memory-mapped.

    `array(offset, count, dtype)` returns a zero-copy numpy view when the bytes lie inside one
    part, aligned for the dtype or not (CTranslate2 packs variables back to back); it copies
    only when they straddle two parts. Nothing is read until a tensor is used, so loading
    converts one variable at a time and never holds a second copy of the file in memory.
    `assign_weights` gives an unaligned tensor aligned storage of its own.
    """

    def __init__(self, files: Sequence[Path]) -> None:
        self.maps: list[mmap.mmap] = []
        self.starts: list[int] = []
        total = 0
        for path in files:
            with path.open("rb") as f:
                size = path.stat().st_size
                if size == 0:
                    raise CheckpointError(f"CTranslate2 checkpoint part {path} is empty")
                # copy-on-write: the arrays are writable (torch wants that), the file is untouched
                self.maps.append(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY))
            self.starts.append(total)
            total += size
        self.size = total

    def bytes(self, offset: int, n: int) -> bytes:
        return self.array(offset, n, np.dtype("u1")).tobytes()

    def array(self, offset: int, count: int, dtype: np.dtype) -> np.ndarray:
        n = count * dtype.itemsize
        if offset + n > self.size:
            raise EOFError(f"needs bytes {offset}..{offset + n}, the data ends at {self.size}")
        part = max(i for i, s in enumerate(self.starts) if s <= offset)
        local = offset - self.starts[part]
        if local + n <= len(self.maps[part]):
            return np.frombuffer(self.maps[part], dtype=dtype, count=count, offset=local)
        chunks, remaining, pos = [], n, offset
        while remaining:  # straddles parts: gather a copy
            part = max(i for i, s in enumerate(self.starts) if s <= pos)
            local = pos - self.starts[part]
            take = min(remaining, len(self.maps[part]) - local)
            chunks.append(self.maps[part][local : local + take])
            pos, remaining = pos + take, remaining - take
        return np.frombuffer(bytearray(b"".join(chunks)), dtype=dtype, count=count)


class _Reader:
    def __init__(self, buf: _SplitBuffer) -> None:
        self.buf, self.pos = buf, 0

    def unpack(self, fmt: str) -> tuple[Any, ...]:
        n = struct.calcsize(fmt)
        values = struct.unpack(fmt, self.buf.bytes(self.pos, n))
        self.pos += n
        return values

    def u8(self) -> int:
        return self.unpack("<B")[0]

    def u16(self) -> int:
        return self.unpack("<H")[0]

    def u32(self) -> int:
        return self.unpack("<I")[0]

    def string(self) -> str:
        n = self.u16()
        raw = self.buf.bytes(self.pos, n)
        self.pos += n
        return raw.rstrip(b"\x00").decode("utf-8")


def read_ctranslate2(paths: str | Path | Sequence[str | Path]) -> Checkpoint:
    """Read a CTranslate2 `model.bin` (or its parts, in order) without loading it into memory.

    Args:
        paths: `model.bin`, or `[model.bin.part1, model.bin.part2, ...]` which concatenate to
            it.

    Returns:
        Checkpoint with every variable as stored (float16 stays float16; scalars are 0-dim
        tensors), aliases resolved to their target tensor, and metadata
        `{"version", "spec", "revision"}`.
    """
    files = _as_paths(paths)
    shown = "+".join(str(p) for p in files)
    try:
        buf = _SplitBuffer(files)
        r = _Reader(buf)
        version = r.u32()
        if not 5 <= version <= 6:
            raise CheckpointError(
                f"{shown}: CTranslate2 binary version {version}; we read versions 5 and 6 "
                "(CTranslate2 >= 2.0). Re-convert the model with a current ct2 converter."
            )
        spec = r.string()
        revision = r.u32()
        tensors: dict[str, torch.Tensor] = {}
        for _ in range(r.u32()):
            name = r.string()
            rank = r.u8()
            shape = r.unpack(f"<{rank}I") if rank else ()
            type_id = r.u8()
            nbytes = r.u32()
            if type_id not in _CT2_DTYPES:
                raise CheckpointError(f"{shown}: variable {name!r} has unknown dtype id {type_id}")
            np_dtype, torch_dtype = _CT2_DTYPES[type_id]
            count = int(np.prod(shape)) if rank else 1
            if count * np_dtype.itemsize != nbytes:
                raise CheckpointError(
                    f"{shown}: variable {name!r} of shape {shape} says {nbytes} bytes, "
                    f"expected {count * np_dtype.itemsize}"
                )
            array = buf.array(r.pos, count, np_dtype)
            r.pos += nbytes
            tensor = torch.from_numpy(array)
            if torch_dtype == torch.bfloat16:
                tensor = tensor.view(torch.bfloat16)
            tensors[name] = tensor.reshape(shape)
        for _ in range(r.u32()):
            alias, target = r.string(), r.string()
            if target not in tensors:
                raise CheckpointError(f"{shown}: alias {alias!r} -> missing {target!r}")
            tensors[alias] = tensors[target]
    except (EOFError, struct.error) as e:
        raise CheckpointError(
            f"CTranslate2 checkpoint {shown} is truncated or corrupt ({e}). If the model is "
            "split into model.bin.part1, .part2, ..., pass all parts in order."
        ) from e
    except OSError as e:
        raise CheckpointError(f"cannot read CTranslate2 checkpoint {shown}: {e}") from e
    if r.pos != buf.size:
        raise CheckpointError(
            f"{shown}: {buf.size - r.pos} bytes left after the last variable; is a part missing "
            "or given in the wrong order?"
        )
    metadata = {"version": version, "spec": spec, "revision": revision}
    return Checkpoint("ctranslate2", tensors, metadata, tuple(files))


# --------------------------------------------------------------------------------------------
# Assigning renamed tensors to a model


def assign_weights(
    model: torch.nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    source: str = "checkpoint",
) -> torch.nn.Module:
    """Assign tensors already renamed to the model's names; check coverage both ways.

    The model is usually built on the meta device: its parameters are replaced by the
    checkpoint's tensors (`load_state_dict(assign=True)`), converted to `dtype` on `device`.

    Args:
        model: the module to fill.
        state_dict: our-named tensors.
        dtype: floating dtype of the parameters (float16 checkpoints upcast exactly).
        device: where the model lives (default CPU).
        source: the checkpoint's name, for error messages.

    Returns:
        `model`, in eval mode, without gradients.

    Raises:
        CheckpointError: missing or unexpected tensors (both listed), or a shape mismatch.
    """
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{source} does not match {type(model).__name__}: missing {name_listing(missing)}; "
            f"unexpected {name_listing(unexpected)}"
        )
    ready = {}
    mapped = _file_mappings()
    for name, want in expected.items():
        tensor = state_dict[name]
        if tensor.shape != want.shape:
            raise CheckpointError(
                f"{source}: {name} has shape {tuple(tensor.shape)}, the config implies "
                f"{tuple(want.shape)}"
            )
        converted = _converted(tensor, dtype, device, mapped)
        if converted.data_ptr() % converted.element_size():  # unaligned view into a mapped file
            converted = converted.clone()
        if converted.data_ptr() != tensor.data_ptr():
            _release([tensor], mapped)  # copied: its file pages need not stay in memory
        ready[name] = converted
    model.load_state_dict(ready, assign=True, strict=True)
    return model.eval().requires_grad_(False)


def _converted(
    tensor: torch.Tensor,
    dtype: torch.dtype,
    device: torch.device | str | None,
    mapped: list[tuple[int, int]],
) -> torch.Tensor:
    """`tensor.to(device, dtype)`; between float16 and bfloat16 on CPU through float32, a
    block at a time (torch casts one to the other without vector code: tiny.en's float16
    weights to bfloat16 61 -> 42 ms), each block's file pages released as it is done
    (`mapped`: see `release_file_pages`)."""
    halves = {tensor.dtype, dtype}
    if tensor.device.type != "cpu" or halves != {torch.float16, torch.bfloat16}:
        return tensor.to(device=device, dtype=dtype)
    if tensor.numel() <= _CAST_BLOCK:
        return tensor.float().to(device=device, dtype=dtype)
    out = torch.empty(tensor.shape, dtype=dtype)
    source, target = tensor.reshape(-1), out.view(-1)
    for start in range(0, len(source), _CAST_BLOCK):
        block = source[start : start + _CAST_BLOCK]
        target[start : start + _CAST_BLOCK].copy_(block.float())
        _release([block], mapped)
    return out.to(device=device)


_CAST_BLOCK = 1 << 19  # elements: a 2 MB float32 block stays in cache


def release_file_pages(tensors: Iterable[torch.Tensor]) -> int:
    """Drop the pages of memory-mapped checkpoint files behind `tensors` from this process's
    resident memory, once their contents have been copied (converted to another dtype).

    The files are mapped, so every page a conversion reads stays resident (and counted in the
    process's RSS) until the mapping closes, after loading: without this, converting a
    float16 file to float32 peaks at the file's size above the model's. `madvise(DONTNEED)`
    lets the kernel take them back as the loading goes. The contents do not change: a
    tensor read again faults its pages back in from the file (readers never write into a
    mapping). Only whole pages inside a mapping of a file on disk are released; anonymous
    memory is never touched. Linux only (elsewhere a no-op).

    Args:
        tensors: CPU tensors, possibly views into a mapped file (any dtype, any strides).

    Returns:
        The number of bytes released.
    """
    return _release(tensors, _file_mappings())


def _release(tensors: Iterable[torch.Tensor], mapped: list[tuple[int, int]]) -> int:
    page = mmap.PAGESIZE
    released = 0
    for tensor in tensors:
        if tensor.device.type != "cpu" or not tensor.numel():
            continue
        start, end = _byte_span(tensor)
        start, end = -(-start // page) * page, end // page * page  # whole pages inside
        i = bisect.bisect_right(mapped, (start, float("inf"))) - 1  # the mapping from start
        if end > start and i >= 0 and end <= mapped[i][1]:
            if _libc().madvise(ctypes.c_void_p(start), ctypes.c_size_t(end - start), 4) == 0:
                released += end - start  # 4 = MADV_DONTNEED
    return released


def _byte_span(tensor: torch.Tensor) -> tuple[int, int]:
    """[first, last + 1) byte addresses a tensor view reads (non-negative strides)."""
    extent = sum((n - 1) * s for n, s in zip(tensor.shape, tensor.stride()) if n > 0) + 1
    return tensor.data_ptr(), tensor.data_ptr() + extent * tensor.element_size()


def _file_mappings() -> list[tuple[int, int]]:
    """Address ranges of this process's mappings of regular files, in address order (from
    /proc/self/maps; none off Linux)."""
    ranges: list[tuple[int, int]] = []
    if sys.platform != "linux":
        return ranges
    with open("/proc/self/maps") as f:
        for line in f:
            fields = line.split(maxsplit=5)
            if len(fields) == 6 and fields[4] != "0" and fields[5].startswith("/"):
                if fields[5].rstrip().endswith("(deleted)") or fields[5].startswith("/dev/"):
                    continue
                lo, hi = fields[0].split("-")
                ranges.append((int(lo, 16), int(hi, 16)))
    return sorted(ranges)


@functools.cache
def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    return libc


def name_listing(names: Sequence[str], limit: int = 12) -> str:
    """`[a, b, ...] (n)`: tensor names for an error message, at most `limit` of them."""
    if not names:
        return "none"
    shown = ", ".join(names[:limit])
    return f"[{shown}{', ...' if len(names) > limit else ''}] ({len(names)})"


def read_json(path: Path | None) -> dict[str, Any]:
    """A JSON object from `path` ({} for None), or CheckpointError naming the broken file."""
    if path is None:
        return {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CheckpointError(f"cannot read {path}: {e}") from e
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} holds a {type(data).__name__}, expected a JSON object")
    return data


# a layer index inside a name: "encoder.layers.3.fc1" / "decoder/layer_3/ffn"
LAYER_INDEX = re.compile(r"(?<=[._])(\d+)(?=[./])")


class SplitTarget(Protocol):
    """A table target that cuts one checkpoint tensor into several of ours."""

    def split(
        self, name: str, tensor: torch.Tensor, layer: Sequence[str]
    ) -> dict[str, torch.Tensor]:
        """Our names (formatted with the `layer` indices) -> parts of `tensor` (named `name`)."""
        ...


class GatherTarget(Protocol):
    """A table target that is one part of a tensor of ours built from several checkpoint
    tensors (fused q/k/v, a weight-normed pair): `target` names it, `part` says which part."""

    target: str
    part: Any

    def combine(self, name: str, parts: dict[Any, torch.Tensor], source: str) -> torch.Tensor:
        """Our tensor `name` from all its parts; CheckpointError when some are missing."""
        ...


def rename(
    tensors: Mapping[str, torch.Tensor],
    table: Mapping[str, str | SplitTarget | GatherTarget | None],
    *,
    source: str,
    what: str,
    indices: int = 1,
    index: re.Pattern[str] = LAYER_INDEX,
) -> dict[str, torch.Tensor]:
    """Rename a checkpoint's tensors to a model's own names through a table.

    A name's first `indices` layer indices (all with 0) are replaced by `{}` to find its row;
    the row's target is formatted with them. A target is our name, None (dropped), a
    `SplitTarget` or a `GatherTarget`.

    Args:
        tensors: the checkpoint's name -> tensor.
        table: checkpoint name pattern -> target.
        source: what to call the checkpoint in errors (its path).
        what: what the tensors should be, for the error, e.g. "Whisper weights".
        indices: how many indices a pattern abstracts (0: all).
        index: where an index sits in a name.

    Raises:
        CheckpointError: names the table does not know (listed), or a gathered tensor with a
            part missing.
    """
    out: dict[str, torch.Tensor] = {}
    gathered: dict[str, tuple[GatherTarget, dict[Any, torch.Tensor]]] = {}
    unknown = []
    for name, tensor in tensors.items():
        layer = index.findall(name)
        layer = layer if indices == 0 else layer[:indices]
        pattern = index.sub("{}", name, count=indices)
        if pattern not in table:
            unknown.append(name)
            continue
        target = table[pattern]
        if target is None:
            continue
        if isinstance(target, str):
            out[target.format(*layer)] = tensor
        elif hasattr(target, "split"):
            out.update(target.split(name, tensor, layer))
        else:
            ours = target.target.format(*layer)
            gathered.setdefault(ours, (target, {}))[1][target.part] = tensor
    if unknown:
        raise CheckpointError(
            f"{source}: {len(unknown)} tensors are not {what}: {name_listing(unknown)}"
        )
    for ours, (target, parts) in gathered.items():
        out[ours] = target.combine(ours, parts, source)
    return out
