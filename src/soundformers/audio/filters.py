"""Mel scales, mel filter banks and analysis windows, in float64 numpy.

Everything here is plain numpy (no torch import) and returns float64 arrays, so the results can
be compared exactly with librosa / transformers and cached; `soundformers.audio.features` turns
them into tensors on the device it needs, once per parameter set.

Conventions:

- `mel_filter_bank` returns `(n_freqs, n_mels)`, the layout of
  `transformers.audio_utils.mel_filter_bank`, so `power_spectrum @ filters` maps
  `(..., frames, n_freqs)` to `(..., frames, n_mels)`. librosa's `filters.mel` is the transpose.
- Mel scales: `"htk"` (2595 log10(1 + f/700)), `"kaldi"` (1127 ln(1 + f/700): the same curve,
  written as Kaldi writes it) and `"slaney"` (linear below 1 kHz, logarithmic above; librosa's
  default, used by Whisper).
- Windows follow numpy's definitions; `periodic=True` gives the DFT-even window of
  `torch.hann_window(n)`, `periodic=False` the symmetric one that Kaldi uses.
"""

from __future__ import annotations

import warnings
from typing import Literal, overload

import numpy as np

MelScale = Literal["htk", "slaney", "kaldi"]
WindowName = Literal["hann", "hanning", "hamming", "povey", "rectangular", "boxcar", "blackman"]

_MEL_SCALES = ("htk", "slaney", "kaldi")

# Slaney's scale: linear (3 mels per 200 Hz) up to 1 kHz, then logarithmic, 27 mels per factor 6.4.
_SLANEY_MIN_LOG_HZ = 1000.0
_SLANEY_MIN_LOG_MEL = 15.0
_SLANEY_MELS_PER_LOG_HZ = 27.0 / np.log(6.4)
_SLANEY_LOG_HZ_PER_MEL = np.log(6.4) / 27.0


def _check_mel_scale(mel_scale: str) -> None:
    if mel_scale not in _MEL_SCALES:
        raise ValueError(
            f"Unknown mel_scale {mel_scale!r}: expected one of {', '.join(_MEL_SCALES)}"
        )


@overload
def hertz_to_mel(freq: float, mel_scale: MelScale = "htk") -> float: ...
@overload
def hertz_to_mel(freq: np.ndarray, mel_scale: MelScale = "htk") -> np.ndarray: ...
def hertz_to_mel(freq: float | np.ndarray, mel_scale: MelScale = "htk") -> float | np.ndarray:
    """Convert frequencies in hertz to mels.

    Args:
        freq: A frequency in Hz, or an array of them (any shape).
        mel_scale: `"htk"`, `"kaldi"` or `"slaney"`.

    Returns:
        The same shape as `freq` (a Python float for a scalar), in mels, float64.

    Raises:
        ValueError: `mel_scale` is not one of the three scales.
    """
    _check_mel_scale(mel_scale)
    f = np.asarray(freq, dtype=np.float64)
    if mel_scale == "htk":
        mels = 2595.0 * np.log10(1.0 + f / 700.0)
    elif mel_scale == "kaldi":
        mels = 1127.0 * np.log(1.0 + f / 700.0)
    else:
        linear = 3.0 * f / 200.0
        # clip inside the log so that the unused branch never warns about log(0)
        log = (
            _SLANEY_MIN_LOG_MEL
            + np.log(np.maximum(f, _SLANEY_MIN_LOG_HZ) / _SLANEY_MIN_LOG_HZ)
            * _SLANEY_MELS_PER_LOG_HZ
        )
        mels = np.where(f >= _SLANEY_MIN_LOG_HZ, log, linear)
    return float(mels) if mels.ndim == 0 else mels


@overload
def mel_to_hertz(mels: float, mel_scale: MelScale = "htk") -> float: ...
@overload
def mel_to_hertz(mels: np.ndarray, mel_scale: MelScale = "htk") -> np.ndarray: ...
def mel_to_hertz(mels: float | np.ndarray, mel_scale: MelScale = "htk") -> float | np.ndarray:
    """Convert mels to frequencies in hertz (the inverse of `hertz_to_mel`).

    Args:
        mels: A value in mels, or an array of them (any shape).
        mel_scale: `"htk"`, `"kaldi"` or `"slaney"`.

    Returns:
        The same shape as `mels` (a Python float for a scalar), in Hz, float64.

    Raises:
        ValueError: `mel_scale` is not one of the three scales.
    """
    _check_mel_scale(mel_scale)
    m = np.asarray(mels, dtype=np.float64)
    if mel_scale == "htk":
        freq = 700.0 * (np.power(10.0, m / 2595.0) - 1.0)
    elif mel_scale == "kaldi":
        freq = 700.0 * (np.exp(m / 1127.0) - 1.0)
    else:
        linear = 200.0 * m / 3.0
        log = _SLANEY_MIN_LOG_HZ * np.exp(
            _SLANEY_LOG_HZ_PER_MEL * (np.maximum(m, _SLANEY_MIN_LOG_MEL) - _SLANEY_MIN_LOG_MEL)
        )
        freq = np.where(m >= _SLANEY_MIN_LOG_MEL, log, linear)
    return float(freq) if freq.ndim == 0 else freq


