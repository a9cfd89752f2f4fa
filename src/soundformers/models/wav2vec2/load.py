"""Load Wav2Vec2/HuBERT checkpoints (transformers layout) and run them on lists of waveforms.

`from_pretrained_ctc` returns a `Wav2Vec2CTC` (the `CTCModel` protocol the speech-recognition
pipeline uses: `sampling_rate`, `samples_per_frame`, `tokenizer`, `logits(audios)`), and
`from_pretrained_classifier` a `Wav2Vec2Classifier` (the `AudioClassifier` protocol:
`sampling_rate`, `labels`, `multi_label`, `classify(audios)`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ...checkpoints import assign_weights, read_checkpoint, read_json
from ...errors import CheckpointError
from ...hub import resolve_model
from ...text.ctc_tokenizer import CTCTokenizer
from .config import Wav2Vec2Config
from .convert import convert_state_dict, hf_table
from .model import Wav2Vec2ForCTC, Wav2Vec2ForSequenceClassification

__all__ = [
    "Wav2Vec2CTC",
    "Wav2Vec2Classifier",
    "from_pretrained_classifier",
    "from_pretrained_ctc",
    "load_module",
    "normalize",
]

MAX_BATCH = 16  # pieces per forward pass


def normalize(audio: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance (`Wav2Vec2FeatureExtractor(do_normalize=True)`)."""
    audio = np.asarray(audio, dtype=np.float32)
    return (audio - audio.mean()) / np.sqrt(audio.var() + 1e-7)


def load_module(
    name_or_path: str | Path,
    head: type[nn.Module],
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    local_files_only: bool = False,
) -> tuple[nn.Module, Path | None, dict[str, Any]]:
    """Build `head(config)` on the meta device and load a transformers checkpoint into it.

    Returns:
        (the module in eval mode, the model folder, config.json as a dict).

    Raises:
        ModelNotFoundError: nothing at `name_or_path`.
        CheckpointError: no config.json, not a Wav2Vec2/HuBERT model, or weights that do not fit.
    """
    files = resolve_model(name_or_path, local_files_only=local_files_only)
    config_json = read_json(files.file("config.json"))
    source = "+".join(str(p) for p in files.weights)
    if not config_json:
        raise CheckpointError(f"no config.json beside {source}: a Wav2Vec2/HuBERT folder needs one")
    config = Wav2Vec2Config.from_hf(config_json)
    tensors = dict(read_checkpoint(files.weights).tensors)
    prefix = config.model_type
    if not any(k.startswith(prefix + ".") for k in tensors):  # a bare Wav2Vec2Model / HubertModel
        tensors = {f"{prefix}.{k}": v for k, v in tensors.items()}
    state_dict = convert_state_dict(tensors, hf_table(prefix), source=source)
    with torch.device("meta"):
        module = head(config)
    module = assign_weights(module, state_dict, dtype=dtype or torch.float32, device=device,
                          source=source)  # fmt: skip
    return module, files.folder, config_json


class _Runner:
    """Normalise, batch and run waveforms through a Wav2Vec2 module.

    Items of equal length share a forward pass. A "layer"-norm feature encoder (large-lv60)
    also batches unequal lengths with a padding mask, which gives the same frames as running
    each item alone; the "group"-norm encoder normalises over the whole time axis, so padding
    would change its output.
    """

    def __init__(self, module: nn.Module, preprocessor: dict[str, Any]) -> None:
        self.module = module
        self.config: Wav2Vec2Config = module.config
        self.sampling_rate = int(preprocessor.get("sampling_rate", 16000))
        self.do_normalize = bool(preprocessor.get("do_normalize", True))
        self.masked_batches = self.config.feat_extract_norm == "layer"

    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device

    def _batches(self, lengths: list[int]) -> list[list[int]]:
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
        batches: list[list[int]] = []
        for i in order:
            last = batches[-1] if batches else None
            fits = last is not None and len(last) < MAX_BATCH
            if fits and (self.masked_batches or lengths[last[0]] == lengths[i]):
                last.append(i)
            else:
                batches.append([i])
        return batches

    @torch.inference_mode()
    def run(self, audios: Sequence[np.ndarray]) -> list[torch.Tensor | None]:
        """One output per waveform: (frames_i, vocab) logits for CTC, (labels,) for a
        classifier; None for a waveform shorter than one frame (`receptive_field` samples)."""
        outputs: list[torch.Tensor | None] = [None] * len(audios)
        todo = [i for i, a in enumerate(audios) if self.config.output_length(len(a)) >= 1]
        if not todo:
            return outputs
        prepared = [
            normalize(a) if self.do_normalize else np.asarray(a, np.float32)
            for a in (audios[i] for i in todo)
        ]
        lengths = [len(a) for a in prepared]
        for batch in self._batches(lengths):
            longest = max(lengths[i] for i in batch)
            x = np.zeros((len(batch), longest), np.float32)
            for row, i in enumerate(batch):
                x[row, : lengths[i]] = prepared[i]
            # float32 in any case: the feature encoder casts after its first convolution
            audio = torch.from_numpy(x).to(self.device)
            valid = torch.tensor([lengths[i] for i in batch], device=self.device)
            same = all(lengths[i] == longest for i in batch)
            y = self.module(audio, None if same else valid).float().cpu()
            for row, i in enumerate(batch):
                outputs[todo[i]] = self._trim(y[row], lengths[i])
        return outputs

    def _trim(self, y: torch.Tensor, n_samples: int) -> torch.Tensor:
        return y


