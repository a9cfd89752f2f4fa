"""The metrics API: hand-checked cases, input forms, normalizer names, errors."""

from __future__ import annotations

import dataclasses
import random
import subprocess
import sys

import numpy as np
import pytest

from soundformers import SoundformersError, metrics
from soundformers.metrics import AlignmentChunk, EditCounts, MetricInputError, _levenshtein
from soundformers.text import BasicTextNormalizer, EnglishTextNormalizer


@pytest.mark.parametrize(
    "reference,hypothesis,counts,chunks",
    [
        # (hits, substitutions, deletions, insertions), alignment as jiwer 4 gives them
        (
            "a b",
            "b a",
            (1, 0, 1, 1),
            [("insert", 0, 0, 0, 1), ("equal", 0, 1, 1, 2), ("delete", 1, 2, 2, 2)],
        ),
        ("a b c", "a c d", (1, 2, 0, 0), [("equal", 0, 1, 0, 1), ("substitute", 1, 3, 1, 3)]),
        ("a a a", "a", (1, 0, 2, 0), [("equal", 0, 1, 0, 1), ("delete", 1, 3, 1, 1)]),
        ("x y", "y x y", (2, 0, 0, 1), [("insert", 0, 0, 0, 1), ("equal", 0, 2, 1, 3)]),
        (
            "the cat sat on the mat",
            "the cat sat on mat",
            (5, 0, 1, 0),
            [("equal", 0, 4, 0, 4), ("delete", 4, 5, 4, 4), ("equal", 5, 6, 4, 5)],
        ),
        # jiwer splits on " " after collapsing runs of 2+ whitespace: a lone tab joins words
        (
            "a\tb c",
            "a b c",
            (1, 1, 0, 1),
            [("insert", 0, 0, 0, 1), ("substitute", 0, 1, 1, 2), ("equal", 1, 2, 2, 3)],
        ),
    ],
)
def test_hand_cases(reference, hypothesis, counts, chunks):
    result = metrics.process_words(reference, hypothesis)
    assert (result.hits, result.substitutions, result.deletions, result.insertions) == counts
    assert result.alignments == [[AlignmentChunk(*chunk) for chunk in chunks]]
    assert (
        result.wer == metrics.wer(reference, hypothesis) == result.errors / result.reference_length
    )


def test_corpus_rate_is_summed_errors_over_summed_reference_words():
    refs = ["the cat sat", "hello"]
    hyps = ["the cat sat down", "yellow"]
    result = metrics.process_words(refs, hyps)
    assert result.pair_counts.tolist() == [[3, 0, 0, 1], [0, 1, 0, 0]]
    assert result.reference_length == 4 and result.hypothesis_length == 5
    assert metrics.wer(refs, hyps) == 0.5  # (1 + 1) / 4, not the mean of 1/3 and 1/1
    assert result.mer == 2 / 5
    assert result.wip == pytest.approx((3 / 4) * (3 / 5))
    assert result.wil == pytest.approx(1 - result.wip)


def test_characters():
    assert metrics.cer("kitten", "sitting") == 0.5
    result = metrics.process_chars(["  ab c ", "x"], ["abd c", ""])
    assert result.unit == "char"
    assert result.references == [["a", "b", " ", "c"], ["x"]]  # stripped; inner spaces count
    assert (result.hits, result.substitutions, result.deletions, result.insertions) == (4, 0, 1, 1)
    assert result.cer == result.error_rate == 2 / 5


def test_input_forms_agree():
    refs, hyps = ["a b c", "d e"], ["a x c", "d"]
    expected = metrics.process_words(refs, hyps)
    assert metrics.process_words(tuple(refs), iter(hyps)) == expected
    assert metrics.process_words(np.array(refs), hyps) == expected
    assert metrics.process_words("a b c", "a x c") == metrics.process_words(["a b c"], ["a x c"])


def test_empty_inputs_follow_jiwer():
    assert metrics.wer("", "") == 0.0
    assert metrics.wer("", "a b") == 2.0  # jiwer's convention: the number of insertions
    assert metrics.wer(["a", ""], ["a", "b"]) == 1.0
    assert metrics.cer("  ", "xy") == 2.0
    empty = metrics.process_words([], [])
    assert (empty.wer, empty.mer, empty.wip, empty.alignments) == (0.0, 0.0, 1.0, [])


