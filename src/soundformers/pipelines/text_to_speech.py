"""`pipeline("text-to-speech")`: text in, `{"audio": float32 array, "sampling_rate": int}` out.

The model is any `TextToWaveform` (e.g. `models.vits.VitsVoice`): it has `sampling_rate`,
`defaults` (a `SynthesisOptions`), `split(text) -> sentences of symbol ids`,
`speaker_id(speaker)` and `synthesize(sentences, options=, speaker=, generator=)`. Text is split
into sentences, the sentences of a batch of inputs are synthesized together, and each input's
sentences are joined with a short pause.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import Any, ClassVar

import numpy as np
import torch

from ..errors import SoundformersError, TextToSpeechError
from .base import ErrorMode, Pipeline
from .inputs import batched

__all__ = ["TextToSpeechPipeline"]

_OPTION_NAMES = ("noise_scale", "length_scale", "noise_w")


class TextToSpeechPipeline(Pipeline):
    """Text to speech.

    Call with a str (returns a dict), a list of str (a list of dicts) or any iterable of str (a
    generator), and optionally:

    - `speaker`: name or id (multi-speaker voices);
    - `length_scale` (> 1 slower), `noise_scale`, `noise_w`: default the voice's own;
    - `seed`: makes the noise reproducible;
    - `sentence_silence`: pause between sentences in seconds (default 0.2);
    - `progress`: show a progress bar over sentence batches.

    Args:
        model: a `TextToWaveform` voice.
        batch_size: texts synthesized together (their sentences share forward passes).
    """

    task: ClassVar[str] = "text-to-speech"

    def __init__(self, model: Any, *, batch_size: int = 1, num_workers: int | None = None):
        super().__init__(model.sampling_rate, batch_size=batch_size, num_workers=num_workers)
        self.model = model

    def _check_params(
        self,
        *,
        speaker: int | str | None = None,
        seed: int | None = None,
        sentence_silence: float = 0.2,
        progress: bool = False,
        **options: Any,
    ) -> dict[str, Any]:
        unknown = sorted(set(options) - set(_OPTION_NAMES))
        if unknown:
            raise SoundformersError(
                f"the text-to-speech pipeline takes no argument(s) {unknown}; it takes speaker, "
                f"seed, sentence_silence, progress, {', '.join(_OPTION_NAMES)}"
            )
        given = {k: float(v) for k, v in options.items() if v is not None}
        try:
            synthesis = replace(self.model.defaults, **given)
        except ValueError as e:
            raise TextToSpeechError(str(e)) from e
        if not isinstance(sentence_silence, (int, float)) or sentence_silence < 0:
            raise TextToSpeechError(
                f"sentence_silence must be >= 0 seconds, got {sentence_silence!r}"
            )
        return {
            "options": synthesis,
            "speaker": self.model.speaker_id(speaker),
            "seed": seed,
            "pause": np.zeros(round(sentence_silence * self.sampling_rate), np.float32),
            "progress": bool(progress),
        }

    def _iterate(
        self, inputs: Iterable[Any], size: int, errors: ErrorMode, params: dict[str, Any]
    ) -> Iterator[Any]:
        generator = None
        if params["seed"] is not None:
            generator = torch.Generator().manual_seed(int(params["seed"]))
        start = 0
        for chunk in batched(inputs, size):
            split: list[list[list[int]] | TextToSpeechError] = []
            for position, text in enumerate(chunk):
                try:
                    split.append(self.model.split(text))
                except TextToSpeechError as e:
                    if errors == "raise":
                        raise TextToSpeechError(f"input {start + position}: {e}") from e
                    split.append(e)
            sentences = [s for item in split if not isinstance(item, Exception) for s in item]
            audio = iter(self._synthesize(sentences, params, generator))
            for position, item in enumerate(split):
                if isinstance(item, Exception):
                    yield {"error": str(item), "index": start + position}
                    continue
                pieces = [next(audio) for _ in item]
                joined = [p for piece in pieces for p in (piece, params["pause"])][:-1]
                yield {
                    "audio": np.concatenate(joined).astype(np.float32, copy=False),
                    "sampling_rate": self.sampling_rate,
                }
            start += len(chunk)

    def _synthesize(
        self, sentences: list[list[int]], params: dict[str, Any], generator: Any
    ) -> list[np.ndarray]:
        """Synthesize sentences in groups of similar length (less padding in each batch);
        returns their audio in the given order."""
        step = 8
        order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
        groups = range(0, len(order), step)
        if params["progress"] and len(sentences) > step:
            from tqdm.auto import tqdm

            groups = tqdm(groups, unit="batch", desc="speaking")
        out: list[np.ndarray] = [np.zeros(0, np.float32)] * len(sentences)
        for i in groups:
            group = order[i : i + step]
            audio = self.model.synthesize(
                [sentences[j] for j in group],
                options=params["options"],
                speaker=params["speaker"],
                generator=generator,
            )
            for j, wave in zip(group, audio):
                out[j] = wave
        return out
