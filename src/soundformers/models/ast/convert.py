"""Weight-name table for transformers AST checkpoints (`ASTForAudioClassification`) -> ours.

Lookup is exact (layer index written `{}`); coverage is checked both ways by
`soundformers.checkpoints.assign_weights`, which raises `CheckpointError` listing both sides.
One tensor fix: each layer's query, key and value projections are concatenated (rows in that
order) into our fused `attention.qkv` (`FusedPart`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from ...errors import CheckpointError
from ..wav2vec2.convert import FusedPart

__all__ = ["HF_TABLE", "convert_state_dict"]

_P = "audio_spectrogram_transformer"
_L = f"{_P}.encoder.layer.{{}}"


def _wb(src: str, dst: str) -> dict[str, str]:
    return {f"{src}.weight": f"{dst}.weight", f"{src}.bias": f"{dst}.bias"}


def _qkv(src: str, dst: str) -> dict[str, FusedPart]:
    """Rows fusing `src`.{query,key,value} weights and biases into `dst`."""
    return {
        f"{src}.{name}.{kind}": FusedPart(f"{dst}.{kind}", index)
        for index, name in enumerate(("query", "key", "value"))
        for kind in ("weight", "bias")
    }


HF_TABLE: dict[str, str | FusedPart | None] = {
    f"{_P}.embeddings.cls_token": "backbone.cls_token",
    f"{_P}.embeddings.distillation_token": "backbone.distillation_token",
    f"{_P}.embeddings.position_embeddings": "backbone.position_embeddings",
    **_wb(f"{_P}.embeddings.patch_embeddings.projection", "backbone.patch"),
    **_qkv(f"{_L}.attention.attention", "backbone.layers.{}.attention.qkv"),
    **_wb(f"{_L}.attention.output.dense", "backbone.layers.{}.attention.out"),
    **_wb(f"{_L}.layernorm_before", "backbone.layers.{}.layernorm_before"),
    **_wb(f"{_L}.layernorm_after", "backbone.layers.{}.layernorm_after"),
    **_wb(f"{_L}.intermediate.dense", "backbone.layers.{}.mlp.0"),
    **_wb(f"{_L}.output.dense", "backbone.layers.{}.mlp.2"),
    **_wb(f"{_P}.layernorm", "backbone.layernorm"),
    **_wb("classifier.layernorm", "head.0"),
    **_wb("classifier.dense", "head.1"),
}

_LAYER_INDEX = re.compile(r"(?<=\.)(\d+)(?=\.)")


def convert_state_dict(
    tensors: Mapping[str, torch.Tensor], *, source: str
) -> dict[str, torch.Tensor]:
    """Rename a transformers AST checkpoint's tensors to ours (q/k/v fused).

    Raises:
        CheckpointError: names the table does not know (listed), or a fused tensor with a part
            missing.
    """
    out, unknown = {}, []
    fused: dict[str, dict[int, torch.Tensor]] = {}
    for name, tensor in tensors.items():
        match = _LAYER_INDEX.search(name)
        pattern = _LAYER_INDEX.sub("{}", name, count=1) if match else name
        if pattern not in HF_TABLE:
            unknown.append(name)
            continue
        target = HF_TABLE[pattern]
        layer = match.group(1) if match else ""
        if isinstance(target, FusedPart):
            fused.setdefault(target.target.format(layer), {})[target.index] = tensor
        elif target is not None:
            out[target.format(layer)] = tensor
    if unknown:
        shown = ", ".join(unknown[:12])
        raise CheckpointError(
            f"{source}: {len(unknown)} tensors are not AST weights: [{shown}] ({len(unknown)})"
        )
    for name, parts in fused.items():
        if sorted(parts) != [0, 1, 2]:
            raise CheckpointError(
                f"{source}: {name} fuses the query, key and value projections; found only "
                f"{[('query', 'key', 'value')[i] for i in sorted(parts)]}"
            )
        out[name] = torch.cat([parts[0], parts[1], parts[2]])
    return out
