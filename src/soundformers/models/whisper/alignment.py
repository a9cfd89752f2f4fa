"""Word timestamps by dynamic time warping over cross-attention (openai-whisper's method).

After a window is decoded, its text is fed back through the decoder once, teacher-forced, and
the cross-attention of the checkpoint's *alignment heads* (a few heads whose attention follows
the speech) is kept. Per window: softmax over the audio frames that hold sound, standardize
each frame over the tokens, median filter along time, average the heads; then the cheapest
monotonic path through -attention (`dtw`) assigns every token a first frame. Tokens are
grouped into words by the tokenizer, and a word runs from its first token's frame to the
next word's.

Parts, each usable alone:
- `alignment_heads`: the heads to read (the checkpoint's, or the last half of the layers).
- `attention_matrix`: scores of one window -> the (tokens, frames) matrix to warp.
- `dtw`: batched, vectorised over anti-diagonals.
- `find_alignment`: decoded text tokens of a batch of windows -> raw word timings.
- `add_word_timestamps`: openai-whisper's clean-ups (punctuation merged into words, long
  words clamped at pauses and sentence ends) and the words of each segment.

Times are seconds; a cross-attention frame is 20 ms.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from .config import WhisperConfig
from .generate import WhisperForConditionalGeneration

__all__ = [
    "PREPEND_PUNCTUATIONS",
    "APPEND_PUNCTUATIONS",
    "WordTiming",
    "add_word_timestamps",
    "alignment_heads",
    "attention_matrix",
    "dtw",
    "find_alignment",
    "median_filter",
]

FRAMES_PER_SECOND = 50  # encoder positions (cross-attention frames) per second
MEDIAN_FILTER_WIDTH = 7
PREPEND_PUNCTUATIONS = "\"'“¿([{-"
APPEND_PUNCTUATIONS = "\"'.。,，!！?？:：”)]}、"
_SENTENCE_ENDS = ".。!！?？"


@dataclass(frozen=True)
class WordTiming:
    """One word: its text (with its leading space), token ids, and start/end in seconds."""

    word: str
    tokens: tuple[int, ...]
    start: float
    end: float


def alignment_heads(
    config: WhisperConfig, heads: Sequence[tuple[int, int]] = ()
) -> list[tuple[int, int]]:
    """The (layer, head) pairs to read: `heads` when given (the checkpoint's), else every head
    of the last half of the decoder layers (transformers' fallback)."""
    if heads:
        return [(int(layer), int(head)) for layer, head in heads]
    first = config.n_text_layer // 2
    return [(la, h) for la in range(first, config.n_text_layer) for h in range(config.n_text_head)]


def median_filter(x: torch.Tensor, width: int) -> torch.Tensor:
    """Median over a sliding window of odd `width` along the last axis, edges reflected.

    Args:
        x: (..., n) float.

    Returns:
        (..., n); `x` itself when n is too short to reflect.
    """
    if width % 2 != 1:
        raise ValueError(f"median filter width must be odd, got {width}")
    pad = width // 2
    if x.shape[-1] <= pad:
        return x
    flat = x.reshape(-1, 1, x.shape[-1])
    padded = F.pad(flat, (pad, pad), mode="reflect")  # (N, 1, n + 2 pad)
    return padded.unfold(-1, width, 1).median(dim=-1).values.reshape(x.shape)


def attention_matrix(
    scores: torch.Tensor, n_frames: int, median_width: int = MEDIAN_FILTER_WIDTH
) -> torch.Tensor:
    """One window's alignment-head scores -> the matrix that DTW follows.

    Args:
        scores: (heads, T, S) pre-softmax cross-attention scores of the whole teacher-forced
            sequence (start sequence, text, `<|endoftext|>`), as `Whisper.decode_with_alignment`.
        n_frames: audio frames (20 ms each) that hold sound; the rest is padding.
        median_width: median filter width along time.

    Returns:
        (T, n_frames) float32: softmax over the frames, standardized over the tokens per head
        and frame, median filtered over time, averaged over the heads.
    """
    weights = scores[:, :, :n_frames].float().softmax(dim=-1)
    std, mean = torch.std_mean(weights, dim=-2, keepdim=True, unbiased=False)
    weights = median_filter((weights - mean) / std, median_width)
    return weights.mean(dim=0)


def dtw(costs: Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Cheapest monotonic paths through cost matrices (openai-whisper's DTW and tie rules).

    Each cell (i, j) costs `cost[i, j]` plus the cheapest of its diagonal, upper and left
    neighbours (preferring, on ties, left over upper over diagonal, as openai-whisper does).
    The matrices of a batch are padded and filled together, one anti-diagonal at a time: a
    cell depends on the two previous anti-diagonals only, so each is one vector operation
    over the batch; stored skewed (diagonal-major), every read is a contiguous slice.

    Args:
        costs: matrices of shape (n_i, m_i), any float dtype.

    Returns:
        Per matrix, (rows, cols) int arrays of equal length: the path from (0, 0) to
        (n_i - 1, m_i - 1), each step moving right, down, or both.
    """
    if not costs:
        return []
    b = len(costs)
    n = max(c.shape[0] for c in costs)
    m = max(c.shape[1] for c in costs)
    x = np.zeros((b, n, m), dtype=np.float64)
    for k, c in enumerate(costs):
        x[k, : c.shape[0], : c.shape[1]] = c
    # skewed layout: cell (i, j) of the (n + 1, m + 1) table is at [i + j, i]
    diag_i = np.arange(n + 1)
    total = np.full((b, n + m + 1, n + 1), np.inf, dtype=np.float32)
    trace = np.zeros((b, n + m + 1, n + 1), dtype=np.int8)  # 0 diagonal, 1 up, 2 left
    total[:, 0, 0] = 0.0
    skewed = np.zeros((b, n + m + 1, n + 1), dtype=np.float64)
    d_idx, i_idx = np.meshgrid(np.arange(n + m + 1), diag_i, indexing="ij")
    j_idx = d_idx - i_idx
    inside = (i_idx >= 1) & (j_idx >= 1) & (j_idx <= m)
    skewed[:, inside] = x[:, i_idx[inside] - 1, j_idx[inside] - 1]
    for d in range(2, n + m + 1):
        lo, hi = max(1, d - m), min(n, d - 1)
        diagonal = total[:, d - 2, lo - 1 : hi]  # (i - 1, j - 1)
        up = total[:, d - 1, lo - 1 : hi]  # (i - 1, j)
        left = total[:, d - 1, lo : hi + 1]  # (i, j - 1)
        take_diagonal = (diagonal < up) & (diagonal < left)
        take_up = ~take_diagonal & (up < diagonal) & (up < left)
        best = np.where(take_diagonal, diagonal, np.where(take_up, up, left))
        total[:, d, lo : hi + 1] = skewed[:, d, lo : hi + 1] + best
        trace[:, d, lo : hi + 1] = np.where(take_diagonal, 0, np.where(take_up, 1, 2))
    return [_backtrace(trace[k], *c.shape) for k, c in enumerate(costs)]


def _backtrace(trace: np.ndarray, n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Follow the skewed `trace` back from cell (n, m) to (0, 0)."""
    rows, cols = [], []
    i, j = n, m
    moves = trace.tolist()  # Python lists: scalar reads 10x faster than numpy indexing
    while i > 0 and j > 0:
        rows.append(i - 1)
        cols.append(j - 1)
        move = moves[i + j][i]
        if move == 0:
            i, j = i - 1, j - 1
        elif move == 1:
            i -= 1
        else:
            j -= 1
    if i or j:  # unreachable from (0, 0): cannot happen when n, m >= 1
        raise RuntimeError(f"DTW path stopped at ({i}, {j})")
    return np.array(rows[::-1], dtype=np.int64), np.array(cols[::-1], dtype=np.int64)


@torch.inference_mode()
def find_alignment(
    whisper: WhisperForConditionalGeneration,
    encoder_out: torch.Tensor,
    text_tokens: Sequence[Sequence[int]],
    n_frames: Sequence[int],
    *,
    languages: Sequence[str | None] | None = None,
    task: str = "transcribe",
    median_width: int = MEDIAN_FILTER_WIDTH,
) -> list[list[WordTiming]]:
    """Raw word timings of a batch of windows, from one teacher-forced decoder pass.

    Args:
        whisper: the model with its tokenizer and alignment heads.
        encoder_out: (B, 1500, D) encoder output of the windows.
        text_tokens: B lists of the text tokens decoded in each window (timestamps and
            special tokens are dropped here).
        n_frames: B counts of log-mel frames (100 per second) holding audio in each window.
        languages: B language codes (multilingual models; None for English-only).
        task: "transcribe" or "translate".
        median_width: median filter width along time.

    Returns:
        Per window, its words with times in seconds from the window start, unmerged
        punctuation included; [] for a window without text.
    """
    model, tokenizer = whisper.model, whisper.tokenizer
    b = encoder_out.shape[0]
    if len(text_tokens) != b or len(n_frames) != b:
        raise ValueError(
            f"find_alignment got {b} windows, {len(text_tokens)} token lists and "
            f"{len(n_frames)} frame counts; give one of each per window"
        )
    languages = [None] * b if languages is None else list(languages)
    heads = alignment_heads(model.config, whisper.generation_config.alignment_heads)
    texts = [[t for t in tokens if t < tokenizer.eot] for tokens in text_tokens]
    starts = [
        [*tokenizer.sot_sequence(lang, task), tokenizer.no_timestamps]
        if tokenizer.multilingual
        else [*tokenizer.sot_sequence(), tokenizer.no_timestamps]
        for lang in languages
    ]
    rows = [start + text + [tokenizer.eot] for start, text in zip(starts, texts)]
    width = max(len(r) for r in rows)
    batch = torch.full((b, width), tokenizer.eot, dtype=torch.long)
    for k, r in enumerate(rows):  # right padding: the causal pass never looks ahead
        batch[k, : len(r)] = torch.tensor(r)
    keep = [k for k in range(b) if texts[k]]
    if not keep:
        return [[] for _ in range(b)]
    enc = encoder_out[keep]
    cross_kv = model.cross_kv(enc, n_layers=max(layer for layer, _ in heads) + 1)
    scores = model.decode_with_alignment(batch[keep].to(enc.device), cross_kv, heads).cpu()
    matrices = []
    for s, k in zip(scores, keep):
        frames = max(1, min(n_frames[k] // 2, s.shape[-1]))
        matrix = attention_matrix(s[:, : len(rows[k])], frames, median_width)
        # rows that predict the text tokens and <|endoftext|>: from <|notimestamps|> on
        matrices.append(-matrix[len(starts[k]) - 1 : -1].double().numpy())
    paths = dtw(matrices)
    out: list[list[WordTiming]] = [[] for _ in range(b)]
    for (text_index, time_index), k in zip(paths, keep):
        out[k] = _words(tokenizer, texts[k], text_index, time_index, languages[k])
    return out


def _words(tokenizer, text, text_index, time_index, language) -> list[WordTiming]:
    """Word start/end times from a DTW path: a token starts where the path enters its row."""
    words, word_tokens = tokenizer.split_to_word_tokens(text + [tokenizer.eot], language)
    if len(word_tokens) <= 1:
        return []
    enters = np.diff(text_index, prepend=-1).astype(bool)
    token_starts = time_index[enters] / FRAMES_PER_SECOND  # (len(text) + 1,)
    bounds = np.cumsum([0] + [len(t) for t in word_tokens[:-1]])
    return [
        WordTiming(word, tuple(tokens), float(token_starts[a]), float(token_starts[z]))
        for word, tokens, a, z in zip(words[:-1], word_tokens[:-1], bounds[:-1], bounds[1:])
    ]


def merge_punctuations(
    words: list[WordTiming],
    prepended: str = PREPEND_PUNCTUATIONS,
    appended: str = APPEND_PUNCTUATIONS,
) -> list[WordTiming]:
    """Attach opening punctuation to the next word and closing punctuation to the previous
    one (openai-whisper's `merge_punctuations`); the merged word keeps the word's times."""
    words = list(words)
    # right to left: an opening mark (with its space) joins the word after it
    k = len(words) - 2
    while k >= 0:
        w = words[k]
        if w.word.startswith(" ") and w.word.strip() in prepended and k + 1 < len(words):
            nxt = words[k + 1]
            words[k + 1] = replace(nxt, word=w.word + nxt.word, tokens=w.tokens + nxt.tokens)
            del words[k]
        k -= 1
    # left to right: a closing mark joins the word before it
    merged: list[WordTiming] = []
    for w in words:
        if merged and not merged[-1].word.endswith(" ") and w.word in appended:
            prev = merged[-1]
            merged[-1] = replace(prev, word=prev.word + w.word, tokens=prev.tokens + w.tokens)
        else:
            merged.append(w)
    return merged


def add_word_timestamps(
    segments: Sequence[tuple[float, float, int]],
    words: Sequence[WordTiming],
    offset: float,
    last_speech_end: float = 0.0,
    *,
    prepended: str = PREPEND_PUNCTUATIONS,
    appended: str = APPEND_PUNCTUATIONS,
) -> tuple[list[tuple[float, float, tuple[WordTiming, ...]]], float]:
    """Share one window's words among its segments, with openai-whisper's clean-ups.

    Words longer than twice the median word duration are clamped next to sentence ends, and
    the first words after a long pause; punctuation joins its word; a segment whose first or
    last word sticks out by more than 0.5 s keeps its own time, otherwise it takes its words'
    times. Finally words are made monotonic and each segment spans its words.

    Args:
        segments: the window's segments in order, each (start, end, n_text_tokens): times in
            seconds from the recording start, and how many of the text tokens given to
            `find_alignment` (in order) it holds.
        words: the window's raw words from `find_alignment` (window-relative seconds).
        offset: the window's start in seconds.
        last_speech_end: end of the previous speech (seconds), for the pause rule.

    Returns:
        ([(start, end, words) per segment], end of the last speech).
    """
    words = [replace(w, start=w.start + offset, end=w.end + offset) for w in words]
    durations = np.array([w.end - w.start for w in words])
    durations = durations[durations.nonzero()]
    median = min(0.7, float(np.median(durations))) if len(durations) else 0.0
    longest = 2 * median
    if len(durations):
        for k in range(1, len(words)):
            w = words[k]
            if w.end - w.start > longest:
                if w.word in _SENTENCE_ENDS:
                    words[k] = replace(w, end=w.start + longest)
                elif words[k - 1].word in _SENTENCE_ENDS:
                    words[k] = replace(w, start=w.end - longest)
    words = merge_punctuations(words, prepended, appended)

    out = []
    position = 0
    for start, end, n_text in segments:
        mine: list[WordTiming] = []
        taken = 0
        while position < len(words) and taken < n_text:
            if words[position].word:
                mine.append(words[position])
            taken += len(words[position].tokens)
            position += 1
        if mine:
            mine, start, end = _clamp_segment(mine, start, end, median, longest, last_speech_end)
            last_speech_end = end
        out.append((start, end, tuple(mine)))
    return _monotonic(out), last_speech_end


def _clamp_segment(words, start, end, median, longest, last_speech_end):
    """openai-whisper's per-segment rules for the first and last word."""
    first = words[0]
    if first.end - last_speech_end > median * 4 and (
        first.end - first.start > longest
        or (len(words) > 1 and words[1].end - first.start > longest * 2)
    ):
        if len(words) > 1 and words[1].end - words[1].start > longest:
            boundary = max(words[1].end / 2, words[1].end - longest)
            first = replace(first, end=boundary)
            words[1] = replace(words[1], start=boundary)
        first = replace(first, start=max(0.0, first.end - longest))
    if start < first.end and start - 0.5 > first.start:
        first = replace(first, start=max(0.0, min(first.end - median, start)))
    else:
        start = first.start
    words[0] = first
    last = words[-1]
    if end > last.start and end + 0.5 < last.end:
        words[-1] = replace(last, end=max(last.start + median, end))
    else:
        end = last.end
    return words, start, end


def _monotonic(segments):
    """Words never start before the previous word ends; a segment spans its words."""
    out, previous = [], 0.0
    for start, end, words in segments:
        fixed = []
        for w in words:
            s = max(w.start, previous)
            e = max(w.end, s)
            fixed.append(replace(w, start=s, end=e) if (s, e) != (w.start, w.end) else w)
            previous = e
        if fixed:
            start, end = min(start, fixed[0].start), max(end, fixed[-1].end)
        out.append((start, end, tuple(fixed)))
    return out
