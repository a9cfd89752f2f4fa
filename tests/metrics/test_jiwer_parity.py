"""soundformers.metrics equals jiwer on generated texts: counts, rates, alignments and tokens.

Small vocabularies make ties between optimal alignments common, so the substitution/deletion/
insertion split is only right if the tie-breaking is jiwer's (rapidfuzz's). Every test runs on
each engine: the batched numpy kernel (forced; it serves large corpora), pair by pair with Python
ints (a few pairs without rapidfuzz), and as installed with rapidfuzz.
"""

from __future__ import annotations

import random
from contextlib import contextmanager
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from soundformers import metrics
from soundformers.metrics import _levenshtein, edit

jiwer = pytest.importorskip("jiwer")

ENGINES = ["batched", "python-ints", "rapidfuzz"]


@contextmanager
def engine(name: str):
    """Run the code under test on one engine."""
    if name == "rapidfuzz":
        if not _levenshtein.rapidfuzz_available():
            pytest.skip("rapidfuzz is not installed")
        yield
        return
    with mock.patch.object(_levenshtein, "_rapidfuzz_levenshtein", lambda: None):
        if name == "python-ints":
            yield
            return
        with (
            mock.patch.object(_levenshtein, "few_pairs", lambda n_pairs: False),
            mock.patch.object(_levenshtein, "_prefer_single", lambda *args, **kwargs: False),
            mock.patch.object(edit, "_FEW_STEPS", 0),  # numpy chunking of alignments too
        ):
            yield


VOCABULARY = ["a", "b", "the", "cat", "é", "中文", "cañón", "xxxxxxxx", "yyyyyyyyy", "z" * 20, "😀"]
SEPARATORS = [" ", " ", " ", "  ", "\t", " \t", "\n", "\n\n", "\xa0", "\u3000", "\r\n"]


@st.composite
def sentences(draw, separators=SEPARATORS):
    words = draw(st.lists(st.sampled_from(VOCABULARY), max_size=12))
    seps = draw(
        st.lists(st.sampled_from(separators), min_size=len(words) + 1, max_size=len(words) + 1)
    )
    text = seps[0] if draw(st.booleans()) else ""
    for word, sep in zip(words, seps[1:]):
        text += word + sep
    return text if draw(st.booleans()) else text.rstrip()


def corpus(sentence_strategy):
    return st.integers(1, 6).flatmap(
        lambda n: st.tuples(
            st.lists(sentence_strategy, min_size=n, max_size=n),
            st.lists(sentence_strategy, min_size=n, max_size=n),
        )
    )


plain_corpus = corpus(sentences(separators=[" ", " ", "  "]))  # the byte-level fast path
mixed_corpus = corpus(sentences())  # tabs, newlines, unicode spaces: the general path
any_text_corpus = corpus(st.text(max_size=30))


def jiwer_chunks(alignments):
    return [
        [(c.type, c.ref_start_idx, c.ref_end_idx, c.hyp_start_idx, c.hyp_end_idx) for c in pair]
        for pair in alignments
    ]


def assert_same_words(refs, hyps):
    ours = metrics.process_words(refs, hyps)
    theirs = jiwer.process_words(refs, hyps)
    assert (ours.hits, ours.substitutions, ours.deletions, ours.insertions) == (
        theirs.hits,
        theirs.substitutions,
        theirs.deletions,
        theirs.insertions,
    )
    for name in ("wer", "mer", "wil", "wip"):
        assert getattr(ours, name) == pytest.approx(getattr(theirs, name), abs=1e-12), name
    assert metrics.wer(refs, hyps) == pytest.approx(jiwer.wer(refs, hyps), abs=1e-12)
    if any(theirs.references):  # jiwer turns an empty corpus into one empty pair
        assert [[tuple(c) for c in pair] for pair in ours.alignments] == jiwer_chunks(
            theirs.alignments
        )
        assert ours.references == theirs.references
        assert ours.hypotheses == theirs.hypotheses
    assert ours.pair_counts.sum(axis=0).tolist() == [
        ours.hits,
        ours.substitutions,
        ours.deletions,
        ours.insertions,
    ]


