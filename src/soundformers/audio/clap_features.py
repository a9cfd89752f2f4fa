"""CLAP's input features: dB mel spectrograms at 48 kHz, cut or padded to a fixed window.

`clap_features` equals `transformers.ClapFeatureExtractor` (checked by
`tests/audio/test_clap_features.py`), with its random choices made reproducible: where the
reference draws from numpy's global generator, we draw the same numbers, in the same order,
from `numpy.random.RandomState(seed)`. So `np.random.seed(s); reference(...)` equals
`clap_features(..., seed=s)`.

Per signal of `n` samples against a window of `max_length` samples (10 s):

- `n <= max_length`: the signal is padded to the window (`padding`: "repeatpad" tiles it
  whole as often as it fits, then adds zeros; "repeat" tiles it and cuts; "pad" adds zeros).
- `n > max_length` with `truncation="rand_trunc"`: a random `max_length` crop of the audio.
- `n > max_length` with `truncation="fusion"`: the mel of the whole signal, from which three
  random crops of the window's frame count (one from each third) and the whole mel squeezed
  to that many frames (bilinear) are stacked: 4 channels, and `is_longer` is True.

The spectrogram: centred STFT (reflect padding, periodic Hann window of `n_fft`), power, mel
filters, `10 log10(max(mel, 1e-10))`. "fusion" uses HTK mel filters without normalisation
(torchaudio's defaults, as the fused checkpoints were trained); "rand_trunc" uses Slaney-scaled,
Slaney-normalised ones (librosa's defaults). "fusion" gives 4 channels for every signal (short
ones repeated 4 times), "rand_trunc" 1.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Literal, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import FeatureError
from .filters import mel_filter_bank

CLAP_SAMPLING_RATE = 48000
"""The rate every released CLAP checkpoint was trained at, in Hz."""

Truncation = Literal["rand_trunc", "fusion"]
Padding = Literal["repeatpad", "repeat", "pad"]

__all__ = ["CLAP_SAMPLING_RATE", "ClapFeatures", "clap_features"]


class ClapFeatures(NamedTuple):
    """The model's audio input.

    Attributes:
        features: float32 (batch, channels, frames, n_mels): 1 channel for "rand_trunc", 4 for
            "fusion" (global view, then the front, middle and back crops).
        is_longer: bool (batch,): the signal was longer than the window (cropped, or fused:
            only fused checkpoints read it).
    """

    features: torch.Tensor
    is_longer: torch.Tensor


@functools.lru_cache(maxsize=8)
def _filters(n_fft: int, n_mels: int, f_min: float, f_max: float, sampling_rate: int,
             slaney: bool) -> torch.Tensor:  # fmt: skip
    """(n_fft // 2 + 1, n_mels) float64 mel filters. Do not modify the result in place."""
    scale, norm = ("slaney", "slaney") if slaney else ("htk", None)
    bank = mel_filter_bank(n_fft // 2 + 1, n_mels, f_min, f_max, sampling_rate, scale, norm)
    return torch.from_numpy(bank)


@functools.lru_cache(maxsize=4)
def _hann(n_fft: int) -> torch.Tensor:
    n = torch.arange(n_fft, dtype=torch.float64)
    return 0.5 - 0.5 * torch.cos(2 * torch.pi * n / n_fft)  # periodic


def _db_mel(x: torch.Tensor, filters: torch.Tensor, n_fft: int, hop_length: int) -> torch.Tensor:
    """(B, T) float64 audio -> (B, frames, n_mels) float32 dB mel, frames = 1 + T // hop."""
    spec = torch.stft(x, n_fft, hop_length, window=_hann(n_fft), center=True,
                      pad_mode="reflect", return_complex=True)  # fmt: skip  # (B, freqs, frames)
    spec = spec.to(torch.complex64).abs().double().square()  # the reference keeps complex64
    mel = (spec.transpose(1, 2) @ filters).clamp_(min=1e-10)  # (B, frames, n_mels)
    return (10.0 * torch.log10(mel)).float()


def _fit_window(wave: np.ndarray, max_length: int, padding: Padding) -> np.ndarray:
    """Pad a signal of at most `max_length` samples to exactly `max_length`."""
    n = len(wave)
    if padding == "repeat":
        wave = np.tile(wave, max_length // n + 1)[:max_length]
    elif padding == "repeatpad":
        wave = np.tile(wave, max_length // n)
    return np.pad(wave, (0, max_length - len(wave)))


def _fusion_stack(mel: torch.Tensor, chunk_frames: int, rng: np.random.RandomState) -> torch.Tensor:
    """(frames, n_mels) mel of a long signal -> (4, chunk_frames, n_mels): the whole mel
    squeezed to `chunk_frames`, then random crops from its front, middle and back thirds."""
    starts = np.array_split(np.arange(mel.shape[0] - chunk_frames + 1), 3)
    picks = [int(rng.choice(part if len(part) else [0])) for part in starts]
    crops = [mel[p : p + chunk_frames] for p in picks]
    squeezed = F.interpolate(mel[None, None], size=(chunk_frames, mel.shape[1]), mode="bilinear",
                             align_corners=False)[0, 0]  # fmt: skip
    return torch.stack([squeezed, *crops])


def clap_features(
    audio: Sequence[np.ndarray | torch.Tensor] | np.ndarray | torch.Tensor,
    *,
    sampling_rate: int = CLAP_SAMPLING_RATE,
    truncation: Truncation = "rand_trunc",
    padding: Padding = "repeatpad",
    max_length_s: float = 10.0,
    n_mels: int = 64,
    n_fft: int = 1024,
    hop_length: int = 480,
    f_min: float = 0.0,
    f_max: float = 14000.0,
    seed: int | None = None,
    mark_one_longer: bool = False,
) -> ClapFeatures:
    """CLAP's log-mel input for a batch of mono signals.

    Args:
        audio: One signal (time,) or a list of them of any lengths, float, at 48 kHz; a 2-D
            array is a batch of equal-length signals (batch, time).
        sampling_rate: Rate of `audio` in Hz; must be the checkpoint's (48000).
        truncation: "rand_trunc" (unfused checkpoints) or "fusion" (fused ones), see the
            module docstring.
        padding: "repeatpad", "repeat" or "pad", for signals shorter than the window.
        max_length_s: The window, in seconds.
        n_mels: Mel bands.
        n_fft: FFT size and window length, in samples.
        hop_length: Frame shift, in samples.
        f_min: Lowest mel filter edge, Hz.
        f_max: Highest mel filter edge, Hz.
        seed: Seed of the crops of long signals, drawn in item order; None draws fresh ones.
        mark_one_longer: Reproduce the reference's training-time habit of marking one random
            item as `is_longer` when no signal in the batch is (with "fusion"). It makes one
            item's embedding depend on its batch mates, so it is off by default.

    Returns:
        `ClapFeatures`: features float32 (batch, channels, 1 + window // hop_length, n_mels)
        on the CPU and is_longer bool (batch,).

    Raises:
        FeatureError: wrong rate (resample with `soundformers.audio.resample` first), an
            empty, non-float, multi-channel or non-finite signal, unknown `truncation` or
            `padding`.
    """
    caller = "clap_features"
    if sampling_rate != CLAP_SAMPLING_RATE:
        raise FeatureError(
            f"{caller}: CLAP expects audio sampled at {CLAP_SAMPLING_RATE} Hz, got sampling_rate="
            f"{sampling_rate}. Resample first: soundformers.audio.resample(audio, "
            f"{sampling_rate}, {CLAP_SAMPLING_RATE})."
        )
    if truncation not in ("rand_trunc", "fusion"):
        raise FeatureError(
            f"{caller}: truncation must be 'rand_trunc' or 'fusion', got {truncation!r}"
        )
    if padding not in ("repeatpad", "repeat", "pad"):
        raise FeatureError(
            f"{caller}: padding must be 'repeatpad', 'repeat' or 'pad', got {padding!r}"
        )
    waves = _as_signals(audio, caller)
    rng = np.random.RandomState(seed)
    max_length = int(round(max_length_s * sampling_rate))
    chunk_frames = max_length // hop_length + 1
    fusion = truncation == "fusion"
    filters = _filters(n_fft, n_mels, float(f_min), float(f_max), sampling_rate, not fusion)

    windows: dict[int, np.ndarray] = {}  # item -> exactly max_length samples
    stacks: dict[int, torch.Tensor] = {}  # item -> (4, chunk_frames, n_mels), fused long items
    longer = [False] * len(waves)
    for i, wave in enumerate(waves):
        if len(wave) <= max_length:
            windows[i] = _fit_window(wave, max_length, padding)
        elif not fusion:
            start = rng.randint(0, len(wave) - max_length + 1)
            windows[i] = wave[start : start + max_length]
            longer[i] = True
        else:
            mel = _db_mel(torch.from_numpy(wave)[None], filters, n_fft, hop_length)[0]
            if mel.shape[0] == chunk_frames:  # longer by less than a hop: use it whole
                stacks[i] = mel.expand(4, -1, -1)
            else:
                stacks[i] = _fusion_stack(mel, chunk_frames, rng)
                longer[i] = True
    if windows:
        order = list(windows)
        mels = _db_mel(torch.from_numpy(np.stack([windows[i] for i in order])), filters,
                       n_fft, hop_length)  # fmt: skip
        for i, mel in zip(order, mels):
            stacks[i] = mel.expand(4, -1, -1) if fusion else mel[None]
    if fusion and mark_one_longer and not any(longer):
        longer[rng.randint(0, len(waves))] = True
    features = torch.stack([stacks[i] for i in range(len(waves))]).contiguous()
    return ClapFeatures(features, torch.tensor(longer, dtype=torch.bool))


def _as_signals(audio: object, caller: str) -> list[np.ndarray]:
    """The accepted input forms -> a list of 1-D float64 numpy signals."""
    if isinstance(audio, torch.Tensor):
        audio = audio.detach().cpu().numpy()
    if isinstance(audio, np.ndarray):
        if audio.ndim not in (1, 2):
            raise FeatureError(
                f"{caller}: audio has shape {audio.shape}; expected (time,) or (batch, time) "
                "of mono signals. Mix or pick channels first."
            )
        items = [audio] if audio.ndim == 1 else list(audio)
    elif isinstance(audio, (list, tuple)) and audio:
        items = [a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
                 for a in audio]  # fmt: skip
    else:
        raise FeatureError(
            f"{caller}: expected a numpy array, a torch tensor or a non-empty list of 1-D "
            f"signals, got {type(audio).__name__}"
        )
    out = []
    for i, item in enumerate(items):
        if item.ndim != 1 or item.shape[0] == 0:
            raise FeatureError(
                f"{caller}: signal {i} has shape {item.shape}; each must be a non-empty (time,)"
            )
        if item.dtype.kind != "f":
            raise FeatureError(
                f"{caller}: signal {i} has dtype {item.dtype}, expected float samples in "
                "[-1, 1]. Convert integer PCM first, e.g. int16 samples / 32768."
            )
        if not np.isfinite(item).all():
            raise FeatureError(f"{caller}: signal {i} contains NaN or infinite samples")
        out.append(np.ascontiguousarray(item, dtype=np.float64))
    return out
