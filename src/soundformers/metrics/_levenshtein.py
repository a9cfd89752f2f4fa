"""Batched Levenshtein distance and alignment over integer token sequences, in numpy.

A corpus is given as two ragged arrays: the tokens of every reference (`ref_ids`, flat) with
`ref_offsets` (pair `k` is `ref_ids[ref_offsets[k]:ref_offsets[k + 1]]`), and likewise for the
hypotheses. Token ids are dense: `0 <= id < n_symbols`.

Speed comes from running the bit-parallel algorithm of Hyyrö (2003, the Myers 1999 variant used by
rapidfuzz) on thousands of pairs at once: one numpy operation advances one DP row of every pair in
a chunk, 64 reference tokens per machine word. Pairs are sorted by hypothesis length so that the
rows of finished pairs are dropped from the work.

The alignment is the one rapidfuzz (hence jiwer) reports, tie-breaking included, because the split
of errors into substitutions, deletions and insertions depends on it:

1. strip the common prefix and suffix (they are matches);
2. walk back from the end of the DP matrix `D` (`D[c][r]`: distance between the first `c`
   reference and the first `r` hypothesis tokens), at each cell taking the first that applies:
   deletion if `D[c][r] == D[c-1][r] + 1`; insertion if `D[c][r-1] == D[c-1][r-1] - 1`; else the
   diagonal (match or substitution);
3. for large problems (`2 * n_ref * n_hyp // 8 >= 2**20` after stripping), split first at the middle
   hypothesis row, at the first reference position where the forward and backward distances sum
   to the minimum (Hirschberg), and recurse; this changes which of several optimal alignments wins.

A few pairs, and pairs too long to batch usefully (long-form transcripts scored as one string),
are solved one at a time (`align_pairwise`, `_prefer_single`): with rapidfuzz when it is
installed (optional; it is the reference, so the alignment is the same by construction), else
with the same bit-parallel algorithm on Python ints, following the rules above.
"""

from __future__ import annotations

import sys
import warnings
from functools import lru_cache
from itertools import chain
from typing import NamedTuple

import numpy as np

EQUAL, SUBSTITUTE, DELETE, INSERT = 0, 1, 2, 3
"""Codes of the path steps in `Alignment.ops`."""

_ONES = np.uint64(0xFFFF_FFFF_FFFF_FFFF)
_SHIFT_TOP = np.uint64(63)
_BUDGET = 1 << 24  # bytes of per-row work arrays in one chunk of pairs (cache vs calls)
_HIRSCHBERG_BYTES = 1 << 20  # rapidfuzz keeps the bit matrix under 1 MiB, else it splits


class Alignment(NamedTuple):
    """Edit paths of a batch of pairs.

    Attributes:
        counts: (n_pairs, 4) int64: hits, substitutions, deletions, insertions of each pair.
        ops: (total_steps,) uint8: the path of every pair, in order, one code per step
            (`EQUAL`, `SUBSTITUTE`, `DELETE`, `INSERT`).
        offsets: (n_pairs + 1,) int64: pair `k`'s path is `ops[offsets[k]:offsets[k + 1]]`.
    """

    counts: np.ndarray
    ops: np.ndarray
    offsets: np.ndarray


# ---------------------------------------------------------------------------------------------
# small helpers


def _popcount(x: np.ndarray) -> np.ndarray:
    """Number of set bits of each uint64 element, as int64."""
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return np.bitwise_count(x).astype(np.int64)
    as_bytes = x.view(np.uint8).reshape(*x.shape, 8)
    return _BYTE_POPCOUNT[as_bytes].sum(axis=-1, dtype=np.int64)


_BYTE_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.int64)


def _low_bits_masks(lengths: np.ndarray, n_words: int) -> np.ndarray:
    """(n_words, B) uint64: the lowest `lengths[b]` bits of pair b's bit vector, word by word."""
    bits = lengths[None, :] - 64 * np.arange(n_words)[:, None]  # bits to set in each word
    full = bits >= 64
    part = np.clip(bits, 0, 63).astype(np.uint64)
    return np.where(full, _ONES, np.left_shift(np.uint64(1), part) - np.uint64(1))


# ---------------------------------------------------------------------------------------------
# common prefix and suffix


