"""`load_audio` accepts every input form and says clearly what is wrong with a bad one."""

from __future__ import annotations

import functools
import http.server
import io
import socket
import threading

import numpy as np
import pytest

import soundformers as sf
from tests.conftest import fixture_path


@pytest.fixture(scope="module")
def wav_path():
    return fixture_path("speech", "10_wav-22k.wav")


@pytest.fixture(scope="module")
def expected(wav_path):
    return sf.load_audio(wav_path)


def _forms(path):
    data = path.read_bytes()
    samples, rate = sf.load_audio(path)
    import torch

    return {
        "str": str(path),
        "path": path,
        "bytes": data,
        "bytearray": bytearray(data),
        "memoryview": memoryview(data),
        "bytesio": io.BytesIO(data),
        "row-path-bytes": {"path": str(path), "bytes": data},
        "row-path-only": {"path": str(path), "bytes": None},
        "row-array": {"array": samples, "sampling_rate": rate},
        "row-raw": {"raw": samples, "sampling_rate": rate},
        "row-torch": {"array": torch.from_numpy(samples), "sampling_rate": rate},
        "row-decoded": {"path": "x.wav", "array": samples, "sampling_rate": rate},
    }


FORMS = [
    "str", "path", "bytes", "bytearray", "memoryview", "bytesio", "row-path-bytes",
    "row-path-only", "row-array", "row-raw", "row-torch", "row-decoded",
]  # fmt: skip


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("target", [None, 16000])
def test_every_input_form_gives_the_same_samples(wav_path, form, target):
    source = _forms(wav_path)[form]
    samples, rate = sf.load_audio(source, sampling_rate=target)
    want, want_rate = sf.load_audio(wav_path, sampling_rate=target)
    assert rate == want_rate == (target or 22050)
    np.testing.assert_array_equal(samples, want)


def test_open_binary_file(wav_path, expected):
    with open(wav_path, "rb") as f:
        samples, rate = sf.load_audio(f)
    np.testing.assert_array_equal(samples, expected.samples)


def test_text_mode_file_is_refused(wav_path):
    with open(wav_path, encoding="latin-1") as f, pytest.raises(sf.AudioDecodeError, match="'rb'"):
        sf.load_audio(f)


def test_bare_array_is_taken_at_sampling_rate_and_needs_one():
    x = np.sin(np.arange(16000) / 16000 * 2 * np.pi * 100).astype(np.float32)
    samples, rate = sf.load_audio(x, sampling_rate=16000)
    assert rate == 16000 and samples is not None
    np.testing.assert_array_equal(samples, x)
    with pytest.raises(sf.AudioDecodeError, match="no sampling rate"):
        sf.load_audio(x)


def test_row_array_is_resampled_to_the_asked_rate():
    x = np.random.default_rng(0).standard_normal(44100).astype(np.float32) * 0.1
    samples, rate = sf.load_audio({"array": x, "sampling_rate": 44100}, sampling_rate=16000)
    assert rate == 16000 and len(samples) == 16000


def test_torch_tensor_and_integer_arrays():
    import torch

    pcm = np.array([0, 16384, -32768, 32767], dtype=np.int16)
    samples, _ = sf.load_audio(pcm, sampling_rate=8000)
    np.testing.assert_allclose(samples, [0, 0.5, -1, 32767 / 32768])
    samples, _ = sf.load_audio(torch.tensor([[0.1, 0.2], [0.3, 0.4]]), sampling_rate=8000)
    np.testing.assert_allclose(samples, [0.2, 0.3], rtol=1e-6)


def test_channels_first_convention_is_enforced():
    time_major = np.zeros((16000, 2), np.float32)
    with pytest.raises(sf.AudioDecodeError, match=r"\(x.T\)"):
        sf.load_audio(time_major, sampling_rate=16000)
    kept = sf.load_audio(time_major.T, sampling_rate=16000, mono=False, allow_empty=True)
    assert kept.samples.shape == (2, 16000)


@pytest.mark.parametrize(
    "source, words",
    [
        (12345, "cannot read audio from a int"),
        ({"foo": 1}, "dict with keys ['foo']"),
        ({"array": np.zeros(10)}, "needs its 'sampling_rate'"),
        (np.zeros((2, 2, 2)), "expected shape"),
        (b"", "0 bytes"),
        ("/nonexistent/file.wav", "no such file"),
    ],
)
def test_bad_sources_say_what_is_wrong(source, words):
    with pytest.raises(sf.AudioDecodeError, match=None) as info:
        sf.load_audio(source, sampling_rate=16000 if isinstance(source, np.ndarray) else None)
    assert words in str(info.value)


