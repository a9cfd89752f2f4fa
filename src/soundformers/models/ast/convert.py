"""Weight-name table for transformers AST checkpoints (`ASTForAudioClassification`) -> ours.

Lookup is exact (layer index written `{}`); coverage is checked both ways by
`soundformers.checkpoints.assign_weights`, which raises `CheckpointError` listing both sides.
One tensor fix: each layer's query, key and value projections are concatenated (rows in that
order) into our fused `attention.qkv` (`FusedPart`).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ..wav2vec2.convert import FusedPart
from ..wav2vec2.convert import convert_state_dict as _rename

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


def convert_state_dict(
    tensors: Mapping[str, torch.Tensor], *, source: str
) -> dict[str, torch.Tensor]:
    """Rename a transformers AST checkpoint's tensors to ours (q/k/v fused), through the
    renaming shared with Wav2Vec2.

    Raises:
        CheckpointError: names the table does not know (listed), or a fused tensor with a part
            missing.
    """
    return _rename(tensors, HF_TABLE, source=source, model="AST")
