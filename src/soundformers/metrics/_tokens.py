"""Sentences to integer token ids, with jiwer's default tokenization.

Words (jiwer `wer_default`): runs of two or more whitespace characters become one space, the
sentence is stripped, then split on the space character. A single tab or newline between two
words therefore does not separate them (`"a\\tb"` is one word), exactly as in jiwer.

Characters (jiwer `cer_default`): the sentence is stripped, then every code point is a token.

Both encoders return the tokens of all sentences as one flat id array plus offsets, with ids
shared between references and hypotheses, so that equal tokens have equal ids.
"""

from __future__ import annotations

import re
from typing import NamedTuple

import numpy as np

_RUN_OF_SPACES = re.compile(r"\s\s+")
# the whitespace characters (str.isspace) above ASCII; ASCII ones are found by their byte value
_NON_ASCII_SPACE = re.compile("[\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]")
_LOW_BYTES = np.array([(1 << (8 * n)) - 1 for n in range(9)], dtype=np.uint64)  # n low bytes set
_GOLDEN = np.uint64(0x9E37_79B9_7F4A_7C15)  # Fibonacci hashing multiplier


class Encoded(NamedTuple):
    """Token ids of a corpus of (reference, hypothesis) pairs.

    Attributes:
        ref_ids: (total_ref_tokens,) int64.
        ref_offsets: (n_pairs + 1,) int64: reference k is `ref_ids[ref_offsets[k]:ref_offsets[k+1]]`.
        hyp_ids: (total_hyp_tokens,) int64.
        hyp_offsets: (n_pairs + 1,) int64.
        n_symbols: every id is in [0, n_symbols).
    """

    ref_ids: np.ndarray
    ref_offsets: np.ndarray
    hyp_ids: np.ndarray
    hyp_offsets: np.ndarray
    n_symbols: int


# ---------------------------------------------------------------------------------------------
# words


def split_words(sentence: str) -> list[str]:
    """The words of one sentence, as jiwer's default word transform gives them."""
    cleaned = _RUN_OF_SPACES.sub(" ", sentence).strip()
    return cleaned.split(" ") if cleaned else []


def word_id_lists(references: list[str], hypotheses: list[str]) -> tuple[list, list]:
    """Word ids as Python lists, for a few sentences (see `encode_words` for many).

    Returns:
        (reference ids, hypothesis ids): one list of int per sentence; equal words, equal ids.
    """
    vocabulary: dict[str, int] = {}

    def ids(sentence: str) -> list[int]:
        return [vocabulary.setdefault(word, len(vocabulary)) for word in split_words(sentence)]

    return [ids(s) for s in references], [ids(s) for s in hypotheses]


def encode_words(references: list[str], hypotheses: list[str]) -> Encoded:
    """Word ids of every sentence (see the module docstring for the tokenization).

    Args:
        references: n_pairs reference sentences.
        hypotheses: n_pairs hypothesis sentences.

    Returns:
        The `Encoded` corpus; equal words have equal ids on both sides.
    """
    n = len(references)
    sentences = [*references, *hypotheses]
    joined = "\n".join(sentences)
    codes = np.frombuffer(joined.encode("utf-8", "surrogatepass"), dtype=np.uint8)
    if n and _only_spaces(joined, codes, 2 * n):
        ids, offsets, n_symbols = _encode_bytes(codes)
    else:
        ids, offsets, n_symbols = _encode_strings(sentences)
    split = int(offsets[n])
    return Encoded(ids[:split], offsets[: n + 1], ids[split:], offsets[n:] - split, n_symbols)


def _only_spaces(joined: str, codes: np.ndarray, n_sentences: int) -> bool:
    """Whether the only whitespace in `joined` (sentences joined by "\\n") is " " and the joiners.

    Then jiwer's rule reduces to: words are the maximal runs of bytes above 32 in the UTF-8 text.
    Control characters (bytes < 32, never part of a multi-byte sequence) other than the joiners
    also send the corpus down the general path; they are rare.
    """
    if not joined.isascii() and _NON_ASCII_SPACE.search(joined):
        return False
    return int(np.count_nonzero(codes < 32)) == n_sentences - 1


