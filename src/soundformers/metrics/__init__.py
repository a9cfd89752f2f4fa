"""Speech recognition metrics: word and character error rates, with counts and alignments.

    >>> from soundformers import metrics
    >>> metrics.wer(["the cat sat"], ["the cat sat down"])
    0.3333333333333333
    >>> counts = metrics.process_words("the cat sat", "a cat sat down")
    >>> counts.substitutions, counts.insertions, counts.alignments[0][0]
    (1, 1, AlignmentChunk(type='substitute', ref_start=0, ref_end=1, hyp_start=0, hyp_end=1))

Results equal jiwer's (same tokenization, same alignment tie-breaking); corpus rates are summed
errors over summed reference tokens. A text normalizer is opt-in: `normalizer="whisper_english"`
(OpenAI Whisper's English normalizer), `"basic"`, or any callable `str -> str`.

Needs numpy only (not torch): corpora go through a batched, bit-parallel Levenshtein kernel in
numpy, a few pairs or very long texts through bit vectors held in Python ints. If rapidfuzz
(jiwer's engine) is installed, it takes over where it is faster: a few pairs, characters, very
long texts. Results are identical either way.
"""

from __future__ import annotations

from .cer import cer
from .edit import (
    NORMALIZERS,
    AlignmentChunk,
    EditCounts,
    MetricInputError,
    Normalizer,
    process_chars,
    process_words,
    resolve_normalizer,
)
from .wer import wer

__all__ = [
    "NORMALIZERS",
    "AlignmentChunk",
    "EditCounts",
    "MetricInputError",
    "Normalizer",
    "cer",
    "process_chars",
    "process_words",
    "resolve_normalizer",
    "wer",
]