def common_affixes(
    ref_ids: np.ndarray, ref_offsets: np.ndarray, hyp_ids: np.ndarray, hyp_offsets: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Lengths of the common prefix and of the common suffix of every pair (not overlapping).

    Returns:
        (prefix, suffix): two (n_pairs,) int64 arrays.
    """
    n_ref = np.diff(ref_offsets)
    n_hyp = np.diff(hyp_offsets)
    shorter = np.minimum(n_ref, n_hyp)
    prefix = _first_mismatch(ref_ids, ref_offsets[:-1], 1, hyp_ids, hyp_offsets[:-1], shorter)
    suffix = _first_mismatch(
        ref_ids, ref_offsets[1:] - 1, -1, hyp_ids, hyp_offsets[1:] - 1, shorter - prefix
    )
    return prefix, suffix


def _first_mismatch(a_ids, a_start, step, b_ids, b_start, limit):
    """Per pair, the first `k < limit[pair]` where a[start + step*k] != b[start + step*k], else limit."""
    total = int(limit.sum())
    result = limit.copy()
    if total == 0:
        return result
    pair = np.repeat(np.arange(limit.size), limit)
    k = np.arange(total) - np.repeat(np.cumsum(limit) - limit, limit)
    mismatch = np.flatnonzero(a_ids[a_start[pair] + step * k] != b_ids[b_start[pair] + step * k])
    if mismatch.size:
        first = np.ones(mismatch.size, dtype=bool)
        first[1:] = pair[mismatch[1:]] != pair[mismatch[:-1]]
        result[pair[mismatch[first]]] = k[mismatch[first]]
    return result


# ---------------------------------------------------------------------------------------------
# the batched bit-parallel DP


def _ragged(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For ragged rows of the given lengths: (row, position) of every element, row-major."""
    total = int(lengths.sum())
    rows = np.repeat(np.arange(lengths.size), lengths)
    return rows, np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)


