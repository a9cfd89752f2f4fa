"""Whisper's encoder with a sequence-classification head (transformers'
`WhisperForAudioClassification` layout: language identification, keyword or emotion models
fine-tuned from Whisper).

Log-mel (B, n_mels, 3000) -> the Whisper `AudioEncoder` -> hidden states (B, 1500, D) -> either
the last one or a softmax(layer_weights)-weighted sum of all encoder layers' states (the
embedding output, each block's output, the last after the final LayerNorm) -> `projector`
(D -> P) -> mean over all 1500 positions (the padding of the 30 s window included, as in
transformers) -> `classifier` (P -> labels).

>>> from soundformers.models.whisper.classification import from_pretrained_classifier
>>> clf = from_pretrained_classifier("path/to/whisper-medium-fleurs-lang-id")
>>> logits = clf.classify([audio_16k])            # (1, num_labels)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...audio.features import whisper_log_mel
from ...checkpoints import assign_weights, read_checkpoint, read_json
from ...errors import CheckpointError
from ...hub import resolve_model
from .convert import HF_TABLE, Target, convert_state_dict
from .model import AudioEncoder, _strided_conv_as_linear

__all__ = [
    "CLASSIFIER_TABLE",
    "WhisperClassifier",
    "WhisperClassifierConfig",
    "WhisperForAudioClassification",
    "from_pretrained_classifier",
]

ARCHITECTURE = "WhisperForAudioClassification"
HOP_LENGTH = 160  # log-mel frame shift in samples at 16 kHz
MAX_BATCH = 16  # 30 s windows per forward pass


@dataclass(frozen=True)
class WhisperClassifierConfig:
    """The encoder's shape (names as in `WhisperConfig`) plus the head's sizes.

    Attributes:
        n_mels: log-mel bins (80, or 128 for large-v3).
        n_audio_ctx: encoder positions (1500: 3000 log-mel frames, 30 s).
        n_audio_state: encoder width D.
        n_audio_head: encoder attention heads.
        n_audio_layer: encoder blocks.
        classifier_proj_size: projector width P.
        use_weighted_layer_sum: pool a learned mix of all n_audio_layer + 1 hidden states.
        num_labels: classifier outputs.
    """

    n_mels: int
    n_audio_ctx: int
    n_audio_state: int
    n_audio_head: int
    n_audio_layer: int
    classifier_proj_size: int = 256
    use_weighted_layer_sum: bool = False
    num_labels: int = 2

    def __post_init__(self) -> None:
        for name in ("n_mels", "n_audio_ctx", "n_audio_state", "n_audio_head", "n_audio_layer",
                     "classifier_proj_size", "num_labels"):  # fmt: skip
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise CheckpointError(f"WhisperClassifierConfig.{name} must be a positive int, "
                                      f"got {value!r}")  # fmt: skip
        if self.n_audio_state % self.n_audio_head:
            raise CheckpointError(
                f"d_model {self.n_audio_state} does not divide by {self.n_audio_head} heads"
            )

    @property
    def n_frames(self) -> int:
        """Log-mel frames the encoder takes (two per position): 3000 for 30 s."""
        return 2 * self.n_audio_ctx

    @classmethod
    def from_hf(cls, config: Mapping[str, Any]) -> WhisperClassifierConfig:
        """From a transformers `config.json` dict (`model_type` "whisper").

        Raises:
            CheckpointError: a required key is missing, or the encoder is a variant this
                implementation does not have (MLP width other than 4x, another activation).
        """
        required = ("num_mel_bins", "max_source_positions", "d_model",
                    "encoder_attention_heads", "encoder_layers")  # fmt: skip
        missing = [k for k in required if k not in config]
        if missing:
            raise CheckpointError(f"Whisper config.json lacks the keys {missing}")
        d_model = int(config["d_model"])
        for key, found, expected in (
            ("encoder_ffn_dim", config.get("encoder_ffn_dim", 4 * d_model), 4 * d_model),
            ("activation_function", config.get("activation_function", "gelu"), "gelu"),
        ):
            if found != expected:
                raise CheckpointError(
                    f"Whisper config.json has {key}={found!r}; this implementation supports "
                    f"only {expected!r} (as in every released Whisper checkpoint)"
                )
        id2label = config.get("id2label") or {}
        return cls(
            n_mels=int(config["num_mel_bins"]),
            n_audio_ctx=int(config["max_source_positions"]),
            n_audio_state=d_model,
            n_audio_head=int(config["encoder_attention_heads"]),
            n_audio_layer=int(config["encoder_layers"]),
            classifier_proj_size=int(config.get("classifier_proj_size", 256)),
            use_weighted_layer_sum=bool(config.get("use_weighted_layer_sum", False)),
            num_labels=len(id2label) if id2label else int(config.get("num_labels", 2)),
        )


class WhisperForAudioClassification(nn.Module):
    """Whisper encoder + projector + mean over positions + classifier.

    mel (B, n_mels, n_frames) -> logits (B, num_labels). Module names are the checkpoint's
    (`encoder` below is our `AudioEncoder`, renamed by `CLASSIFIER_TABLE`).
    """

    def __init__(self, config: WhisperClassifierConfig) -> None:
        super().__init__()
        c = config
        self.config = config
        self.encoder = AudioEncoder(
            c.n_mels, c.n_audio_ctx, c.n_audio_state, c.n_audio_head, c.n_audio_layer
        )
        if c.use_weighted_layer_sum:
            n = c.n_audio_layer + 1
            self.layer_weights = nn.Parameter(torch.full((n,), 1.0 / n))
        self.projector = nn.Linear(c.n_audio_state, c.classifier_proj_size)
        self.classifier = nn.Linear(c.classifier_proj_size, c.num_labels)

    def pooled_states(self, mel: torch.Tensor) -> torch.Tensor:
        """The encoder state averaged over positions, before the projector: (B, D) float32.

        The projector is affine, so projecting the time-mean equals the time-mean of the
        projected states (transformers' order) up to float rounding, at 1/1500 of the cost.
        With `use_weighted_layer_sum` the weighted sum of the layers' means is taken, which
        equals the mean of the weighted sum; no (B, layers, T, D) stack is built.
        """
        if not self.config.use_weighted_layer_sum:
            return self.encoder(mel).float().mean(dim=1)
        enc = self.encoder
        weights = self.layer_weights.float().softmax(dim=-1)  # (layers + 1,)
        x = F.gelu(enc.conv1(mel))  # (B, D, n_frames)
        x = F.gelu(_strided_conv_as_linear(x, enc.conv2))  # (B, n_ctx, D)
        x = x.float() + enc.positional_embedding  # the embedding output: state 0
        pooled = weights[0] * x.mean(dim=1)  # (B, D)
        for i, block in enumerate(enc.blocks, start=1):
            x = block(x)
            state = enc.ln_post(x) if i == len(enc.blocks) else x
            pooled = pooled + weights[i] * state.float().mean(dim=1)
        return pooled

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """mel: (B, n_mels, n_frames) log-mel (3000 frames: 30 s) -> (B, num_labels) logits."""
        c = self.config
        if mel.ndim != 3 or mel.shape[1] != c.n_mels or mel.shape[2] != c.n_frames:
            raise ValueError(
                f"the Whisper classifier expects log-mel features of shape (batch, {c.n_mels}, "
                f"{c.n_frames}), got {tuple(mel.shape)}; pad or trim the audio to "
                f"{c.n_frames * HOP_LENGTH / 16000:g} s before the log-mel"
            )
        dtype = self.projector.weight.dtype
        pooled = self.pooled_states(mel.to(dtype))
        return self.classifier(self.projector(pooled.to(dtype)))


def _classifier_table() -> dict[str, Target]:
    """The encoder rows of the speech-recognition table without their `model.` prefix, plus
    the head."""
    table: dict[str, Target] = {
        name.removeprefix("model."): target
        for name, target in HF_TABLE.items()
        if name.startswith("model.encoder.")
    }
    table.update({
        "projector.weight": "projector.weight",
        "projector.bias": "projector.bias",
        "classifier.weight": "classifier.weight",
        "classifier.bias": "classifier.bias",
        "layer_weights": "layer_weights",
    })  # fmt: skip
    return table


# transformers `WhisperForAudioClassification` state dict -> ours
CLASSIFIER_TABLE: dict[str, Target] = _classifier_table()


def _labels(config_json: Mapping[str, Any], n: int) -> tuple[str, ...]:
    """Class names from config.json's id2label, in id order ("LABEL_i" where absent)."""
    id2label = {int(k): str(v) for k, v in (config_json.get("id2label") or {}).items()}
    return tuple(id2label.get(i, f"LABEL_{i}") for i in range(n))


class WhisperClassifier:
    """A Whisper audio classifier (the `AudioClassifier` protocol of the pipeline).

    Each waveform is zero-padded or cut to the encoder's window (30 s), as transformers'
    `WhisperFeatureExtractor` does by default; audio beyond the window is not seen.

    Attributes:
        module: the `WhisperForAudioClassification`.
        sampling_rate: 16000.
        labels: class names in logit order (from config.json's id2label).
        multi_label: the checkpoint says its classes are independent (use sigmoid).
    """

    def __init__(self, module: WhisperForAudioClassification, config_json: dict[str, Any],
                 preprocessor: dict[str, Any]) -> None:  # fmt: skip
        self.module = module
        self.config = module.config
        self.sampling_rate = int(preprocessor.get("sampling_rate", 16000))
        if self.sampling_rate != 16000:
            raise CheckpointError(
                f"preprocessor_config.json gives sampling_rate {self.sampling_rate}; Whisper's "
                "log-mel is defined at 16000 Hz only"
            )
        self.labels = _labels(config_json, self.config.num_labels)
        self.multi_label = config_json.get("problem_type") == "multi_label_classification"

    def features(self, audios: Sequence[np.ndarray]) -> torch.Tensor:
        """Waveforms at 16 kHz -> (B, n_mels, n_frames) log-mel, each padded or cut to the
        window first."""
        n_samples = self.config.n_frames * HOP_LENGTH
        batch = np.zeros((len(audios), n_samples), np.float32)
        for row, audio in enumerate(audios):
            audio = np.asarray(audio, np.float32)[:n_samples]
            batch[row, : len(audio)] = audio
        return whisper_log_mel(torch.from_numpy(batch), self.config.n_mels, padding=None)

    @torch.inference_mode()
    def classify(self, audios: Sequence[np.ndarray]) -> torch.Tensor:
        """Args: audios: mono float waveforms at 16 kHz, any lengths.
        Returns: float32 CPU logits (len(audios), len(labels))."""
        param = self.module.projector.weight
        out = []
        for i in range(0, len(audios), MAX_BATCH):
            mel = self.features(audios[i : i + MAX_BATCH]).to(param.device)
            out.append(self.module(mel).float().cpu())
        return torch.cat(out) if out else torch.zeros(0, len(self.labels))


def from_pretrained_classifier(
    name_or_path: str | Path,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    local_files_only: bool = False,
) -> WhisperClassifier:
    """Load a transformers `WhisperForAudioClassification` checkpoint.

    Args:
        name_or_path: a folder with config.json and the weights, or a hub id (e.g.
            "sanchit-gandhi/whisper-medium-fleurs-lang-id").
        dtype: parameter dtype (default float32).
        device: default CPU.
        local_files_only: do not go online for a hub id.

    Raises:
        ModelNotFoundError: nothing at `name_or_path`.
        CheckpointError: no config.json, a speech-recognition Whisper (no classification head),
            or weights that do not fit the config.
    """
    files = resolve_model(name_or_path, local_files_only=local_files_only)
    source = "+".join(str(p) for p in files.weights)
    config_json = read_json(files.file("config.json"))
    if not config_json:
        raise CheckpointError(f"no config.json beside {source}: a Whisper classifier needs one")
    architectures = config_json.get("architectures") or []
    if architectures and ARCHITECTURE not in architectures:
        raise CheckpointError(
            f"{name_or_path} is a {', '.join(architectures)} checkpoint, not a "
            f"{ARCHITECTURE}: it has no classification head. For transcription use "
            "pipeline('automatic-speech-recognition', model=...)"
        )
    config = WhisperClassifierConfig.from_hf(config_json)
    state_dict = convert_state_dict(
        read_checkpoint(files.weights).tensors, CLASSIFIER_TABLE, source=source
    )
    with torch.device("meta"):
        module = WhisperForAudioClassification(config)
    module = assign_weights(module, state_dict, dtype=dtype or torch.float32, device=device,
                            source=source)  # fmt: skip
    preprocessor = read_json(files.file("preprocessor_config.json"))
    return WhisperClassifier(module, config_json, preprocessor)