def test_directory_is_refused(tmp_path):
    with pytest.raises(sf.AudioDecodeError, match="is a directory"):
        sf.load_audio(tmp_path)


def test_inf_in_an_array_is_caught():
    x = np.zeros(100, np.float32)
    x[7] = np.inf
    with pytest.raises(sf.AudioDecodeError, match="first at sample 7"):
        sf.load_audio(x, sampling_rate=16000)


def test_load_audios_keeps_order_and_names_the_bad_index(wav_path):
    sources = [fixture_path("speech", "01_wav-16k.wav"), wav_path] * 3
    waves = sf.audio.load_audios(sources, sampling_rate=16000, num_workers=2)
    for source, wave in zip(sources, waves):
        np.testing.assert_array_equal(wave.samples, sf.load_audio(source, 16000).samples)
    with pytest.raises(sf.AudioDecodeError, match="item 2: .*empty"):
        sf.audio.load_audios([wav_path, wav_path, b"\0" * 0], num_workers=2)


# --- URLs, against a server on loopback ---


@pytest.fixture(scope="module")
def server(wav_path):
    handler = functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(wav_path.parent)
    )
    handler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_url_is_fetched_and_decoded(server, wav_path, expected):
    samples, rate = sf.load_audio(f"{server}/{wav_path.name}")
    assert rate == 22050
    np.testing.assert_array_equal(samples, expected.samples)


def test_url_errors_are_clear(server, wav_path):
    with pytest.raises(sf.AudioFetchError, match="HTTP 404"):
        sf.load_audio(f"{server}/missing.wav")
    with pytest.raises(sf.AudioFetchError, match="max_bytes"):
        sf.load_audio(f"{server}/{wav_path.name}", max_bytes=1000)
    with socket.socket() as s:  # a port nobody listens on: refused at once, like offline
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(sf.AudioFetchError, match="offline") as info:
        sf.load_audio(f"http://127.0.0.1:{port}/a.wav", timeout=2)
    assert isinstance(info.value, sf.AudioDecodeError)


@pytest.mark.parametrize("channels", [2, 3, 6])
def test_multichannel_files_read_in_blocks_and_downmix_in_place(tmp_path, channels):
    """Files of several channels are read a block of frames at a time straight into
    (channels, time), and their mono mix takes the first channel's memory: the same samples
    as soundfile's whole read and numpy's mean, across block boundaries (a partial last one)."""
    import soundfile

    from soundformers.audio import io as audio_io

    frames = 2 * audio_io._READ_BLOCK_FRAMES + 1234
    rng = np.random.default_rng(channels)
    written = (rng.standard_normal((frames, channels)) * 0.2).astype(np.float32)
    path = tmp_path / f"{channels}ch.wav"
    soundfile.write(path, written, 44100, subtype="FLOAT")
    whole = soundfile.read(path, dtype="float32", always_2d=True)[0].T
    samples, rate = sf.load_audio(path, mono=False)
    assert rate == 44100 and samples.shape == (channels, frames)
    assert np.array_equal(samples, whole)
    mono, _ = sf.load_audio(path)
    assert np.array_equal(mono, whole.mean(axis=0, dtype=np.float32))


def test_mono_mix_of_a_callers_array_leaves_it_alone():
    array = np.random.default_rng(0).standard_normal((2, 48000)).astype(np.float32)
    kept = array.copy()
    for source in (array, {"array": array, "sampling_rate": 16000}):
        mono, _ = sf.load_audio(source, sampling_rate=16000)
        assert np.array_equal(array, kept)  # not overwritten by the mix
        assert np.array_equal(mono, kept.mean(axis=0, dtype=np.float32))


