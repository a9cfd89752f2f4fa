"""Edit counts and alignments between reference and hypothesis texts, words or characters.

`process_words` and `process_chars` return an `EditCounts`: corpus totals of hits, substitutions,
deletions and insertions, the per-pair counts, and (on demand) the alignment of every pair. The
numbers equal jiwer's (`jiwer.process_words` / `jiwer.process_characters` with their default
transforms), including how errors split into substitutions, deletions and insertions when several
alignments are optimal.

A text normalizer is an explicit argument, applied to every reference and hypothesis before
tokenization: None (the default: compare the texts as given), "basic", "whisper_english", a
normalizer object, or any callable `str -> str`. Its name is recorded in the result.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property, partial
from itertools import groupby
from typing import TYPE_CHECKING, NamedTuple, Union

import numpy as np

from ..errors import MetricInputError
from . import _levenshtein, _tokens

if TYPE_CHECKING:
    from ..text.normalizers import BasicTextNormalizer, EnglishTextNormalizer

Normalizer = Union[None, str, "BasicTextNormalizer", "EnglishTextNormalizer", Callable[[str], str]]
"""What `normalizer=` accepts: None, "basic", "whisper_english", or a callable `str -> str`."""

NORMALIZERS = ("basic", "whisper_english")
"""Names accepted as `normalizer=`."""

_OP_NAMES = ("equal", "substitute", "delete", "insert")


class AlignmentChunk(NamedTuple):
    """A run of one kind of edit step in the alignment of one pair, as jiwer's `AlignmentChunk`.

    Attributes:
        type: "equal", "substitute", "delete" (a reference token missing from the hypothesis)
            or "insert" (a hypothesis token absent from the reference).
        ref_start: first reference token index of the run.
        ref_end: one past the last reference token index (== ref_start for "insert").
        hyp_start: first hypothesis token index of the run.
        hyp_end: one past the last hypothesis token index (== hyp_start for "delete").
    """

    type: str
    ref_start: int
    ref_end: int
    hyp_start: int
    hyp_end: int


@dataclass(frozen=True)
class EditCounts:
    """Corpus-level edit counts between references and hypotheses, with per-pair detail.

    Rates are corpus rates: summed errors over summed reference tokens (not a mean of per-pair
    rates), as jiwer computes them.

    Attributes:
        hits: tokens equal in reference and hypothesis.
        substitutions: reference tokens replaced by a different hypothesis token.
        deletions: reference tokens missing from the hypothesis.
        insertions: hypothesis tokens with no reference token.
        unit: "word" or "char": what a token is.
        normalizer: name of the text normalizer applied before counting, or None.
        pair_counts: (n_pairs, 4) int64 array: hits, substitutions, deletions, insertions of
            each (reference, hypothesis) pair, in input order.
    """

    hits: int
    substitutions: int
    deletions: int
    insertions: int
    unit: str
    normalizer: str | None
    pair_counts: np.ndarray = field(repr=False, compare=False)
    _path: _levenshtein.Alignment = field(repr=False, compare=False)
    _texts: tuple[list[str], list[str]] = field(repr=False, compare=False)

    @property
    def reference_length(self) -> int:
        """Number of reference tokens: hits + substitutions + deletions."""
        return self.hits + self.substitutions + self.deletions

    @property
    def hypothesis_length(self) -> int:
        """Number of hypothesis tokens: hits + substitutions + insertions."""
        return self.hits + self.substitutions + self.insertions

    @property
    def errors(self) -> int:
        """substitutions + deletions + insertions (the summed edit distances)."""
        return self.substitutions + self.deletions + self.insertions

    @property
    def error_rate(self) -> float:
        """errors / reference_length: the WER for words, the CER for characters.

        When every reference is empty this is the number of insertions (jiwer's convention):
        0.0 if the hypotheses are empty too.
        """
        if self.reference_length == 0:
            return float(self.insertions)
        return float(self.errors) / float(self.reference_length)

    @property
    def wer(self) -> float:
        """Same as `error_rate` (a word error rate when `unit == "word"`)."""
        return self.error_rate

    @property
    def cer(self) -> float:
        """Same as `error_rate` (a character error rate when `unit == "char"`)."""
        return self.error_rate

    @property
    def mer(self) -> float:
        """Match error rate: errors / (hits + errors); 0 or 1 when all references are empty."""
        if self.reference_length == 0:
            return 0.0 if self.hypothesis_length == 0 else 1.0
        return float(self.errors) / float(self.hits + self.errors)

    @property
    def wip(self) -> float:
        """Word information preserved: (hits / reference_length) * (hits / hypothesis_length)."""
        if self.reference_length == 0:
            return 1.0 if self.hypothesis_length == 0 else 0.0
        if self.hypothesis_length == 0:
            return 0.0
        hits = float(self.hits)
        return (hits / self.reference_length) * (hits / self.hypothesis_length)

    @property
    def wil(self) -> float:
        """Word information lost: 1 - wip."""
        return 1.0 - self.wip

    @cached_property
    def alignments(self) -> list[list[AlignmentChunk]]:
        """For every pair, its alignment as runs of equal/substitute/delete/insert steps.

        Indices count tokens (words or characters) of the normalized, tokenized texts. Built on
        first access, then cached.
        """
        return _chunks_of(self._path)

    @cached_property
    def references(self) -> list[list[str]]:
        """The reference tokens of every pair, after normalization (built on first access)."""
        return _tokenize(self._texts[0], self.unit)

    @cached_property
    def hypotheses(self) -> list[list[str]]:
        """The hypothesis tokens of every pair, after normalization (built on first access)."""
        return _tokenize(self._texts[1], self.unit)


def process_words(
    reference: str | Iterable[str],
    hypothesis: str | Iterable[str],
    normalizer: Normalizer = None,
) -> EditCounts:
    """Word-level edit counts and alignments of hypotheses against references.

    Words are split as jiwer's default transform does: runs of two or more whitespace
    characters count as one space, each sentence is stripped, then split on " ".

    Args:
        reference: one reference sentence, or a list of n_pairs of them.
        hypothesis: one hypothesis sentence, or a list of n_pairs of them (same count).
        normalizer: text normalizer applied to both sides first: None, "basic",
            "whisper_english", or a callable `str -> str`.

    Returns:
        The `EditCounts` over all pairs (`unit == "word"`).

    Raises:
        MetricInputError: the inputs are not strings / lists of strings, their counts differ,
            or the normalizer is unknown.
    """
    references, hypotheses, name = _prepare(reference, hypothesis, normalizer)
    if _levenshtein.few_pairs(len(references)):
        path = _levenshtein.align_pairwise(*_tokens.word_id_lists(references, hypotheses))
    else:
        path = _levenshtein.align(*_tokens.encode_words(references, hypotheses))
    return _result(path, "word", name, (references, hypotheses))


def process_chars(
    reference: str | Iterable[str],
    hypothesis: str | Iterable[str],
    normalizer: Normalizer = None,
) -> EditCounts:
    """Character-level edit counts and alignments of hypotheses against references.

    As jiwer's default character transform: each sentence is stripped, then every character
    (code point), spaces included, is a token.

    Args:
        reference: one reference sentence, or a list of n_pairs of them.
        hypothesis: one hypothesis sentence, or a list of n_pairs of them (same count).
        normalizer: text normalizer applied to both sides first: None, "basic",
            "whisper_english", or a callable `str -> str`.

    Returns:
        The `EditCounts` over all pairs (`unit == "char"`).

    Raises:
        MetricInputError: as for `process_words`.
    """
    references, hypotheses, name = _prepare(reference, hypothesis, normalizer)
    references = _tokens.strip_sentences(references)
    hypotheses = _tokens.strip_sentences(hypotheses)
    if _levenshtein.rapidfuzz_available() or _levenshtein.few_pairs(len(references)):
        path = _levenshtein.align_pairwise(references, hypotheses)  # rapidfuzz: fastest on str
    else:
        path = _levenshtein.align(*_tokens.encode_chars(references, hypotheses))
    return _result(path, "char", name, (references, hypotheses))


def _result(
    path: _levenshtein.Alignment, unit: str, name: str | None, texts: tuple[list[str], list[str]]
) -> EditCounts:
    totals = path.counts.sum(axis=0).tolist()
    pair_counts = path.counts
    pair_counts.flags.writeable = False
    return EditCounts(*totals, unit, name, pair_counts, path, texts)


# ---------------------------------------------------------------------------------------------
# inputs


def _prepare(
    reference, hypothesis, normalizer: Normalizer
) -> tuple[list[str], list[str], str | None]:
    """Validate both sides, apply the normalizer; returns (references, hypotheses, normalizer name)."""
    references = _as_sentences(reference, "reference")
    hypotheses = _as_sentences(hypothesis, "hypothesis")
    if len(references) != len(hypotheses):
        raise MetricInputError(
            f"got {len(references)} reference sentence(s) but {len(hypotheses)} hypothesis "
            "sentence(s): pass one hypothesis per reference, as two lists of equal length"
        )
    function, name = resolve_normalizer(normalizer)
    if function is not None:
        references = _normalized(function, references, name, "reference")
        hypotheses = _normalized(function, hypotheses, name, "hypothesis")
    return references, hypotheses, name


def _as_sentences(value, argument: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, bytes) or not isinstance(value, Iterable):
        raise MetricInputError(
            f"{argument} must be a str or a list of str, got {type(value).__name__}: "
            "decode bytes first, and wrap other values in a list of strings"
        )
    sentences = list(value)
    if not set(map(type, sentences)) <= {str}:
        for index, sentence in enumerate(sentences):
            if not isinstance(sentence, str):
                raise MetricInputError(
                    f"{argument}[{index}] is of type {type(sentence).__name__} ({sentence!r:.60}), "
                    f"expected str: pass {argument} as a list of strings"
                )
    return sentences


def resolve_normalizer(normalizer: Normalizer) -> tuple[Callable[[str], str] | None, str | None]:
    """The normalizing function and its name for a `normalizer=` argument.

    Args:
        normalizer: None, "basic", "whisper_english", a normalizer object or a callable.

    Returns:
        (function, name): (None, None) for None; otherwise the callable and the name recorded in
        results: the registered name, the object's `name` attribute, or its qualified name.

    Raises:
        MetricInputError: an unknown name or a non-callable object.
    """
    if normalizer is None:
        return None, None
    if isinstance(normalizer, str):
        from ..text.normalizers import BasicTextNormalizer, EnglishTextNormalizer

        if normalizer == "basic":
            return BasicTextNormalizer(), "basic"
        if normalizer == "whisper_english":
            return EnglishTextNormalizer(), "whisper_english"
        raise MetricInputError(
            f"unknown normalizer {normalizer!r}: expected None, one of {', '.join(NORMALIZERS)}, "
            "or a callable str -> str"
        )
    if not callable(normalizer):
        raise MetricInputError(
            f"normalizer must be None, a name ({', '.join(NORMALIZERS)}) or a callable str -> str, "
            f"got {type(normalizer).__name__}"
        )
    name = getattr(normalizer, "name", None)
    if not isinstance(name, str):
        name = getattr(normalizer, "__qualname__", None) or type(normalizer).__qualname__
    return normalizer, name


def _normalized(function: Callable[[str], str], sentences: list[str], name, argument) -> list[str]:
    result = list(map(function, sentences))
    if not set(map(type, result)) <= {str}:
        index = next(i for i, s in enumerate(result) if not isinstance(s, str))
        raise MetricInputError(
            f"normalizer {name!r} returned a {type(result[index]).__name__} for {argument}[{index}] "
            f"({sentences[index]!r:.60}); a normalizer must return a str"
        )
    return result


# ---------------------------------------------------------------------------------------------
# outputs


def _tokenize(sentences: list[str], unit: str) -> list[list[str]]:
    if unit == "word":
        return [_tokens.split_words(s) for s in sentences]
    return [list(s) for s in sentences]


_FEW_STEPS = 2048  # below this many path steps, plain Python beats numpy's fixed costs


def _chunks_of_few(ops: list[int], offsets: list[int]) -> list[list[AlignmentChunk]]:
    result = []
    for start, stop in zip(offsets, offsets[1:]):
        chunks, i, j = [], 0, 0
        for code, run in groupby(ops[start:stop]):
            n = sum(1 for _ in run)
            di = 0 if code == _levenshtein.INSERT else n
            dj = 0 if code == _levenshtein.DELETE else n
            chunks.append(AlignmentChunk(_OP_NAMES[code], i, i + di, j, j + dj))
            i, j = i + di, j + dj
        result.append(chunks)
    return result


def _chunks_of(path: _levenshtein.Alignment) -> list[list[AlignmentChunk]]:
    """Run-length encode every pair's path into `AlignmentChunk`s (vectorized, then one object per
    chunk)."""
    ops, offsets = path.ops, path.offsets
    n_pairs = offsets.size - 1
    if ops.size <= _FEW_STEPS:
        return _chunks_of_few(ops.tolist(), offsets.tolist())
    new_run = np.ones(ops.size, dtype=bool)
    new_run[1:] = ops[1:] != ops[:-1]
    new_run[offsets[:-1][offsets[:-1] < ops.size]] = True  # a run never spans two pairs
    starts = np.flatnonzero(new_run)
    lengths = np.diff(np.append(starts, ops.size))
    kinds = ops[starts]
    ref_len = np.where(kinds != _levenshtein.INSERT, lengths, 0)
    hyp_len = np.where(kinds != _levenshtein.DELETE, lengths, 0)
    first_chunk = np.searchsorted(starts, offsets)  # (n_pairs + 1,) chunk offsets per pair
    pair_of_chunk = np.repeat(np.arange(n_pairs), np.diff(first_chunk))
    ref_end = np.cumsum(ref_len)
    hyp_end = np.cumsum(hyp_len)
    ref_base = np.concatenate([[0], ref_end])[first_chunk[:-1]][pair_of_chunk]
    hyp_base = np.concatenate([[0], hyp_end])[first_chunk[:-1]][pair_of_chunk]
    ref_end -= ref_base
    hyp_end -= hyp_base
    fields = zip(
        [_OP_NAMES[k] for k in kinds.tolist()],
        (ref_end - ref_len).tolist(),
        ref_end.tolist(),
        (hyp_end - hyp_len).tolist(),
        hyp_end.tolist(),
    )
    # tuple.__new__ builds the NamedTuples in C (AlignmentChunk(...) runs Python code per chunk)
    chunks = list(map(partial(tuple.__new__, AlignmentChunk), fields))
    bounds = first_chunk.tolist()
    return [chunks[bounds[k] : bounds[k + 1]] for k in range(n_pairs)]
