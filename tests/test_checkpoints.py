"""Checkpoint readers: CTranslate2 model.bin (written here byte by byte), safetensors, torch."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from soundformers.checkpoints import (
    assign_weights,
    read_checkpoint,
    read_ctranslate2,
    release_file_pages,
)
from soundformers.errors import CheckpointError

_DTYPE_IDS = {np.float32: 0, np.int8: 1, np.int16: 2, np.int32: 3, np.float16: 4}


def _string(s: str) -> bytes:
    raw = s.encode() + b"\x00"
    return struct.pack("<H", len(raw)) + raw  # the length counts the trailing NUL


def write_ct2(path: Path, variables: dict[str, np.ndarray], aliases: dict[str, str]) -> bytes:
    """A CTranslate2 version-6 model.bin, laid out as NOTES-checkpoints.md describes."""
    out = struct.pack("<I", 6) + _string("WhisperSpec") + struct.pack("<I", 3)
    out += struct.pack("<I", len(variables))
    for name, array in variables.items():
        out += _string(name) + struct.pack("<B", array.ndim)
        out += struct.pack(f"<{array.ndim}I", *array.shape)
        out += struct.pack("<B", _DTYPE_IDS[array.dtype.type]) + struct.pack("<I", array.nbytes)
        out += array.tobytes()
    out += struct.pack("<I", len(aliases))
    for alias, target in aliases.items():
        out += _string(alias) + _string(target)
    path.write_bytes(out)
    return out


VARIABLES = {
    "encoder/num_heads": np.array(6, dtype=np.int16),
    "decoder/activation": np.array(3, dtype=np.int8),
    "odd/weight": np.arange(7, dtype=np.float16),  # odd sizes make later offsets unaligned
    "decoder/embeddings/weight": np.arange(12, dtype=np.float16).reshape(4, 3) / 7,
    "w32": np.linspace(-1, 1, 10, dtype=np.float32).reshape(2, 5),
    "i32": np.array([1, -2, 3], dtype=np.int32),
}


def test_ctranslate2_reader(tmp_path):
    write_ct2(
        tmp_path / "model.bin",
        VARIABLES,
        {"decoder/projection/weight": "decoder/embeddings/weight"},
    )
    ckpt = read_checkpoint(tmp_path / "model.bin")
    assert ckpt.format == "ctranslate2"
    assert ckpt.metadata == {"version": 6, "spec": "WhisperSpec", "revision": 3}
    for name, array in VARIABLES.items():
        t = ckpt.tensors[name]
        assert tuple(t.shape) == array.shape, name
        np.testing.assert_array_equal(t.numpy(), array)
    assert (
        int(ckpt.tensors["encoder/num_heads"]) == 6 and ckpt.tensors["encoder/num_heads"].ndim == 0
    )
    assert ckpt.tensors["decoder/projection/weight"] is ckpt.tensors["decoder/embeddings/weight"]
    assert ckpt.tensors["w32"].dtype == torch.float32
    assert ckpt.tensors["decoder/embeddings/weight"].dtype == torch.float16


@pytest.mark.parametrize("cut", [7, 100, 151])
def test_ctranslate2_split_parts_concatenate(tmp_path, cut):
    data = write_ct2(tmp_path / "whole.bin", VARIABLES, {})
    (tmp_path / "model.bin.part1").write_bytes(data[:cut])  # cuts inside headers and tensors
    (tmp_path / "model.bin.part2").write_bytes(data[cut:])
    parts = read_ctranslate2([tmp_path / "model.bin.part1", tmp_path / "model.bin.part2"])
    whole = read_ctranslate2(tmp_path / "whole.bin")
    for name in VARIABLES:
        assert torch.equal(parts.tensors[name], whole.tensors[name]), name


def test_ctranslate2_errors(tmp_path):
    data = write_ct2(tmp_path / "model.bin", VARIABLES, {})
    (tmp_path / "short.bin").write_bytes(data[:-5])
    with pytest.raises(CheckpointError, match="truncated.*pass all parts in order"):
        read_ctranslate2(tmp_path / "short.bin")
    (tmp_path / "long.bin").write_bytes(data + b"\x00" * 8)
    with pytest.raises(CheckpointError, match="bytes left"):
        read_ctranslate2(tmp_path / "long.bin")
    (tmp_path / "v9.bin").write_bytes(struct.pack("<I", 9) + data[4:])
    with pytest.raises(CheckpointError, match="version 9"):
        read_ctranslate2(tmp_path / "v9.bin")
    with pytest.raises(CheckpointError, match="does not exist"):
        read_checkpoint(tmp_path / "absent.bin")
    (tmp_path / "junk.dat").write_bytes(b"hello, this is not a checkpoint at all" * 3)
    with pytest.raises(CheckpointError, match="no checkpoint format"):
        read_checkpoint(tmp_path / "junk.dat")


def test_safetensors_and_torch(tmp_path):
    from safetensors.torch import save_file

    tensors = {"a.weight": torch.randn(3, 4), "b": torch.arange(5)}
    save_file(tensors, tmp_path / "model.safetensors", metadata={"format": "pt"})
    ckpt = read_checkpoint(tmp_path / "model.safetensors")
    assert ckpt.format == "safetensors" and ckpt.metadata == {"format": "pt"}
    assert all(torch.equal(ckpt.tensors[k], v) for k, v in tensors.items())

    torch.save(tensors, tmp_path / "pytorch_model.bin")
    ckpt = read_checkpoint(tmp_path / "pytorch_model.bin")
    assert ckpt.format == "torch" and ckpt.metadata == {}
    assert all(torch.equal(ckpt.tensors[k], v) for k, v in tensors.items())

    dims = {"n_mels": 80, "n_vocab": 51865}
    torch.save({"dims": dims, "model_state_dict": tensors}, tmp_path / "tiny.pt")
    ckpt = read_checkpoint(tmp_path / "tiny.pt")
    assert ckpt.metadata == {"dims": dims} and set(ckpt.tensors) == set(tensors)


def test_torch_refuses_arbitrary_pickles(tmp_path):
    torch.save({"x": torch.zeros(1), "obj": Path("/")}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="weights_only"):
        read_checkpoint(tmp_path / "evil.pt")


def test_rename_through_a_table_with_split_and_gathered_targets():
    from soundformers.checkpoints import rename
    from soundformers.models.wav2vec2.convert import FusedPart, WeightNormPart
    from soundformers.models.whisper.convert import Split

    t = {
        "enc.layers.3.w": torch.ones(2),
        "enc.layers.3.qkv": torch.arange(6.0),
        "enc.layers.0.q": torch.zeros(1),
        "enc.layers.0.k": torch.ones(1),
        "conv.g": torch.ones(1, 1, 1),
        "conv.v": torch.full((1, 1, 1), 3.0),
        "opt": torch.ones(1),
    }
    table = {
        "enc.layers.{}.w": "blocks.{}.weight",
        "enc.layers.{}.qkv": Split(("blocks.{}.q", "blocks.{}.k", "blocks.{}.v")),
        "enc.layers.{}.q": FusedPart("blocks.{}.fused", 0, count=2),
        "enc.layers.{}.k": FusedPart("blocks.{}.fused", 1, count=2),
        "conv.g": WeightNormPart("conv.weight", "g"),
        "conv.v": WeightNormPart("conv.weight", "v"),
        "opt": None,
    }
    out = rename(t, table, source="ckpt", what="test weights")
    assert sorted(out) == [
        "blocks.0.fused", "blocks.3.k", "blocks.3.q", "blocks.3.v", "blocks.3.weight", "conv.weight"
    ]  # fmt: skip
    assert out["blocks.3.k"].tolist() == [2.0, 3.0]
    assert out["blocks.0.fused"].tolist() == [0.0, 1.0]
    assert out["conv.weight"].item() == pytest.approx(1.0)  # g * v / |v|
    with pytest.raises(CheckpointError, match=r"ckpt: 1 tensors are not test weights: \[extra\]"):
        rename({**t, "extra": torch.ones(1)}, table, source="ckpt", what="test weights")
    with pytest.raises(CheckpointError, match="fuses 2 tensors"):
        rename({"enc.layers.0.q": torch.zeros(1)}, table, source="ckpt", what="test weights")
    every = rename(
        {"a.1.b.2.c": torch.ones(1)}, {"a.{}.b.{}.c": "x.{}.y.{}"}, source="s", what="w", indices=0
    )
    assert list(every) == ["x.1.y.2"]


def _resident_kb(path: Path) -> int:
    """Resident KB of this process's mappings of `path` (/proc/self/smaps)."""
    total, inside = 0, False
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()
            if "-" in head[0] and len(head) >= 5 and ":" not in head[0]:  # a mapping's header
                inside = line.rstrip().endswith(str(path))
            elif inside and head[0] == "Rss:":
                total += int(head[1])
    return total


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/smaps")
@pytest.mark.parametrize("fmt", ["ctranslate2", "safetensors", "torch"])
def test_converting_a_mapped_checkpoint_releases_its_file_pages(tmp_path, fmt):
    from safetensors.numpy import save_file

    rng = np.random.default_rng(0)
    arrays = {n: rng.standard_normal((512, 1024)).astype(np.float16) for n in ("a", "b")}
    path = tmp_path / {"ctranslate2": "model.bin", "safetensors": "model.safetensors"}.get(
        fmt, "model.pt"
    )
    if fmt == "ctranslate2":
        write_ct2(path, arrays, {})
    elif fmt == "safetensors":
        save_file(arrays, str(path))
    else:
        torch.save({n: torch.from_numpy(a) for n, a in arrays.items()}, path)
    tensors = read_checkpoint(path).tensors
    assert sum(float(t.float().abs().sum()) for t in tensors.values()) > 0  # pages faulted in
    assert _resident_kb(path) >= 2 * 1024  # both 1 MiB variables resident

    model = torch.nn.ParameterDict({n: torch.nn.Parameter(torch.empty(512, 1024)) for n in arrays})
    assign_weights(model, tensors, dtype=torch.float32)

    assert _resident_kb(path) <= 4 * 8  # at most the pages at each variable's edges remain
    for name, array in arrays.items():
        expected = torch.from_numpy(array.astype(np.float32))
        assert torch.equal(model[name], expected)
        assert torch.equal(tensors[name].float(), expected)  # read again from the file