def _pyav_reference(path):
    """FFmpeg's frames of `path` as planar float32, concatenated (the decoder's contract)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        to_float = av.AudioResampler(format="fltp")
        planes = [c.to_ndarray() for f in container.decode(stream) for c in to_float.resample(f)]
        planes += [c.to_ndarray() for c in to_float.resample(None)]
    return np.concatenate(planes, axis=1)


@pytest.mark.parametrize("name", ["25_m4a-44k.m4a", "23_opus-48k.opus", "27_wav-44k-stereo.wav"])
@pytest.mark.parametrize("declared", ["container", 1000, 0])
def test_ffmpeg_frames_are_gathered_without_a_second_copy(monkeypatch, name, declared):
    """Frames go into one array of the declared duration; past it (a duration that says
    too little) and without one they are concatenated: the same samples every way."""
    from soundformers.audio import io as audio_io

    path = fixture_path("speech", name)
    if declared != "container":
        monkeypatch.setattr(audio_io, "_declared_samples", lambda *args: declared)
    with open(path, "rb") as f:
        sink, rate = audio_io._read_pyav(f, path.stat().st_size, audio_io._Planes)
    assert np.array_equal(sink.result(), _pyav_reference(path))
    loaded, _ = sf.load_audio(path, mono=False)
    assert loaded.flags.c_contiguous


def test_gathered_frames_keep_the_fewest_channels():
    from soundformers.audio.io import _Planes

    rng = np.random.default_rng(0)
    frames = [rng.standard_normal((2, 5)), rng.standard_normal((1, 4)), rng.standard_normal((2, 3))]
    for capacity in (0, 9, 100):
        planes = _Planes(16000, capacity)
        for frame in frames:
            planes.add(frame.astype(np.float32))
        expected = np.concatenate([f[:1] for f in frames], axis=1).astype(np.float32)
        assert planes.samples == 12 and np.array_equal(planes.result(), expected)


def _whole(path, rate, nonfinite="raise"):
    """The recording decoded whole: (channels, time), checked, mixed, resampled."""
    from soundformers.audio import io as audio_io
    from soundformers.audio.resampling import resample

    samples, source_rate = sf.load_audio(path, mono=False, nonfinite=nonfinite)
    mono = samples[0] if len(samples) == 1 else audio_io._downmix(samples.copy())
    return resample(mono, source_rate, rate) if rate and rate != source_rate else mono


@pytest.mark.parametrize("rate", [16000, None])
def test_mono_files_are_mixed_and_resampled_as_they_decode(rate):
    """Every fixture format, one block at a time through the mix and soxr's stream: the same
    samples as the whole recording mixed and resampled at once."""
    paths = sorted(fixture_path("speech").glob("[0-9]*.*"))
    assert len(paths) >= 30
    for path in paths:
        streamed, got_rate = sf.load_audio(path, rate)
        whole = _whole(path, rate)
        assert streamed.flags.c_contiguous and streamed.dtype == np.float32
        assert np.array_equal(streamed, whole), path.name
        assert got_rate == (rate or sf.load_audio(path, mono=False).sampling_rate)


def test_non_finite_samples_of_a_streamed_file_are_counted_and_zeroed_as_whole(tmp_path):
    import soundfile

    from soundformers.audio import io as audio_io

    frames = 3 * audio_io._READ_BLOCK_FRAMES
    data = (np.random.default_rng(3).standard_normal((frames, 2)) * 0.1).astype(np.float32)
    data[70000, 1] = np.nan  # second block, one channel
    data[150000, :] = np.inf
    path = tmp_path / "bad.wav"
    soundfile.write(path, data, 44100, subtype="FLOAT")
    with pytest.raises(sf.AudioDecodeError) as whole_error:
        sf.load_audio(path, mono=False)
    with pytest.raises(sf.AudioDecodeError) as streamed_error:
        sf.load_audio(path, 16000)
    assert "3 samples are NaN or infinite (first at sample 70000)" in str(streamed_error.value)
    assert str(streamed_error.value) == str(whole_error.value)
    streamed = sf.load_audio(path, 16000, nonfinite="zero").samples
    assert np.array_equal(streamed, _whole(path, 16000, nonfinite="zero"))


def test_mono_stream_pools_small_blocks_with_the_same_result():
    """Blocks of ~1000 frames (FFmpeg's) are pooled before the mix and the resampler: the
    same samples, and a NaN's frame counted from the start, as with one block."""
    from soundformers.audio.io import _MonoStream
    from soundformers.audio.resampling import resample

    rng = np.random.default_rng(5)
    whole = (rng.standard_normal((2, 200000)) * 0.1).astype(np.float32)
    whole[1, 150001] = np.nan
    expected = resample(np.where(np.isnan(whole), 0, whole).mean(0, dtype=np.float32), 48000, 16000)
    for size in (1024, 200000):
        stream = _MonoStream(48000, 200000, 16000, "zero")
        for begin in range(0, whole.shape[1], size):
            stream.add(whole[:, begin : begin + size].copy())
        assert stream.samples == 200000 and (stream.bad, stream.first_bad) == (1, 150001)
        assert np.array_equal(stream.result()[0], expected)
    # a block with fewer channels: the blocks before it are mixed over their own
    stream = _MonoStream(16000, 0, None, "raise")
    stream.add(whole[:, :1000].copy())
    stream.add(whole[:1, 1000:1500].copy())
    mixed = stream.result()[0]
    assert np.array_equal(mixed[:1000], whole[:, :1000].mean(0, dtype=np.float32))
    assert np.array_equal(mixed[1000:], whole[0, 1000:1500])
