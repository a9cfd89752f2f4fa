"""The automatic-speech-recognition pipeline (Whisper).

>>> asr = soundformers.pipeline("automatic-speech-recognition")      # bundled whisper-tiny.en
>>> asr("talk.mp3", return_timestamps=True)
{'text': ' ...', 'chunks': [{'text': ' ...', 'timestamp': (0.0, 4.1)}, ...], 'language': 'en'}
>>> asr("talk.mp3", return_timestamps="word")["chunks"][:2]
[{'text': ' Hello,', 'timestamp': (0.0, 0.52)}, {'text': ' and', 'timestamp': (0.52, 0.7)}]
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any, Literal

from ..audio.io import Waveform
from ..errors import SoundformersError
from .base import Pipeline

LONG_FORM_MODES = ("sequential", "batched")


def _decoding_fields() -> set[str]:
    from ..models.whisper import DecodingOptions

    return {f.name for f in fields(DecodingOptions)}


def _fallback_fields() -> set[str]:
    from ..models.whisper import FallbackOptions

    return {f.name for f in fields(FallbackOptions)}


# transformers' generate_kwargs names -> ours
_ALIASES = {
    "num_beams": "beam_size",
    "condition_on_prev_tokens": "condition_on_previous_text",
    "prompt": "initial_prompt",
    "max_new_tokens": "sample_len",
}


class AutomaticSpeechRecognitionPipeline(Pipeline):
    """Speech to text with a Whisper model.

    Args:
        model: a `WhisperForConditionalGeneration` (see `soundformers.models.whisper`).
        batch_size: inputs decoded together (default 1).
        num_workers: audio decoding threads.

    Call it with one input, a list, or an iterable (see `Pipeline.__call__`), and:

    - return_timestamps: False (text only), True (segment timestamps in "chunks"), "word"
      (one chunk per word, timed by DTW over the alignment heads' cross-attention).
    - chunk_length_s: longest piece in "batched" long-form mode (at most 30).
    - long_form: how audio longer than 30 s is read: "sequential" (default; window after
      window, each conditioned on the previous text, as openai-whisper) or "batched" (cut at
      silences, all pieces decoded in parallel).
    - generate_kwargs: decoding options: language, task ("transcribe"/"translate"),
      temperature (a float, or a tuple to fall back through), initial_prompt, prefix,
      suppress_tokens, suppress_blank, compression_ratio_threshold, logprob_threshold,
      no_speech_threshold, condition_on_previous_text, and the rest of
      `DecodingOptions`/`FallbackOptions`.

    Returns per input ``{"text": str, "language": str | None}`` plus ``"chunks": [{"text",
    "timestamp": (start_s, end_s)}]`` when `return_timestamps` is true (per segment) or
    "word" (per word, its text with its leading space).
    """

    task = "automatic-speech-recognition"

    def __init__(self, model: Any, *, batch_size: int = 1, num_workers: int | None = None):
        super().__init__(model.sampling_rate, batch_size=batch_size, num_workers=num_workers)
        self.model = model

    def _check_params(
        self,
        return_timestamps: bool | Literal["word"] = False,
        chunk_length_s: float = 30.0,
        long_form: Literal["sequential", "batched"] = "sequential",
        generate_kwargs: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        if not (
            return_timestamps is True or return_timestamps is False or return_timestamps == "word"
        ):
            raise SoundformersError(
                f"return_timestamps must be False, True (segments) or 'word', got "
                f"{return_timestamps!r}"
            )
        if long_form not in LONG_FORM_MODES:
            raise SoundformersError(
                f"long_form must be one of {LONG_FORM_MODES}, got {long_form!r}"
            )
        if not 0 < float(chunk_length_s) <= 30:
            raise SoundformersError(
                f"chunk_length_s must be in (0, 30] seconds (Whisper's window), got {chunk_length_s}"
            )
        decoding, fallback, extra = self._split_generate_kwargs(dict(generate_kwargs or {}))
        return {
            "return_timestamps": return_timestamps,
            "chunk_length_s": float(chunk_length_s),
            "long_form": long_form,
            "decoding": decoding,
            "fallback": fallback,
            **extra,
        }

    def _split_generate_kwargs(self, kwargs: dict[str, Any]) -> tuple[Any, Any, dict[str, Any]]:
        from ..models.whisper import DecodingOptions, FallbackOptions

        if kwargs.get("num_beams") == 1:  # transformers' greedy search, not a 1-beam search
            del kwargs["num_beams"]
        kwargs = {_ALIASES.get(k, k): v for k, v in kwargs.items()}
        extra = {
            "condition_on_previous_text": bool(kwargs.pop("condition_on_previous_text", True)),
            "initial_prompt": kwargs.pop("initial_prompt", None),
        }
        temperature = kwargs.pop("temperature", None)
        decoding_keys, fallback_keys = _decoding_fields(), _fallback_fields()
        unknown = set(kwargs) - decoding_keys - fallback_keys
        if unknown:
            known = sorted(decoding_keys | fallback_keys | {"temperature", *extra})
            raise SoundformersError(
                f"unknown generate_kwargs {sorted(unknown)}; known: {', '.join(known)}"
            )
        fallback_args = {k: kwargs.pop(k) for k in list(kwargs) if k in fallback_keys}
        if isinstance(temperature, (tuple, list)):
            fallback_args["temperatures"] = tuple(float(t) for t in temperature)
        elif temperature is not None:
            fallback_args["temperatures"] = (float(temperature),)
        return DecodingOptions(**kwargs), FallbackOptions(**fallback_args), extra

    def _forward(self, waves: list[Waveform], **params: Any) -> list[dict[str, Any]]:
        from ..models.whisper.transcribe import transcribe_batched, transcribe_sequential

        audios = [w.samples for w in waves]
        # without timestamps asked, audio of one window is decoded as text only (both modes):
        # the audio is padded to 30 s and decoded after <|notimestamps|>, as transformers' does
        decoding = replace(params["decoding"], without_timestamps=not params["return_timestamps"])
        if params["long_form"] == "batched":
            results = transcribe_batched(
                self.model, audios, decoding, params["fallback"],
                chunk_length_s=params["chunk_length_s"], batch_size=max(len(audios), 8),
                word_timestamps=params["return_timestamps"] == "word",
            )  # fmt: skip
        else:
            results = transcribe_sequential(
                self.model, audios, decoding, params["fallback"],
                condition_on_previous_text=params["condition_on_previous_text"],
                initial_prompt=params["initial_prompt"],
                word_timestamps=params["return_timestamps"] == "word",
            )  # fmt: skip
        outputs = []
        for result in results:
            out: dict[str, Any] = {"text": result.text}
            if params["return_timestamps"] == "word":
                out["chunks"] = [
                    {"text": w.word, "timestamp": (round(w.start, 2), round(w.end, 2))}
                    for s in result.segments
                    for w in s.words
                ]
            elif params["return_timestamps"]:
                out["chunks"] = [
                    {"text": s.text, "timestamp": (round(s.start, 2), round(s.end, 2))}
                    for s in result.segments
                ]
            out["language"] = result.language
            outputs.append(out)
        return outputs
