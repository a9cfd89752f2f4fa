"""Decoding any audio input to float32 samples: the one path every pipeline and dataset uses.

`load_audio(source)` accepts a path, an http(s) URL, bytes, a binary file-like object, a numpy
array or torch tensor, or a row in the datasets layout, and returns a `Waveform`
`(samples, sampling_rate)`. Encoded audio goes through a short backend chain, first success
wins: soundfile (libsndfile: wav, flac, ogg/vorbis, opus, mp3, ...) and then PyAV (its wheels
carry FFmpeg: m4a/aac and everything else). The format is sniffed from the content, never taken
from the file name. Decoders hand their output over a block of frames at a time: for mono
results each block is mixed and resampled as it comes (`_MonoStream`), so a long recording is
never held at its own rate and channels; otherwise the blocks fill one (channels, time) array
(`_Planes`).
"""

from __future__ import annotations

import io
import os
import struct
import warnings
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal, NamedTuple

import numpy as np

from ..errors import AudioDecodeError, AudioFetchError
from .resampling import resample

if TYPE_CHECKING:
    import torch

    AudioSource = str | os.PathLike | bytes | IO[bytes] | np.ndarray | torch.Tensor | dict

URL_TIMEOUT_S = 30.0
MAX_DOWNLOAD_BYTES = 1 << 30  # 1 GiB
# A header that declares more samples than this is not trusted (about 6 h of 8-channel 48 kHz).
MAX_DECLARED_SAMPLES = 1 << 33

_ROW_FORMS = (
    "{'array': samples, 'sampling_rate': rate}, {'raw': samples, 'sampling_rate': rate} "
    "or {'path': path, 'bytes': encoded bytes or None}"
)


class Waveform(NamedTuple):
    """Decoded audio. A plain tuple `(samples, sampling_rate)`, so it unpacks as one.

    Attributes:
        samples: float32 array, shape (time,) when mono, else (channels, time).
        sampling_rate: samples per second, in Hz.
    """

    samples: np.ndarray
    sampling_rate: int

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.samples.shape[-1] / self.sampling_rate


def load_audio(
    source: AudioSource,
    sampling_rate: int | None = None,
    mono: bool = True,
    *,
    allow_empty: bool = False,
    nonfinite: Literal["raise", "zero"] = "raise",
    timeout: float = URL_TIMEOUT_S,
    max_bytes: int = MAX_DOWNLOAD_BYTES,
) -> Waveform:
    """Decode any audio input to float32 samples, optionally downmixed and resampled.

    Args:
        source: one of
            - a path (str or os.PathLike) to an audio file of any format soundfile or FFmpeg reads;
            - an ``http://`` or ``https://`` URL (fetched with `timeout`, at most `max_bytes`);
            - ``bytes``/``bytearray``/``memoryview`` holding an encoded file;
            - a binary file-like object (anything with ``read()`` returning bytes);
            - a numpy array or torch tensor of samples, shape (time,) or (channels, time). A bare
              array carries no rate: it is taken to be at `sampling_rate`, which is then
              required. Integer arrays are scaled to [-1, 1) (int16 / 32768, ...);
            - a dict in the datasets row layout: ``{"array", "sampling_rate"}``,
              ``{"raw", "sampling_rate"}`` or ``{"path", "bytes"}``.
        sampling_rate: rate of the returned samples in Hz; audio at another rate is resampled
            (soxr, HQ). None keeps the source's rate.
        mono: average the channels into shape (time,). With False the result is always
            (channels, time), even for a one-channel source.
        allow_empty: return a zero-length result instead of raising for audio with no samples.
        nonfinite: what to do with NaN or infinite samples: "raise" (default) or "zero" (replace
            them with 0.0).
        timeout: seconds to wait for a URL's server.
        max_bytes: largest download accepted from a URL.

    Returns:
        Waveform(samples, sampling_rate): samples float32, shape (time,) if `mono` else
        (channels, time).

    Raises:
        AudioDecodeError: the source cannot be read or decoded, is empty, or holds NaN/inf
            samples. The message names the source and the problem.
        AudioFetchError: a URL could not be fetched (a subclass of AudioDecodeError).
    """
    given = _is_array(source) or (
        isinstance(source, dict) and any(source.get(k) is not None for k in ("array", "raw"))
    )
    if mono and not given:  # encoded audio: mixed and resampled block by block as decoded
        streams: list[_MonoStream] = []

        def gather(rate: int, capacity: int) -> _MonoStream:
            streams.append(_MonoStream(rate, capacity, sampling_rate, nonfinite))
            return streams[-1]

        samples, source_rate, name = _decode_any(source, sampling_rate, timeout, max_bytes, gather)
        stream = streams[-1]  # the backend that succeeded
        _check_samples(samples, name, allow_empty, nonfinite, stream.bad, stream.first_bad)
        return Waveform(samples[0], stream.rate_out)
    samples, source_rate, name = _decode_any(source, sampling_rate, timeout, max_bytes)
    samples = _check_samples(samples, name, allow_empty, nonfinite)
    if mono and samples.shape[0] > 1:  # a caller's array (decoded audio was mixed above)
        samples = samples.mean(axis=0, dtype=np.float32)
    elif mono:
        samples = samples[0]
    else:  # the decoders may give a view of a longer buffer
        samples = np.ascontiguousarray(samples)
    if sampling_rate is not None and sampling_rate != source_rate:
        samples = resample(samples, source_rate, sampling_rate)
        source_rate = int(sampling_rate)
    return Waveform(samples, int(source_rate))


