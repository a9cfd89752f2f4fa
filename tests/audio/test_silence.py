"""Silence from frame energies: frames, the relative threshold, pause runs."""

from __future__ import annotations

import numpy as np

from soundformers.audio.silence import frame_energy, pauses, silent_frames


def _bursts(spans_s: list[tuple[float, float]], seconds: float, noise: float = 0.0) -> np.ndarray:
    """A 440 Hz tone (amplitude 0.5) inside `spans_s`, `noise`-level noise elsewhere."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * 16000)) / 16000
    audio = noise * rng.standard_normal(len(t))
    for a, b in spans_s:
        inside = (t >= a) & (t < b)
        audio[inside] = 0.5 * np.sin(2 * np.pi * 440 * t[inside])
    return audio.astype(np.float32)


def test_frame_energy_is_the_mean_square_per_frame():
    audio = np.concatenate([np.full(160, 0.5), np.zeros(160), np.full(100, 1.0)]).astype("f4")
    np.testing.assert_allclose(frame_energy(audio), [0.25, 0.0])  # partial frame dropped


def test_frame_energy_in_blocks_equals_all_frames_at_once():
    """Blocks of frames (bounded memory for hours of audio) give the one-pass values."""
    audio = np.random.default_rng(1).standard_normal(9000 * 160 + 33).astype(np.float32)
    frames = len(audio) // 160
    whole = np.square(audio[: frames * 160].reshape(frames, 160), dtype=np.float64).mean(axis=1)
    assert np.array_equal(frame_energy(audio), whole)


def test_pauses_between_bursts_are_found_in_frames():
    audio = _bursts([(0.5, 1.0), (1.3, 2.0), (2.05, 2.5)], 3.0, noise=1e-4)
    silent = silent_frames(frame_energy(audio))
    np.testing.assert_array_equal(pauses(silent, min_frames=10), [[0, 50], [100, 130], [250, 300]])
    assert [200, 205] in pauses(silent).tolist()  # the 50 ms gap, kept without a minimum


def test_noise_within_top_db_of_the_speech_is_not_silence():
    audio = _bursts([(0.5, 1.0)], 2.0, noise=0.05)  # about 20 dB below the tone
    assert not silent_frames(frame_energy(audio)).any()
    assert silent_frames(frame_energy(np.zeros(1600, dtype=np.float32))).all()
