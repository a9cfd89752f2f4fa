"""Feature extraction in batched torch: Whisper log-mel, Kaldi fbank and the AST input features.

Every function takes audio of shape `(..., time)` (numpy array or torch tensor; every leading
index is one independent signal) or a list of 1-D signals of different lengths, which is padded
into a batch. Features are computed in float32 (`kaldi_fbank` can use float64) on `device`
(default: the input tensor's device, or the CPU for numpy input) and returned as a torch tensor
there.

Reference behaviour, checked by `tests/audio/test_features.py`:

- `whisper_log_mel` equals `transformers.WhisperFeatureExtractor` (which equals
  openai-whisper's `log_mel_spectrogram` on audio padded to 30 s); `pad_mode="features"` gives
  faster-whisper's variant instead.
- `kaldi_fbank` follows `torchaudio.compliance.kaldi.fbank`, option by option; it equals what
  `transformers.ASTFeatureExtractor` computes when torchaudio is absent.
- `ast_features` equals `transformers.ASTFeatureExtractor()(...)["input_values"]`.

Filter banks and windows are built once per parameter set, device and dtype, and cached.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch

from ..errors import FeatureError
from .filters import MelScale, WindowName, mel_filter_bank, window_function

AudioInput = np.ndarray | torch.Tensor | Sequence[np.ndarray | torch.Tensor]
Device = torch.device | str | None

WHISPER_SAMPLING_RATE = 16000
"""The only rate Whisper models take, in Hz."""

AST_SAMPLING_RATE = 16000
"""The rate AST checkpoints were trained at, in Hz."""

AST_MEAN = -4.2677393
"""Mean of AudioSet's log-mel fbank features: AST's default normalisation."""

AST_STD = 4.5689974
"""Standard deviation of AudioSet's log-mel fbank features: AST's default normalisation."""

_KALDI_EPS = float(torch.finfo(torch.float32).eps)  # Kaldi's log floor, as torchaudio uses it


# --------------------------------------------------------------------------- inputs


def _as_batch(
    audio: AudioInput, device: Device, caller: str, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Turn the accepted input forms into one `dtype` tensor on `device`.

    Returns `(x, lengths)`: `x` of shape (..., time); for a list input `x` is (batch, longest)
    zero-padded and `lengths` (batch,) int64 on the CPU holds each item's length, else `None`.
    """
    if isinstance(audio, (np.ndarray, torch.Tensor)):
        x = _as_tensor(audio, caller, "audio")
        if x.ndim == 0:
            raise FeatureError(f"{caller}: audio must have shape (..., time), got a scalar")
        x = x.to(device if device is not None else x.device, dtype)
        _check_finite(x, caller)
        return x, None
    if not isinstance(audio, (list, tuple)):
        raise FeatureError(
            f"{caller}: expected a numpy array, a torch tensor or a list of 1-D arrays, "
            f"got {type(audio).__name__}"
        )
    if len(audio) == 0:
        raise FeatureError(f"{caller}: got an empty list of audio")
    if all(isinstance(v, (int, float, np.number)) for v in audio):  # one signal as a list of floats
        return _as_batch(np.asarray(audio, dtype=np.float64), device, caller, dtype)
    items = [_as_tensor(item, caller, f"audio[{i}]") for i, item in enumerate(audio)]
    for i, item in enumerate(items):
        if item.ndim != 1:
            raise FeatureError(
                f"{caller}: audio[{i}] has shape {tuple(item.shape)}; a list must hold 1-D mono "
                "signals of shape (time,). Pass a (..., time) array instead for multi-channel audio."
            )
    if device is None:
        device = items[0].device
    lengths = torch.tensor([item.shape[0] for item in items], dtype=torch.int64)
    x = torch.nn.utils.rnn.pad_sequence(
        [item.to(device, dtype) for item in items], batch_first=True
    )
    _check_finite(x, caller)
    return x, lengths


