"""Weight-name table for transformers CLAP checkpoints (`ClapModel`) -> ours.

Lookup is exact: every number in a name (layer, stage, block, Sequential index) is written `{}`
and put back, in order, into the target. Coverage is checked both ways by
`soundformers.checkpoints.assign_weights`, which raises `CheckpointError` listing both sides.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from ...checkpoints import rename

__all__ = ["HF_TABLE", "convert_state_dict"]

_T = "text_model.encoder.layer.{}"
_A = "audio_model.audio_encoder"
_B = f"{_A}.layers.{{}}.blocks.{{}}"
_OURS_B = "audio_model.layers.{}.blocks.{}"


def _wb(src: str, dst: str) -> dict[str, str]:
    return {f"{src}.weight": f"{dst}.weight", f"{src}.bias": f"{dst}.bias"}


def _bn(src: str, dst: str) -> dict[str, str]:
    stats = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    return {f"{src}.{s}": f"{dst}.{s}" for s in stats}


HF_TABLE: dict[str, str | None] = {
    "logit_scale_a": "logit_scale_a",
    "logit_scale_t": "logit_scale_t",
    # text: RoBERTa
    "text_model.embeddings.position_ids": None,  # buffers we compute
    "text_model.embeddings.token_type_ids": None,
    "text_model.embeddings.word_embeddings.weight": "text_model.word_embeddings.weight",
    "text_model.embeddings.position_embeddings.weight": "text_model.position_embeddings.weight",
    "text_model.embeddings.token_type_embeddings.weight": "text_model.token_type_embeddings.weight",
    **_wb("text_model.embeddings.LayerNorm", "text_model.embedding_norm"),
    **_wb(f"{_T}.attention.self.query", "text_model.layers.{}.attention.query"),
    **_wb(f"{_T}.attention.self.key", "text_model.layers.{}.attention.key"),
    **_wb(f"{_T}.attention.self.value", "text_model.layers.{}.attention.value"),
    **_wb(f"{_T}.attention.output.dense", "text_model.layers.{}.attention.out"),
    **_wb(f"{_T}.attention.output.LayerNorm", "text_model.layers.{}.attention_norm"),
    **_wb(f"{_T}.intermediate.dense", "text_model.layers.{}.mlp.0"),
    **_wb(f"{_T}.output.dense", "text_model.layers.{}.mlp.2"),
    **_wb(f"{_T}.output.LayerNorm", "text_model.layers.{}.mlp_norm"),
    **_wb("text_model.pooler.dense", "text_model.pooler"),
    # audio: HTSAT
    **_bn(f"{_A}.batch_norm", "audio_model.batch_norm"),
    **_wb(f"{_A}.patch_embed.proj", "audio_model.patch_embed.proj"),
    **_wb(f"{_A}.patch_embed.norm", "audio_model.patch_embed.norm"),
    **_wb(f"{_A}.patch_embed.mel_conv2d", "audio_model.patch_embed.mel_conv2d"),
    **_bn(f"{_A}.patch_embed.fusion_model.local_att.{{}}",
          "audio_model.patch_embed.fusion_model.local_att.{}"),
    **_bn(f"{_A}.patch_embed.fusion_model.global_att.{{}}",
          "audio_model.patch_embed.fusion_model.global_att.{}"),
    f"{_B}.attention.self.relative_position_index": None,  # a buffer we compute
    f"{_B}.attention.self.relative_position_bias_table":
        f"{_OURS_B}.attention.relative_position_bias_table",
    **_wb(f"{_B}.layernorm_before", f"{_OURS_B}.layernorm_before"),
    **_wb(f"{_B}.attention.self.query", f"{_OURS_B}.attention.query"),
    **_wb(f"{_B}.attention.self.key", f"{_OURS_B}.attention.key"),
    **_wb(f"{_B}.attention.self.value", f"{_OURS_B}.attention.value"),
    **_wb(f"{_B}.attention.output.dense", f"{_OURS_B}.attention.out"),
    **_wb(f"{_B}.layernorm_after", f"{_OURS_B}.layernorm_after"),
    **_wb(f"{_B}.intermediate.dense", f"{_OURS_B}.mlp.0"),
    **_wb(f"{_B}.output.dense", f"{_OURS_B}.mlp.2"),
    f"{_A}.layers.{{}}.downsample.reduction.weight": "audio_model.layers.{}.downsample.reduction.weight",
    **_wb(f"{_A}.layers.{{}}.downsample.norm", "audio_model.layers.{}.downsample.norm"),
    **_wb(f"{_A}.norm", "audio_model.norm"),
    # projections
    **_wb("text_projection.linear1", "text_projection.linear1"),
    **_wb("text_projection.linear2", "text_projection.linear2"),
    **_wb("audio_projection.linear1", "audio_projection.linear1"),
    **_wb("audio_projection.linear2", "audio_projection.linear2"),
}  # fmt: skip

_INDEX = re.compile(r"(?<=\.)(\d+)(?=\.)")


def convert_state_dict(
    tensors: Mapping[str, torch.Tensor], *, source: str
) -> dict[str, torch.Tensor]:
    """Rename a transformers CLAP checkpoint's tensors to ours.

    Raises:
        CheckpointError: names the table does not know (listed).
    """
    return rename(tensors, HF_TABLE, source=source, what="CLAP weights", indices=0, index=_INDEX)