def _downmix(samples: np.ndarray) -> np.ndarray:
    """The mean of float32 (channels, time) samples over channels, (time,), in the first
    channel's memory (`samples` is overwritten): the same values as `samples.mean(axis=0)` in
    float32 (the channels added in order, then divided), without a second mono-sized array."""
    total = samples[0]
    for channel in samples[1:]:
        total += channel
    total /= np.float32(len(samples))
    return total


def load_audios(
    sources: Iterable[AudioSource],
    sampling_rate: int | None = None,
    mono: bool = True,
    *,
    num_workers: int | None = None,
    **kwargs: Any,
) -> list[Waveform]:
    """Decode many inputs on a thread pool (the backends release the GIL); order is kept.

    Args:
        sources: inputs, each anything `load_audio` accepts.
        sampling_rate, mono: as for `load_audio`, applied to every item.
        num_workers: threads to use; default: the number of CPUs (at most 8).
        **kwargs: passed to `load_audio`.

    Returns:
        One Waveform per source, in order.

    Raises:
        AudioDecodeError: for the first item that fails, naming its index.
    """
    sources = list(sources)
    workers = num_workers or min(8, os.cpu_count() or 1)

    def one(index: int) -> Waveform:
        try:
            return load_audio(sources[index], sampling_rate, mono, **kwargs)
        except AudioDecodeError as e:
            raise type(e)(f"item {index}: {e}") from e

    if workers <= 1 or len(sources) <= 1:
        return [one(i) for i in range(len(sources))]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, range(len(sources))))


# ---------------------------------------------------------------------------------------------
# Dispatch on the kind of source. Each branch returns (samples (channels, time), rate, name).


def _decode_any(
    source: Any,
    sampling_rate: int | None,
    timeout: float,
    max_bytes: int,
    gather: Gather | None = None,
) -> tuple[np.ndarray, int, str]:
    """(samples (channels, time), their rate, a name for messages); encoded audio's decoded
    blocks go to `gather(rate, declared frames)` (default `_Planes`), whose `result()` the
    samples are."""
    if isinstance(source, dict):
        return _decode_row(source, sampling_rate, timeout, max_bytes, gather)
    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        if isinstance(text, str) and text.startswith(("http://", "https://")):
            data = _fetch(text, timeout, max_bytes)
            return (*_decode_bytes(data, text, gather), text)
        return (*_decode_file(Path(text), gather), text)
    if isinstance(source, (bytes, bytearray, memoryview)):
        name = f"<{len(source)} bytes>"
        return (*_decode_bytes(bytes(source), name, gather), name)
    if hasattr(source, "read"):
        name = f"<file-like {getattr(source, 'name', type(source).__name__)}>"
        data = source.read()
        if not isinstance(data, (bytes, bytearray)):
            raise AudioDecodeError(
                f"{name}: read() returned {type(data).__name__}, not bytes; open the file in "
                "binary mode ('rb')"
            )
        return (*_decode_bytes(bytes(data), name, gather), name)
    if _is_array(source):
        name = f"<{type(source).__module__.split('.')[0]} array of shape {tuple(source.shape)}>"
        if sampling_rate is None:
            raise AudioDecodeError(
                f"{name}: a bare array has no sampling rate; pass sampling_rate=<its rate in Hz>, "
                "or a dict {'array': samples, 'sampling_rate': rate} to have it resampled"
            )
        return _as_channels_first(source, name), int(sampling_rate), name
    raise AudioDecodeError(
        f"cannot read audio from a {type(source).__name__}: expected a path, URL, bytes, a binary "
        f"file object, a numpy array or torch tensor, or a dict {_ROW_FORMS}"
    )


