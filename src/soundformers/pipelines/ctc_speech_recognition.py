"""The automatic-speech-recognition pipeline for CTC models (Wav2Vec2, HuBERT).

>>> asr = soundformers.pipeline("automatic-speech-recognition", model="path/to/wav2vec2-base-960h")
>>> asr("talk.flac", chunk_length_s=10, return_timestamps="word")
{'text': 'HELLO WORLD', 'chunks': [{'text': 'HELLO', 'timestamp': (0.52, 0.86)}, ...]}

The model is reached through the `CTCModel` protocol only: `sampling_rate`,
`samples_per_frame`, `tokenizer` (a `CTCTokenizer`) and `logits(audios) -> [(frames, vocab)]`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..audio.io import Waveform
from ..ctc import BeamSearchDecoder, CTCPath, forced_align, greedy_decode, word_spans
from ..errors import SoundformersError
from .base import Pipeline

__all__ = ["CTCSpeechRecognitionPipeline", "Chunk", "plan_chunks"]

TIMESTAMP_KINDS = (False, "word", "char")


@dataclass(frozen=True)
class Chunk:
    """A piece of the input: samples [start, end), of which the first `left` and last `right`
    are context whose logits are dropped."""

    start: int
    end: int
    left: int
    right: int


def plan_chunks(n_samples: int, chunk_len: int, stride_left: int, stride_right: int) -> list[Chunk]:
    """Cut `n_samples` into overlapping pieces (transformers' `chunk_iter` for CTC).

    Pieces start every `chunk_len - stride_left - stride_right` samples; the first has no left
    context and the last no right context, so the kept parts tile the input exactly.
    """
    step = chunk_len - stride_left - stride_right
    if step <= 0:
        raise SoundformersError(
            f"chunk_length_s must exceed the two strides: chunk {chunk_len} samples, strides "
            f"{stride_left} + {stride_right}"
        )
    chunks = []
    for start in range(0, max(n_samples, 1), step):
        end = min(start + chunk_len, n_samples)
        is_last = start + chunk_len >= n_samples
        left = 0 if start == 0 else stride_left
        if end - start > left:
            chunks.append(Chunk(start, end, left, 0 if is_last else stride_right))
        if is_last:
            break
    return chunks


def keep_frames(logits: torch.Tensor, chunk: Chunk, samples_per_frame: int) -> torch.Tensor:
    """The frames of a chunk's logits outside its strides (transformers' `rescale_stride`)."""
    n = chunk.end - chunk.start
    frames = int(round(n / samples_per_frame))
    left = int(round(chunk.left / n * frames))
    right = int(round(chunk.right / n * frames))
    return logits[left : frames - right]


class CTCSpeechRecognitionPipeline(Pipeline):
    """Speech to text with a CTC model.

    Args:
        model: a `CTCModel` (e.g. `soundformers.models.wav2vec2.from_pretrained_ctc(...)`).
        decoder: default decoder: None (greedy) or a `BeamSearchDecoder` (beam search, LM).
        batch_size: inputs decoded together (default 1).
        num_workers: audio decoding threads.

    Call it with one input, a list, or an iterable (see `Pipeline.__call__`), and:

    - return_timestamps: False, "word" or "char": adds "chunks" with each word's (character's)
      (start_s, end_s), from the CTC alignment of the transcript.
    - chunk_length_s: cut long audio into pieces this long (0: whole input at once).
    - stride_length_s: context on each side of a piece whose logits are dropped (default
      chunk_length_s / 6); a number, or a (left, right) pair.
    - decoder: overrides the pipeline's decoder for this call.

    Returns per input ``{"text": str}``, plus ``"chunks": [{"text", "timestamp": (start_s,
    end_s)}]`` when `return_timestamps` is set.
    """

    task = "automatic-speech-recognition"

    def __init__(self, model: Any, *, decoder: BeamSearchDecoder | None = None,
                 batch_size: int = 1, num_workers: int | None = None) -> None:  # fmt: skip
        super().__init__(model.sampling_rate, batch_size=batch_size, num_workers=num_workers)
        self.model = model
        self.decoder = decoder
        self.token_text = model.tokenizer.token_strings()

    def _check_params(
        self,
        return_timestamps: bool | str = False,
        chunk_length_s: float = 0.0,
        stride_length_s: float | tuple[float, float] | None = None,
        decoder: BeamSearchDecoder | None = None,
    ) -> dict[str, Any]:
        if return_timestamps is True:
            return_timestamps = "word"
        if return_timestamps not in TIMESTAMP_KINDS:
            raise SoundformersError(
                f"return_timestamps must be False, 'word' or 'char' for a CTC model, got "
                f"{return_timestamps!r}"
            )
        if decoder is not None and not isinstance(decoder, BeamSearchDecoder):
            raise SoundformersError(
                f"decoder must be a soundformers.ctc.BeamSearchDecoder or None, got "
                f"{type(decoder).__name__}"
            )
        plan = None
        if chunk_length_s:
            if chunk_length_s < 0:
                raise SoundformersError(f"chunk_length_s must be positive, got {chunk_length_s}")
            if stride_length_s is None:
                stride_length_s = chunk_length_s / 6
            if isinstance(stride_length_s, (int, float)):
                stride_length_s = (stride_length_s, stride_length_s)
            align = self.model.samples_per_frame

            def samples(seconds: float) -> int:
                return int(round(seconds * self.sampling_rate / align) * align)

            plan = (
                samples(chunk_length_s),
                samples(stride_length_s[0]),
                samples(stride_length_s[1]),
            )
            plan_chunks(plan[0], *plan)  # validates the strides
        return {
            "return_timestamps": return_timestamps,
            "plan": plan,
            "decoder": decoder if decoder is not None else self.decoder,
        }

    def _forward(self, waves: list[Waveform], **params: Any) -> list[dict[str, Any]]:
        plan = params["plan"]
        pieces: list[tuple[int, Chunk]] = []
        for i, wave in enumerate(waves):
            n = wave.samples.shape[-1]
            chunks = plan_chunks(n, *plan) if plan else [Chunk(0, n, 0, 0)]
            pieces += [(i, c) for c in chunks]
        logits = self.model.logits([waves[i].samples[c.start : c.end] for i, c in pieces])
        per_wave: list[list[torch.Tensor]] = [[] for _ in waves]
        for (i, chunk), x in zip(pieces, logits):
            per_wave[i].append(keep_frames(x, chunk, self.model.samples_per_frame) if plan else x)
        vocab = len(self.token_text)
        return [
            self._postprocess(torch.cat(parts) if parts else torch.zeros(0, vocab), **params)
            for parts in per_wave
        ]

    def _postprocess(self, logits: torch.Tensor, *, return_timestamps: str | bool,
                     plan: Any, decoder: BeamSearchDecoder | None) -> dict[str, Any]:  # fmt: skip
        tokenizer = self.model.tokenizer
        if len(logits) == 0:
            path = CTCPath((), (), ())
        elif decoder is None:
            path = greedy_decode(logits, blank=tokenizer.blank_id)[0]
        else:
            tokens = decoder.decode(logits)[0].tokens
            path = CTCPath(tokens, (), ())
            if return_timestamps and tokens:
                path = forced_align(logits.log_softmax(-1)[None], [list(tokens)],
                                    blank=tokenizer.blank_id)[0]  # fmt: skip
        out: dict[str, Any] = {"text": tokenizer.decode(path.tokens)}
        if return_timestamps:
            seconds = self.model.samples_per_frame / self.sampling_rate

            def span(start: int, end: int) -> tuple[float, float]:
                return (round(start * seconds, 3), round(end * seconds, 3))

            if return_timestamps == "word":
                out["chunks"] = [
                    {"text": w.word, "timestamp": span(w.start, w.end)}
                    for w in word_spans(path, self.token_text)
                ]
            else:
                out["chunks"] = [
                    {"text": self.token_text[t], "timestamp": span(s, e)}
                    for t, s, e in zip(path.tokens, path.starts, path.ends)
                ]
        return out
