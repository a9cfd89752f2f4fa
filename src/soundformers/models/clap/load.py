"""Load a CLAP checkpoint (transformers layout) with its tokenizer and feature settings.

`from_pretrained` returns a `Clap`: the `ZeroShotAudioModel` protocol of the
zero-shot-audio-classification pipeline (`sampling_rate`, `audio_embeddings(audios)`,
`text_embeddings(texts)`, `logit_scale`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...audio.clap_features import CLAP_SAMPLING_RATE, clap_features
from ...checkpoints import assign_weights, read_checkpoint, read_json
from ...errors import CheckpointError
from ...hub import resolve_model
from .config import ClapConfig
from .convert import convert_state_dict
from .model import ClapModel

__all__ = ["Clap", "from_pretrained"]

MAX_BATCH = 16


class Clap:
    """A `ClapModel` with its tokenizer and feature extractor settings.

    Attributes:
        module: the `ClapModel`.
        tokenizer: a `tokenizers.Tokenizer` (RoBERTa BPE, adds <s> ... </s>).
        sampling_rate: the audio rate the model takes (48000).
        feature_kwargs: `clap_features` settings from preprocessor_config.json.
    """

    def __init__(self, module: ClapModel, tokenizer: Any, preprocessor: dict[str, Any]) -> None:
        self.module = module
        self.config = module.config
        self.tokenizer = tokenizer
        fused = self.config.audio.enable_fusion
        self.sampling_rate = int(preprocessor.get("sampling_rate", CLAP_SAMPLING_RATE))
        self.feature_kwargs = {
            "sampling_rate": self.sampling_rate,
            "truncation": preprocessor.get("truncation", "fusion" if fused else "rand_trunc"),
            "padding": preprocessor.get("padding", "repeatpad"),
            "max_length_s": float(preprocessor.get("max_length_s", 10)),
            "n_mels": int(preprocessor.get("feature_size", self.config.audio.num_mel_bins)),
            "n_fft": int(preprocessor.get("fft_window_size", 1024)),
            "hop_length": int(preprocessor.get("hop_length", 480)),
            "f_min": float(preprocessor.get("frequency_min", 0)),
            "f_max": float(preprocessor.get("frequency_max", 14000)),
        }
        if (self.feature_kwargs["truncation"] == "fusion") != fused:
            raise CheckpointError(
                f"preprocessor_config.json asks for truncation="
                f"{self.feature_kwargs['truncation']!r} but the model is "
                f"{'fused' if fused else 'unfused'}; it needs truncation="
                f"{'fusion' if fused else 'rand_trunc'!r}. Fix the file."
            )

    @property
    def logit_scale(self) -> float:
        """exp of the audio-side log temperature: logits_per_audio = scale * cos similarity."""
        return float(self.module.logit_scale_a.exp())

    def features(
        self, audios: Sequence[np.ndarray], seed: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Waveforms at `sampling_rate` -> (B, C, frames, mels) features, (B,) is_longer.

        Each item is prepared alone with its own `seed`, so an item's features (the random
        crop of a long clip) do not depend on its batch mates.
        """
        items = [clap_features([np.asarray(a)], seed=seed, **self.feature_kwargs) for a in audios]
        return torch.cat([f.features for f in items]), torch.cat([f.is_longer for f in items])

    @torch.inference_mode()
    def audio_embeddings(self, audios: Sequence[np.ndarray]) -> torch.Tensor:
        """Args: audios: mono float waveforms at `sampling_rate`.
        Returns: float32 CPU (len(audios), projection_dim) unit-norm embeddings."""
        param = next(self.module.parameters())
        out = []
        for i in range(0, len(audios), MAX_BATCH):
            features, longer = self.features(audios[i : i + MAX_BATCH])
            features = features.to(param.device, param.dtype)
            out.append(self.module.get_audio_features(features, longer).float().cpu())
        return torch.cat(out)

    def tokenize(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Texts -> input_ids, attention_mask (B, N) int64, padded with the pad token."""
        encodings = self.tokenizer.encode_batch(list(texts))
        n = max(len(e.ids) for e in encodings)
        ids = torch.full((len(encodings), n), self.config.text.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(encodings), n), dtype=torch.long)
        for row, e in enumerate(encodings):
            ids[row, : len(e.ids)] = torch.tensor(e.ids)
            mask[row, : len(e.ids)] = 1
        return ids, mask

    @torch.inference_mode()
    def text_embeddings(self, texts: Sequence[str]) -> torch.Tensor:
        """Args: texts: strings.
        Returns: float32 CPU (len(texts), projection_dim) unit-norm embeddings."""
        device = next(self.module.parameters()).device
        out = []
        for i in range(0, len(texts), MAX_BATCH):
            ids, mask = self.tokenize(texts[i : i + MAX_BATCH])
            out.append(self.module.get_text_features(ids.to(device), mask.to(device)).float().cpu())
        return torch.cat(out)


def load_tokenizer(path: Path | None, config: ClapConfig, where: str) -> Any:
    """The checkpoint's tokenizer.json as a `tokenizers.Tokenizer`, truncating to what the
    position table holds."""
    if path is None:
        raise CheckpointError(
            f"no tokenizer.json beside {where}: CLAP needs its RoBERTa tokenizer. Save it with "
            "transformers: ClapProcessor.from_pretrained(...).save_pretrained(folder) (or "
            "RobertaTokenizerFast(...).save_pretrained(folder)) writes tokenizer.json."
        )
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as e:  # the library raises plain Exception subclasses
        raise CheckpointError(f"cannot read the tokenizer {path}: {e}") from e
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=config.text.max_tokens)
    return tokenizer


def from_pretrained(
    name_or_path: str | Path,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    local_files_only: bool = False,
) -> Clap:
    """Load a transformers `ClapModel` checkpoint (laion/clap-htsat-unfused, -fused,
    larger_clap_general, larger_clap_music).

    Args:
        name_or_path: a folder with config.json, the weights, tokenizer.json and
            preprocessor_config.json, or a hub id.
        dtype: parameter dtype (default float32).
        device: default CPU.
        local_files_only: do not go online for a hub id.

    Raises:
        ModelNotFoundError: nothing at `name_or_path`.
        CheckpointError: no config.json or tokenizer.json, or weights that do not fit.
    """
    files = resolve_model(name_or_path, local_files_only=local_files_only)
    source = "+".join(str(p) for p in files.weights)
    config_json = read_json(files.file("config.json"))
    if not config_json:
        raise CheckpointError(f"no config.json beside {source}: a CLAP folder needs one")
    config = ClapConfig.from_hf(config_json)
    tokenizer = load_tokenizer(files.file("tokenizer.json"), config, source)
    state_dict = convert_state_dict(read_checkpoint(files.weights).tensors, source=source)
    with torch.device("meta"):
        module = ClapModel(config)
    module = assign_weights(module, state_dict, dtype=dtype or torch.float32, device=device,
                            source=source)  # fmt: skip
    return Clap(module, tokenizer, read_json(files.file("preprocessor_config.json")))