class _MatchMasks:
    """Pattern-match bit vectors of a chunk of pairs, one hypothesis row at a time.

    `masks(j, k)` is (W, k) uint64 for the first k pairs: bit i of word w is set when reference
    token 64*w + i equals hypothesis token j. Two ways, whichever is cheaper for the chunk:
    compare row j with every reference token and pack the bits (cost ~ rows * width), or look
    symbols up in a table of masks per (pair, symbol) built once (cost ~ symbols * words).

    Args:
        ref_ids, hyp_ids: flat token ids (in [0, n_symbols)).
        ref_start, ref_len: (B,) where each pair's reference is in `ref_ids`.
        hyp_start, hyp_len: (B,) the same for the hypotheses, sorted by non-increasing length.
        n_words: number of 64-bit words per pattern (64 * n_words >= max(ref_len)).
        n_symbols: the number of distinct ids.
    """

    def __init__(
        self, ref_ids, ref_start, ref_len, hyp_ids, hyp_start, hyp_len, n_words, n_symbols
    ):
        n_pairs = ref_start.size
        rows = int(hyp_len[0])
        width = -(-int(ref_len.max()) // 8) * 8
        self.n_words = n_words
        ref_pair, ref_pos = _ragged(ref_len)
        hyp_pair, hyp_pos = _ragged(hyp_len)
        ref_tokens = ref_ids[ref_start[ref_pair] + ref_pos]
        hyp_tokens = hyp_ids[hyp_start[hyp_pair] + hyp_pos]
        present = np.zeros(n_symbols, dtype=bool)
        present[ref_tokens] = True
        present[hyp_tokens] = True
        n_present = int(np.count_nonzero(present))
        compare_cost = rows * width
        table_cost = (n_present + 1 + rows) * n_words * 8 + width
        table_bytes = n_pairs * (n_present + 1) * n_words * 8
        self.by_table = table_cost < compare_cost and table_bytes <= _BUDGET
        if not self.by_table:  # padded copies; paddings differ from each other and every id
            self.a = np.full((n_pairs, width), -1, dtype=np.int64)
            self.a[ref_pair, ref_pos] = ref_tokens
            self.b_rows = np.full((rows, n_pairs), -2, dtype=np.int64)  # (M, B): row j contiguous
            self.b_rows[hyp_pos, hyp_pair] = hyp_tokens
            return
        # symbol s of pair p is column p * n_local + local[s] of a word-major table; the extra
        # local symbol n_present stays empty (for hypothesis padding)
        local = np.cumsum(present) - 1
        n_local = n_present + 1
        table = np.zeros((n_words, n_pairs * n_local), dtype=np.uint64)
        column = ref_pair * n_local + local[ref_tokens]
        bits = np.left_shift(np.uint64(1), (ref_pos % 64).astype(np.uint64))
        np.bitwise_or.at(table.reshape(-1), (ref_pos // 64) * table.shape[1] + column, bits)
        self.table = table
        self.keys = np.empty((rows, n_pairs), dtype=np.int64)  # (M, B) table columns
        self.keys[:] = np.arange(n_pairs) * n_local + n_present
        self.keys[hyp_pos, hyp_pair] = hyp_pair * n_local + local[hyp_tokens]

    def __call__(self, j: int, k: int) -> np.ndarray:
        if self.by_table:
            return self.table[:, self.keys[j, :k]]  # (W, k), contiguous
        equal = self.b_rows[j, :k, None] == self.a[:k]  # (k, N)
        packed = np.packbits(equal, axis=-1, bitorder="little")  # (k, N / 8)
        if packed.shape[1] < 8 * self.n_words:
            wide = np.zeros((k, 8 * self.n_words), dtype=np.uint8)
            wide[:, : packed.shape[1]] = packed
            packed = wide
        return np.ascontiguousarray(packed.view("<u8").T)  # (W, k)


def _hyyro(masks: _MatchMasks, rows: int, n_hyp_desc: np.ndarray, record: bool):
    """Run the bit-parallel Levenshtein DP for a chunk of pairs sorted by hypothesis length.

    `VP`/`VN` bit i at row j is set when `D[i+1][j+1] - D[i][j+1]` is +1/-1 (column differences
    along the reference, after j+1 hypothesis tokens). Every operation works in place on
    preallocated arrays: the chunk's pairs are many, the steps per pair few.

    Args:
        masks: the chunk's `_MatchMasks`.
        rows: M, the longest hypothesis.
        n_hyp_desc: (B,) hypothesis lengths, in non-increasing order.
        record: keep the vectors of every row (for the alignment), else only each pair's last row.

    Returns:
        (VP, VN): (M, W, B) uint64 each if `record`, else (W, B) at each pair's last row.
    """
    n_words, n_pairs = masks.n_words, n_hyp_desc.size
    vp = np.full((n_words, n_pairs), _ONES, dtype=np.uint64)
    vn = np.zeros((n_words, n_pairs), dtype=np.uint64)
    if record:
        vp_rows = np.empty((rows, n_words, n_pairs), dtype=np.uint64)
        vn_rows = np.empty((rows, n_words, n_pairs), dtype=np.uint64)
    else:
        vp_last = np.full((n_words, n_pairs), _ONES, dtype=np.uint64)
        vn_last = np.zeros((n_words, n_pairs), dtype=np.uint64)
    d0_buf, hp_buf, hn_buf, carry_p, carry_n = np.empty((5, n_pairs), dtype=np.uint64)
    one, top = np.uint64(1), _SHIFT_TOP
    # active[j]: how many pairs (a prefix, as lengths are sorted) still have a row j
    active = np.searchsorted(-n_hyp_desc, -np.arange(rows + 1), side="left")
    for j in range(rows):
        k = int(active[j])
        x_row = masks(j, k)  # (W, k), ours to modify
        d0, hp, hn = d0_buf[:k], hp_buf[:k], hn_buf[:k]
        c_p, c_n = carry_p[:k], carry_n[:k]
        for w in range(n_words):
            v_p, v_n, x = vp[w, :k], vn[w, :k], x_row[w]
            if w:
                x |= c_n  # HN carried out of the word below
            # D0 = (((X & VP) + VP) ^ VP) | X | VN
            np.bitwise_and(x, v_p, out=d0)
            d0 += v_p
            d0 ^= v_p
            d0 |= x
            d0 |= v_n
            # HP = VN | ~(D0 | VP);  HN = D0 & VP
            np.bitwise_or(d0, v_p, out=hp)
            np.invert(hp, out=hp)
            hp |= v_n
            np.bitwise_and(d0, v_p, out=hn)
            # shift HP, HN up by one, carrying the top bits into the next word
            np.left_shift(hp, one, out=x)  # x is free now: use it for the shifted HP
            x |= c_p if w else one
            if w + 1 < n_words:
                np.right_shift(hp, top, out=c_p)
            np.left_shift(hn, one, out=hp)  # hp now holds the shifted HN
            if w:
                hp |= c_n
            if w + 1 < n_words:
                np.right_shift(hn, top, out=c_n)
            # VP = HN' | ~(D0 | HP');  VN = HP' & D0
            np.bitwise_or(d0, x, out=v_p)
            np.invert(v_p, out=v_p)
            v_p |= hp
            np.bitwise_and(x, d0, out=v_n)
        if record:
            vp_rows[j, :, :k] = vp[:, :k]
            vn_rows[j, :, :k] = vn[:, :k]
        else:
            ending = slice(int(active[j + 1]), k)  # pairs whose last row is j
            vp_last[:, ending] = vp[:, ending]
            vn_last[:, ending] = vn[:, ending]
    if record:
        return vp_rows, vn_rows
    return vp_last, vn_last


def _chunks(order: np.ndarray, rows: np.ndarray, n_words: np.ndarray, record: bool):
    """Split `order` (sorted by words, then rows descending) into chunks of pairs with the same
    number of words whose per-row arrays (hypothesis ids, recorded bit vectors) fit the budget."""
    start = 0
    while start < order.size:
        w = n_words[order[start]]
        same_w = start + np.searchsorted(n_words[order[start:]], w, side="right")
        per_pair = max(1, int(rows[order[start]])) * (8 + (16 * int(w) if record else 0))
        stop = min(int(same_w), start + max(1, _BUDGET // per_pair))
        yield order[start:stop], int(w)
        start = stop


def _sort_for_chunks(n_ref: np.ndarray, n_hyp: np.ndarray):
    """Pair order for chunking: by number of 64-bit words, then by hypothesis length, longest first."""
    n_words = np.maximum(1, (n_ref + 63) // 64)
    order = np.lexsort((-n_hyp, n_words))
    return order, n_words


# ---------------------------------------------------------------------------------------------
# distances only


def distances(
    ref_ids: np.ndarray,
    ref_offsets: np.ndarray,
    hyp_ids: np.ndarray,
    hyp_offsets: np.ndarray,
    n_symbols: int,
) -> np.ndarray:
    """Levenshtein distance of every pair.

    Args:
        ref_ids: (total_ref,) int64 token ids, all references concatenated.
        ref_offsets: (n_pairs + 1,) int64 offsets into `ref_ids`.
        hyp_ids: (total_hyp,) int64 token ids of the hypotheses.
        hyp_offsets: (n_pairs + 1,) int64 offsets into `hyp_ids`.
        n_symbols: token ids are in [0, n_symbols).

    Returns:
        (n_pairs,) int64 distances.
    """
    n_ref = np.diff(ref_offsets)
    n_hyp = np.diff(hyp_offsets)
    result = np.maximum(n_ref, n_hyp)  # right whenever one side is empty
    todo = np.flatnonzero((n_ref > 0) & (n_hyp > 0))
    order, n_words = _sort_for_chunks(n_ref[todo], n_hyp[todo])
    for chunk, w in _chunks(order, n_hyp[todo], n_words, record=False):
        pairs = todo[chunk]
        rows = int(n_hyp[pairs[0]])
        if _prefer_single(pairs.size, rows, w, align=False):
            _warn_if_slow(int((n_ref[pairs] * n_hyp[pairs]).sum()), pairs.size)
            for p in pairs:
                a = ref_ids[ref_offsets[p] : ref_offsets[p + 1]].tolist()
                b = hyp_ids[hyp_offsets[p] : hyp_offsets[p + 1]].tolist()
                result[p] = _distance_single(a, b)
            continue
        masks = _MatchMasks(
            ref_ids, ref_offsets[pairs], n_ref[pairs],
            hyp_ids, hyp_offsets[pairs], n_hyp[pairs], w, n_symbols,
        )  # fmt: skip
        vp, vn = _hyyro(masks, rows, n_hyp[pairs], record=False)
        low = _low_bits_masks(n_ref[pairs], w)
        # D[n_ref][n_hyp] = D[0][n_hyp] + sum of the column differences = n_hyp + #VP - #VN
        result[pairs] = n_hyp[pairs] + (_popcount(vp & low) - _popcount(vn & low)).sum(axis=0)
    return result


def _prefer_single(n_pairs: int, rows: int, n_words: int, align: bool) -> bool:
    """Whether a chunk's pairs are cheaper one at a time (`_path_single`, `_distance_single`)
    than batched, by a cost model fitted on a laptop CPU.

    One pair at a time costs about 0.6 us per row (Python ints; rapidfuzz is faster still). The
    batched kernel costs ~20 numpy calls per (row, word), ~25 per backtrack step, ~1.5 us each,
    plus ~20 ns per (pair, row, word) of array work.
    """
    single = n_pairs * rows * (0.6e-6 + 0.02e-6 * n_words)
    calls = rows * n_words * 20 + (2 * rows * 25 if align else 0)
    batched = calls * 1.5e-6 + n_pairs * rows * n_words * 2e-8
    return single < batched


# ---------------------------------------------------------------------------------------------
# alignment


def align(
    ref_ids: np.ndarray,
    ref_offsets: np.ndarray,
    hyp_ids: np.ndarray,
    hyp_offsets: np.ndarray,
    n_symbols: int,
) -> Alignment:
    """The rapidfuzz/jiwer alignment of every pair, with its counts.

    Args: as `distances`.

    Returns:
        The `Alignment` (counts, path codes and path offsets) of all pairs.
    """
    n_pairs = ref_offsets.size - 1
    n_ref = np.diff(ref_offsets)
    n_hyp = np.diff(hyp_offsets)
    prefix, suffix = common_affixes(ref_ids, ref_offsets, hyp_ids, hyp_offsets)
    mid_ref = n_ref - prefix - suffix
    mid_hyp = n_hyp - prefix - suffix
    mid_ref_start = ref_offsets[:-1] + prefix
    mid_hyp_start = hyp_offsets[:-1] + prefix

    # the middle path of each pair: a row of a chunk's buffer or a single array, then scattered
    mid_len = np.maximum(mid_ref, mid_hyp)  # final value for the trivial pairs
    counts = np.zeros((n_pairs, 4), dtype=np.int64)
    counts[:, EQUAL] = prefix + suffix
    pieces: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (pairs, path buffer, lengths)

    both = (mid_ref > 0) & (mid_hyp > 0)
    # pairs rapidfuzz would split (Hirschberg) are aligned one at a time, as it does
    one_at_a_time = both & (2 * mid_ref * mid_hyp // 8 >= _HIRSCHBERG_BYTES)
    one_at_a_time &= (mid_ref >= 65) & (mid_hyp >= 10)
    todo = np.flatnonzero(both & ~one_at_a_time)
    order, n_words = _sort_for_chunks(mid_ref[todo], mid_hyp[todo])
    for chunk, w in _chunks(order, mid_hyp[todo], n_words, record=True):
        pairs = todo[chunk]
        rows = int(mid_hyp[pairs[0]])
        if _prefer_single(pairs.size, rows, w, align=True):
            one_at_a_time[pairs] = True
            continue
        ref_start, hyp_start = mid_ref_start[pairs], mid_hyp_start[pairs]
        masks = _MatchMasks(
            ref_ids, ref_start, mid_ref[pairs], hyp_ids, hyp_start, mid_hyp[pairs], w, n_symbols
        )
        vp_rows, vn_rows = _hyyro(masks, rows, mid_hyp[pairs], record=True)
        del masks
        path, length = _backtrack_batch(
            vp_rows, vn_rows, ref_ids, ref_start, mid_ref[pairs], hyp_ids, hyp_start, mid_hyp[pairs]
        )
        pieces.append((pairs, path, length))
        mid_len[pairs] = length

    singles = np.flatnonzero(one_at_a_time)
    _warn_if_slow(int((mid_ref[singles] * mid_hyp[singles]).sum()), singles.size)
    for p in singles:
        a = ref_ids[mid_ref_start[p] : mid_ref_start[p] + mid_ref[p]].tolist()
        b = hyp_ids[mid_hyp_start[p] : mid_hyp_start[p] + mid_hyp[p]].tolist()
        path = np.array(_path_single(a, b), dtype=np.uint8)
        pieces.append((np.array([p]), path[None, :], np.array([path.size])))
        mid_len[p] = path.size

    # assemble: every path is prefix matches + middle + suffix matches
    offsets = np.zeros(n_pairs + 1, dtype=np.int64)
    np.cumsum(prefix + mid_len + suffix, out=offsets[1:])
    ops = np.zeros(int(offsets[-1]), dtype=np.uint8)  # EQUAL everywhere to start with
    mid_start = offsets[:-1] + prefix
    trivial = ~both & (mid_len > 0)
    _fill_runs(
        ops, mid_start[trivial], mid_len[trivial], np.where(mid_ref[trivial] > 0, DELETE, INSERT)
    )
    counts[trivial & (mid_ref > 0), DELETE] += mid_ref[trivial & (mid_ref > 0)]
    counts[trivial & (mid_hyp > 0), INSERT] += mid_hyp[trivial & (mid_hyp > 0)]
    for pairs, path, length in pieces:
        cols = np.arange(path.shape[1])
        valid = cols < length[:, None]
        ops[(mid_start[pairs][:, None] + cols)[valid]] = path[valid]
        for code in (EQUAL, SUBSTITUTE, DELETE, INSERT):
            counts[pairs, code] += np.count_nonzero((path == code) & valid, axis=1)
    return Alignment(counts, ops, offsets)


def _fill_runs(
    out: np.ndarray, starts: np.ndarray, lengths: np.ndarray, values: np.ndarray
) -> None:
    """out[starts[i] : starts[i] + lengths[i]] = values[i] for every i."""
    total = int(lengths.sum())
    if total:
        within = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        out[np.repeat(starts, lengths) + within] = np.repeat(values, lengths)


def _backtrack_batch(vp_rows, vn_rows, ref_ids, ref_start, n_a, hyp_ids, hyp_start, n_b):
    """Walk back through the recorded bit matrices of a chunk, all pairs in lockstep.

    Args:
        vp_rows, vn_rows: (M, W, B) uint64 from `_hyyro(..., record=True)`.
        ref_ids, hyp_ids: flat token ids.
        ref_start, n_a: (B,) where each pair's reference is in `ref_ids`, and its length.
        hyp_start, n_b: (B,) the same for the hypotheses.

    Returns:
        (path, length): path (B, max(n_a + n_b)) uint8 forward step codes, valid up to length (B,).
    """
    n_pairs = n_a.size
    n_words = vp_rows.shape[1]
    vp_flat = vp_rows.reshape(-1)
    vn_flat = vn_rows.reshape(-1)
    width = int((n_a + n_b).max())
    back = np.zeros((n_pairs, width), dtype=np.uint8)  # steps from the end backwards
    col = n_a.astype(np.int64)
    row = n_b.astype(np.int64)
    steps = np.zeros(n_pairs, dtype=np.int64)
    live = np.arange(n_pairs)
    t = 0
    while live.size:
        c = col[live] - 1
        r = row[live] - 1
        word = c >> 6
        bit = (c & 63).astype(np.uint64)
        base = word * n_pairs + live
        delete = ((vp_flat[r * (n_words * n_pairs) + base] >> bit) & np.uint64(1)).astype(bool)
        above = np.maximum(r - 1, 0) * (n_words * n_pairs) + base
        insert = ~delete & (r > 0) & ((vn_flat[above] >> bit) & np.uint64(1)).astype(bool)
        diagonal = ~(delete | insert)
        substitute = diagonal & (ref_ids[ref_start[live] + c] != hyp_ids[hyp_start[live] + r])
        code = np.where(
            delete, DELETE, np.where(insert, INSERT, np.where(substitute, SUBSTITUTE, EQUAL))
        )
        back[live, t] = code
        col[live] = c + 1 - (delete | diagonal)
        row[live] = r + 1 - (insert | diagonal)
        t += 1
        steps[live] = t
        live = live[(col[live] > 0) & (row[live] > 0)]
    # what is left of one side: deletions (reference left) or insertions (hypothesis left)
    tail = col + row
    _fill_runs(
        back.reshape(-1),
        np.arange(n_pairs) * width + steps,
        tail,
        np.where(col > 0, DELETE, INSERT),
    )
    length = steps + tail
    cols = np.arange(width)
    forward = back[np.arange(n_pairs)[:, None], np.maximum(length[:, None] - 1 - cols, 0)]
    return forward, length


# ---------------------------------------------------------------------------------------------
# pair by pair: a few pairs, characters with rapidfuzz, long pairs
#
# rapidfuzz (optional) is what jiwer runs: its alignment is the reference by construction. Without
# it, single pairs run Hyyrö's algorithm on Python ints: they are bit vectors whose and, or, shift
# and add-with-carry run in C over the whole width, so one DP row costs about ten int operations
# whatever the length (numpy would need a Python-level step per row over arrays that wide). The
# VP/VN bits are properties of the DP matrix, not of the algorithm: the rules of the module
# docstring pick rapidfuzz's alignment from them.

FEW_PAIRS = 64
_SLOW_CELLS = 5 * 10**9  # a second or more of work on long pairs without rapidfuzz: worth a hint
_RAPIDFUZZ_CODES = {"equal": EQUAL, "replace": SUBSTITUTE, "delete": DELETE, "insert": INSERT}


@lru_cache(maxsize=1)
def _rapidfuzz_levenshtein():
    """rapidfuzz's `Levenshtein` module, or None if rapidfuzz is not installed."""
    try:
        from rapidfuzz.distance import Levenshtein
    except ImportError:
        return None
    return Levenshtein


def rapidfuzz_available() -> bool:
    """Whether rapidfuzz is installed."""
    return _rapidfuzz_levenshtein() is not None


def few_pairs(n_pairs: int) -> bool:
    """Whether n_pairs are better scored pair by pair (`align_pairwise`, `distances_pairwise`)
    than by the batched numpy kernel, whose fixed cost (~0.1 ms) dominates for a few pairs."""
    return n_pairs <= FEW_PAIRS


def _warn_if_slow(cells: int, n_pairs: int) -> None:
    """Suggest rapidfuzz when pairs of `cells` DP cells in all are about to take seconds."""
    if cells <= _SLOW_CELLS or rapidfuzz_available():
        return
    level, frame = 1, sys._getframe(0)
    while frame is not None and frame.f_globals.get("__name__", "").startswith(__package__):
        level, frame = level + 1, frame.f_back  # point the warning at the user's call
    warnings.warn(
        f"aligning {n_pairs} long text pair(s) ({cells:.1e} DP cells) without rapidfuzz takes "
        "seconds; install rapidfuzz (pip install rapidfuzz) to make it fast",
        RuntimeWarning,
        stacklevel=level,
    )


def align_pairwise(refs: list, hyps: list) -> Alignment:
    """`align`, pair by pair, for Python sequences: lists of int ids, or str (a sequence of code
    points: rapidfuzz reads it without conversion)."""
    levenshtein = _rapidfuzz_levenshtein()
    if levenshtein is None:
        _warn_if_slow(sum(len(a) * len(b) for a, b in zip(refs, hyps)), len(refs))
        return _alignment_of_paths([_path_single(a, b) for a, b in zip(refs, hyps)])
    if len(refs) <= FEW_PAIRS:  # plain Python: numpy's fixed costs would dominate
        paths = []
        for a, b in zip(refs, hyps):
            path: list[int] = []
            for tag, src_start, src_end, dest_start, dest_end in levenshtein.opcodes(
                a, b
            ).as_list():
                path += [_RAPIDFUZZ_CODES[tag]] * max(src_end - src_start, dest_end - dest_start)
            paths.append(path)
        return _alignment_of_paths(paths)
    tags: list[str] = []
    src_runs: list[int] = []
    dest_runs: list[int] = []
    n_opcodes = []
    for a, b in zip(refs, hyps):
        ops = levenshtein.opcodes(
            a, b
        ).as_list()  # [(tag, src_start, src_end, dest_start, dest_end)]
        n_opcodes.append(len(ops))
        if ops:
            tag, src_start, src_end, dest_start, dest_end = zip(*ops)
            tags += tag
            src_runs += map(int.__sub__, src_end, src_start)
            dest_runs += map(int.__sub__, dest_end, dest_start)
    codes = np.fromiter(map(_RAPIDFUZZ_CODES.__getitem__, tags), dtype=np.uint8, count=len(tags))
    runs = np.maximum(np.array(src_runs, dtype=np.int64), np.array(dest_runs, dtype=np.int64))
    pair = np.repeat(np.arange(len(n_opcodes)), n_opcodes)
    counts = np.zeros(4 * len(n_opcodes), dtype=np.int64)
    np.add.at(counts, pair * 4 + codes, runs)
    offsets = np.zeros(len(n_opcodes) + 1, dtype=np.int64)
    np.cumsum(counts.reshape(-1, 4).sum(axis=1), out=offsets[1:])
    return Alignment(counts.reshape(-1, 4), np.repeat(codes, runs), offsets)


def _alignment_of_paths(paths: list[list[int]]) -> Alignment:
    counts = [[path.count(code) for code in (EQUAL, SUBSTITUTE, DELETE, INSERT)] for path in paths]
    offsets = np.zeros(len(paths) + 1, dtype=np.int64)
    np.cumsum([len(path) for path in paths], out=offsets[1:])
    ops = np.fromiter(chain.from_iterable(paths), dtype=np.uint8, count=int(offsets[-1]))
    return Alignment(np.array(counts, dtype=np.int64).reshape(-1, 4), ops, offsets)


def distances_pairwise(refs: list, hyps: list) -> list[int]:
    """`distances`, pair by pair, for Python sequences (see `align_pairwise`)."""
    levenshtein = _rapidfuzz_levenshtein()
    if levenshtein is not None:
        return list(map(levenshtein.distance, refs, hyps))
    _warn_if_slow(sum(len(a) * len(b) for a, b in zip(refs, hyps)), len(refs))
    return list(map(_distance_single, refs, hyps))


def _distance_single(a, b) -> int:
    """Levenshtein distance of two sequences (lists or str)."""
    levenshtein = _rapidfuzz_levenshtein()
    if levenshtein is not None:
        return int(levenshtein.distance(a, b))
    if not a or not b:
        return len(a) + len(b)
    vp, vn = _int_rows(a, b, keep=False)
    return len(b) + vp.bit_count() - vn.bit_count()  # D[n][m] = D[0][m] + column differences


def _path_single(a, b) -> list[int]:
    """Forward step codes of the rapidfuzz alignment of two sequences (lists or str)."""
    levenshtein = _rapidfuzz_levenshtein()
    if levenshtein is None:
        path: list[int] = []
        _align_single(a, b, max(len(a), len(b)), path)
        return path
    path = []
    for tag, src_start, src_end, dest_start, dest_end in levenshtein.opcodes(a, b).as_list():
        path += [_RAPIDFUZZ_CODES[tag]] * max(src_end - src_start, dest_end - dest_start)
    return path


def _int_masks(a) -> dict:
    """symbol -> Python int with bit i set where a[i] is that symbol."""
    if len(a) <= 256:
        masks: dict = {}
        for i, symbol in enumerate(a):
            masks[symbol] = masks.get(symbol, 0) | (1 << i)
        return masks
    positions: dict = {}  # long patterns: set bits in a byte buffer, then one int per symbol
    for i, symbol in enumerate(a):
        positions.setdefault(symbol, []).append(i)
    size = len(a) // 8 + 1
    masks = {}
    for symbol, where in positions.items():
        buffer = bytearray(size)
        for i in where:
            buffer[i >> 3] |= 1 << (i & 7)
        masks[symbol] = int.from_bytes(buffer, "little")
    return masks


def _int_rows(a, b, keep: bool):
    """Hyyrö's bit-parallel DP of pattern a (the reference) over b, with Python ints as vectors.

    Returns:
        (VP, VN): lists with the vectors after each row of b if `keep`, else the last ones.
        Bit i of VP/VN is set when D[i+1][row] - D[i][row] is +1/-1.
    """
    full = (1 << len(a)) - 1
    get = _int_masks(a).get
    vp, vn = full, 0
    vp_rows, vn_rows = [], []
    for symbol in b:
        x = get(symbol, 0)
        d0 = (((x & vp) + vp) ^ vp) | x | vn
        hp = vn | (full & ~(d0 | vp))
        hn = d0 & vp
        hp = ((hp << 1) | 1) & full
        hn = (hn << 1) & full
        vp = hn | (full & ~(d0 | hp))
        vn = hp & d0
        if keep:
            vp_rows.append(vp)
            vn_rows.append(vn)
    return (vp_rows, vn_rows) if keep else (vp, vn)


def _int_last_row(a, b) -> np.ndarray:
    """D(a[:i], b) for i = 0 .. len(a), as int64."""
    vp, vn = _int_rows(a, b, keep=False)
    size = len(a) // 8 + 1
    bits = [
        np.unpackbits(np.frombuffer(v.to_bytes(size, "little"), np.uint8), bitorder="little")
        for v in (vp, vn)
    ]
    steps = bits[0][: len(a)].astype(np.int64) - bits[1][: len(a)]
    return len(b) + np.concatenate([[0], np.cumsum(steps)])


def _int_backtrack(a, b) -> list[int]:
    """Forward step codes of the rapidfuzz path between a and b (no splitting)."""
    vp_rows, vn_rows = _int_rows(a, b, keep=True)
    c, r = len(a), len(b)
    back = []
    while c and r:
        if vp_rows[r - 1] >> (c - 1) & 1:
            back.append(DELETE)
            c -= 1
        elif r > 1 and vn_rows[r - 2] >> (c - 1) & 1:
            back.append(INSERT)
            r -= 1
        else:
            c -= 1
            r -= 1
            back.append(EQUAL if a[c] == b[r] else SUBSTITUTE)
    back += [DELETE] * c + [INSERT] * r  # one of the two is empty
    back.reverse()
    return back


def _align_single(a, b, limit: int, out: list[int]) -> None:
    """Append the forward step codes of the rapidfuzz alignment of a and b to `out`.

    `limit` is the distance bound rapidfuzz carries down its recursion: it decides, with the
    lengths, whether a sub-problem is split again.
    """
    n_pre, n_suf = _affixes(a, b)
    out += [EQUAL] * n_pre
    a = a[n_pre : len(a) - n_suf]
    b = b[n_pre : len(b) - n_suf]
    limit = min(limit, max(len(a), len(b)))
    band = min(len(a), 2 * limit + 1)
    if 2 * band * len(b) // 8 < _HIRSCHBERG_BYTES or len(a) < 65 or len(b) < 10:
        out += _int_backtrack(a, b) if a and b else [DELETE] * len(a) + [INSERT] * len(b)
    else:
        a_mid, b_mid, left, right = _hirschberg_split(a, b)
        _align_single(a[:a_mid], b[:b_mid], left, out)
        _align_single(a[a_mid:], b[b_mid:], right, out)
    out += [EQUAL] * n_suf


def _affixes(a, b) -> tuple[int, int]:
    """Lengths of the common prefix and (in the rest) the common suffix of two sequences."""
    n = min(len(a), len(b))
    prefix = 0
    while prefix < n and a[prefix] == b[prefix]:
        prefix += 1
    suffix = 0
    while suffix < n - prefix and a[-1 - suffix] == b[-1 - suffix]:
        suffix += 1
    return prefix, suffix


def _hirschberg_split(a, b) -> tuple[int, int, int, int]:
    """Where rapidfuzz splits a large problem: the middle of b, and the first a position >= 1
    minimising forward + backward distance. Returns (a_mid, b_mid, left_dist, right_dist)."""
    b_mid = len(b) // 2
    left = _int_last_row(a, b[:b_mid])  # left[i] = D(a[:i], b[:b_mid])
    right = _int_last_row(a[::-1], b[b_mid:][::-1])  # right[k] = D(a[len-k:], b[b_mid:])
    total = left[1:] + right[::-1][1:]  # split after a[i] for i = 0 .. len(a) - 1
    i = int(np.argmin(total))
    return i + 1, b_mid, int(left[i + 1]), int(right[len(a) - i - 1])