def _decode_row(
    row: dict,
    sampling_rate: int | None,
    timeout: float,
    max_bytes: int,
    gather: Gather | None = None,
) -> tuple[np.ndarray, int, str]:
    for key in ("array", "raw"):
        if row.get(key) is not None:
            name = f"<row {key}{' from ' + str(row['path']) if row.get('path') else ''}>"
            if row.get("sampling_rate") is None:
                raise AudioDecodeError(
                    f"{name}: a row with '{key}' needs its 'sampling_rate' as well"
                )
            if not _is_array(row[key]):
                row_array = np.asarray(row[key], dtype=np.float32)
            else:
                row_array = row[key]
            return _as_channels_first(row_array, name), int(row["sampling_rate"]), name
    if row.get("bytes") is not None:
        name = str(row.get("path") or f"<row bytes: {len(row['bytes'])} bytes>")
        return (*_decode_bytes(bytes(row["bytes"]), name, gather), name)
    if row.get("path") is not None:
        return _decode_any(row["path"], sampling_rate, timeout, max_bytes, gather)
    raise AudioDecodeError(
        f"cannot read audio from a dict with keys {sorted(row)}: expected {_ROW_FORMS}"
    )


def _is_array(x: Any) -> bool:
    return isinstance(x, np.ndarray) or type(x).__module__.startswith("torch")


def _as_channels_first(x: Any, name: str) -> np.ndarray:
    """An array or tensor as float32 (channels, time), integers scaled to [-1, 1)."""
    if not isinstance(x, np.ndarray):
        x = x.detach().cpu().numpy()
    if x.ndim == 1:
        x = x[None]
    elif x.ndim != 2:
        raise AudioDecodeError(f"{name}: expected shape (time,) or (channels, time), got {x.shape}")
    elif x.shape[0] > 64 and x.shape[0] > x.shape[1]:
        raise AudioDecodeError(
            f"{name}: shape {x.shape} looks like (time, channels); audio arrays are "
            "(channels, time): pass the transpose (x.T)"
        )
    if x.dtype.kind in "iu":
        info = np.iinfo(x.dtype)
        scale = 1.0 / (int(info.max) + 1)
        offset = 0.0 if x.dtype.kind == "i" else -1.0
        return (x.astype(np.float32) * scale + offset).astype(np.float32, copy=False)
    if x.dtype.kind != "f":
        raise AudioDecodeError(f"{name}: expected float or integer samples, got dtype {x.dtype}")
    return np.asarray(x, dtype=np.float32)


def _check_samples(
    samples: np.ndarray,
    name: str,
    allow_empty: bool,
    nonfinite: str,
    bad: int | None = None,
    first_bad: int | None = None,
) -> np.ndarray:
    """`samples` (channels, time) checked for emptiness and NaN/inf (raised, or zeroed with
    `nonfinite="zero"`); `bad` / `first_bad`: the count and first frame of non-finite
    samples where a `_MonoStream` already counted (and zeroed) them."""
    if samples.shape[-1] == 0 and not allow_empty:
        raise AudioDecodeError(f"{name}: the audio holds no samples (empty audio)")
    if bad is None and samples.size and not np.isfinite(samples.sum()):
        found = ~np.isfinite(samples)  # (the sum may also overflow on finite samples)
        if found.any() and nonfinite == "zero":
            return np.where(found, np.float32(0), samples)
        bad, first_bad = int(found.sum()), int(np.argmax(found.any(axis=0)))
    if bad and nonfinite != "zero":
        raise AudioDecodeError(
            f"{name}: {bad} samples are NaN or infinite (first at sample {first_bad}); pass "
            "nonfinite='zero' to replace them with silence"
        )
    return samples


# ---------------------------------------------------------------------------------------------
# Encoded audio: fetch, then the backend chain.


