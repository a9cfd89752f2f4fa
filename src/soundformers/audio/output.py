"""`save_audio(path, audio, sampling_rate)`: write wav, flac, ogg (Vorbis) or mp3 by extension."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SoundformersError

__all__ = ["save_audio"]

# extension -> (soundfile format, subtype)
_FORMATS = {
    ".wav": ("WAV", "PCM_16"),
    ".flac": ("FLAC", "PCM_16"),
    ".ogg": ("OGG", "VORBIS"),
    ".mp3": ("MP3", "MPEG_LAYER_III"),
}


def save_audio(path: str | Path, audio: Any, sampling_rate: int) -> Path:
    """Write audio to a file whose extension picks the format.

    Args:
        path: destination ending in .wav, .flac, .ogg or .mp3 (parent folders are created).
        audio: float samples in [-1, 1], shape (time,) or (channels, time); a numpy array,
            a torch tensor, or a pipeline result dict `{"audio", "sampling_rate"}` (then
            `sampling_rate` must agree with it).
        sampling_rate: in Hz.

    Returns:
        The path written.

    Raises:
        SoundformersError: unknown extension, bad shape or rate, or the encoder failed.
    """
    import soundfile as sf

    path = Path(path)
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise SoundformersError(
            f"cannot save {path}: unknown extension {path.suffix!r}; use one of "
            f"{', '.join(_FORMATS)}"
        )
    if isinstance(audio, dict) and "audio" in audio:
        audio = audio["audio"]
    if hasattr(audio, "detach"):
        audio = audio.detach().cpu().numpy()
    samples = np.asarray(audio, dtype=np.float32)
    if samples.ndim not in (1, 2) or samples.size == 0:
        raise SoundformersError(
            f"cannot save {path}: audio must be (time,) or (channels, time) and non-empty, got "
            f"shape {samples.shape}"
        )
    if not isinstance(sampling_rate, (int, np.integer)) or sampling_rate <= 0:
        raise SoundformersError(f"sampling_rate must be a positive int, got {sampling_rate!r}")
    data = np.clip(samples if samples.ndim == 1 else samples.T, -1.0, 1.0)  # soundfile: (time, ch)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        sf.write(str(path), data, int(sampling_rate), format=fmt[0], subtype=fmt[1])
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        raise SoundformersError(
            f"cannot write {path} as {fmt[0]} at {sampling_rate} Hz: {e}"
            + (" (MP3 needs 32, 44.1 or 48 kHz and below)" if fmt[0] == "MP3" else "")
        ) from e
    return path
