"""Load VITS voices: Piper `.onnx` + `.onnx.json`, or a transformers VITS folder (MMS-TTS).

Both give a `VitsVoice`, the `TextToWaveform` protocol the text-to-speech pipeline uses:
`sampling_rate`, `speakers`, `synthesize(sentences, ...)`, plus `split(text)` (text ->
sentences of symbol ids, via the voice's own front end).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...checkpoints import assign_weights, read_checkpoint, read_json
from ...errors import CheckpointError, ModelNotFoundError, TextToSpeechError
from ...hub import resolve_model
from ...onnx_reader import read_onnx
from .config import SynthesisOptions, VitsConfig
from .convert import convert_hf, convert_piper, piper_config
from .model import VitsModel

__all__ = ["VitsVoice", "from_pretrained", "load_piper"]

MAX_BATCH = 8  # sentences per forward pass: memory stays bounded for long texts


class VitsVoice:
    """A VITS model with its text front end (the `TextToWaveform` protocol).

    Attributes:
        model: the `VitsModel`.
        sampling_rate: output rate (Hz).
        speakers: speaker name -> id (empty for a one-speaker voice).
        defaults: the voice's own synthesis options.
        name: where it was loaded from.
    """

    def __init__(
        self,
        model: VitsModel,
        front_end: Callable[[str], list[list[int]]],
        *,
        speakers: dict[str, int],
        defaults: SynthesisOptions,
        name: str,
    ) -> None:
        self.model = model
        self.front_end = front_end
        self.sampling_rate = model.config.sampling_rate
        self.speakers = speakers
        self.defaults = defaults
        self.name = name

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def split(self, text: str) -> list[list[int]]:
        """Text -> one list of symbol ids per sentence (empty list: nothing to say).

        Raises:
            TextToSpeechError: the text has nothing the voice can pronounce.
        """
        return self.front_end(text)

    def speaker_id(self, speaker: int | str | None) -> int | None:
        """Resolve a speaker name or id; None for a one-speaker voice.

        Raises:
            TextToSpeechError: unknown speaker, or a speaker given to a one-speaker voice.
        """
        n = self.model.config.n_speakers
        if n <= 1:
            if speaker in (None, 0, "0"):
                return None
            raise TextToSpeechError(
                f"voice {self.name} has a single speaker; got speaker={speaker!r} (omit it)"
            )
        if speaker is None:
            return 0
        if isinstance(speaker, str) and speaker in self.speakers:
            return self.speakers[speaker]
        if isinstance(speaker, int) and 0 <= speaker < n:
            return speaker
        names = ", ".join(list(self.speakers)[:10]) or "none"
        raise TextToSpeechError(
            f"unknown speaker {speaker!r} for voice {self.name}: expected an id in 0..{n - 1} "
            f"or a name ({names}{', ...' if len(self.speakers) > 10 else ''})"
        )

    @torch.inference_mode()
    def synthesize(
        self,
        sentences: Sequence[Sequence[int]],
        *,
        options: SynthesisOptions | None = None,
        speaker: int | None = None,
        generator: torch.Generator | None = None,
    ) -> list[np.ndarray]:
        """Synthesize sentences of symbol ids, batched.

        Args:
            sentences: symbol ids per sentence (from `split`).
            options: noise and length scales (default: the voice's own).
            speaker: speaker id (from `speaker_id`).
            generator: random generator for the noise.

        Returns:
            One float32 waveform (samples,) per sentence, in order.
        """
        options = options or self.defaults
        out: list[np.ndarray] = [np.zeros(0, np.float32)] * len(sentences)
        order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
        for start in range(0, len(order), MAX_BATCH):
            batch = order[start : start + MAX_BATCH]
            longest = max(len(sentences[i]) for i in batch)
            ids = torch.zeros(len(batch), longest, dtype=torch.long)
            for row, i in enumerate(batch):
                ids[row, : len(sentences[i])] = torch.as_tensor(sentences[i])
            lengths = torch.tensor([len(sentences[i]) for i in batch])
            sid = None if speaker is None else torch.full((len(batch),), speaker)
            dev = self.device
            audio, n = self.model(
                ids.to(dev),
                lengths.to(dev),
                noise_scale=options.noise_scale,
                length_scale=options.length_scale,
                noise_w=options.noise_w,
                speaker=None if sid is None else sid.to(dev),
                generator=generator,
            )
            audio = audio.float().cpu().numpy()
            for row, i in enumerate(batch):
                out[i] = audio[row, : int(n[row])].copy()
        return out


# --------------------------------------------------------------------------------------------
# Piper


def load_piper(
    name_or_path: str | Path,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> VitsVoice:
    """Load a Piper voice: `voice.onnx` with `voice.onnx.json` beside it.

    Args:
        name_or_path: the `.onnx` file, a folder holding exactly one, or a bundled alias.
        dtype: parameter dtype (default float32).
        device: default CPU.

    Raises:
        ModelNotFoundError: no such file.
        CheckpointError: not a VITS voice, or a json that does not match the model.
    """
    files = resolve_model(name_or_path) if not Path(name_or_path).exists() else None
    path = Path(name_or_path) if files is None else files.weights[0]
    if path.is_dir():
        found = sorted(path.glob("*.onnx"))
        if len(found) != 1:
            raise ModelNotFoundError(f"{path}: expected one Piper .onnx voice, found {len(found)}")
        path = found[0]
    config_path = path.with_name(path.name + ".json")
    if not config_path.is_file():
        raise ModelNotFoundError(
            f"Piper voice {path} has no {config_path.name} beside it: download both files"
        )
    voice = read_json(config_path)
    graph = read_onnx(path)
    config = piper_config(graph, voice)
    with torch.device("meta"):
        model = VitsModel(config)
    expected = set(model.state_dict())
    state = convert_piper(graph, expected)
    model = assign_weights(model, state, dtype=dtype or torch.float32, device=device,
                           source=str(path))  # fmt: skip
    model.prepare_()
    _check_piper_json(voice, config, config_path)
    from ...text.phonemize import PiperFrontEnd

    front_end = PiperFrontEnd(
        voice["phoneme_id_map"], voice.get("espeak", {}).get("voice", "en-us"), source=path
    )
    inference = voice.get("inference", {})
    defaults = SynthesisOptions(
        noise_scale=float(inference.get("noise_scale", 0.667)),
        length_scale=float(inference.get("length_scale", 1.0)),
        noise_w=float(inference.get("noise_w", 0.8)),
    )
    speakers = {str(k): int(v) for k, v in (voice.get("speaker_id_map") or {}).items()}
    return VitsVoice(model, front_end, speakers=speakers, defaults=defaults, name=str(path))


def _check_piper_json(voice: dict[str, Any], config: VitsConfig, path: Path) -> None:
    problems = []
    id_map = voice.get("phoneme_id_map")
    if not isinstance(id_map, dict) or not id_map:
        problems.append("it has no phoneme_id_map")
    else:
        top = max(i for ids in id_map.values() for i in ids)
        if top >= config.n_vocab:
            problems.append(f"its phoneme_id_map uses id {top}, the model has {config.n_vocab}")
    n_symbols = voice.get("num_symbols")
    if n_symbols is not None and int(n_symbols) != config.n_vocab:
        problems.append(f"num_symbols is {n_symbols}, the model has {config.n_vocab} symbols")
    if voice.get("phoneme_type", "espeak") != "espeak":
        problems.append(f"phoneme_type {voice.get('phoneme_type')!r} (only espeak is supported)")
    if int(voice.get("num_speakers", 1)) > 1 and config.gin_channels == 0:
        problems.append(f"num_speakers is {voice['num_speakers']}, the model has one speaker")
    if int(voice.get("num_speakers", 1)) <= 1 and config.gin_channels:
        problems.append("num_speakers is 1, the model has a speaker table")
    if problems:
        raise CheckpointError(
            f"{path} does not match its model: {'; '.join(problems)}. Use the .onnx.json that "
            "was released with this .onnx voice."
        )


# --------------------------------------------------------------------------------------------
# transformers (MMS-TTS)


def from_pretrained(
    name_or_path: str | Path,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    local_files_only: bool = False,
) -> VitsVoice:
    """Load a transformers VITS checkpoint (config.json, weights, vocab.json), or a Piper voice
    when given an `.onnx` file or a folder holding one.

    Raises:
        ModelNotFoundError: nothing at `name_or_path`.
        CheckpointError: not a VITS model, or weights that do not fit the config.
    """
    path = Path(name_or_path)
    if path.suffix == ".onnx" or (path.is_dir() and any(path.glob("*.onnx.json"))):
        return load_piper(path, dtype=dtype, device=device)
    files = resolve_model(name_or_path, local_files_only=local_files_only)
    if files.weights and files.weights[0].suffix == ".onnx":
        return load_piper(files.weights[0], dtype=dtype, device=device)
    config_path = files.file("config.json")
    if config_path is None or files.folder is None:
        raise CheckpointError(f"{name_or_path}: a transformers VITS folder needs config.json")
    config_json = read_json(config_path)
    config = VitsConfig.from_hf(config_json)
    source = "+".join(str(p) for p in files.weights)
    state = convert_hf(read_checkpoint(files.weights).tensors, source=source)
    with torch.device("meta"):
        model = VitsModel(config)
    model = assign_weights(model, state, dtype=dtype or torch.float32, device=device,
                           source=source)  # fmt: skip
    model.prepare_()
    from ...text.phonemize import CharacterFrontEnd

    front_end = CharacterFrontEnd.from_folder(files.folder)
    defaults = SynthesisOptions(
        noise_scale=float(config_json.get("noise_scale", 0.667)),
        length_scale=1.0 / float(config_json.get("speaking_rate", 1.0) or 1.0),
        noise_w=float(config_json.get("noise_scale_duration", 0.8)),
    )
    labels = config_json.get("speaker_labels") or {}
    speakers = {str(k): int(v) for k, v in labels.items()} if isinstance(labels, dict) else {}
    return VitsVoice(model, front_end, speakers=speakers, defaults=defaults, name=str(name_or_path))
