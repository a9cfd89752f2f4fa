"""Where a recording is silent, from its energy in 10 ms frames.

Long-form transcription uses this twice: to cut a recording in its pauses (`plan_cuts`) and
to move segment boundaries out of silence (`transcribe.refine_segments`). Silence is relative
to the recording's own loud level, as librosa's `effects.split(top_db=...)` defines it, so
the same threshold serves quiet and loud recordings; a recording whose background noise
stays within `top_db` of its speech has no silent frames, and nothing is moved.
"""

from __future__ import annotations

import numpy as np

__all__ = ["frame_energy", "pauses", "silent_frames"]


def frame_energy(audio: np.ndarray, hop: int = 160) -> np.ndarray:
    """Mean square of each `hop`-sample frame (a trailing partial frame is dropped).

    Args:
        audio: mono samples, shape (time,).
        hop: frame length in samples (160: 10 ms at 16 kHz).

    Returns:
        (time // hop,) float64.
    """
    frames = len(audio) // hop
    energy = np.empty(frames, dtype=np.float64)
    # a block of frames at a time: the float64 squares of an hour at 16 kHz are 460 MB
    for begin in range(0, frames, _ENERGY_BLOCK_FRAMES):
        end = min(begin + _ENERGY_BLOCK_FRAMES, frames)
        block = audio[begin * hop : end * hop].reshape(end - begin, hop)
        energy[begin:end] = np.square(block, dtype=np.float64).mean(axis=1)
    return energy


_ENERGY_BLOCK_FRAMES = 4096  # `frame_energy`: 5 MB of float64 squares at 10 ms frames


def silent_frames(energy: np.ndarray, top_db: float = 40.0) -> np.ndarray:
    """Frames more than `top_db` below the recording's loud level (its 99th percentile
    frame energy, so a click does not set it).

    Args:
        energy: (frames,) from `frame_energy`.
        top_db: how far below the loud level silence begins.

    Returns:
        (frames,) bool, True where silent (all True for a recording of digital silence).
    """
    if len(energy) == 0:
        return np.zeros(0, dtype=bool)
    loud = np.percentile(energy, 99)
    return energy <= loud * 10 ** (-top_db / 10)


def pauses(silent: np.ndarray, min_frames: int = 1) -> np.ndarray:
    """Runs of silent frames at least `min_frames` long.

    Args:
        silent: (frames,) bool.
        min_frames: shortest run kept.

    Returns:
        (n, 2) int64 [first, end) frame indices of each run, in order.
    """
    edges = np.diff(np.concatenate([[False], silent, [False]]).astype(np.int8))
    runs = np.stack([np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)], axis=1)
    return runs[runs[:, 1] - runs[:, 0] >= min_frames]