class Wav2Vec2CTC(_Runner):
    """A CTC speech model (the `CTCModel` protocol).

    Attributes:
        sampling_rate: rate the model expects (Hz).
        samples_per_frame: audio samples per logit frame (320).
        tokenizer: the checkpoint's `CTCTokenizer`.
    """

    def __init__(self, module: Wav2Vec2ForCTC, tokenizer: CTCTokenizer,
                 preprocessor: dict[str, Any]) -> None:  # fmt: skip
        super().__init__(module, preprocessor)
        self.tokenizer = tokenizer
        self.samples_per_frame = self.config.inputs_to_logits_ratio
        if tokenizer.blank_id != self.config.pad_token_id:
            raise CheckpointError(
                f"the tokenizer's blank id {tokenizer.blank_id} is not the model's pad_token_id "
                f"{self.config.pad_token_id}"
            )

    def logits(self, audios: Sequence[np.ndarray]) -> list[torch.Tensor]:
        """Args: audios: mono float waveforms at `sampling_rate`, any lengths.
        Returns: per waveform, float32 CPU logits (frames_i, vocab); (0, vocab) for a waveform
        shorter than one frame."""
        vocab = self.config.vocab_size or 0
        return [torch.zeros(0, vocab) if y is None else y for y in self.run(audios)]

    def _trim(self, y: torch.Tensor, n_samples: int) -> torch.Tensor:
        return y[: self.config.output_length(n_samples)]


class Wav2Vec2Classifier(_Runner):
    """An audio classifier (the `AudioClassifier` protocol).

    Attributes:
        sampling_rate: rate the model expects (Hz).
        labels: class names in logit order (from config.json's id2label).
        multi_label: the checkpoint says its classes are independent (use sigmoid).
    """

    def __init__(self, module: Wav2Vec2ForSequenceClassification, config_json: dict[str, Any],
                 preprocessor: dict[str, Any]) -> None:  # fmt: skip
        super().__init__(module, preprocessor)
        self.labels = labels_from_config(config_json, self.config.num_labels)
        self.multi_label = config_json.get("problem_type") == "multi_label_classification"

    def classify(self, audios: Sequence[np.ndarray]) -> torch.Tensor:
        """Args: audios: mono float waveforms at `sampling_rate`.
        Returns: float32 CPU logits (len(audios), len(labels)).

        Raises:
            ValueError: a waveform is shorter than the model's receptive field.
        """
        outputs = self.run(audios)
        short = [i for i, y in enumerate(outputs) if y is None]
        if short:
            raise ValueError(
                f"inputs {short} are shorter than one frame ({self.config.receptive_field} "
                f"samples at {self.sampling_rate} Hz)"
            )
        return torch.stack(outputs)  # type: ignore[arg-type]


def labels_from_config(config_json: dict[str, Any], n: int) -> tuple[str, ...]:
    """Class names from id2label, in id order ("LABEL_i" where absent)."""
    id2label = {int(k): str(v) for k, v in (config_json.get("id2label") or {}).items()}
    return tuple(id2label.get(i, f"LABEL_{i}") for i in range(n))


def from_pretrained_ctc(
    name_or_path: str | Path,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    local_files_only: bool = False,
) -> Wav2Vec2CTC:
    """Load a `Wav2Vec2ForCTC` / `HubertForCTC` checkpoint with its vocabulary.

    Args:
        name_or_path: a folder with config.json, vocab.json and the weights, or a hub id.
        dtype: parameter dtype (default float32).
        device: default CPU.
        local_files_only: do not go online for a hub id.
    """
    module, folder, _ = load_module(name_or_path, Wav2Vec2ForCTC, dtype=dtype, device=device,
                                    local_files_only=local_files_only)  # fmt: skip
    if folder is None:
        raise CheckpointError(f"{name_or_path}: a CTC model needs its vocab.json beside it")
    preprocessor = read_json(_maybe(folder / "preprocessor_config.json"))
    return Wav2Vec2CTC(module, CTCTokenizer.from_folder(folder), preprocessor)


def from_pretrained_classifier(
    name_or_path: str | Path,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    local_files_only: bool = False,
) -> Wav2Vec2Classifier:
    """Load a `Wav2Vec2ForSequenceClassification` / `HubertForSequenceClassification` checkpoint
    (e.g. superb/wav2vec2-base-superb-ks)."""
    module, folder, config_json = load_module(
        name_or_path, Wav2Vec2ForSequenceClassification, dtype=dtype, device=device,
        local_files_only=local_files_only,
    )  # fmt: skip
    preprocessor = read_json(_maybe(folder / "preprocessor_config.json")) if folder else {}
    return Wav2Vec2Classifier(module, config_json, preprocessor)


def _maybe(path: Path) -> Path | None:
    return path if path.is_file() else None