def test_release_file_pages_leaves_anonymous_memory_alone():
    t = torch.arange(1 << 20, dtype=torch.float32)
    assert release_file_pages([t, t[::2], t[:0]]) == 0
    assert torch.equal(t, torch.arange(1 << 20, dtype=torch.float32))


@pytest.mark.parametrize(
    "source, target", [(torch.float16, torch.bfloat16), (torch.bfloat16, torch.float16)]
)
@pytest.mark.parametrize("shape", [(3, 5), (1100, 1000)])  # one cast, and blocks of the cast
def test_assign_weights_casts_between_half_types_as_torch_does(source, target, shape):
    values = torch.randn(shape, generator=torch.Generator().manual_seed(0)) * 100
    values[0, :3] = torch.tensor([float("inf"), float("nan"), 1e-7])
    tensor = values.to(source)
    model = torch.nn.ParameterDict({"w": torch.nn.Parameter(torch.empty(shape))})
    assign_weights(model, {"w": tensor}, dtype=target)
    assert model["w"].dtype == target
    expected = tensor.to(target)
    torch.testing.assert_close(model["w"].data, expected, rtol=0, atol=0, equal_nan=True)
    finite = expected.isfinite()  # bit for bit (a NaN's payload may differ)
    assert torch.equal(model["w"][finite].view(torch.int16), expected[finite].view(torch.int16))
