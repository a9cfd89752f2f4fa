"""Word-timestamp parts without real weights: DTW against a literal transcription of
openai-whisper's loop, the median filter, punctuation merging, the segment rules, word
splitting, and the alignment heads' attention against transformers' on a tiny random model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from soundformers.models.whisper.alignment import (
    WordTiming,
    add_word_timestamps,
    alignment_heads,
    dtw,
    median_filter,
    merge_punctuations,
)
from soundformers.models.whisper.load import load_model

from .test_parity import _mel, _tokenizer


def _reference_dtw(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """openai-whisper `timing.py::dtw_cpu`, one cell at a time."""
    n, m = x.shape
    cost = np.full((n + 1, m + 1), np.inf, dtype=np.float32)
    trace = -np.ones((n + 1, m + 1), dtype=np.float32)
    cost[0, 0] = 0
    for j in range(1, m + 1):
        for i in range(1, n + 1):
            c0, c1, c2 = cost[i - 1, j - 1], cost[i - 1, j], cost[i, j - 1]
            if c0 < c1 and c0 < c2:
                c, t = c0, 0
            elif c1 < c0 and c1 < c2:
                c, t = c1, 1
            else:
                c, t = c2, 2
            cost[i, j] = x[i - 1, j - 1] + c
            trace[i, j] = t
    i, j = n, m
    trace[0, :], trace[:, 0] = 2, 1
    path = []
    while i > 0 or j > 0:
        path.append((i - 1, j - 1))
        t = trace[i, j]
        i, j = (i - 1, j - 1) if t == 0 else (i - 1, j) if t == 1 else (i, j - 1)
    rows, cols = np.array(path[::-1]).T
    return rows, cols


def test_dtw_matches_the_reference_loop_batched_with_ties():
    rng = np.random.default_rng(0)
    shapes = [(5, 9), (1, 4), (7, 7), (12, 30), (3, 1)]
    for make in (lambda s: rng.standard_normal(s), lambda s: rng.integers(0, 3, s).astype(float)):
        costs = [make(s) for s in shapes]  # integer costs: many ties, tests the tie order
        for cost, (rows, cols) in zip(costs, dtw(costs)):
            ref_rows, ref_cols = _reference_dtw(cost)
            np.testing.assert_array_equal(rows, ref_rows)
            np.testing.assert_array_equal(cols, ref_cols)
    assert dtw([]) == []


def test_median_filter_reflects_edges():
    x = torch.tensor([[5.0, 1.0, 9.0, 2.0, 7.0, 3.0]])
    padded = [9.0, 1.0, 5.0, 1.0, 9.0, 2.0, 7.0, 3.0, 7.0, 2.0]  # reflect without the edge
    expected = [float(np.median(padded[k : k + 5])) for k in range(6)]
    assert median_filter(x, 5)[0].tolist() == expected
    short = torch.tensor([1.0, 2.0])
    assert median_filter(short, 7) is short
    with pytest.raises(ValueError, match="odd"):
        median_filter(x, 4)


def _w(word, start, end, n=1):
    return WordTiming(word, tuple(range(n)), start, end)


def test_punctuation_joins_its_word():
    words = [_w(' "', 0, 0), _w("Hi", 0, 1), _w(",", 1, 1.2), _w(" you", 1.2, 2), _w(".", 2, 2.1)]
    merged = merge_punctuations(words)
    assert [(w.word, w.start, w.end, len(w.tokens)) for w in merged] == [
        (' "Hi,', 0, 1, 3),
        (" you.", 1.2, 2, 2),
    ]


def test_words_are_shared_among_segments_monotonic_and_inside():
    words = [_w(" a", 0.0, 0.3), _w(" b", 0.3, 0.6), _w(" c", 2.0, 2.4, n=2), _w(".", 2.4, 2.5)]
    timed, last = add_word_timestamps([(10.0, 10.7, 2), (11.9, 12.6, 3)], words, offset=10.0)
    (s0, e0, w0), (s1, e1, w1) = timed
    assert [w.word for w in w0] == [" a", " b"] and [w.word for w in w1] == [" c."]
    assert (s0, e0) == (10.0, 10.6) and w1[0].start == 12.0 and last == e1
    flat = [*w0, *w1]
    assert all(a.end <= b.start for a, b in zip(flat, flat[1:]))
    assert all(s <= w.start <= w.end <= e for s, e, ws in timed for w in ws)


def test_split_to_word_tokens():
    tok = _tokenizer(False)
    ids = tok.encode(" Hello, world! It's naïve.")
    words, groups = tok.split_to_word_tokens([*ids, tok.eot])
    assert words == [" Hello", ",", " world", "!", " It's", " naïve", ".", "<|endoftext|>"]
    assert [t for g in groups for t in g] == [*ids, tok.eot]
    # no spaces in Chinese: every complete character is a word
    zh = tok.encode("你好")
    assert tok.split_to_word_tokens(zh, "zh")[0] == ["你", "好"]


def test_alignment_heads_default_to_the_last_half_of_the_layers(tiny_english):
    config = load_model(tiny_english.folder).model.config  # 2 layers x 4 heads
    assert alignment_heads(config) == [(1, 0), (1, 1), (1, 2), (1, 3)]
    assert alignment_heads(config, [[0, 2]]) == [(0, 2)]


def test_alignment_scores_are_the_cross_attention_of_those_heads(tiny_english):
    model = load_model(tiny_english.folder).model
    mel = _mel(2)
    tokens = torch.randint(0, 50000, (2, 7), generator=torch.Generator().manual_seed(2))
    heads = [(1, 3), (0, 1), (1, 0)]
    reference = tiny_english.hf.from_pretrained(tiny_english.folder, attn_implementation="eager")
    with torch.inference_mode():
        hf = reference.eval()(
            input_features=mel, decoder_input_ids=tokens, output_attentions=True
        ).cross_attentions  # per layer (B, H, T, S), after the softmax
        enc = model.encode(mel)
        scores = model.decode_with_alignment(tokens, model.cross_kv(enc), heads)
    assert scores.shape == (2, 3, 7, 1500)
    expected = torch.stack([hf[layer][:, head] for layer, head in heads], dim=1)
    torch.testing.assert_close(scores.softmax(-1), expected, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="outside"):
        model.decode_with_alignment(tokens, model.cross_kv(enc), [(2, 0)])
