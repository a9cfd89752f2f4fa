"""Long-form transcription with Whisper, in three small parts.

- `window_segments` (segment builder): one decoded 30 s window -> timed segments and how far
  the window's text reaches (where the next window starts).
- `transcribe_sequential` (the openai-whisper algorithm): each recording is read window after
  window, each window starting where the previous one's last complete segment ended and
  conditioned on the text so far. Windows of different recordings are decoded together.
- `transcribe_batched`: each recording is cut at its quietest moments into pieces of at most
  `chunk_length_s` (`plan_cuts`, the seek planner), and all pieces are decoded in parallel,
  without conditioning.

In both, the segments are then moved out of silence and split at paused sentence ends
(`refine_segments`): Whisper's own segment times are coarse. The text does not change.

Both can add word timestamps (`word_timestamps=True`, see `alignment.py`): one extra
teacher-forced decoder pass per batch of windows; the transcript itself does not change.

Audio shorter than one window is one window in both modes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ...audio.features import whisper_log_mel
from ...audio.silence import frame_energy, pauses, silent_frames
from .alignment import WordTiming, add_word_timestamps, find_alignment
from .generate import (
    DecodingOptions,
    DecodingResult,
    FallbackOptions,
    WhisperForConditionalGeneration,
)

SAMPLING_RATE = 16000
HOP_LENGTH = 160
FRAMES_PER_SECOND = SAMPLING_RATE // HOP_LENGTH  # 100 mel frames per second
WINDOW_FRAMES = 3000  # one 30 s window
WINDOW_SAMPLES = WINDOW_FRAMES * HOP_LENGTH
FRAMES_PER_TIMESTAMP = 2  # a timestamp token step is 0.02 s
DEFAULT_FALLBACK = FallbackOptions()  # frozen: safe to share


@dataclass(frozen=True)
class Segment:
    """A stretch of transcript with its times in seconds from the start of the recording."""

    start: float
    end: float
    text: str
    tokens: tuple[int, ...]
    avg_logprob: float
    no_speech_prob: float
    temperature: float
    compression_ratio: float
    words: tuple[WordTiming, ...] = ()  # with word_timestamps=True; times from the start


@dataclass(frozen=True)
class Transcription:
    """The transcript of one recording: its text, segments and (detected) language."""

    text: str
    segments: tuple[Segment, ...]
    language: str | None


# --------------------------------------------------------------------------------------------
# Segment builder


def window_segments(
    result: DecodingResult, timestamp_begin: int, decode, seek: int, window_frames: int
) -> tuple[list[Segment], int]:
    """Cut one window's tokens into segments (openai-whisper's rules).

    Args:
        result: the window's decoding (tokens after the prompt, no <|endoftext|>).
        timestamp_begin: id of <|0.00|>.
        decode: tokens -> text (the tokenizer's `decode`).
        seek: the window's first frame in the recording (100 frames per second).
        window_frames: frames of audio in the window (3000, or fewer at the end).

    Returns:
        (segments, frames): the segments with absolute times, and how many frames the window
        consumed: up to its last complete segment's closing timestamp, or the whole window when
        the text ends with a single timestamp or has no timestamp pair.
    """
    tokens = list(result.tokens)
    offset = seek / FRAMES_PER_SECOND
    is_ts = [t >= timestamp_begin for t in tokens]
    single_ending = len(tokens) >= 2 and not is_ts[-2] and is_ts[-1]
    pairs = [i for i in range(1, len(tokens)) if is_ts[i] and is_ts[i - 1]]

    def seconds(token: int) -> float:
        return offset + (token - timestamp_begin) * FRAMES_PER_TIMESTAMP / FRAMES_PER_SECOND

    def segment(start: float, end: float, piece: list[int]) -> Segment:
        return Segment(
            start, end, decode([t for t in piece if t < timestamp_begin]), tuple(piece),
            result.avg_logprob, result.no_speech_prob, result.temperature,
            result.compression_ratio,
        )  # fmt: skip

    segments: list[Segment] = []
    if pairs:
        cuts = pairs + ([len(tokens)] if single_ending else [])
        last = 0
        for cut in cuts:
            piece = tokens[last:cut]
            segments.append(segment(seconds(piece[0]), seconds(piece[-1]), piece))
            last = cut
        consumed = (
            window_frames
            if single_ending
            else (tokens[last - 1] - timestamp_begin) * FRAMES_PER_TIMESTAMP
        )
    else:
        duration = window_frames / FRAMES_PER_SECOND
        stamps = [t for t in tokens if t >= timestamp_begin]
        if stamps and stamps[-1] != timestamp_begin:
            duration = (stamps[-1] - timestamp_begin) * FRAMES_PER_TIMESTAMP / FRAMES_PER_SECOND
        segments.append(segment(offset, offset + duration, tokens))
        consumed = window_frames
    kept = [s for s in segments if s.end > s.start and s.text.strip()]
    return kept, max(1, consumed)


def _is_silence(result: DecodingResult, fallback: FallbackOptions | None) -> bool:
    if fallback is None or fallback.no_speech_threshold is None:
        return False
    if result.no_speech_prob <= fallback.no_speech_threshold:
        return False
    return fallback.logprob_threshold is None or result.avg_logprob < fallback.logprob_threshold


def _generator(
    whisper: WhisperForConditionalGeneration, seed: int | None
) -> torch.Generator | None:
    """A random generator on the model's device for temperature fallback, or None."""
    if seed is None:
        return None
    return torch.Generator(device=whisper.model.device).manual_seed(seed)


def _window(mel: torch.Tensor, seek: int) -> torch.Tensor:
    """Frames [seek, seek + 3000) of a (n_mels, frames) log-mel, zero-padded to 3000."""
    piece = mel[:, seek : seek + WINDOW_FRAMES]
    if piece.shape[-1] < WINDOW_FRAMES:
        piece = torch.nn.functional.pad(piece, (0, WINDOW_FRAMES - piece.shape[-1]))
    return piece


def _full_mel(audio: np.ndarray, n_mels: int) -> torch.Tensor:
    """Log-mel of a whole recording followed by 30 s of silence (openai-whisper's framing),
    without a padded copy of the recording."""
    return whisper_log_mel(audio, n_mels, padding=None, trailing_zeros=WINDOW_SAMPLES)


# --------------------------------------------------------------------------------------------
# Sequential: window after window, conditioned on the previous text


@dataclass
class _Progress:
    """Where one recording's sequential transcription stands."""

    mel: torch.Tensor  # (n_mels, frames + 3000)
    content_frames: int
    seek: int = 0
    tokens: list[int] = field(default_factory=list)  # tokens of the segments so far (prompt)
    segments: list[Segment] = field(default_factory=list)
    prompt_start: int = 0  # tokens before this index are not used as prompt any more
    language: str | None = None
    last_speech_end: float = 0.0  # seconds (word timestamps' pause rule)


def transcribe_sequential(
    whisper: WhisperForConditionalGeneration,
    audios: Sequence[np.ndarray],
    options: DecodingOptions | None = None,
    fallback: FallbackOptions | None = DEFAULT_FALLBACK,
    *,
    condition_on_previous_text: bool = True,
    initial_prompt: str | None = None,
    word_timestamps: bool = False,
    seed: int | None = 0,
) -> list[Transcription]:
    """Transcribe recordings of any length, window after window (openai-whisper's algorithm).

    The current windows of all unfinished recordings are decoded as one batch, each with its
    own previous-text prompt.

    Args:
        whisper: the model with its tokenizer.
        audios: mono float32 audio at 16 kHz, each of shape (time,).
        options: decoding options for every window (language, task, ...). Timestamps are
            predicted, since they tell where the next window starts, except that with
            `without_timestamps=True` a recording that fits one 30 s window is decoded as
            text only (as transformers' pipeline does without `return_timestamps`).
        fallback: temperature fallback and no-speech rules (None: one pass, no silence skip).
        condition_on_previous_text: prompt each window with the text decoded so far (reset
            after a window decoded at temperature > 0.5).
        initial_prompt: text that precedes the first window's prompt.
        word_timestamps: give each segment its words with start/end times.
        seed: seeds the sampling of windows that fall back to temperature > 0, so that a run is
            repeatable (None: torch's global random state).

    Returns:
        One Transcription per recording, in order.
    """
    text_only = options is not None and options.without_timestamps
    options = replace(options or DecodingOptions(), without_timestamps=False, prompt=None)
    step = _SequentialStep(
        whisper, fallback, _generator(whisper, seed), word_timestamps, condition_on_previous_text,
        whisper.tokenizer.encode(" " + initial_prompt.strip()) if initial_prompt else [],
    )  # fmt: skip
    states = [
        _Progress(_full_mel(audio, whisper.n_mels), len(audio) // HOP_LENGTH) for audio in audios
    ]
    while active := [s for s in states if s.seek < s.content_frames]:
        # a recording that fits one window needs no timestamps to find the next window
        single, rest = [], []
        for s in active:
            (single if text_only and s.content_frames <= WINDOW_FRAMES else rest).append(s)
        if single:
            step(single, replace(options, without_timestamps=True))
        if rest:
            step(rest, options)
    decode, timestamp_begin = whisper.tokenizer.decode, whisper.tokenizer.timestamp_begin
    return [  # once decoded: the prompts above followed Whisper's own segments
        _transcription(
            refine_segments(s.segments, _silence(audio), decode, timestamp_begin), s.language
        )
        for s, audio in zip(states, audios)
    ]


@dataclass(frozen=True)
class _SequentialStep:
    """Decode the current window of several recordings as one batch and advance each."""

    whisper: WhisperForConditionalGeneration
    fallback: FallbackOptions | None
    generator: torch.Generator | None
    word_timestamps: bool
    condition: bool
    first_prompt: list[int]

    def __call__(self, active: list[_Progress], options: DecodingOptions) -> None:
        whisper, tokenizer, fallback = self.whisper, self.whisper.tokenizer, self.fallback
        # the current window of every recording, each with its own prompt: one batch
        prompts = [self.first_prompt + s.tokens[s.prompt_start :] or None for s in active]
        encoder_out = whisper.encode(torch.stack([_window(s.mel, s.seek) for s in active]))
        results = whisper.generate(
            options=options, fallback=fallback, encoder_out=encoder_out, prompts=prompts,
            generator=self.generator,
        )  # fmt: skip
        frames = [min(WINDOW_FRAMES, s.content_frames - s.seek) for s in active]
        found = [
            ([], None) if _is_silence(r, fallback) else window_segments(
                r, tokenizer.timestamp_begin, tokenizer.decode, s.seek, n
            )
            for s, r, n in zip(active, results, frames)
        ]  # fmt: skip
        if self.word_timestamps:
            windows = [
                (f[0], s.seek, n, r.language) for f, s, r, n in zip(found, active, results, frames)
            ]
            timed, ends = _add_words(whisper, encoder_out, windows, options.task,
                                     [s.last_speech_end for s in active])  # fmt: skip
            found = [(t, f[1]) for t, f in zip(timed, found)]
            for state, end in zip(active, ends):
                state.last_speech_end = end
        for state, result, (segments, consumed), n in zip(active, results, found, frames):
            state.language = state.language or result.language
            _advance(state, result, segments, consumed, n, self.condition)


def _add_words(
    whisper: WhisperForConditionalGeneration,
    encoder_out: torch.Tensor,
    windows: list[tuple[list[Segment], int, int, str | None]],
    task: str,
    last_ends: list[float],
) -> tuple[list[list[Segment]], list[float]]:
    """Word timestamps for the segments of a batch of windows, one alignment pass.

    Args:
        encoder_out: (B, 1500, D) the windows' encoder output.
        windows: per window: its segments, first frame, frames of audio and language.
        task: the decoding task.
        last_ends: per window, where the recording's previous speech ended (seconds).

    Returns:
        (the segments with their words, the new end of speech per window).
    """
    eot = whisper.tokenizer.eot
    texts = [[[t for t in s.tokens if t < eot] for s in segments] for segments, *_ in windows]
    raw = find_alignment(
        whisper, encoder_out, [[t for seg in text for t in seg] for text in texts],
        [n for _, _, n, _ in windows], languages=[lang for *_, lang in windows], task=task,
    )  # fmt: skip
    out, ends = [], []
    for (segments, seek, _, _), text, words, last in zip(windows, texts, raw, last_ends):
        spans = [(s.start, s.end, len(t)) for s, t in zip(segments, text)]
        timed, last = add_word_timestamps(spans, words, seek / FRAMES_PER_SECOND, last)
        out.append([replace(s, start=a, end=b, words=w) for s, (a, b, w) in zip(segments, timed)])
        ends.append(last)
    return out, ends


def _advance(
    state: _Progress,
    result: DecodingResult,
    segments: list[Segment],
    consumed: int | None,
    window_frames: int,
    condition: bool,
) -> None:
    """Add one window's segments to a recording's progress and move its seek.

    `segments` and `consumed` are from `window_segments`; None for a window skipped as silence.
    """
    if consumed is None:
        state.seek += window_frames
        return
    end_time = (state.seek + window_frames) / FRAMES_PER_SECOND
    for s in segments:  # a closing timestamp past the audio is clipped to its end
        state.segments.append(replace(s, end=min(s.end, end_time)) if s.end > end_time else s)
        # the prompt keeps the timestamp tokens, as openai-whisper and faster-whisper do: a
        # prompt of text alone makes the model stop cutting segments at sentence ends
        state.tokens.extend(s.tokens)
    state.seek += min(consumed, window_frames) if consumed > 0 else window_frames
    if not condition or result.temperature > 0.5:
        state.prompt_start = len(state.tokens)


def _transcription(segments: list[Segment], language: str | None) -> Transcription:
    """The segments' text joined, as openai-whisper reports a transcript."""
    return Transcription("".join(s.text for s in segments), tuple(segments), language)


# --------------------------------------------------------------------------------------------
# Batched: cut at silences, decode all pieces in parallel


def plan_cuts(
    audio: np.ndarray,
    *,
    max_seconds: float = 30.0,
    min_seconds: float | None = None,
    lead_seconds: float = 0.4,
    sampling_rate: int = SAMPLING_RATE,
) -> list[tuple[int, int]]:
    """Cut a recording into pieces of at most `max_seconds`, each cut at the quietest moment.

    Each cut is placed in [start + min_seconds, start + max_seconds] in the pause around the
    10 ms frame of lowest energy (averaged over 100 ms), `lead_seconds` before that pause ends,
    so speech is split in its pauses where it has any and each piece opens shortly before its
    speech (Whisper dates a window's first segment at 0.00 whatever silence precedes it).

    Args:
        audio: mono samples, shape (time,).
        max_seconds: longest piece.
        min_seconds: shortest piece before the last (default: half of `max_seconds`).
        lead_seconds: silence kept before the speech that follows a cut (less if the pause
            is shorter).
        sampling_rate: rate of `audio` in Hz.

    Returns:
        (start, end) sample indices, end exclusive, covering the audio in order.
    """
    hop = sampling_rate // 100
    max_len = int(max_seconds * sampling_rate)
    min_len = int((min_seconds if min_seconds is not None else max_seconds / 2) * sampling_rate)
    n = len(audio)
    if n <= max_len:
        return [(0, n)]
    energy = frame_energy(audio, hop)
    smoothed = np.convolve(energy, np.ones(10) / 10, mode="same")
    cuts = []
    start = 0
    lead = round(lead_seconds * 100)  # in 10 ms frames
    while n - start > max_len:
        lo, hi = (start + min_len) // hop, (start + max_len) // hop
        quietest = lo + int(np.argmin(smoothed[lo:hi]))
        # cut near the end of that pause, not at its start
        quiet = smoothed[quietest] * 2 + 1e-10
        end = quietest
        while end + 1 < hi and smoothed[end + 1] <= quiet:
            end += 1
        cut = max(quietest, end - lead) * hop + hop // 2
        cuts.append((start, cut))
        start = cut
    cuts.append((start, n))
    return cuts


_SENTENCE_ENDS = (".", "?", "!")
_EDGE_FRAMES = 10  # 0.1 s


def _silence(audio: np.ndarray) -> np.ndarray:
    """(frames,) bool: the recording's silent 10 ms frames (`audio.silence`)."""
    return silent_frames(frame_energy(audio, HOP_LENGTH))


def refine_segments(
    segments: Sequence[Segment],
    silent: np.ndarray,
    decode,
    timestamp_begin: int,
    min_pause_s: float = 0.2,
) -> list[Segment]:
    """Move segment boundaries out of silence, and split segments at paused sentence ends.

    Whisper dates segments coarsely: a segment often opens where the previous one closed,
    before the pause that separates them, and two sentences with a pause between them often
    come as one segment (in batched mode, without a previous text to follow, most of all);
    and its times often reach a few frames into the neighbouring sentence. Here each segment
    is trimmed to the speech it spans (start moved to its first non-silent frame, end after
    its last, leaving out a sliver under 0.1 s cut off by a pause at either edge), and a
    segment whose text has k sentence ends (".", "?", "!" inside it) and
    whose speech has at least k pauses of `min_pause_s` or more is cut into k + 1 segments,
    at its k longest pauses. Nothing moves where the audio has no silence (`silent_frames`
    is relative to the recording's loudness).

    Args:
        segments: timed segments of one recording (`window_segments`).
        silent: (frames,) bool per 10 ms frame of that recording (`silent_frames`).
        decode: token ids -> text (the tokenizer's `decode`).
        timestamp_begin: id of <|0.00|> (timestamp tokens are dropped from split segments).
        min_pause_s: shortest pause a segment is split at.

    Returns:
        The refined segments, in order; the words of segments that have them are kept as is.
    """
    out: list[Segment] = []
    min_pause = round(min_pause_s * FRAMES_PER_SECOND)
    for segment in segments:
        if segment.words:
            out.append(segment)
            continue
        first, end = _speech_span(segment, silent, min_pause)
        if first is None:
            out.append(segment)
            continue
        inside = pauses(silent[first:end], min_pause) + first
        text = [t for t in segment.tokens if t < timestamp_begin]
        out.extend(_split_at_pauses(segment, text, first, end, inside, decode))
    return out


def _speech_span(segment: Segment, silent: np.ndarray, min_pause: int) -> tuple[int | None, int]:
    """[first, end) frames of the speech inside a segment's span (None: all silent).

    A sliver of speech shorter than `_EDGE_FRAMES` at either edge, cut off by a pause of at
    least `min_pause` frames, belongs to the neighbouring segment (Whisper's times overlap
    the next sentence's onset by a few frames) and is left out.
    """
    a = min(round(segment.start * FRAMES_PER_SECOND), len(silent))
    b = min(round(segment.end * FRAMES_PER_SECOND), len(silent))
    speech = np.flatnonzero(~silent[a:b])
    if len(speech) == 0:
        return None, b
    first, end = a + int(speech[0]), a + int(speech[-1]) + 1
    gaps = pauses(silent[first:end], min_pause) + first
    if len(gaps) and gaps[0, 0] - first < _EDGE_FRAMES:
        first, gaps = int(gaps[0, 1]), gaps[1:]
    if len(gaps) and end - gaps[-1, 1] < _EDGE_FRAMES:
        end = int(gaps[-1, 0])
    return first, end


def _split_at_pauses(
    segment: Segment, text: list[int], first: int, end: int, inside: np.ndarray, decode
) -> list[Segment]:
    """`segment` trimmed to frames [first, end), cut at sentence ends of its `text` tokens
    if enough pauses (`inside`, (n, 2) frame runs) lie in it; see `refine_segments`."""
    ends = [
        i + 1
        for i in range(len(text) - 1)
        if decode([text[i]]).rstrip().endswith(_SENTENCE_ENDS) and decode(text[i + 1 :]).strip()
    ]
    if not ends or len(inside) < len(ends):
        return [replace(segment, start=first / FRAMES_PER_SECOND, end=end / FRAMES_PER_SECOND)]
    longest = np.sort(np.argsort(inside[:, 0] - inside[:, 1], kind="stable")[: len(ends)])
    cuts = inside[longest]  # (k, 2), in time order
    starts = [first, *cuts[:, 1].tolist()]
    stops = [*cuts[:, 0].tolist(), end]
    bounds = [0, *ends, len(text)]
    return [
        replace(
            segment,
            start=a / FRAMES_PER_SECOND,
            end=b / FRAMES_PER_SECOND,
            text=decode(text[lo:hi]),
            tokens=tuple(text[lo:hi]),
        )
        for a, b, lo, hi in zip(starts, stops, bounds[:-1], bounds[1:])
    ]


def transcribe_batched(
    whisper: WhisperForConditionalGeneration,
    audios: Sequence[np.ndarray],
    options: DecodingOptions | None = None,
    fallback: FallbackOptions | None = DEFAULT_FALLBACK,
    *,
    chunk_length_s: float = 30.0,
    batch_size: int = 8,
    word_timestamps: bool = False,
    seed: int | None = 0,
) -> list[Transcription]:
    """Transcribe recordings of any length by decoding silence-cut pieces in parallel.

    Args:
        whisper: the model with its tokenizer.
        audios: mono float32 audio at 16 kHz, each of shape (time,).
        options: decoding options for every piece. Timestamps are predicted, except that
            with `without_timestamps=True` a recording that is one piece is decoded as text
            only (as `transcribe_sequential` does).
        fallback: temperature fallback and no-speech rules (None: one pass).
        chunk_length_s: longest piece, at most 30 s.
        batch_size: pieces decoded together.
        word_timestamps: give each segment its words with start/end times.
        seed: seeds the sampling of pieces that fall back to temperature > 0 (None: torch's
            global random state).

    Returns:
        One Transcription per recording, in order.
    """
    text_only = options is not None and options.without_timestamps
    options = replace(options or DecodingOptions(), without_timestamps=False)
    generator = _generator(whisper, seed)
    tokenizer = whisper.tokenizer
    cuts = [plan_cuts(audio, max_seconds=min(chunk_length_s, 30.0)) for audio in audios]
    # (recording, start, end, text only): single pieces come first, so batches do not mix them
    pieces = sorted(
        (
            (i, start, end, text_only and len(c) == 1)
            for i, c in enumerate(cuts)
            for start, end in c
        ),
        key=lambda piece: not piece[3],
    )
    segments: list[list[Segment]] = [[] for _ in audios]
    languages: list[str | None] = [None] * len(audios)
    last_ends = [0.0] * len(audios)
    silences = [_silence(audio) for audio in audios]
    done = 0
    while done < len(pieces):
        batch = pieces[done : done + batch_size]
        if batch[0][3] != batch[-1][3]:  # the text-only pieces end inside this batch
            batch = [piece for piece in batch if piece[3]]
        done += len(batch)
        mel = whisper_log_mel([audios[i][s:e] for i, s, e, _ in batch], whisper.n_mels)
        encoder_out = whisper.encode(mel)
        results = whisper.generate(
            options=replace(options, without_timestamps=batch[0][3]),
            fallback=fallback, encoder_out=encoder_out, generator=generator,
        )  # fmt: skip
        windows = []
        for (i, start, end, _), result in zip(batch, results):
            languages[i] = languages[i] or result.language
            frames = (end - start) // HOP_LENGTH
            found: list[Segment] = []
            if not _is_silence(result, fallback):
                found, _ = window_segments(
                    result, tokenizer.timestamp_begin, tokenizer.decode, start // HOP_LENGTH,
                    frames,
                )  # fmt: skip
                found = refine_segments(
                    found, silences[i], tokenizer.decode, tokenizer.timestamp_begin
                )
            windows.append((found, start // HOP_LENGTH, frames, result.language))
        if word_timestamps:  # pieces of a recording are in order, so is their speech
            timed, ends = _add_words(
                whisper, encoder_out, windows, options.task, [last_ends[i] for i, *_ in batch]
            )
            windows = [(t, *w[1:]) for t, w in zip(timed, windows)]
            for (i, *_), end in zip(batch, ends):
                last_ends[i] = end
        for (i, _, end, _), (found, *_) in zip(batch, windows):
            limit = end / SAMPLING_RATE
            segments[i].extend(replace(s, end=min(s.end, limit)) for s in found)
    return [
        _transcription(sorted(s, key=lambda x: x.start), lang)
        for s, lang in zip(segments, languages)
    ]
