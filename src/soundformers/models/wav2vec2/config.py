"""Wav2Vec2 / HuBERT architecture, read from a transformers `config.json`.

One dataclass covers both families: HuBERT is the Wav2Vec2 backbone with an optional layer norm
before the feature projection. Training knobs (dropouts, SpecAugment, LayerDrop) are not read.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ...errors import CheckpointError

__all__ = ["Wav2Vec2Config"]

MODEL_TYPES = ("wav2vec2", "hubert")

# required keys of config.json
_REQUIRED = (
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "conv_dim",
    "conv_kernel",
    "conv_stride",
    "num_conv_pos_embeddings",
    "num_conv_pos_embedding_groups",
)


@dataclass(frozen=True)
class Wav2Vec2Config:
    """The backbone's shape plus the sizes of the heads.

    Attributes:
        model_type: "wav2vec2" or "hubert" (the checkpoint's key prefix).
        hidden_size: transformer width.
        num_hidden_layers: transformer blocks.
        num_attention_heads: attention heads.
        intermediate_size: feed-forward width.
        conv_dim: channels of each feature-encoder convolution.
        conv_kernel: kernel size of each convolution.
        conv_stride: stride of each convolution.
        conv_bias: whether the convolutions have a bias.
        feat_extract_norm: "group" (base: GroupNorm on the first conv only) or "layer"
            (large-lv60: LayerNorm after every conv).
        do_stable_layer_norm: pre-norm transformer blocks (large-lv60) instead of post-norm.
        num_conv_pos_embeddings: kernel of the positional convolution.
        num_conv_pos_embedding_groups: its groups.
        feat_proj_layer_norm: LayerNorm before the feature projection (always for Wav2Vec2).
        layer_norm_eps: epsilon of the transformer LayerNorms.
        hidden_act: feed-forward activation ("gelu", "relu", ...).
        feat_extract_activation: activation of the convolutions.
        vocab_size: CTC head width (characters + blank), if the checkpoint has one.
        pad_token_id: the CTC blank id.
        classifier_proj_size: width of the classification projector.
        use_weighted_layer_sum: classification pools a softmax-weighted sum of all layers.
        num_labels: classifier outputs (from id2label).
    """

    model_type: str
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    conv_dim: tuple[int, ...]
    conv_kernel: tuple[int, ...]
    conv_stride: tuple[int, ...]
    conv_bias: bool = False
    feat_extract_norm: str = "group"
    do_stable_layer_norm: bool = False
    num_conv_pos_embeddings: int = 128
    num_conv_pos_embedding_groups: int = 16
    feat_proj_layer_norm: bool = True
    layer_norm_eps: float = 1e-5
    hidden_act: str = "gelu"
    feat_extract_activation: str = "gelu"
    vocab_size: int | None = None
    pad_token_id: int = 0
    classifier_proj_size: int = 256
    use_weighted_layer_sum: bool = False
    num_labels: int = 2

    def __post_init__(self) -> None:
        if self.model_type not in MODEL_TYPES:
            raise CheckpointError(
                f"model_type must be one of {MODEL_TYPES}, got {self.model_type!r}"
            )
        if not len(self.conv_dim) == len(self.conv_kernel) == len(self.conv_stride):
            raise CheckpointError(
                f"conv_dim, conv_kernel and conv_stride must have one entry per convolution, got "
                f"{len(self.conv_dim)}, {len(self.conv_kernel)}, {len(self.conv_stride)}"
            )
        if self.feat_extract_norm not in ("group", "layer"):
            raise CheckpointError(
                f"feat_extract_norm must be 'group' or 'layer', got {self.feat_extract_norm!r}"
            )
        if self.hidden_size % self.num_attention_heads:
            raise CheckpointError(
                f"hidden_size {self.hidden_size} does not divide by {self.num_attention_heads} heads"
            )

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def inputs_to_logits_ratio(self) -> int:
        """Audio samples per output frame: the product of the strides (320 for the released models)."""
        return math.prod(self.conv_stride)

    def output_length(self, n_samples: int) -> int:
        """Frames the feature encoder makes from `n_samples` samples (0 if too short)."""
        for kernel, stride in zip(self.conv_kernel, self.conv_stride):
            n_samples = (n_samples - kernel) // stride + 1
        return max(n_samples, 0)

    @property
    def receptive_field(self) -> int:
        """Samples one output frame sees (400 for the released models)."""
        field = 1
        for kernel, stride in zip(reversed(self.conv_kernel), reversed(self.conv_stride)):
            field = (field - 1) * stride + kernel
        return field

    @classmethod
    def from_hf(cls, config: Mapping[str, Any]) -> Wav2Vec2Config:
        """From a transformers `config.json` dict (`model_type` "wav2vec2" or "hubert").

        Raises:
            CheckpointError: a required key is missing, or the config asks for a variant this
                implementation does not have (adapters, batch-norm positional conv).
        """
        model_type = config.get("model_type", "wav2vec2")
        missing = [k for k in _REQUIRED if k not in config]
        if missing:
            raise CheckpointError(f"{model_type} config.json lacks the keys {missing}")
        unsupported = {
            "add_adapter": bool(config.get("add_adapter", False)),
            "adapter_attn_dim": config.get("adapter_attn_dim") is not None,
            "conv_pos_batch_norm": bool(config.get("conv_pos_batch_norm", False)),
        }
        for key, found in unsupported.items():
            if found:
                raise CheckpointError(
                    f"{model_type} config.json sets {key}; this implementation does not support "
                    "that variant (no adapters, weight-normed positional convolution only)"
                )
        id2label = config.get("id2label") or {}
        return cls(
            model_type=model_type,
            hidden_size=int(config["hidden_size"]),
            num_hidden_layers=int(config["num_hidden_layers"]),
            num_attention_heads=int(config["num_attention_heads"]),
            intermediate_size=int(config["intermediate_size"]),
            conv_dim=tuple(int(x) for x in config["conv_dim"]),
            conv_kernel=tuple(int(x) for x in config["conv_kernel"]),
            conv_stride=tuple(int(x) for x in config["conv_stride"]),
            conv_bias=bool(config.get("conv_bias", False)),
            feat_extract_norm=config.get("feat_extract_norm", "group"),
            do_stable_layer_norm=bool(config.get("do_stable_layer_norm", False)),
            num_conv_pos_embeddings=int(config["num_conv_pos_embeddings"]),
            num_conv_pos_embedding_groups=int(config["num_conv_pos_embedding_groups"]),
            feat_proj_layer_norm=bool(config.get("feat_proj_layer_norm", True)),
            layer_norm_eps=float(config.get("layer_norm_eps", 1e-5)),
            hidden_act=config.get("hidden_act", "gelu"),
            feat_extract_activation=config.get("feat_extract_activation", "gelu"),
            vocab_size=config.get("vocab_size"),
            pad_token_id=int(config.get("pad_token_id") or 0),
            classifier_proj_size=int(config.get("classifier_proj_size", 256)),
            use_weighted_layer_sum=bool(config.get("use_weighted_layer_sum", False)),
            num_labels=len(id2label) if id2label else int(config.get("num_labels", 2)),
        )
