"""Long-form parts that need no model: the segment builder and the silence cut planner."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from soundformers.models.whisper.generate import DecodingResult
from soundformers.models.whisper.transcribe import (
    Segment,
    plan_cuts,
    refine_segments,
    window_segments,
)

TS = 1000  # id of <|0.00|> in these synthetic token streams; text tokens are < TS


def result(tokens):
    return DecodingResult(tuple(tokens), "", "en", -0.2, 0.01, 0.0, 1.5)


def decode(ids):
    return "".join(f" w{i}" for i in ids)


def ts(seconds):
    return TS + round(seconds / 0.02)


def test_pairs_give_segments_and_seek_stops_at_the_last_complete_one():
    tokens = [ts(0), 1, 2, ts(2.0), ts(2.0), 3, ts(4.5), ts(4.5), 4]  # last segment unfinished
    segments, consumed = window_segments(result(tokens), TS, decode, seek=1000, window_frames=3000)
    assert [(s.start, s.end, s.text) for s in segments] == [
        (10.0, 12.0, " w1 w2"),
        (12.0, 14.5, " w3"),
    ]
    assert consumed == 450  # frames up to <|4.50|>: the next window starts there


def test_single_timestamp_ending_consumes_the_whole_window():
    tokens = [ts(0), 1, ts(3.0), ts(3.0), 2, ts(5.0)]
    segments, consumed = window_segments(result(tokens), TS, decode, seek=0, window_frames=2500)
    assert [(s.start, s.end) for s in segments] == [(0.0, 3.0), (3.0, 5.0)]
    assert consumed == 2500


def test_no_pairs_is_one_segment_to_the_last_timestamp_or_window_end():
    segments, consumed = window_segments(result([ts(0), 1, 2, ts(6.4)]), TS, decode, 0, 3000)
    assert [(s.start, s.end, s.text) for s in segments] == [(0.0, 6.4, " w1 w2")]
    assert consumed == 3000
    segments, _ = window_segments(result([1, 2]), TS, decode, 0, 1200)
    assert (segments[0].start, segments[0].end) == (0.0, 12.0)


def test_empty_and_instant_segments_are_dropped():
    tokens = [ts(0), ts(1.0), ts(1.0), 5, ts(2.0)]  # first segment has no text
    segments, _ = window_segments(result(tokens), TS, decode, 0, 3000)
    assert [s.text for s in segments] == [" w5"]


def speech_with_pauses(seed, n_pauses, rate=16000):
    """Noise bursts (speech stand-ins) separated by exact-zero pauses; returns audio, pauses."""
    rng = np.random.default_rng(seed)
    pieces, pauses, position = [], [], 0
    for _ in range(n_pauses):
        burst = (rng.standard_normal(int(rng.uniform(1, 3.5) * rate)) * 0.1).astype(np.float32)
        gap = int(rng.uniform(0.3, 1.0) * rate)
        pieces += [burst, np.zeros(gap, np.float32)]
        position += len(burst)
        pauses.append((position, position + gap))
        position += gap
    return np.concatenate(pieces), pauses


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 30), max_s=st.sampled_from([10.0, 20.0, 30.0]))
def test_cuts_cover_the_audio_within_the_limit_and_fall_in_pauses(seed, n, max_s):
    audio, pauses = speech_with_pauses(seed, n)
    cuts = plan_cuts(audio, max_seconds=max_s)
    assert cuts[0][0] == 0 and cuts[-1][1] == len(audio)
    assert all(a[1] == b[0] for a, b in zip(cuts, cuts[1:]))
    assert all(0 < end - start <= max_s * 16000 for start, end in cuts)
    for _, cut in cuts[:-1]:  # bursts are at most 3.5 s: every search window holds a pause
        assert any(start <= cut < end for start, end in pauses), cut


def test_short_audio_is_one_piece():
    assert plan_cuts(np.zeros(16000 * 5, np.float32)) == [(0, 80000)]


def test_a_cut_leaves_lead_seconds_of_the_pause_before_the_next_speech():
    """Whisper dates a window's first segment at 0.00 however much silence opens it, so a
    piece starts `lead_seconds` (plus the 50 ms of energy smoothing) before its speech, not
    where the pause begins."""
    rng = np.random.default_rng(0)
    rate = 16000

    def burst():
        return (rng.standard_normal(4 * rate) * 0.1).astype(np.float32)

    pause = np.zeros(int(1.5 * rate), np.float32)
    audio = np.concatenate([burst(), pause, burst(), pause, burst()])
    onsets = [int(5.5 * rate), int(11 * rate)]
    for lead in (0.2, 0.4):
        cuts = plan_cuts(audio, max_seconds=8.0, lead_seconds=lead)
        assert len(cuts) == 3
        for (_, cut), onset in zip(cuts, onsets):
            assert lead <= (onset - cut) / rate <= lead + 0.07, (lead, cut / rate)


class _Chars:
    """A stand-in tokenizer: token i is the i-th character of `text`."""

    def __init__(self, text: str) -> None:
        self.text = text

    def decode(self, ids) -> str:
        return "".join(self.text[i] for i in ids)


def _segment(start: float, end: float, tokens) -> Segment:
    return Segment(start, end, "", tuple(tokens), -0.2, 0.01, 0.0, 1.2)


def test_refine_segments_trims_silence_and_splits_at_paused_sentence_ends():
    text = " One. Two. Three"
    chars, ts = _Chars(text), 1000  # token ids >= 1000 are timestamps
    silent = np.ones(600, dtype=bool)
    for a, b in ((120, 180), (210, 260), (300, 380)):  # speech frames: 1.2-1.8, 2.1-2.6, 3.0-3.8 s
        silent[a:b] = False
    whole = _segment(1.0, 4.0, [ts, *range(len(text)), ts + 150])
    parts = refine_segments([whole], silent, chars.decode, ts)
    assert [(p.start, p.end, p.text) for p in parts] == [
        (1.2, 1.8, " One."), (2.1, 2.6, " Two."), (3.0, 3.8, " Three")
    ]  # fmt: skip
    assert "".join(p.text for p in parts) == text and parts[0].avg_logprob == -0.2
    # one pause for two sentence ends: trimmed only
    silent[180:210] = False
    (kept,) = refine_segments([whole], silent, chars.decode, ts)
    assert (kept.start, kept.end, kept.tokens) == (1.2, 3.8, whole.tokens)
    # a few frames of the next sentence inside the span, after a pause, are left out
    silent[180:210] = True
    silent[400:404] = False
    late = replace(whole, end=4.04)
    assert [(p.start, p.end) for p in refine_segments([late], silent, chars.decode, ts)] == [
        (1.2, 1.8), (2.1, 2.6), (3.0, 3.8)
    ]  # fmt: skip
    # no silence at all: untouched
    assert refine_segments([whole], np.zeros(600, dtype=bool), chars.decode, ts) == [whole]