def _encode_bytes(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Words of UTF-8 text whose only separators are b" " and b"\\n" (which ends a sentence).

    A word's identity is its bytes, read 8 at a time as a little-endian uint64 (zero-padded: the
    text has no NUL byte), level by level: level k numbers the distinct (level k-1 id, bytes
    8k..8k+7) of the words longer than 8k bytes. No Python object is made per word.

    Returns:
        (ids, offsets, n_symbols): (n_words,) int64 ids, (n_sentences + 1,) int64 offsets.
    """
    in_word = np.zeros(codes.size + 2, dtype=bool)
    np.greater(codes, 32, out=in_word[1:-1])
    edges = np.flatnonzero(in_word[1:] != in_word[:-1])  # alternately a word's start and end
    starts = edges[0::2]
    lengths = edges[1::2] - starts
    newlines = np.flatnonzero(codes == 10)
    offsets = np.concatenate([[0], np.searchsorted(starts, newlines), [starts.size]])
    padded = np.zeros(codes.size + 8, dtype=np.uint8)
    padded[: codes.size] = codes
    # the 8 bytes starting at every position: an overlapping, unaligned view (no copy)
    windows = np.ndarray((codes.size + 1,), dtype="<u8", buffer=padded, strides=(1,))

    # level 0: every word by its first 8 bytes
    ids, n_symbols = _dense_ids(windows[starts] & _LOW_BYTES[np.minimum(lengths, 8)])
    todo = np.flatnonzero(lengths > 8)  # words not numbered yet
    prefix = ids[todo]  # their ids at the previous level
    level = 1
    while todo.size:
        left = lengths[todo] - 8 * level  # bytes left to read, >= 1
        chunk, n_chunks = _dense_ids(
            windows[starts[todo] + 8 * level] & _LOW_BYTES[np.minimum(left, 8)]
        )
        # + 1: the hash table below needs nonzero keys
        dense, n_unique = _dense_ids((prefix * n_chunks + chunk + 1).astype(np.uint64))
        done = left <= 8
        ids[todo[done]] = n_symbols + dense[done]
        n_symbols += n_unique
        todo, prefix = todo[~done], dense[~done]
        level += 1
    return ids, offsets, n_symbols


def _dense_ids(keys: np.ndarray) -> tuple[np.ndarray, int]:
    """Rank of every key among the distinct keys: (ids (n,) int64, number of distinct keys).

    Keys must be nonzero (0 marks an empty slot of the hash table).

    Sorting finds the distinct keys (numpy's sort is SIMD-fast); an open-addressing hash table
    (linear probing, load <= 1/4) then maps every key to its rank in a few vectorized probes.
    """
    if keys.size == 0:
        return np.zeros(0, dtype=np.int64), 0
    ordered = np.sort(keys)
    distinct = ordered[np.concatenate([[True], ordered[1:] != ordered[:-1]])]
    bits = max(4, (4 * distinct.size).bit_length())
    size = 1 << bits
    down = np.uint64(64 - bits)
    table_key = np.zeros(size, dtype=np.uint64)
    table_rank = np.full(size, -1, dtype=np.int64)
    pending = np.arange(distinct.size)
    slot = ((distinct * _GOLDEN) >> down).view(np.int64)  # < size: the view is exact
    while pending.size:
        free = table_rank[slot] < 0
        table_rank[slot[free]] = pending[free]  # of several writers to one slot, one wins
        won = np.zeros(pending.size, dtype=bool)
        won[free] = table_rank[slot[free]] == pending[free]
        table_key[slot[won]] = distinct[pending[won]]
        pending, slot = pending[~won], (slot[~won] + 1) & (size - 1)
    slot = ((keys * _GOLDEN) >> down).view(np.int64)
    ranks = table_rank[slot]
    miss = np.flatnonzero(table_key[slot] != keys)
    while miss.size:  # every key is in the table: walk on until found
        slot[miss] = (slot[miss] + 1) & (size - 1)
        found = table_key[slot[miss]] == keys[miss]
        ranks[miss[found]] = table_rank[slot[miss[found]]]
        miss = miss[~found]
    return ranks, int(distinct.size)


def _encode_strings(sentences: list[str]) -> tuple[np.ndarray, np.ndarray, int]:
    """The general path: jiwer's rule sentence by sentence, ids from a dict."""
    cleaned = [_RUN_OF_SPACES.sub(" ", s).strip() for s in sentences]
    offsets = np.zeros(len(sentences) + 1, dtype=np.int64)
    np.cumsum([s.count(" ") + 1 if s else 0 for s in cleaned], out=offsets[1:])
    if offsets[-1] == 0:
        return np.zeros(0, dtype=np.int64), offsets, 0
    tokens = " ".join(s for s in cleaned if s).split(" ")
    vocabulary = {token: i for i, token in enumerate(set(tokens))}
    ids = np.fromiter(map(vocabulary.__getitem__, tokens), dtype=np.int64, count=len(tokens))
    return ids, offsets, len(vocabulary)


# ---------------------------------------------------------------------------------------------
# characters


def strip_sentences(sentences: list[str]) -> list[str]:
    """jiwer's character transform before splitting: strip each sentence."""
    return [s.strip() for s in sentences]


def encode_chars(references: list[str], hypotheses: list[str]) -> Encoded:
    """Character ids of already stripped sentences (see `strip_sentences`).

    Args:
        references: n_pairs stripped reference sentences.
        hypotheses: n_pairs stripped hypothesis sentences.

    Returns:
        The `Encoded` corpus; ids are the code points renumbered densely.
    """
    ref_codes, ref_offsets = _code_points(references)
    hyp_codes, hyp_offsets = _code_points(hypotheses)
    top = max(int(ref_codes.max(initial=0)), int(hyp_codes.max(initial=0)))
    present = np.zeros(top + 1, dtype=bool)
    present[ref_codes] = True
    present[hyp_codes] = True
    dense = np.cumsum(present) - 1
    return Encoded(dense[ref_codes], ref_offsets, dense[hyp_codes], hyp_offsets, int(present.sum()))


def _code_points(sentences: list[str]) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(sentences) + 1, dtype=np.int64)
    np.cumsum([len(s) for s in sentences], out=offsets[1:])
    data = "".join(sentences).encode("utf-32-le", "surrogatepass")
    return np.frombuffer(data, dtype="<u4").astype(np.int64), offsets
