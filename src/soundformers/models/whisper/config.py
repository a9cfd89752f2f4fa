"""Whisper's architecture: ten integers, as in openai/whisper `ModelDimensions`.

Built from a Hugging Face `config.json` (`from_hf`), an OpenAI checkpoint's `dims`
(`from_openai`) or the tensor shapes of a CTranslate2 `model.bin` (`from_ctranslate2`).
Decoding defaults (suppressed tokens, alignment heads) are not architecture: they live in
`generate.WhisperGenerationConfig`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import torch

from ...errors import CheckpointError

__all__ = ["WhisperConfig"]

# HF config.json key -> our field
_HF_KEYS = {
    "num_mel_bins": "n_mels",
    "max_source_positions": "n_audio_ctx",
    "d_model": "n_audio_state",
    "encoder_attention_heads": "n_audio_head",
    "encoder_layers": "n_audio_layer",
    "vocab_size": "n_vocab",
    "max_target_positions": "n_text_ctx",
    "decoder_attention_heads": "n_text_head",
    "decoder_layers": "n_text_layer",
}


@dataclass(frozen=True)
class WhisperConfig:
    """Whisper dimensions (names as in openai/whisper).

    The MLP width is 4x the model width, LayerNorm epsilon 1e-5, GELU exact: all Whisper
    checkpoints share these, so they are not fields.
    """

    n_mels: int
    n_audio_ctx: int
    n_audio_state: int
    n_audio_head: int
    n_audio_layer: int
    n_vocab: int
    n_text_ctx: int
    n_text_state: int
    n_text_head: int
    n_text_layer: int

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise CheckpointError(
                    f"WhisperConfig.{f.name} must be a positive int, got {value!r}"
                )
        if self.n_audio_state % self.n_audio_head or self.n_text_state % self.n_text_head:
            raise CheckpointError(
                f"model width must divide by the head count: audio {self.n_audio_state}/"
                f"{self.n_audio_head}, text {self.n_text_state}/{self.n_text_head}"
            )

    @property
    def n_frames(self) -> int:
        """Log-mel frames per window the encoder takes (two per encoder position): 3000."""
        return 2 * self.n_audio_ctx

    @property
    def is_multilingual(self) -> bool:
        """English-only checkpoints have 51864 tokens; multilingual ones 51865 or more."""
        return self.n_vocab >= 51865

    @property
    def num_languages(self) -> int:
        """Language tokens in the vocabulary: 99 (v1, v2), 100 (large-v3); 0 for English-only."""
        return self.n_vocab - 51765 - int(self.is_multilingual) if self.is_multilingual else 0

    @classmethod
    def from_hf(cls, config: Mapping[str, Any]) -> WhisperConfig:
        """From a transformers `config.json` dict (`model_type` "whisper").

        Raises:
            CheckpointError: a required key is missing, or the config describes a variant this
                model does not implement (MLP width other than 4x, scaled embeddings, ...).
        """
        missing = [k for k in _HF_KEYS if k not in config]
        if missing:
            raise CheckpointError(f"Whisper config.json lacks the keys {missing}")
        values = {ours: config[theirs] for theirs, ours in _HF_KEYS.items()}
        d_model = config["d_model"]
        unsupported = {
            "encoder_ffn_dim": (config.get("encoder_ffn_dim", 4 * d_model), 4 * d_model),
            "decoder_ffn_dim": (config.get("decoder_ffn_dim", 4 * d_model), 4 * d_model),
            "scale_embedding": (bool(config.get("scale_embedding", False)), False),
            "activation_function": (config.get("activation_function", "gelu"), "gelu"),
        }
        for key, (found, expected) in unsupported.items():
            if found != expected:
                raise CheckpointError(
                    f"Whisper config.json has {key}={found!r}; this implementation supports "
                    f"only {expected!r} (as in every released Whisper checkpoint)"
                )
        return cls(n_text_state=d_model, **values)

    @classmethod
    def from_openai(cls, dims: Mapping[str, Any]) -> WhisperConfig:
        """From the `dims` dict stored in an OpenAI Whisper `.pt` checkpoint."""
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in dims]
        if missing:
            raise CheckpointError(f"OpenAI Whisper checkpoint 'dims' lacks {missing}")
        return cls(**{n: int(dims[n]) for n in names})

    @classmethod
    def from_ctranslate2(cls, tensors: Mapping[str, torch.Tensor]) -> WhisperConfig:
        """From a CTranslate2 WhisperSpec: shapes, plus the `num_heads` scalars."""
        try:
            conv1 = tensors["encoder/conv1/weight"]  # (d, n_mels, 3)
            embed = tensors["decoder/embeddings/weight"]  # (n_vocab, d)
            return cls(
                n_mels=conv1.shape[1],
                n_audio_ctx=tensors["encoder/position_encodings/encodings"].shape[0],
                n_audio_state=conv1.shape[0],
                n_audio_head=int(tensors["encoder/num_heads"]),
                n_audio_layer=_count_layers(tensors, "encoder"),
                n_vocab=embed.shape[0],
                n_text_ctx=tensors["decoder/position_encodings/encodings"].shape[0],
                n_text_state=embed.shape[1],
                n_text_head=int(tensors["decoder/num_heads"]),
                n_text_layer=_count_layers(tensors, "decoder"),
            )
        except KeyError as e:
            raise CheckpointError(
                f"CTranslate2 checkpoint lacks {e.args[0]!r}: is it a WhisperSpec model.bin?"
            ) from e


def _count_layers(tensors: Mapping[str, Any], stack: str) -> int:
    n = 0
    while any(k.startswith(f"{stack}/layer_{n}/") for k in tensors):
        n += 1
    return n
