"""Character error rate over a corpus: summed character edit distances over summed reference
characters."""

from __future__ import annotations

from collections.abc import Iterable

from . import _levenshtein, _tokens
from .edit import Normalizer, _prepare
from .wer import _rate, _rate_pairwise


def cer(
    reference: str | Iterable[str],
    hypothesis: str | Iterable[str],
    normalizer: Normalizer = None,
) -> float:
    """Corpus character error rate: (substitutions + deletions + insertions) / reference characters.

    Equal to `jiwer.cer` on the same texts: each sentence is stripped, then every character
    (spaces included) is a token. Computes edit distances only: use `process_chars` for the
    counts and the alignment.

    Args:
        reference: one reference sentence, or a list of n_pairs of them.
        hypothesis: one hypothesis sentence, or a list of n_pairs of them (same count).
        normalizer: text normalizer applied to both sides first: None, "basic",
            "whisper_english", or a callable `str -> str`.

    Returns:
        The CER (0.0 is perfect; it can exceed 1.0). When every reference is empty, the number of
        hypothesis characters (jiwer's convention).

    Raises:
        MetricInputError: the inputs are not strings / lists of strings, their counts differ,
            or the normalizer is unknown.

    Example:
        >>> cer("kitten", "sitting")
        0.5
    """
    references, hypotheses, _ = _prepare(reference, hypothesis, normalizer)
    references = _tokens.strip_sentences(references)
    hypotheses = _tokens.strip_sentences(hypotheses)
    if _levenshtein.rapidfuzz_available() or _levenshtein.few_pairs(len(references)):
        return _rate_pairwise(references, hypotheses)  # rapidfuzz: fastest on str
    return _rate(_tokens.encode_chars(references, hypotheses))