def _triangles(points: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Triangular filters on one axis: filter `m` rises from `edges[m]` to `edges[m + 1]` and
    falls to zero at `edges[m + 2]`. `points`: (n_freqs,), `edges`: (n_mels + 2,) ->
    (n_freqs, n_mels)."""
    width = np.diff(edges)  # (n_mels + 1,)
    offset = edges[None, :] - points[:, None]  # (n_freqs, n_mels + 2): edge minus point
    rising = -offset[:, :-2] / width[:-1]  # (point - left) / (centre - left)
    falling = offset[:, 2:] / width[1:]  # (right - point) / (right - centre)
    return np.maximum(0.0, np.minimum(rising, falling))


def mel_filter_bank(
    n_freqs: int,
    n_mels: int,
    f_min: float,
    f_max: float,
    sampling_rate: int | float,
    mel_scale: MelScale = "htk",
    norm: Literal["slaney"] | None = None,
    triangularize_in_mel_space: bool = False,
) -> np.ndarray:
    """Triangular mel filters that map a one-sided power spectrum to mel bands.

    `n_mels + 2` edges are spaced evenly on the mel scale between `f_min` and `f_max`; filter
    `m` rises from edge `m` to edge `m + 1` and falls to zero at edge `m + 2`. This equals
    `transformers.audio_utils.mel_filter_bank` (same argument meanings) and, transposed,
    `librosa.filters.mel(..., dtype=np.float64)`.

    Args:
        n_freqs: Number of frequency bins of the spectrum, `n_fft // 2 + 1`. Bin `k` is at
            `k * sampling_rate / (2 * (n_freqs - 1))` Hz.
        n_mels: Number of mel filters.
        f_min: Lower edge of the first filter, in Hz.
        f_max: Upper edge of the last filter, in Hz (at most `sampling_rate / 2` to be useful).
        sampling_rate: Sampling rate of the audio the spectrum comes from, in Hz.
        mel_scale: `"htk"`, `"kaldi"` or `"slaney"` (see `hertz_to_mel`).
        norm: `"slaney"` divides each filter by half its width in Hz, so every filter has the
            same area (librosa's default, used by Whisper); `None` leaves peaks at 1.
        triangularize_in_mel_space: Draw the triangles over the mel value of each bin instead
            of its frequency, as Kaldi and `torchaudio.compliance.kaldi.fbank` do (with
            `mel_scale="kaldi"`). With `norm="slaney"` the widths are then taken in mels too.

    Returns:
        Filters, float64 numpy array of shape `(n_freqs, n_mels)`.

    Raises:
        ValueError: Unknown `mel_scale` or `norm`, fewer than 2 frequency bins, or
            `f_min > f_max`.

    Warns:
        UserWarning: Some filter is zero everywhere (too many mels for this many bins).
    """
    _check_mel_scale(mel_scale)
    if norm not in (None, "slaney"):
        raise ValueError(f"Unknown norm {norm!r}: expected None or 'slaney'")
    if n_freqs < 2:
        raise ValueError(f"n_freqs must be at least 2 (n_fft // 2 + 1), got {n_freqs}")
    if f_min > f_max:
        raise ValueError(f"f_min ({f_min} Hz) must not exceed f_max ({f_max} Hz)")

    mel_edges = np.linspace(
        hertz_to_mel(float(f_min), mel_scale), hertz_to_mel(float(f_max), mel_scale), n_mels + 2
    )
    bin_hz = np.linspace(0.0, sampling_rate / 2, n_freqs)
    if triangularize_in_mel_space:
        edges, points = mel_edges, hertz_to_mel(bin_hz, mel_scale)
    else:
        edges, points = mel_to_hertz(mel_edges, mel_scale), bin_hz
    filters = _triangles(points, edges)

    if norm == "slaney":
        filters *= 2.0 / (edges[2:] - edges[:-2])

    if (filters.max(axis=0) == 0.0).any():
        warnings.warn(
            f"mel_filter_bank: some of the {n_mels} mel filters are zero everywhere: {n_freqs} "
            "frequency bins are too few for that many mels. Use fewer mels or a longer FFT.",
            UserWarning,
            stacklevel=2,
        )
    return filters


def window_function(
    name: WindowName, length: int, periodic: bool = True, blackman_coeff: float = 0.42
) -> np.ndarray:
    """An analysis window.

    Args:
        name: `"hann"` (alias `"hanning"`), `"hamming"` (0.54 - 0.46 cos), `"povey"` (Kaldi's
            default: hann ** 0.85), `"rectangular"` (alias `"boxcar"`) or `"blackman"`
            (Kaldi's form, with `blackman_coeff`).
        length: Number of samples.
        periodic: `True` for the DFT-even window used by STFTs (`torch.hann_window(length)`:
            a symmetric window of `length + 1` samples without its last one); `False` for the
            symmetric window (`np.hanning(length)`), which is what Kaldi uses for every window.
        blackman_coeff: The constant `a` of the Blackman window
            `a - 0.5 cos(2 pi n / N) + (0.5 - a) cos(4 pi n / N)`; only used by `"blackman"`.

    Returns:
        The window, float64 numpy array of shape `(length,)`.

    Raises:
        ValueError: Unknown window name, or a negative length.
    """
    if length < 0:
        raise ValueError(f"window length must be >= 0, got {length}")
    if length == 0:
        return np.zeros(0)
    size = length + 1 if periodic else length
    if name in ("hann", "hanning"):
        window = np.hanning(size)
    elif name == "hamming":
        window = np.hamming(size)
    elif name == "povey":
        window = np.hanning(size) ** 0.85
    elif name in ("rectangular", "boxcar"):
        window = np.ones(size)
    elif name == "blackman":
        phase = 2.0 * np.pi * np.arange(size) / max(size - 1, 1)
        window = blackman_coeff - 0.5 * np.cos(phase) + (0.5 - blackman_coeff) * np.cos(2.0 * phase)
    else:
        raise ValueError(
            f"Unknown window {name!r}: expected one of hann (hanning), hamming, povey, "
            "rectangular (boxcar), blackman"
        )
    return np.ascontiguousarray(window[:length], dtype=np.float64)
