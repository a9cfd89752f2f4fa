"""Load an AST audio classifier (transformers layout) and run it on lists of waveforms.

`from_pretrained` returns an `ASTClassifier`: the `AudioClassifier` protocol of the
audio-classification pipeline (`sampling_rate`, `labels`, `multi_label`, `classify(audios)`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...audio.features import AST_MEAN, AST_STD, ast_features
from ...checkpoints import assign_weights, read_checkpoint, read_json
from ...errors import CheckpointError
from ...hub import resolve_model
from ..wav2vec2.load import labels_from_config
from .config import ASTConfig
from .convert import convert_state_dict
from .model import ASTForAudioClassification

__all__ = ["ASTClassifier", "from_pretrained"]

MAX_BATCH = 16


class ASTClassifier:
    """AST with its feature extractor settings and labels.

    Attributes:
        module: the `ASTForAudioClassification`.
        sampling_rate: 16000.
        labels: class names in logit order.
        multi_label: the checkpoint says its classes are independent (AudioSet models do not
            say so, although they were trained with a sigmoid).
    """

    def __init__(self, module: ASTForAudioClassification, config_json: dict[str, Any],
                 preprocessor: dict[str, Any]) -> None:  # fmt: skip
        self.module = module
        self.config = module.config
        self.sampling_rate = int(preprocessor.get("sampling_rate", 16000))
        self.labels = labels_from_config(config_json, self.config.num_labels)
        self.multi_label = config_json.get("problem_type") == "multi_label_classification"
        self.normalize = bool(preprocessor.get("do_normalize", True))
        self.mean = float(preprocessor.get("mean", AST_MEAN))
        self.std = float(preprocessor.get("std", AST_STD))

    def features(self, audios: Sequence[np.ndarray]) -> torch.Tensor:
        """Waveforms -> (B, max_length, num_mel_bins) normalised fbank."""
        return ast_features(
            [np.asarray(a, np.float32) for a in audios], sampling_rate=self.sampling_rate,
            num_mel_bins=self.config.num_mel_bins, max_length=self.config.max_length,
            normalize=self.normalize, mean=self.mean, std=self.std,
        )  # fmt: skip

    @torch.inference_mode()
    def classify(self, audios: Sequence[np.ndarray]) -> torch.Tensor:
        """Args: audios: mono float waveforms at 16 kHz.
        Returns: float32 CPU logits (len(audios), len(labels))."""
        param = next(self.module.parameters())
        out = []
        for i in range(0, len(audios), MAX_BATCH):
            x = self.features(audios[i : i + MAX_BATCH]).to(param.device, param.dtype)
            out.append(self.module(x).float().cpu())
        return torch.cat(out)


def from_pretrained(
    name_or_path: str | Path,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    local_files_only: bool = False,
) -> ASTClassifier:
    """Load an `ASTForAudioClassification` checkpoint (e.g. MIT/ast-finetuned-audioset-10-10-0.4593).

    Args:
        name_or_path: a folder with config.json (+ preprocessor_config.json) and the weights,
            or a hub id.
        dtype: parameter dtype (default float32).
        device: default CPU.
        local_files_only: do not go online for a hub id.

    Raises:
        ModelNotFoundError: nothing at `name_or_path`.
        CheckpointError: no config.json, or weights that do not fit it.
    """
    files = resolve_model(name_or_path, local_files_only=local_files_only)
    config_json = read_json(files.file("config.json"))
    source = "+".join(str(p) for p in files.weights)
    if not config_json:
        raise CheckpointError(f"no config.json beside {source}: an AST folder needs one")
    config = ASTConfig.from_hf(config_json)
    state_dict = convert_state_dict(read_checkpoint(files.weights).tensors, source=source)
    with torch.device("meta"):
        module = ASTForAudioClassification(config)
    module = assign_weights(module, state_dict, dtype=dtype or torch.float32, device=device,
                          source=source)  # fmt: skip
    preprocessor = read_json(files.file("preprocessor_config.json"))
    return ASTClassifier(module, config_json, preprocessor)
