"""Tokenization to integer ids: jiwer's word and character transforms, and the id assignment."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from soundformers.metrics import _tokens

jiwer = pytest.importorskip("jiwer")

# words of 1..40 bytes sharing 8- and 16-byte prefixes, ASCII and not
WORDS = [
    "a", "ab", "abcdefg", "abcdefgh", "abcdefghi", "abcdefghabcdefgh", "abcdefghabcdefghi",
    "abcdefghabcdefghabcdefghabcdefghabcdefgh", "é", "ée", "ééééé", "éééééé", "中文", "中文中文中文",
    "😀", "😀😀😀", "x\x7f", "naïve", "naive",
]  # fmt: skip


def check_words(refs: list[str], hyps: list[str]) -> None:
    encoded = _tokens.encode_words(refs, hyps)
    ref_words = jiwer.transformations.wer_default(refs) if refs else []
    hyp_words = jiwer.transformations.wer_default(hyps) if hyps else []
    assert np.diff(encoded.ref_offsets).tolist() == [len(s) for s in ref_words]
    assert np.diff(encoded.hyp_offsets).tolist() == [len(s) for s in hyp_words]
    tokens = [w for s in ref_words for w in s] + [w for s in hyp_words for w in s]
    ids = encoded.ref_ids.tolist() + encoded.hyp_ids.tolist()
    id_of: dict[str, int] = {}
    for token, token_id in zip(tokens, ids):
        assert id_of.setdefault(token, token_id) == token_id  # one id per word
    assert len(set(id_of.values())) == len(id_of)  # one word per id
    assert all(0 <= i < encoded.n_symbols for i in ids)
    assert [_tokens.split_words(s) for s in refs] == ref_words


@st.composite
def corpus(draw, separators):
    def sentence():
        words = draw(st.lists(st.sampled_from(WORDS), max_size=10))
        seps = draw(
            st.lists(st.sampled_from(separators), min_size=len(words) + 1, max_size=len(words) + 1)
        )
        return seps[0] + "".join(w + s for w, s in zip(words, seps[1:]))

    n = draw(st.integers(1, 6))
    return [sentence() for _ in range(n)], [sentence() for _ in range(n)]


@settings(max_examples=200, deadline=None)
@given(corpus([" ", "", " ", "   "]))
def test_word_ids_fast_path(texts):
    check_words(*texts)


@settings(max_examples=150, deadline=None)
@given(corpus([" ", "\t", "\n", " \t ", "\xa0", "\u2028", "\x1f", "\x00"]))
def test_word_ids_general_path(texts):
    check_words(*texts)


def test_word_ids_edge_cases():
    check_words([""], [""])
    check_words(["   "], ["a"])
    check_words(["a  b", " c "], ["", "a"])
    encoded = _tokens.encode_words([], [])
    assert encoded.ref_offsets.tolist() == [0] and encoded.ref_ids.size == 0


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(max_size=20), min_size=1, max_size=5))
def test_char_ids(sentences):
    stripped = _tokens.strip_sentences(sentences)
    assert [list(s) for s in stripped] == jiwer.transformations.cer_default(sentences)
    encoded = _tokens.encode_chars(stripped, stripped[::-1])
    chars = [c for s in stripped for c in s] + [c for s in stripped[::-1] for c in s]
    ids = encoded.ref_ids.tolist() + encoded.hyp_ids.tolist()
    assert len(chars) == len(ids)
    assert len({(c, i) for c, i in zip(chars, ids)}) == len(set(chars)) == len(set(ids))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, 2**64 - 1), min_size=1, max_size=300), st.integers(1, 40))
def test_dense_ids_are_ranks(values, repeat):
    # many keys hashing to nearby slots: multiples of a power of two, and repeats
    keys = np.array(values * repeat + [v << 20 & (2**64 - 1) or 1 for v in values], dtype=np.uint64)
    ranks, n = _tokens._dense_ids(keys)
    distinct = np.unique(keys)
    assert n == distinct.size
    assert (distinct[ranks] == keys).all()
