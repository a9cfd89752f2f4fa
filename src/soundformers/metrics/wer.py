"""Word error rate over a corpus: summed word edit distances over summed reference words."""

from __future__ import annotations

from collections.abc import Iterable

from . import _levenshtein, _tokens
from .edit import Normalizer, _prepare


def wer(
    reference: str | Iterable[str],
    hypothesis: str | Iterable[str],
    normalizer: Normalizer = None,
) -> float:
    """Corpus word error rate: (substitutions + deletions + insertions) / reference words.

    Equal to `jiwer.wer` on the same texts (words split as jiwer's default transform does; see
    `process_words`). Computes edit distances only, without alignments: use `process_words` for
    the counts and the alignment.

    Args:
        reference: one reference sentence, or a list of n_pairs of them.
        hypothesis: one hypothesis sentence, or a list of n_pairs of them (same count).
        normalizer: text normalizer applied to both sides first: None, "basic",
            "whisper_english", or a callable `str -> str`.

    Returns:
        The WER (0.0 is perfect; it can exceed 1.0). When every reference is empty, the number of
        hypothesis words (jiwer's convention).

    Raises:
        MetricInputError: the inputs are not strings / lists of strings, their counts differ,
            or the normalizer is unknown.

    Example:
        >>> wer(["the cat sat", "hello"], ["the cat sat down", "yellow"])
        0.5
    """
    references, hypotheses, _ = _prepare(reference, hypothesis, normalizer)
    if _levenshtein.few_pairs(len(references)):
        return _rate_pairwise(*_tokens.word_id_lists(references, hypotheses))
    return _rate(_tokens.encode_words(references, hypotheses))


def _rate(encoded: _tokens.Encoded) -> float:
    """Summed distances over summed reference tokens; the hypothesis length if no reference."""
    n_ref = int(encoded.ref_offsets[-1])
    if n_ref == 0:
        return float(encoded.hyp_offsets[-1])  # every hypothesis token is an insertion
    return float(_levenshtein.distances(*encoded).sum()) / float(n_ref)


def _rate_pairwise(references: list, hypotheses: list) -> float:
    """`_rate`, pair by pair, for Python sequences (token id lists, or str for characters)."""
    n_ref = sum(map(len, references))
    if n_ref == 0:
        return float(sum(map(len, hypotheses)))
    return float(sum(_levenshtein.distances_pairwise(references, hypotheses))) / float(n_ref)
