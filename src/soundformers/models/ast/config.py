"""Audio Spectrogram Transformer architecture, read from a transformers `config.json`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ...errors import CheckpointError

__all__ = ["ASTConfig"]

_REQUIRED = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")


@dataclass(frozen=True)
class ASTConfig:
    """AST shape (`MIT/ast-finetuned-audioset-10-10-0.4593`: 768 wide, 12 layers, 12 heads,
    16x16 patches every 10 bins/frames over 128 mel bins x 1024 frames)."""

    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    hidden_act: str = "gelu"
    layer_norm_eps: float = 1e-12
    patch_size: int = 16
    qkv_bias: bool = True
    frequency_stride: int = 10
    time_stride: int = 10
    max_length: int = 1024
    num_mel_bins: int = 128
    num_labels: int = 2

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_attention_heads:
            raise CheckpointError(
                f"hidden_size {self.hidden_size} does not divide by {self.num_attention_heads} heads"
            )
        if self.frequency_patches < 1 or self.time_patches < 1:
            raise CheckpointError(
                f"patch_size {self.patch_size} is larger than the input "
                f"({self.num_mel_bins} mel bins x {self.max_length} frames)"
            )

    @property
    def frequency_patches(self) -> int:
        return (self.num_mel_bins - self.patch_size) // self.frequency_stride + 1

    @property
    def time_patches(self) -> int:
        return (self.max_length - self.patch_size) // self.time_stride + 1

    @property
    def num_patches(self) -> int:
        return self.frequency_patches * self.time_patches

    @classmethod
    def from_hf(cls, config: Mapping[str, Any]) -> ASTConfig:
        """From a transformers `config.json` dict (`model_type` "audio-spectrogram-transformer").

        Raises:
            CheckpointError: a required key is missing.
        """
        missing = [k for k in _REQUIRED if k not in config]
        if missing:
            raise CheckpointError(f"AST config.json lacks the keys {missing}")
        id2label = config.get("id2label") or {}
        known = {
            k: config[k]
            for k in ("hidden_act", "layer_norm_eps", "patch_size", "qkv_bias", "frequency_stride",
                      "time_stride", "max_length", "num_mel_bins")
            if k in config
        }  # fmt: skip
        return cls(
            **{k: config[k] for k in _REQUIRED},
            **known,
            num_labels=len(id2label) if id2label else int(config.get("num_labels", 2)),
        )