def _fetch(url: str, timeout: float, max_bytes: int) -> bytes:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, headers={"User-Agent": "soundformers"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            declared = response.headers.get("Content-Length")
            if declared is not None and declared.isdigit() and int(declared) > max_bytes:
                raise AudioFetchError(
                    f"{url}: the server announces {int(declared)} bytes, more than max_bytes="
                    f"{max_bytes}; download it yourself or raise max_bytes"
                )
            data = response.read(max_bytes + 1)
    except AudioFetchError:
        raise
    except urllib.error.HTTPError as e:
        raise AudioFetchError(f"{url}: the server answered HTTP {e.code} {e.reason}") from e
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise AudioFetchError(
            f"{url}: could not fetch it ({reason}); if this machine is offline, download the "
            "file elsewhere and pass its local path"
        ) from e
    if len(data) > max_bytes:
        raise AudioFetchError(
            f"{url}: the download exceeds max_bytes={max_bytes}; download it yourself or raise "
            "max_bytes"
        )
    return data


def _decode_file(path: Path, gather: Gather | None = None) -> tuple[np.ndarray, int]:
    if not path.exists():
        raise AudioDecodeError(f"{path}: no such file")
    if path.is_dir():
        raise AudioDecodeError(f"{path}: is a directory, not an audio file")
    if path.stat().st_size == 0:
        raise AudioDecodeError(f"{path}: the file is empty (0 bytes)")
    with open(path, "rb") as f:
        return _decode_stream(f, str(path), path.stat().st_size, gather)


def _decode_bytes(data: bytes, name: str, gather: Gather | None = None) -> tuple[np.ndarray, int]:
    if not data:
        raise AudioDecodeError(f"{name}: empty input (0 bytes)")
    return _decode_stream(io.BytesIO(data), name, len(data), gather)


def _decode_stream(
    f: IO[bytes], name: str, size: int, gather: Gather | None = None
) -> tuple[np.ndarray, int]:
    """Try each backend on the seekable binary stream `f`; the first that succeeds wins (each
    gathers into a new `gather(rate, declared frames)`)."""
    failures = []
    head = f.read(64)
    # Ogg Opus: FFmpeg's decoder is twice as fast as libsndfile's and honours the pre-skip exactly
    backends = _BACKENDS[::-1] if head[:4] == b"OggS" and b"OpusHead" in head else _BACKENDS
    for backend_name, backend in backends:
        f.seek(0)
        try:
            sink, rate = backend(f, size, gather or _Planes)
            samples = sink.result()
        except _Unsupported as e:
            failures.append(f"{backend_name}: {e}")
            continue
        except MemoryError as e:
            raise AudioDecodeError(f"{name}: decoding needs more memory than there is") from e
        except Exception as e:  # a backend's own error type: report it, try the next
            failures.append(f"{backend_name}: {_backend_message(e)}")
            continue
        if backend_name == "soundfile":
            f.seek(0)
            _warn_if_truncated_wav(f, sink.samples, name)
        return samples, rate
    raise AudioDecodeError(
        f"{name}: not a readable audio file ({size} bytes; " + "; ".join(failures) + ")"
    )


def _backend_message(e: Exception) -> str:
    """A backend error's own words, without the file-object repr the backends prepend."""
    text = getattr(e, "error_string", None) or getattr(e, "strerror", None) or str(e)
    return str(text).strip()


class _Unsupported(Exception):
    """A backend cannot read this content (format unknown to it, or invalid)."""


def _read_soundfile(f: IO[bytes], size: int, gather: Gather) -> tuple[Sink, int]:
    import soundfile

    with soundfile.SoundFile(f) as sf:
        rate, channels, frames = sf.samplerate, sf.channels, sf.frames
        if rate <= 0 or channels <= 0:
            raise _Unsupported(f"invalid header ({channels} channels at {rate} Hz)")
        if frames * channels > MAX_DECLARED_SAMPLES:
            raise _Unsupported(f"the header declares an implausible {frames} frames")
        sink = gather(int(rate), frames)
        # a block of frames at a time: reading all frames as (time, channels) and transposing
        # held the samples twice (846 MB for 20 min of 44.1 kHz stereo); soundfile reads the
        # frames the header counts, as `read` does, fewer if the file is truncated
        for block in sf.blocks(_READ_BLOCK_FRAMES, dtype="float32", always_2d=True):
            sink.add(block.T)
    return sink, int(rate)


_READ_BLOCK_FRAMES = 1 << 16  # `_read_soundfile`: frames decoded at a time


def _read_pyav(f: IO[bytes], size: int, gather: Gather) -> tuple[Sink, int]:
    import av

    try:
        container = av.open(f, mode="r", metadata_errors="ignore")
    except av.error.FFmpegError as e:
        raise _Unsupported(str(e)) from e
    with container:
        if not container.streams.audio:
            raise _Unsupported("no audio stream in the container")
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate or stream.rate
        if not rate or rate <= 0:
            raise _Unsupported(f"invalid sampling rate {rate}")
        to_float = av.AudioResampler(format="fltp")  # same rate and layout, planar float32
        planes = gather(int(rate), _declared_samples(container, stream, rate))
        try:
            for frame in container.decode(stream):
                for converted in to_float.resample(frame):
                    planes.add(converted.to_ndarray())
            for converted in to_float.resample(None):
                planes.add(converted.to_ndarray())
        except av.error.FFmpegError as e:
            if not planes.samples:
                raise _Unsupported(str(e)) from e
            warnings.warn(
                f"audio decoding stopped early ({e}); returning the {planes.samples} "
                "samples decoded before the error",
                stacklevel=4,
            )
    if not planes.samples:
        planes.add(np.zeros((stream.codec_context.channels or 1, 0), np.float32))
    return planes, int(rate)


def _declared_samples(container: Any, stream: Any, rate: int) -> int:
    """Samples per channel the container says the stream lasts, with 1 % and a second to
    spare; 0 where it does not say."""
    import av

    seconds = None
    if stream.duration is not None and stream.time_base:
        seconds = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        seconds = container.duration / av.time_base
    if not seconds or seconds <= 0:
        return 0
    return int(seconds * rate * 1.01) + rate


class _Planes:
    """Decoded planar frames (channels, n) gathered into one (channels, time) float32 array.

    Where the container declares its duration, the frames are written into an array of that
    length as they come: its pages become resident only as they are written, and no second
    copy is made (a list of frames and their concatenation held 20 min of 44.1 kHz stereo
    AAC twice, 881 MB at the peak). Frames past that length, or all of them where no
    duration is declared, are kept in a list and concatenated at the end. A frame with
    fewer channels than the others limits all to its count, as their concatenation would.
    """

    def __init__(self, rate: int, capacity: int) -> None:
        """rate: the frames' (unused: the `Gather` signature); capacity: declared frames."""
        self.capacity = min(capacity, MAX_DECLARED_SAMPLES // 8)
        self.head: np.ndarray | None = None
        self.filled = 0  # samples written into `head`
        self.rest: list[np.ndarray] = []
        self.channels: int | None = None
        self.samples = 0

    def add(self, plane: np.ndarray) -> None:
        count, n = plane.shape
        self.channels = count if self.channels is None else min(self.channels, count)
        self.samples += n
        if self.head is None and self.capacity and not self.rest:
            try:
                self.head = np.empty((count, self.capacity), dtype=np.float32)
            except MemoryError:
                self.capacity = 0
        if self.head is not None and not self.rest and self.filled + n <= self.capacity:
            rows = min(count, len(self.head))
            self.head[:rows, self.filled : self.filled + n] = plane[:rows]
            self.filled += n
        else:
            self.rest.append(plane)

    def result(self) -> np.ndarray:
        """(channels, time) float32 of every frame added, in order."""
        parts = ([] if self.head is None else [self.head[:, : self.filled]]) + self.rest
        if len(parts) == 1:
            return parts[0][: self.channels]
        return np.concatenate([p[: self.channels] for p in parts], axis=1)


class _MonoStream:
    """Decoded blocks (channels, n) mixed to mono as they come and, where `rate_out` differs
    from the source's rate, resampled by soxr's stream: the recording is never held whole at
    its own rate and channels (20 min of 44.1 kHz stereo: 423 MB as float32), only the mono
    result. The same samples as mixing (`_downmix`) and resampling the whole recording. As
    `_check_samples` would, non-finite samples are counted per channel before the mix (and
    zeroed with `nonfinite="zero"`). Each block is mixed over its own channels (a stream
    whose channel count changes keeps no common count, unlike `_Planes`)."""

    def __init__(self, rate: int, capacity: int, rate_out: int | None, nonfinite: str) -> None:
        self.rate_out = int(rate_out or rate)
        self.resampler = None
        if self.rate_out != rate:
            import soxr

            self.resampler = soxr.ResampleStream(
                rate, self.rate_out, 1, dtype="float32", quality="HQ"
            )
        self.nonfinite = nonfinite
        # the result, written in place where the source declares its length
        self.out = _Planes(self.rate_out, -(-capacity * self.rate_out // rate) + 64)
        self.pending: list[np.ndarray] = []  # small blocks not mixed yet
        self.pending_frames = 0
        self.mixed = 0  # frames mixed, at the source's rate
        self.bad = 0  # non-finite samples, over all channels
        self.first_bad: int | None = None  # the first frame holding one

    @property
    def samples(self) -> int:
        """Frames taken so far, at the source's rate."""
        return self.mixed + self.pending_frames

    def add(self, block: np.ndarray) -> None:
        """Take a block of frames (channels, n); FFmpeg's frames of ~1000 samples are pooled
        to `_READ_BLOCK_FRAMES` first (the per-block work cost 0.3 s for 20 min of AAC)."""
        if self.pending and len(block) != len(self.pending[0]):  # a new channel count
            self._mix(self._pooled())
        self.pending.append(block)
        self.pending_frames += block.shape[1]
        if self.pending_frames >= _READ_BLOCK_FRAMES:
            self._mix(self._pooled())

    def _pooled(self) -> np.ndarray:
        block = self.pending[0] if len(self.pending) == 1 else np.concatenate(self.pending, 1)
        self.pending, self.pending_frames = [], 0
        return block

    def _mix(self, block: np.ndarray) -> None:
        if block.size and not np.isfinite(block.sum()):
            bad = ~np.isfinite(block)
            if self.first_bad is None and bad.any():
                self.first_bad = self.mixed + int(np.argmax(bad.any(axis=0)))
            self.bad += int(bad.sum())
            if self.nonfinite == "zero":
                block = np.where(bad, np.float32(0), block)
        self.mixed += block.shape[1]
        # the block is ours (a new array per block): its first channel takes the sum
        mono = np.ascontiguousarray(_downmix(block) if len(block) > 1 else block[0])
        if self.resampler is not None:
            mono = self.resampler.resample_chunk(mono, last=False)
        self.out.add(mono[None])

    def result(self) -> np.ndarray:
        """(1, time) float32 at `rate_out`."""
        if self.pending:
            self._mix(self._pooled())
        if self.resampler is not None:
            self.out.add(self.resampler.resample_chunk(np.zeros(0, np.float32), last=True)[None])
            self.resampler = None
        if not self.out.samples:
            self.out.add(np.zeros((1, 0), np.float32))
        return self.out.result()


Sink = _Planes | _MonoStream
Gather = Callable[[int, int], Sink]  # (source rate, declared frames) -> a new sink

_BACKENDS: tuple[tuple[str, Callable[[IO[bytes], int, Gather], tuple[Sink, int]]], ...] = (
    ("soundfile", _read_soundfile),
    ("pyav", _read_pyav),
)


def _warn_if_truncated_wav(f: IO[bytes], frames_read: int, name: str) -> None:
    """Warn when a RIFF/WAVE header promises more sample frames than the file holds."""
    head = f.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return
    block_align = None
    for _ in range(64):  # chunk headers before 'data'; bounded against malformed files
        chunk = f.read(8)
        if len(chunk) < 8:
            return
        chunk_id, chunk_size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
        if chunk_id == b"fmt ":
            fmt = f.read(min(chunk_size, 16))
            if len(fmt) >= 14:
                block_align = struct.unpack("<H", fmt[12:14])[0]
            f.seek(chunk_size - len(fmt) + (chunk_size & 1), io.SEEK_CUR)
        elif chunk_id == b"data":
            if not block_align or chunk_size == 0xFFFFFFFF:  # unknown / streamed length
                return
            declared = chunk_size // block_align
            if declared > frames_read:
                warnings.warn(
                    f"{name}: the WAV header declares {declared} sample frames but the file holds "
                    f"only {frames_read} (truncated file?); returning the {frames_read} present",
                    stacklevel=5,
                )
            return
        else:
            f.seek(chunk_size + (chunk_size & 1), io.SEEK_CUR)
