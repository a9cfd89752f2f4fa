"""The numpy Levenshtein kernel against rapidfuzz (which jiwer uses), on integer sequences.

Covers every code path: short patterns (one 64-bit word, compared token by token), long patterns
(several words, symbol tables), pairs solved one at a time, and pairs large enough for rapidfuzz
to split them Hirschberg-style (its tie-breaking then differs from the plain backtrack). Pairs
solved one at a time go to rapidfuzz when it is installed: the `numpy_only` fixture hides it so
that the numpy fallback is what gets compared.
"""

from __future__ import annotations

import random
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from soundformers import metrics
from soundformers.metrics import _levenshtein
from soundformers.metrics._levenshtein import DELETE, EQUAL, INSERT, SUBSTITUTE

rapidfuzz = pytest.importorskip("rapidfuzz")
Levenshtein = rapidfuzz.distance.Levenshtein

_TAGS = {EQUAL: "equal", SUBSTITUTE: "replace", DELETE: "delete", INSERT: "insert"}


@pytest.fixture
def numpy_only(monkeypatch):
    monkeypatch.setattr(_levenshtein, "_rapidfuzz_levenshtein", lambda: None)


def ragged(sequences):
    offsets = np.zeros(len(sequences) + 1, dtype=np.int64)
    np.cumsum([len(s) for s in sequences], out=offsets[1:])
    ids = np.array([x for s in sequences for x in s], dtype=np.int64)
    return ids, offsets


def opcodes(path: np.ndarray) -> list[tuple]:
    """Run-length encode one path into rapidfuzz's opcode tuples."""
    result, i, j, k = [], 0, 0, 0
    codes = path.tolist()
    while k < len(codes):
        code, i0, j0 = codes[k], i, j
        while k < len(codes) and codes[k] == code:
            i += code != INSERT
            j += code != DELETE
            k += 1
        result.append((_TAGS[code], i0, i, j0, j))
    return result


def check_against_rapidfuzz(refs, hyps, n_symbols):
    ref_ids, ref_offsets = ragged(refs)
    hyp_ids, hyp_offsets = ragged(hyps)
    result = _levenshtein.align(ref_ids, ref_offsets, hyp_ids, hyp_offsets, n_symbols)
    dist = _levenshtein.distances(ref_ids, ref_offsets, hyp_ids, hyp_offsets, n_symbols)
    for k, (a, b) in enumerate(zip(refs, hyps)):
        path = result.ops[result.offsets[k] : result.offsets[k + 1]]
        expected = [tuple(op) for op in Levenshtein.opcodes(a, b)]
        assert opcodes(path) == expected, (k, a, b)
        assert dist[k] == Levenshtein.distance(a, b)
        assert result.counts[k].tolist() == [int(np.sum(path == c)) for c in range(4)]


def edited(rng: random.Random, a: list[int], alphabet: int, rate: float) -> list[int]:
    out = []
    for x in a:
        u = rng.random()
        if u < rate / 3:
            continue
        if u < 2 * rate / 3:
            out.append(rng.randrange(alphabet))
        elif u < rate:
            out += [x, rng.randrange(alphabet)]
        else:
            out.append(x)
    return out


sequences = st.lists(st.integers(0, 3), max_size=40)


@pytest.mark.parametrize("single", [False, True], ids=["batched", "python-ints"])
@settings(max_examples=200, deadline=None)
@given(pairs=st.lists(st.tuples(sequences, sequences), min_size=1, max_size=12))
def test_small_alphabet_pairs_match_rapidfuzz(single, pairs):
    # a 4-symbol alphabet makes many optimal alignments: only rapidfuzz's tie-breaking passes
    with (
        mock.patch.object(_levenshtein, "_rapidfuzz_levenshtein", lambda: None),
        mock.patch.object(_levenshtein, "_prefer_single", lambda *args, **kwargs: single),
    ):
        check_against_rapidfuzz([a for a, _ in pairs], [b for _, b in pairs], 4)


@pytest.mark.parametrize("seed", range(3))
def test_many_pairs_of_mixed_lengths_match_rapidfuzz(seed, numpy_only):
    rng = random.Random(seed)
    refs, hyps = [], []
    for _ in range(800):
        alphabet = rng.choice([1, 2, 5, 40, 500])
        a = [rng.randrange(alphabet) for _ in range(rng.choice([3, 20, 70, 200]))]
        b = edited(rng, a, alphabet, rng.choice([0.05, 0.3, 0.9]))
        refs.append(a)
        hyps.append(b if rng.random() < 0.8 else b[: len(b) // 2])
    check_against_rapidfuzz(refs, hyps, 500)


@pytest.mark.parametrize("engine", ["numpy", "rapidfuzz"])
def test_long_pairs_one_at_a_time_match_rapidfuzz(engine, monkeypatch):
    if engine == "numpy":
        monkeypatch.setattr(_levenshtein, "_rapidfuzz_levenshtein", lambda: None)
    rng = random.Random(1)
    refs = [[rng.randrange(3) for _ in range(n)] for n in (300, 700, 1500)]
    hyps = [edited(rng, a, 3, 0.2) for a in refs]
    check_against_rapidfuzz(refs, hyps, 3)


@pytest.mark.parametrize("alphabet,rate", [(2, 0.1), (4, 0.01), (30, 0.4)])
def test_hirschberg_sized_pairs_match_rapidfuzz(alphabet, rate, numpy_only):
    # 2100 x 2100 tokens: rapidfuzz splits the problem, which changes the chosen alignment
    rng = random.Random(alphabet)
    a = [rng.randrange(alphabet) for _ in range(2100)]
    b = edited(rng, a, alphabet, rate)
    check_against_rapidfuzz([a, [1, 2]], [b, [2, 1]], alphabet)


def test_empty_and_identical_pairs():
    refs = [[], [], [1, 2], [1, 2, 3], [5]]
    hyps = [[], [1, 2], [], [1, 2, 3], [5]]
    check_against_rapidfuzz(refs, hyps, 6)
    result = _levenshtein.align(*ragged(refs), *ragged(hyps), 6)
    assert result.counts.tolist() == [
        [0, 0, 0, 0],
        [0, 0, 0, 2],
        [0, 0, 2, 0],
        [3, 0, 0, 0],
        [1, 0, 0, 0],
    ]


def test_no_pairs():
    empty = np.zeros(0, dtype=np.int64)
    offsets = np.zeros(1, dtype=np.int64)
    assert _levenshtein.distances(empty, offsets, empty, offsets, 0).shape == (0,)
    result = _levenshtein.align(empty, offsets, empty, offsets, 0)
    assert result.counts.shape == (0, 4) and result.ops.size == 0


def test_slow_fallback_suggests_rapidfuzz(numpy_only, monkeypatch):
    monkeypatch.setattr(_levenshtein, "_SLOW_CELLS", 1000)
    a = list(range(100)) * 3
    with pytest.warns(RuntimeWarning, match="pip install rapidfuzz"):
        check_against_rapidfuzz([a], [a[::-1]], 100)
    for score in (metrics.wer, metrics.cer, metrics.process_words, metrics.process_chars):
        with pytest.warns(RuntimeWarning, match="pip install rapidfuzz") as record:
            score("x y z " * 100, "z y x " * 100)
        assert record[0].filename == __file__  # points at the caller
