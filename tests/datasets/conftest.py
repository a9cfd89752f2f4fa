"""Dataset tests: the Arrow cache goes to a temporary folder, and small helpers make data."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile


@pytest.fixture(autouse=True)
def _dataset_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SOUNDFORMERS_CACHE", str(tmp_path_factory.getbasetemp() / "sf-cache"))


def tone(
    freq: float = 440.0, sr: int = 16000, seconds: float = 0.25, channels: int = 1
) -> np.ndarray:
    """A sine, float32, shape (time,) or (channels, time)."""
    t = np.arange(int(sr * seconds)) / sr
    x = (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return x if channels == 1 else np.stack([x * (c + 1) / channels for c in range(channels)])


def write_tone(path: Path, freq: float = 440.0, sr: int = 16000, seconds: float = 0.25) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, tone(freq, sr, seconds), sr)
    return path


def flac_bytes(freq: float = 440.0, sr: int = 16000) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, tone(freq, sr), sr, format="FLAC")
    return buffer.getvalue()