def assert_same_chars(refs, hyps):
    ours = metrics.process_chars(refs, hyps)
    theirs = jiwer.process_characters(refs, hyps)
    assert (ours.hits, ours.substitutions, ours.deletions, ours.insertions) == (
        theirs.hits,
        theirs.substitutions,
        theirs.deletions,
        theirs.insertions,
    )
    assert ours.cer == pytest.approx(theirs.cer, abs=1e-12)
    assert metrics.cer(refs, hyps) == pytest.approx(jiwer.cer(refs, hyps), abs=1e-12)
    assert [[tuple(c) for c in pair] for pair in ours.alignments] == jiwer_chunks(theirs.alignments)


@pytest.mark.parametrize("path", ENGINES)
@settings(max_examples=100, deadline=None)
@given(plain_corpus)
def test_words_plain_spacing(path, texts):
    with engine(path):
        assert_same_words(*texts)


@pytest.mark.parametrize("path", ENGINES)
@settings(max_examples=80, deadline=None)
@given(mixed_corpus)
def test_words_mixed_whitespace(path, texts):
    with engine(path):
        assert_same_words(*texts)


@pytest.mark.parametrize("path", ENGINES)
@settings(max_examples=70, deadline=None)
@given(any_text_corpus)
def test_words_arbitrary_unicode(path, texts):
    with engine(path):
        assert_same_words(*texts)


@pytest.mark.parametrize("path", ENGINES)
@settings(max_examples=70, deadline=None)
@given(mixed_corpus)
def test_chars(path, texts):
    with engine(path):
        assert_same_chars(*texts)


@pytest.mark.parametrize("path", ENGINES)
@settings(max_examples=40, deadline=None)
@given(any_text_corpus)
def test_chars_arbitrary_unicode(path, texts):
    with engine(path):
        assert_same_chars(*texts)


@pytest.mark.parametrize("path", ENGINES)
@settings(max_examples=30, deadline=None)
@given(sentences(), sentences())
def test_single_strings(path, reference, hypothesis):
    with engine(path):
        assert_same_words(reference, hypothesis)
        assert_same_chars(reference, hypothesis)


@pytest.mark.parametrize("path", ENGINES)
@settings(max_examples=30, deadline=None)
@given(corpus(st.sampled_from(["", " ", "a", "a b", "b a a", "\t"])))
def test_empty_references_follow_jiwer(path, texts):
    refs, hyps = texts
    with engine(path):
        check_empty_references(refs, hyps)


def check_empty_references(refs, hyps):
    assert metrics.wer(refs, hyps) == jiwer.wer(refs, hyps)
    assert metrics.cer(refs, hyps) == jiwer.cer(refs, hyps)
    ours, theirs = metrics.process_words(refs, hyps), jiwer.process_words(refs, hyps)
    assert (ours.wer, ours.mer, ours.wip, ours.wil) == (
        theirs.wer,
        theirs.mer,
        theirs.wip,
        theirs.wil,
    )


@pytest.mark.parametrize("normalizer", ["basic", "whisper_english"])
def test_normalized_texts_match_jiwer_on_normalized_input(normalizer):
    refs = ["Hello, World! It's twenty-five past.", "The colour of £5", "(laughs) OK"]
    hyps = ["hello world its 25 past", "the color of five pounds", "okay"]
    function, _ = metrics.resolve_normalizer(normalizer)
    expected = jiwer.process_words([function(r) for r in refs], [function(h) for h in hyps])
    ours = metrics.process_words(refs, hyps, normalizer=normalizer)
    assert (ours.hits, ours.substitutions, ours.deletions, ours.insertions) == (
        expected.hits,
        expected.substitutions,
        expected.deletions,
        expected.insertions,
    )
    assert metrics.wer(refs, hyps, normalizer=normalizer) == pytest.approx(expected.wer, abs=1e-12)


@pytest.mark.parametrize("path", ENGINES)
def test_many_pairs(path):
    # more than FEW_PAIRS pairs: the batched numpy kernel for words, rapidfuzz's vectorized
    # pair-by-pair path for characters
    rng = random.Random(0)
    vocabulary = ["a", "b", "c", "the", "cat", "é", "xxxxxxxxxx"]
    refs, hyps = [], []
    for _ in range(300):
        words = [rng.choice(vocabulary) for _ in range(rng.randint(0, 40))]
        refs.append(" ".join(words))
        hyps.append(
            " ".join(w for w in words if rng.random() > 0.2) + rng.choice(["", " a", " b c"])
        )
    with engine(path):
        assert_same_words(refs, hyps)
        assert_same_chars(refs, hyps)
