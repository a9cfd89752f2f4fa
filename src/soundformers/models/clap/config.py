"""CLAP architecture (HTSAT audio encoder + RoBERTa text encoder), read from a transformers
`config.json` (`model_type` "clap").

Missing keys take transformers' defaults, which are `laion/clap-htsat-unfused`'s shape: a
4-stage Swin over a 256x256 spectrogram image (patches of 4, window 8, depths 2/2/6/2, widths
96..768) and a 12-layer, 768-wide RoBERTa, both projected to 512.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from ...errors import CheckpointError

__all__ = ["ClapAudioConfig", "ClapConfig", "ClapTextConfig"]


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    return (int(value[0]), int(value[1]))


def _known(cls: type, config: Mapping[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in config.items() if k in names}


@dataclass(frozen=True)
class ClapTextConfig:
    """RoBERTa text encoder shape."""

    vocab_size: int = 50265
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    max_position_embeddings: int = 514
    type_vocab_size: int = 1
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 1

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_attention_heads:
            raise CheckpointError(
                f"CLAP text_config: hidden_size {self.hidden_size} does not divide by "
                f"{self.num_attention_heads} heads"
            )

    @property
    def max_tokens(self) -> int:
        """Longest token sequence the position table allows (RoBERTa offsets by pad + 1)."""
        return self.max_position_embeddings - self.pad_token_id - 1


@dataclass(frozen=True)
class ClapAudioConfig:
    """HTSAT audio encoder shape."""

    window_size: int = 8
    num_mel_bins: int = 64
    spec_size: int = 256
    hidden_act: str = "gelu"
    patch_size: tuple[int, int] = (4, 4)
    patch_stride: tuple[int, int] = (4, 4)
    depths: tuple[int, ...] = (2, 2, 6, 2)
    num_attention_heads: tuple[int, ...] = (4, 8, 16, 32)
    enable_fusion: bool = False
    fusion_type: str | None = None
    patch_embed_input_channels: int = 1
    patch_embeds_hidden_size: int = 96
    enable_patch_layer_norm: bool = True
    qkv_bias: bool = True
    mlp_ratio: float = 4.0
    aff_block_r: int = 4
    layer_norm_eps: float = 1e-5
    hidden_size: int = 768

    def __post_init__(self) -> None:
        object.__setattr__(self, "patch_size", _pair(self.patch_size))
        object.__setattr__(self, "patch_stride", _pair(self.patch_stride))
        object.__setattr__(self, "depths", tuple(int(d) for d in self.depths))
        object.__setattr__(
            self, "num_attention_heads", tuple(int(h) for h in self.num_attention_heads)
        )
        where = "CLAP audio_config"
        if len(self.depths) != len(self.num_attention_heads):
            raise CheckpointError(
                f"{where}: {len(self.depths)} depths but {len(self.num_attention_heads)} head counts"
            )
        if self.enable_fusion and self.fusion_type not in (None, "aff_2d"):
            raise CheckpointError(
                f"{where}: fusion_type {self.fusion_type!r} is not supported; the released fused "
                "checkpoints use the 2-D attentional feature fusion (fusion_type null or 'aff_2d')"
            )
        if self.spec_size % self.num_mel_bins:
            raise CheckpointError(
                f"{where}: spec_size {self.spec_size} must be a multiple of num_mel_bins "
                f"{self.num_mel_bins}"
            )
        if self.hidden_size != self.num_features:
            raise CheckpointError(
                f"{where}: hidden_size {self.hidden_size} differs from the encoder's output width "
                f"patch_embeds_hidden_size * 2 ** (stages - 1) = {self.num_features}"
            )
        for stage, (h, w) in enumerate(self.resolutions):
            if min(h, w) < self.window_size:
                raise CheckpointError(
                    f"{where}: stage {stage} works on a {h}x{w} grid, smaller than window_size "
                    f"{self.window_size}; transformers cannot run this shape either"
                )

    @property
    def freq_ratio(self) -> int:
        """How many time slices of the spectrogram are stacked along frequency (4)."""
        return self.spec_size // self.num_mel_bins

    @property
    def num_features(self) -> int:
        """Width of the last stage (768)."""
        return self.patch_embeds_hidden_size * 2 ** (len(self.depths) - 1)

    @property
    def resolutions(self) -> tuple[tuple[int, int], ...]:
        """(height, width) token grid of each stage."""
        grid = (self.spec_size // self.patch_stride[0], self.spec_size // self.patch_stride[1])
        return tuple((grid[0] // 2**i, grid[1] // 2**i) for i in range(len(self.depths)))


@dataclass(frozen=True)
class ClapConfig:
    """Both encoders and the shared embedding space."""

    text: ClapTextConfig
    audio: ClapAudioConfig
    projection_dim: int = 512
    projection_hidden_act: str = "relu"

    @classmethod
    def from_hf(cls, config: Mapping[str, Any]) -> ClapConfig:
        """From a transformers `config.json` dict (`model_type` "clap").

        Raises:
            CheckpointError: not a CLAP config, or an inconsistent shape.
        """
        if config.get("model_type") not in (None, "clap"):
            raise CheckpointError(
                f"config.json has model_type {config.get('model_type')!r}, expected 'clap'"
            )
        text = dict(config.get("text_config") or {})
        audio = dict(config.get("audio_config") or {})
        audio.pop("projection_dim", None)
        return cls(
            text=ClapTextConfig(**_known(ClapTextConfig, text)),
            audio=ClapAudioConfig(**_known(ClapAudioConfig, audio)),
            projection_dim=int(config.get("projection_dim", 512)),
            projection_hidden_act=str(config.get("projection_hidden_act", "relu")),
        )