def _as_tensor(value: object, caller: str, what: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        tensor = value.detach()
    elif isinstance(value, (np.ndarray, list, tuple)):
        array = np.asarray(value)
        if array.dtype == object:
            raise FeatureError(
                f"{caller}: {what} is a ragged nested list; pass a list of 1-D arrays"
            )
        if array.dtype.kind != "f":
            raise _not_float(caller, what, str(array.dtype))
        # (np.ascontiguousarray would turn a 0-d array into shape (1,))
        tensor = torch.from_numpy(array if array.flags.c_contiguous else array.copy())
    else:
        raise FeatureError(
            f"{caller}: {what} must be a numpy array or torch tensor, got {type(value).__name__}"
        )
    if not tensor.is_floating_point():
        raise _not_float(caller, what, str(tensor.dtype))
    return tensor


def _not_float(caller: str, what: str, dtype: str) -> FeatureError:
    return FeatureError(
        f"{caller}: {what} has dtype {dtype}, expected float samples in [-1, 1]. "
        "Convert integer PCM first, e.g. int16 samples / 32768."
    )


def _check_finite(x: torch.Tensor, caller: str) -> None:
    if bool(torch.isfinite(x.sum())):  # one cheap pass; the sum is NaN/inf if any sample is
        return
    finite = torch.isfinite(x)
    if bool(finite.all()):  # finite samples whose sum overflowed
        return
    bad = (
        (~finite)
        .reshape(math.prod(x.shape[:-1]), x.shape[-1])
        .any(dim=-1)
        .nonzero()
        .flatten()
        .tolist()
    )
    where = (
        "the audio"
        if x.ndim == 1
        else f"batch item(s) {bad[:10]} (flattened over the leading dims)"
    )
    raise FeatureError(
        f"{caller}: {where} contain NaN or infinite samples; clean or drop them first"
    )


def _check_rate(sampling_rate: float, expected: int, caller: str, model: str) -> None:
    if sampling_rate != expected:
        raise FeatureError(
            f"{caller}: {model} expects audio sampled at {expected} Hz, got sampling_rate="
            f"{sampling_rate}. Resample first: soundformers.audio.resample(audio, {sampling_rate}, "
            f"{expected})."
        )


def _fit_length(x: torch.Tensor, size: int, dim: int = -1) -> torch.Tensor:
    """Zero-pad at the end or cut `x` along `dim` to exactly `size`."""
    current = x.shape[dim]
    if current > size:
        return x.narrow(dim, 0, size)
    if current < size:
        shape = list(x.shape)
        shape[dim] = size - current
        return torch.cat([x, x.new_zeros(shape)], dim=dim)
    return x


# --------------------------------------------------------------------------- cached constants


@functools.lru_cache(maxsize=32)
def _window(
    name: WindowName,
    length: int,
    periodic: bool,
    blackman_coeff: float,
    device: torch.device,
    dtype: torch.dtype,
) -> torch.Tensor:
    """A window as a tensor on `device`. Do not modify the result in place."""
    window = window_function(name, length, periodic, blackman_coeff)
    return torch.from_numpy(window).to(device, dtype)


@functools.lru_cache(maxsize=8)
def _torch_hann_window(length: int, device: torch.device) -> torch.Tensor:
    # Whisper's window exactly as openai-whisper and transformers make it: in float32 by
    # torch. The float64 window rounded to float32 differs in the last bit, which moves
    # near-silent mel bins by up to 6e-5 after normalisation.
    return torch.hann_window(length, device=device)


@functools.lru_cache(maxsize=32)
def _mel_matrix(
    n_freqs: int,
    n_mels: int,
    f_min: float,
    f_max: float,
    sampling_rate: float,
    mel_scale: MelScale,
    norm: Literal["slaney"] | None,
    in_mel_space: bool,
    device: torch.device,
    dtype: torch.dtype,
) -> torch.Tensor:
    """Filters as a (n_freqs, n_mels) tensor on `device`. Do not modify the result in place."""
    with warnings.catch_warnings():
        # Kaldi's bank at 128 mels has empty low filters by design; torchaudio does not warn either
        warnings.simplefilter("ignore", UserWarning)
        bank = mel_filter_bank(
            n_freqs, n_mels, f_min, f_max, sampling_rate, mel_scale, norm, in_mel_space
        )
    return torch.from_numpy(bank).to(device, dtype)


# --------------------------------------------------------------------------- Whisper


def whisper_log_mel(
    audio: AudioInput,
    n_mels: int = 80,
    *,
    sampling_rate: int = WHISPER_SAMPLING_RATE,
    n_fft: int = 400,
    hop_length: int = 160,
    padding: Literal["max_length", "longest"] | None = "max_length",
    chunk_length: int = 30,
    pad_mode: Literal["audio", "features"] = "audio",
    device: Device = None,
    trailing_zeros: int = 0,
) -> torch.Tensor:
    """Whisper's normalised log-mel spectrogram.

    Per signal: a centred STFT (reflect padding, periodic Hann window of `n_fft`, hop
    `hop_length`) without its last frame, power spectrum, Slaney-normalised Slaney mel filters
    from 0 to 8 kHz, `log10(max(mel, 1e-10))`, a floor at the signal's maximum minus 8, then
    `(x + 4) / 4`. A signal of `n` samples gives `n // hop_length` frames.

    `padding` (with the default `pad_mode="audio"`, the openai-whisper / transformers way):

    - `"max_length"`: each signal is zero-padded or cut to `chunk_length` seconds before the
      STFT: exactly `chunk_length * 100` frames (3000), as the model takes them. Equals
      `WhisperFeatureExtractor(feature_size=n_mels)(audio, sampling_rate=16000)`.
    - `"longest"`: no cutting; a list of signals is zero-padded to the longest one. Equals the
      reference with `padding="longest", truncation=False` (long-form audio keeps all frames).
    - `None`: no padding and no cutting; a list must hold signals of equal length.

    `pad_mode="features"` is faster-whisper's variant: `hop_length` zeros are appended to the
    audio, its whole log-mel is computed (the floor uses the maximum over the whole input, and
    on each item's own frames only), its first `n // hop_length` frames are kept, and then the
    *features* are padded with zeros (0.0, after normalisation) or cut: to `chunk_length`
    seconds of frames for `"max_length"`, to the longest item for `"longest"`. For a clip
    shorter than 30 s this is faster-whisper's first window,
    `pad_or_trim(FeatureExtractor(n_mels)(audio)[:, :-1])`. The two conventions differ in the
    last frames of the clip and in the padding, enough to change some transcripts (about half
    of our fixture files, WER within ~0.2 point): pick the one of the runtime whose outputs
    you want to reproduce.

    Args:
        audio: Mono float audio, shape (..., time), numpy or torch (float64 is computed in
            float32, as the reference does), or a list of 1-D signals of different lengths.
        n_mels: Mel bins: 80 (Whisper v1/v2, distil) or 128 (large-v3, turbo).
        sampling_rate: Rate of `audio` in Hz; must be 16000.
        n_fft: FFT size and window length, in samples.
        hop_length: Frame shift, in samples.
        padding: `"max_length"`, `"longest"` or `None`, as above.
        chunk_length: The model's window in seconds, for `padding="max_length"`.
        pad_mode: `"audio"` (openai-whisper, transformers) or `"features"` (faster-whisper).
        device: Where to compute; default the input tensor's device (the CPU for numpy).
        trailing_zeros: Zero samples appended to each signal before the STFT (openai-whisper's
            `padding` argument: long-form transcription appends 30 s), without a padded copy
            of the audio (an hour of it is 230 MB); with `padding=None` and
            `pad_mode="audio"` only.

    Returns:
        Features, float32 tensor of shape (..., n_mels, frames) on `device`; (batch, n_mels,
        frames) for a list input. `frames` is `chunk_length * sampling_rate // hop_length` for
        `"max_length"`, else `(time + trailing_zeros) // hop_length` of the (longest) signal.

    Raises:
        FeatureError: `sampling_rate` is not 16000 (resample with
            `soundformers.audio.resample`), the audio contains NaN/inf, is not float, has no
            time axis, is too short for the STFT's reflect padding when not padded, or a
            list of unequal signals is given with `padding=None`.
        ValueError: Unknown `padding` or `pad_mode`, or `trailing_zeros` with another padding
            than None or another `pad_mode` than "audio".
    """
    caller = "whisper_log_mel"
    _check_rate(sampling_rate, WHISPER_SAMPLING_RATE, caller, "Whisper")
    if padding not in ("max_length", "longest", None):
        raise ValueError(
            f"{caller}: padding must be 'max_length', 'longest' or None, got {padding!r}"
        )
    if pad_mode not in ("audio", "features"):
        raise ValueError(f"{caller}: pad_mode must be 'audio' or 'features', got {pad_mode!r}")
    if trailing_zeros and (padding is not None or pad_mode != "audio" or trailing_zeros < 0):
        raise ValueError(
            f"{caller}: trailing_zeros (got {trailing_zeros}) is a count >= 0 for padding=None "
            "and pad_mode='audio'"
        )
    x, lengths = _as_batch(audio, device, caller)
    if padding is None and lengths is not None and bool((lengths != lengths[0]).any()):
        raise FeatureError(
            f"{caller}: the signals have different lengths {lengths.tolist()} and padding=None; "
            "use padding='longest' (or 'max_length') to batch them"
        )
    batch_shape, x = x.shape[:-1], x.reshape(math.prod(x.shape[:-1]), x.shape[-1])
    n_chunk_samples = chunk_length * sampling_rate

    if pad_mode == "audio":
        if padding == "max_length":
            x = _fit_length(x, n_chunk_samples)
        _check_stft_length(x.shape[-1] + trailing_zeros, n_fft, caller)
        # (B, n_mels, frames)
        log_spec = _log10_mel(x, n_mels, n_fft, hop_length, sampling_rate, trailing_zeros)
        peak = log_spec.amax(dim=(-2, -1), keepdim=True)  # (B, 1, 1)
    else:
        x = torch.nn.functional.pad(x, (0, hop_length))
        _check_stft_length(x.shape[-1], n_fft, caller)
        # (B, n_mels, (T + hop) // hop): frames of the audio plus its appended zeros
        log_spec = _log10_mel(x, n_mels, n_fft, hop_length, sampling_rate)
        if lengths is None:
            peak = log_spec.amax(dim=(-2, -1), keepdim=True)
            keep = x.shape[-1] // hop_length - 1
            log_spec = log_spec[..., :keep]
        else:
            # Each item's frames as if computed alone: frames that only see the item and its
            # appended zeros are unchanged by the batch padding; the rest are masked out.
            frame = torch.arange(log_spec.shape[-1], device=x.device)
            lengths_d = lengths.to(x.device)
            seen = frame[None, :] < ((lengths_d + hop_length) // hop_length)[:, None]  # (B, frames)
            peak = log_spec.masked_fill(~seen[:, None, :], -math.inf).amax(
                dim=(-2, -1), keepdim=True
            )
            kept = frame[None, :] < (lengths_d // hop_length)[:, None]
            log_spec = log_spec[..., : int(lengths.max()) // hop_length]
            kept = kept[:, : log_spec.shape[-1]]
    log_spec = log_spec.clamp_(min=peak - 8.0).add_(4.0).div_(4.0)
    if pad_mode == "features":
        if lengths is not None:
            log_spec = log_spec * kept[:, None, :]
        if padding == "max_length":
            log_spec = _fit_length(log_spec, n_chunk_samples // hop_length)
    return log_spec.reshape(*batch_shape, *log_spec.shape[-2:])


def _check_stft_length(n_samples: int, n_fft: int, caller: str) -> None:
    if n_samples <= n_fft // 2:
        raise FeatureError(
            f"{caller}: {n_samples} samples are too few for a centred STFT with n_fft={n_fft} "
            f"(reflect padding needs more than {n_fft // 2}); use padding='max_length' to pad "
            "short clips"
        )


def _power(spectrum: torch.Tensor) -> torch.Tensor:
    """|z|^2 of a complex tensor, as a new real tensor (faster than `abs() ** 2` on the CPU)."""
    return torch.addcmul(spectrum.real.square(), spectrum.imag, spectrum.imag)


def _with_zeros(x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """Samples `start` .. `stop - 1` of x (B, T) followed by zeros: a view while inside x."""
    inside = x[:, start : min(stop, x.shape[-1])]
    if stop <= x.shape[-1]:
        return inside
    zeros = x.new_zeros(x.shape[0], stop - max(start, x.shape[-1]))
    return torch.cat([inside, zeros], dim=1)


def _log10_mel(
    x: torch.Tensor,
    n_mels: int,
    n_fft: int,
    hop_length: int,
    sampling_rate: int,
    trailing_zeros: int = 0,
) -> torch.Tensor:
    """(B, T) float32, followed by `trailing_zeros` zero samples -> log10 of the Slaney mel
    power, (B, n_mels, (T + trailing_zeros) // hop_length).

    Signals longer than `_MEL_BLOCK_FRAMES` frames are transformed a block of frames at a
    time (the frames a centred STFT sees, bit for bit): its complex spectrum and power cost
    ~25 bytes per sample at once, 91 MB of peak memory for 4 minutes of audio and 1.4 GB for
    an hour, where the blocks take ~7 MB whatever the length. The trailing zeros are then
    added block by block, not to a copy of the signal.
    """
    window = _torch_hann_window(n_fft, x.device)
    n_freqs, f_max = n_fft // 2 + 1, sampling_rate / 2
    filters = _mel_matrix(
        n_freqs, n_mels, 0.0, f_max, sampling_rate, "slaney", "slaney", False, x.device, x.dtype
    )
    n_samples = x.shape[-1] + trailing_zeros
    frames = n_samples // hop_length
    if frames <= _MEL_BLOCK_FRAMES:
        x = torch.nn.functional.pad(x, (0, trailing_zeros)) if trailing_zeros else x
        stft = torch.stft(
            x, n_fft, hop_length, window=window, center=True, pad_mode="reflect",
            return_complex=True,
        )  # fmt: skip
        mel = filters.T @ _power(stft[..., :-1])  # (B, n_mels, frames): the last frame dropped
        return mel.clamp_(min=1e-10).log10_()
    half = n_fft // 2
    mel = torch.empty(x.shape[0], n_mels, frames, dtype=x.dtype, device=x.device)
    n_blocks = -(-frames // _MEL_BLOCK_FRAMES)
    bounds = [frames * i // n_blocks for i in range(n_blocks + 1)]  # equal blocks
    for begin, end in zip(bounds[:-1], bounds[1:]):
        # frame f covers samples [f * hop - n_fft / 2, f * hop + n_fft / 2), reflected at the
        # signal's ends: a view of x inside, a padded copy at the first and last block
        low, high = begin * hop_length - half, (end - 1) * hop_length + n_fft - half
        block = _with_zeros(x, max(low, 0), min(high, n_samples))
        if low < 0 or high > n_samples:
            pads = (max(-low, 0), max(high - n_samples, 0))
            block = torch.nn.functional.pad(block[:, None], pads, mode="reflect")[:, 0]
        stft = torch.stft(block, n_fft, hop_length, window=window, center=False,
                          return_complex=True)  # fmt: skip
        torch.matmul(filters.T, _power(stft), out=mel[..., begin:end])
    return mel.clamp_(min=1e-10).log10_()


_MEL_BLOCK_FRAMES = 3000  # 30 s at Whisper's 10 ms hop: one window's features in one go


# --------------------------------------------------------------------------- Kaldi fbank


def kaldi_fbank(
    waveform: AudioInput,
    *,
    sampling_rate: float = 16000,
    num_mel_bins: int = 128,
    frame_length_ms: float = 25.0,
    frame_shift_ms: float = 10.0,
    dither: float = 0.0,
    window: WindowName = "hanning",
    preemphasis: float = 0.97,
    remove_dc_offset: bool = True,
    use_energy: bool = False,
    low_freq: float = 20.0,
    high_freq: float = 0.0,
    energy_floor: float = 1.0,
    raw_energy: bool = True,
    htk_compat: bool = False,
    use_log_fbank: bool = True,
    use_power: bool = True,
    round_to_power_of_two: bool = True,
    snip_edges: bool = True,
    subtract_mean: bool = False,
    blackman_coeff: float = 0.42,
    generator: torch.Generator | None = None,
    device: Device = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Kaldi's log-mel filter bank (`compute-fbank-feats`), batched.

    The options mean what they mean in `torchaudio.compliance.kaldi.fbank` (VTLN warping is not
    supported), with two defaults changed to AST's: `window="hanning"` (torchaudio: `"povey"`)
    and `num_mel_bins=128` (torchaudio: 23). Per frame: optional dither, removal of the frame's
    mean, raw log energy, pre-emphasis `x[n] - c x[n-1]` (with `x[-1] = x[0]`), a symmetric
    window, an FFT zero-padded to the next power of two, power spectrum, Kaldi mel filters
    (triangles in mel space; the Nyquist bin gets no weight) from `low_freq` to `high_freq`, and
    `log(max(mel, float32 eps))`.

    Samples are used as given: like torchaudio (and `ASTFeatureExtractor`), this does not
    multiply by 32768 as Kaldi's int16 reader would; multiply yourself for Kaldi's own scale
    (the log features then shift by `2 ln 32768` except near the floor).

    Args:
        waveform: Float audio, shape (..., time), numpy or torch, or a list of 1-D signals of
            different lengths (zero-padded into a batch; see Returns).
        sampling_rate: Rate of the audio in Hz.
        num_mel_bins: Number of mel bands.
        frame_length_ms: Window length in milliseconds (25 ms: 400 samples at 16 kHz).
        frame_shift_ms: Frame shift in milliseconds.
        dither: Standard deviation of Gaussian noise added to each frame (0 disables).
        window: `"hanning"`, `"hamming"`, `"povey"`, `"rectangular"` or `"blackman"`.
        preemphasis: Pre-emphasis coefficient (0 disables).
        remove_dc_offset: Subtract each frame's mean before anything else.
        use_energy: Add the log energy as an extra first column (last with `htk_compat`).
        low_freq: Lower edge of the mel bank in Hz.
        high_freq: Upper edge in Hz; `<= 0` means the Nyquist frequency plus this value.
        energy_floor: Floor of the energy (not its log); 0 disables.
        raw_energy: Take the energy before pre-emphasis and windowing.
        htk_compat: Put the energy column last.
        use_log_fbank: Return the log of the mel energies (else the energies).
        use_power: Use the power spectrum (else the magnitude).
        round_to_power_of_two: Zero-pad each frame to the next power of two for the FFT.
        snip_edges: Only frames that fit inside the signal (`1 + (time - length) // shift`
            frames); if `False`, `(time + shift // 2) // shift` frames, the signal mirrored at
            both ends as Kaldi does.
        subtract_mean: Subtract each feature's mean over the frames (per signal).
        blackman_coeff: The constant of the Blackman window.
        generator: Random generator for `dither`.
        device: Where to compute; default the input tensor's device (the CPU for numpy).
        dtype: Computation and output dtype: `torch.float32` (what Kaldi and torchaudio use)
            or `torch.float64` (slower; bins far below a frame's loudest ones keep more
            digits: float32 leaves up to ~5e-3 of absolute log error there).

    Returns:
        Features, `dtype` tensor of shape (..., frames, num_mel_bins) (+1 column with
        `use_energy`) on `device`. For a list input, (batch, frames of the longest, bins): each
        item's frames equal those of the item alone, and the rows after them are zeros.

    Raises:
        FeatureError: Non-float, NaN/inf or scalar audio.
        ValueError: Frequencies out of range, unknown window, or a frame shorter than 2 samples.
    """
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"kaldi_fbank: dtype must be torch.float32 or torch.float64, got {dtype}")
    x, lengths = _as_batch(waveform, device, "kaldi_fbank", dtype)
    features, _ = _kaldi_fbank(
        x,
        lengths,
        sampling_rate=sampling_rate,
        num_mel_bins=num_mel_bins,
        frame_length_ms=frame_length_ms,
        frame_shift_ms=frame_shift_ms,
        dither=dither,
        window=window,
        preemphasis=preemphasis,
        remove_dc_offset=remove_dc_offset,
        use_energy=use_energy,
        low_freq=low_freq,
        high_freq=high_freq,
        energy_floor=energy_floor,
        raw_energy=raw_energy,
        htk_compat=htk_compat,
        use_log_fbank=use_log_fbank,
        use_power=use_power,
        round_to_power_of_two=round_to_power_of_two,
        snip_edges=snip_edges,
        subtract_mean=subtract_mean,
        blackman_coeff=blackman_coeff,
        generator=generator,
    )
    return features


def _kaldi_fbank(
    x: torch.Tensor,
    lengths: torch.Tensor | None,
    *,
    sampling_rate: float,
    num_mel_bins: int,
    frame_length_ms: float,
    frame_shift_ms: float,
    dither: float,
    window: WindowName,
    preemphasis: float,
    remove_dc_offset: bool,
    use_energy: bool,
    low_freq: float,
    high_freq: float,
    energy_floor: float,
    raw_energy: bool,
    htk_compat: bool,
    use_log_fbank: bool,
    use_power: bool,
    round_to_power_of_two: bool,
    snip_edges: bool,
    subtract_mean: bool,
    blackman_coeff: float,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`kaldi_fbank` on a validated (..., T) float tensor. Returns the features and each
    signal's frame count (flattened batch,) int64 on the CPU."""
    win_len = int(sampling_rate * frame_length_ms * 0.001)
    shift = int(sampling_rate * frame_shift_ms * 0.001)
    if win_len < 2 or shift < 1:
        raise ValueError(
            f"kaldi_fbank: frame_length_ms={frame_length_ms} and frame_shift_ms={frame_shift_ms} give "
            f"{win_len}-sample frames every {shift} samples at {sampling_rate} Hz; need >= 2 and >= 1"
        )
    n_fft = 1 << (win_len - 1).bit_length() if round_to_power_of_two else win_len
    nyquist = sampling_rate / 2
    f_high = high_freq + nyquist if high_freq <= 0 else high_freq
    if not (0.0 <= low_freq < nyquist and 0.0 < f_high <= nyquist and low_freq < f_high):
        raise ValueError(
            f"kaldi_fbank: need 0 <= low_freq < high_freq <= {nyquist} (Nyquist); got "
            f"low_freq={low_freq}, high_freq={high_freq} (-> {f_high})"
        )

    batch_shape, x = x.shape[:-1], x.reshape(math.prod(x.shape[:-1]), x.shape[-1])
    n_batch, n_time = x.shape
    lengths = torch.full((n_batch,), n_time, dtype=torch.int64) if lengths is None else lengths
    frames = _kaldi_frames(x, lengths, win_len, shift, snip_edges)  # (B, F, win_len)
    if snip_edges:
        n_frames = torch.clamp((lengths - win_len) // shift + 1, min=0)
    else:
        n_frames = (lengths + shift // 2) // shift
    if frames.shape[-2] == 0:  # every signal is shorter than one frame
        empty = x.new_zeros(n_batch, 0, num_mel_bins + int(use_energy))
        return empty.reshape(*batch_shape, *empty.shape[1:]), n_frames

    if dither != 0.0:
        noise_device = frames.device if generator is None else generator.device
        noise = torch.randn(frames.shape, generator=generator, device=noise_device)
        frames = frames + dither * noise.to(frames.device)
    frame_mean = frames.mean(dim=-1, keepdim=True) if remove_dc_offset else None  # (B, F, 1)
    if use_energy and raw_energy:
        log_energy = _log_energy(
            frames if frame_mean is None else frames - frame_mean, energy_floor
        )

    # Build the FFT input in one zero-padded buffer, in place: fewer full-size temporaries is
    # what makes this fast on the CPU. Pre-emphasis (with x[-1] = x[0]) is linear and maps a
    # constant m to m (1 - c), so it may run before the mean is removed.
    buffer = frames.new_zeros(*frames.shape[:-1], n_fft)  # (B, F, n_fft)
    body = buffer[..., :win_len]
    if preemphasis != 0.0:
        torch.sub(frames[..., 1:], frames[..., :-1], alpha=preemphasis, out=body[..., 1:])
        body[..., 0] = frames[..., 0] * (1.0 - preemphasis)
    else:
        body.copy_(frames)
    if frame_mean is not None:
        body.sub_(frame_mean * (1.0 - preemphasis))
    body.mul_(_window(window, win_len, False, blackman_coeff, x.device, x.dtype))
    if use_energy and not raw_energy:
        log_energy = _log_energy(body, energy_floor)

    power = _power(torch.fft.rfft(buffer))  # (B, F, n_fft // 2 + 1)
    if not use_power:
        power.sqrt_()
    low, high, rate = float(low_freq), float(f_high), float(sampling_rate)
    filters = _mel_matrix(
        n_fft // 2 + 1, num_mel_bins, low, high, rate, "kaldi", None, True, x.device, x.dtype
    )
    features = power @ filters  # (B, F, num_mel_bins)
    if use_log_fbank:
        features = features.clamp_(min=_KALDI_EPS).log_()
    if use_energy:
        energy = log_energy.unsqueeze(-1)
        features = torch.cat([features, energy] if htk_compat else [energy, features], dim=-1)

    valid = torch.arange(features.shape[1])[None, :] < n_frames[:, None]  # (B, F)
    if not bool(valid.all()):
        features = features * valid.to(features.device)[..., None]
    if subtract_mean:
        counts = torch.clamp(n_frames, min=1).to(features.device, features.dtype)[:, None, None]
        feature_mean = features.sum(dim=1, keepdim=True) / counts
        features = (features - feature_mean) * valid.to(features.device)[..., None]
    return features.reshape(*batch_shape, *features.shape[1:]), n_frames


def _kaldi_frames(
    x: torch.Tensor, lengths: torch.Tensor, win_len: int, shift: int, snip_edges: bool
) -> torch.Tensor:
    """(B, T) -> (B, frames, win_len) frames of the longest signal, as Kaldi cuts them."""
    n_batch, n_time = x.shape
    if snip_edges:
        if n_time < win_len:
            return x.new_zeros(n_batch, 0, win_len)
        return x.unfold(-1, win_len, shift)  # a strided view, no copy
    # Frame f covers samples f * shift - pad ... + win_len; outside [0, n) Kaldi mirrors the
    # signal (sample -1 is sample 0, sample n is sample n - 1), for each item at its own length.
    n_frames = (n_time + shift // 2) // shift
    pad = win_len // 2 - shift // 2
    start = torch.arange(n_frames, device=x.device)[:, None] * shift - pad
    index = start + torch.arange(win_len, device=x.device)[None, :]  # (F, W)
    n = torch.clamp(lengths.to(x.device), min=1)[:, None, None]  # (B, 1, 1)
    index = index[None].expand(n_batch, -1, -1)
    index = torch.where(index < 0, -index - 1, index)
    index = torch.where(index >= n, 2 * n - 1 - index, index)
    index = torch.minimum(torch.clamp(index, min=0), n - 1)  # signals shorter than the mirror
    gathered = torch.gather(x, 1, index.reshape(n_batch, -1))
    return gathered.reshape(n_batch, n_frames, win_len)


def _log_energy(frames: torch.Tensor, energy_floor: float) -> torch.Tensor:
    log_energy = torch.clamp(frames.square().sum(-1), min=_KALDI_EPS).log()
    if energy_floor > 0.0:
        log_energy = torch.clamp(log_energy, min=math.log(energy_floor))
    return log_energy


# --------------------------------------------------------------------------- AST


def ast_features(
    audio: AudioInput,
    *,
    sampling_rate: int = AST_SAMPLING_RATE,
    num_mel_bins: int = 128,
    max_length: int = 1024,
    normalize: bool = True,
    mean: float = AST_MEAN,
    std: float = AST_STD,
    device: Device = None,
) -> torch.Tensor:
    """The Audio Spectrogram Transformer's input: Kaldi fbank, fixed length, normalised.

    `kaldi_fbank` with AST's settings (Hann window, 25 ms frames every 10 ms, 128 mels from
    20 Hz to 8 kHz), zero-padded or cut to `max_length` frames, then `(x - mean) / (2 * std)`
    (padded frames included, as the reference does). Equals
    `transformers.ASTFeatureExtractor(num_mel_bins, max_length)(audio, sampling_rate=16000)
    ["input_values"]`.

    Args:
        audio: Float audio, shape (..., time), numpy or torch, or a list of 1-D signals of
            different lengths (each treated as if alone).
        sampling_rate: Rate of `audio` in Hz; must be 16000.
        num_mel_bins: Mel bands (128 for the released checkpoints).
        max_length: Frames per example: 1024 for AudioSet checkpoints (10.24 s), 128 for
            Speech Commands ones.
        normalize: Apply `(x - mean) / (2 * std)`.
        mean: Dataset mean of the fbank features (AudioSet's by default).
        std: Dataset standard deviation (AudioSet's by default).
        device: Where to compute; default the input tensor's device (the CPU for numpy).

    Returns:
        Features, float32 tensor of shape (..., max_length, num_mel_bins) on `device`;
        (batch, max_length, num_mel_bins) for a list input.

    Raises:
        FeatureError: `sampling_rate` is not 16000 (resample with
            `soundformers.audio.resample`), or non-float, NaN/inf or scalar audio.
    """
    caller = "ast_features"
    _check_rate(sampling_rate, AST_SAMPLING_RATE, caller, "AST")
    x, lengths = _as_batch(audio, device, caller)
    features, _ = _kaldi_fbank(
        x,
        lengths,
        sampling_rate=sampling_rate,
        num_mel_bins=num_mel_bins,
        frame_length_ms=25.0,
        frame_shift_ms=10.0,
        dither=0.0,
        window="hanning",
        preemphasis=0.97,
        remove_dc_offset=True,
        use_energy=False,
        low_freq=20.0,
        high_freq=0.0,
        energy_floor=1.0,
        raw_energy=True,
        htk_compat=False,
        use_log_fbank=True,
        use_power=True,
        round_to_power_of_two=True,
        snip_edges=True,
        subtract_mean=False,
        blackman_coeff=0.42,
        generator=None,
    )
    features = _fit_length(features, max_length, dim=-2)
    if normalize:
        features = (features - mean) / (2.0 * std)
    return features
