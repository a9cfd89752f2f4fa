"""Sample-rate conversion: `resample` is the only entry point the library uses.

It wraps soxr (libsoxr's "HQ" recipe by default: a linear-phase filter with 20-bit precision and a
passband to 91.3 % of the lower Nyquist frequency). Batches are resampled in one call, every
channel or row sharing the same filter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np

from ..errors import SoundformersError

if TYPE_CHECKING:
    import torch

Quality = Literal["VHQ", "HQ", "MQ", "LQ", "QQ"]


def resampled_length(num_samples: int, orig_sr: int, new_sr: int) -> int:
    """Number of samples `resample` returns for `num_samples` input samples.

    It is `num_samples * new_sr / orig_sr` rounded to the nearest integer as soxr computes it,
    in double precision, `num_samples / (orig_sr / new_sr) + 0.5` truncated: an exact half can
    round down (480 samples from 96 kHz to 44.1 kHz give 220, not 221; checked against soxr
    on 113 300 lengths and rate pairs).
    """
    return int(num_samples / (orig_sr / new_sr) + 0.5)


def _check_rate(rate: object, name: str) -> int:
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer, float, np.floating)):
        raise SoundformersError(f"{name} must be a positive number of Hz, got {rate!r}")
    if rate <= 0 or rate != int(rate):
        raise SoundformersError(f"{name} must be a positive whole number of Hz, got {rate!r}")
    return int(rate)


def resample(
    x: np.ndarray | torch.Tensor,
    orig_sr: int,
    new_sr: int,
    *,
    quality: Quality = "HQ",
) -> np.ndarray | torch.Tensor:
    """Resample audio along its last axis.

    Args:
        x: audio of shape (..., time), float32 or float64 (other dtypes are converted to float32),
            numpy array or CPU torch tensor. Every leading index (channel, batch item) is
            resampled independently with the same filter.
        orig_sr: the rate `x` is sampled at, in Hz.
        new_sr: the rate wanted, in Hz.
        quality: soxr quality recipe; "HQ" (default) or "VHQ" for archival work, "MQ"/"LQ"/"QQ"
            for speed.

    Returns:
        Audio of shape (..., resampled_length(time, orig_sr, new_sr)), same type (numpy or torch)
        and float dtype as the input. When the rates are equal `x` itself is returned.
    """
    orig_sr = _check_rate(orig_sr, "orig_sr")
    new_sr = _check_rate(new_sr, "new_sr")
    if orig_sr == new_sr:
        return x
    import soxr

    is_torch = type(x).__module__.startswith("torch")
    if is_torch:
        import torch

        device = x.device
        array = x.detach().cpu().numpy()
    else:
        array = np.asarray(x)
    if array.dtype not in (np.float32, np.float64):
        array = array.astype(np.float32)
    if array.ndim == 0:
        raise SoundformersError("resample needs an array of shape (..., time), got a scalar")

    lead, length = array.shape[:-1], array.shape[-1]
    out_length = resampled_length(length, orig_sr, new_sr)
    if length == 0 or out_length == 0:
        out = np.zeros((*lead, out_length), dtype=array.dtype)
    elif array.ndim == 1:
        out = soxr.resample(array, orig_sr, new_sr, quality=quality)
    else:
        # soxr takes (time, channels): one call for the whole batch
        frames = np.ascontiguousarray(array.reshape(-1, length).T)
        out = soxr.resample(frames, orig_sr, new_sr, quality=quality).T.reshape(*lead, -1)
    if is_torch:
        return torch.from_numpy(np.ascontiguousarray(out)).to(device)
    return out