def test_result_is_frozen_and_cached():
    result = metrics.process_words(["a b"], ["a c"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.hits = 3
    with pytest.raises(ValueError):
        result.pair_counts[0, 0] = 7
    assert result.alignments is result.alignments
    assert isinstance(result, EditCounts) and "pair_counts" not in repr(result)


@pytest.mark.parametrize("engine", ["rapidfuzz", "numpy"])
def test_long_documents_match_jiwer(engine, monkeypatch):
    # long-form transcripts scored as single strings: large enough for rapidfuzz's Hirschberg
    # split. rapidfuzz aligns them when installed; "numpy" forces the fallback.
    jiwer = pytest.importorskip("jiwer")
    if engine == "numpy":
        monkeypatch.setattr(_levenshtein, "_rapidfuzz_levenshtein", lambda: None)
    rng = random.Random(0)
    words = [rng.choice(["a", "b", "the", "of", "and"]) for _ in range(2500)]
    hyp = [w if rng.random() > 0.1 else rng.choice("abx") for w in words if rng.random() > 0.05]
    ref_text, hyp_text = " ".join(words), " ".join(hyp)
    ours = metrics.process_words(ref_text, hyp_text)
    theirs = jiwer.process_words(ref_text, hyp_text)
    assert (ours.hits, ours.substitutions, ours.deletions, ours.insertions) == (
        theirs.hits,
        theirs.substitutions,
        theirs.deletions,
        theirs.insertions,
    )
    assert [tuple(c) for c in ours.alignments[0]] == [
        (c.type, c.ref_start_idx, c.ref_end_idx, c.hyp_start_idx, c.hyp_end_idx)
        for c in theirs.alignments[0]
    ]
    ref_text, hyp_text = ref_text[:3000], hyp_text[:3000]
    assert metrics.cer(ref_text, hyp_text) == pytest.approx(
        jiwer.cer(ref_text, hyp_text), abs=1e-12
    )
    ours, theirs = (
        metrics.process_chars(ref_text, hyp_text),
        jiwer.process_characters(ref_text, hyp_text),
    )
    assert (ours.hits, ours.substitutions, ours.deletions, ours.insertions) == (
        theirs.hits,
        theirs.substitutions,
        theirs.deletions,
        theirs.insertions,
    )


# --- normalizers -----------------------------------------------------------------------------


def shout(text: str) -> str:
    return text.upper()


class Named:
    name = "my-normalizer"

    def __call__(self, text: str) -> str:
        return text


@pytest.mark.parametrize(
    "normalizer,name",
    [
        (None, None),
        ("basic", "basic"),
        ("whisper_english", "whisper_english"),
        (BasicTextNormalizer(), "basic"),
        (BasicTextNormalizer(remove_diacritics=True), "basic(remove_diacritics=True)"),
        (EnglishTextNormalizer(), "whisper_english"),
        (shout, "shout"),
        (Named(), "my-normalizer"),
        (str.lower, "str.lower"),
    ],
)
def test_normalizer_is_named_in_the_result(normalizer, name):
    assert metrics.process_words("A b", "a B", normalizer=normalizer).normalizer == name
    assert metrics.process_chars("A b", "a B", normalizer=normalizer).normalizer == name


def test_normalizer_is_applied_to_both_sides():
    refs = ["Hello, World!", "I won't pay twenty five dollars."]
    hyps = ["hello world", "i will not pay $25"]
    assert metrics.wer(refs, hyps) > 0
    assert metrics.wer(refs, hyps, normalizer="basic") > 0  # basic keeps "won't" and numbers
    assert metrics.wer(refs, hyps, normalizer="whisper_english") == 0.0
    assert metrics.cer(refs, hyps, normalizer=EnglishTextNormalizer()) == 0.0
    assert metrics.wer(["ABC"], ["abc"], normalizer=str.lower) == 0.0


# --- errors ----------------------------------------------------------------------------------


def test_mismatched_counts():
    with pytest.raises(MetricInputError, match="2 reference sentence.*1 hypothesis") as info:
        metrics.wer(["a", "b"], ["a"])
    assert isinstance(info.value, ValueError) and isinstance(info.value, SoundformersError)


@pytest.mark.parametrize(
    "reference,match",
    [
        (None, "reference must be a str or a list of str, got NoneType"),
        (b"bytes", "got bytes: decode bytes first"),
        (["ok", 3], r"reference\[1\] is of type int \(3\), expected str"),
        ([["nested"]], r"reference\[0\] is of type list"),
    ],
)
def test_non_text_inputs(reference, match):
    with pytest.raises(MetricInputError, match=match):
        metrics.process_words(reference, ["x"])
    with pytest.raises(MetricInputError, match=match.replace("reference", "hypothesis")):
        metrics.cer(["x"], reference)


def test_bad_normalizers():
    with pytest.raises(MetricInputError, match="unknown normalizer 'english'.*whisper_english"):
        metrics.wer("a", "a", normalizer="english")
    with pytest.raises(MetricInputError, match="normalizer must be None, a name"):
        metrics.wer("a", "a", normalizer=42)
    with pytest.raises(MetricInputError, match="returned a NoneType for reference\\[0\\]"):
        metrics.wer("a", "a", normalizer=lambda text: None)


def test_importing_metrics_does_not_import_torch():
    code = "import sys, soundformers.metrics; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
