"""Every fixture format decodes at the right rate, channel count, duration and content."""

from __future__ import annotations

import csv
import warnings

import numpy as np
import pytest

import soundformers as sf
from soundformers.audio.io import Waveform
from tests.conftest import FIXTURES, fixture_path

SPEECH_ROWS = (
    list(csv.DictReader(open(FIXTURES / "speech" / "metadata.csv")))
    if (FIXTURES / "speech" / "metadata.csv").exists()
    else []
)
LOSSY = (".mp3", ".ogg", ".opus", ".m4a")


def _reference_16k(file_name: str) -> np.ndarray:
    """The same utterance from speech_split/ (16 kHz 16-bit wav), found by its index prefix."""
    (path,) = fixture_path("speech_split").glob(f"*/{file_name[:2]}_*.wav")
    return sf.load_audio(path).samples


@pytest.mark.parametrize("row", SPEECH_ROWS, ids=lambda r: r["file_name"])
def test_speech_fixture_decodes_at_its_rate_and_duration(row):
    path = fixture_path("speech", row["file_name"])
    wave = sf.load_audio(path, mono=False)
    assert isinstance(wave, Waveform)
    samples, rate = wave  # unpacks as a (samples, rate) tuple
    assert samples.dtype == np.float32
    assert rate == int(row["sampling_rate"])
    assert samples.shape[0] == (2 if "stereo" in row["file_name"] else 1)
    assert np.abs(samples).max() <= 1.0

    reference = _reference_16k(row["file_name"])
    expected_s = reference.shape[0] / 16000
    # lossless: the same length to within a resampling rounding; lossy: encoder padding only
    tolerance = 0.06 if path.suffix in LOSSY else 0.001
    assert abs(wave.duration - expected_s) <= tolerance, (wave.duration, expected_s)


@pytest.mark.parametrize(
    "row",
    [r for r in SPEECH_ROWS if not r["file_name"].endswith(LOSSY)],
    ids=lambda r: r["file_name"],
)
def test_lossless_speech_resampled_to_16k_matches_the_16k_copy(row):
    """Content check: after resampling, a lossless file equals speech_split's 16 kHz copy."""
    samples, rate = sf.load_audio(fixture_path("speech", row["file_name"]), sampling_rate=16000)
    assert rate == 16000
    reference = _reference_16k(row["file_name"])
    if "stereo" in row["file_name"]:
        reference = reference * 0.75  # mean of left (speech) and right (speech at half amplitude)
    n = min(len(samples), len(reference))
    assert abs(len(samples) - len(reference)) <= 1
    correlation = np.corrcoef(samples[:n], reference[:n])[0, 1]
    floor = 0.9 if "ulaw" in row["file_name"] else 0.999  # mu-law 8 kHz, 300-3400 Hz band-pass
    assert correlation > floor  # (each file was peak-normalised on its own: no gain check)


def test_stereo_keeps_channels_and_mono_averages_them():
    path = fixture_path("speech", "27_wav-44k-stereo.wav")
    stereo = sf.load_audio(path, mono=False).samples
    left, right = stereo
    np.testing.assert_allclose(right, left * 0.5, atol=2 / 32768)  # as the fixture README says
    mono = sf.load_audio(path).samples
    assert mono.shape == (stereo.shape[1],)
    np.testing.assert_allclose(mono, stereo.mean(axis=0), atol=1e-7)


def test_mono_file_with_mono_false_is_one_channel():
    samples, _ = sf.load_audio(fixture_path("speech", "01_wav-16k.wav"), mono=False)
    assert samples.ndim == 2 and samples.shape[0] == 1


@pytest.mark.parametrize("rate", [8000, 16000, 44100, 48000])
def test_tone_fixture_has_its_frequency_at_every_rate(rate):
    samples, got_rate = sf.load_audio(fixture_path("sounds", "synthetic", f"tone_440hz_{rate}.wav"))
    assert got_rate == rate and len(samples) == 2 * rate
    spectrum = np.abs(np.fft.rfft(samples))
    assert np.fft.rfftfreq(len(samples), 1 / rate)[spectrum.argmax()] == pytest.approx(440, abs=1)
    assert np.abs(samples).max() == pytest.approx(0.5, abs=0.01)


def test_click_and_silence_fixtures_are_exact():
    click, _ = sf.load_audio(fixture_path("sounds", "synthetic", "click_16000.wav"))
    assert np.flatnonzero(click).tolist() == list(range(24000, 24008))
    silence, _ = sf.load_audio(fixture_path("sounds", "synthetic", "silence_16000.wav"))
    assert len(silence) == 48000 and not silence.any()


def test_animal_sounds_decode_with_their_channels():
    expected = {"duck": 2, "rooster": 2}
    for path in sorted(fixture_path("sounds", "animals").glob("*.flac")):
        samples, rate = sf.load_audio(path, mono=False)
        assert samples.shape[0] == expected.get(path.stem, 1), path.name
        assert rate in (44100, 48000)
        assert 0.9 < samples.shape[1] / rate <= 5.0


@pytest.mark.parametrize("name", ["25_m4a-44k.m4a", "23_opus-48k.opus", "19_mp3-22k.mp3"])
def test_compressed_formats_resample_to_16k(name):
    samples, rate = sf.load_audio(fixture_path("speech", name), sampling_rate=16000)
    assert rate == 16000 and samples.dtype == np.float32
    reference = _reference_16k(name)
    assert abs(len(samples) - len(reference)) < 0.06 * 16000


# --- broken/: each file's documented outcome (../shared/fixtures/broken/README.md) ---


@pytest.mark.parametrize(
    "name, words",
    [
        ("empty.wav", "empty"),
        ("corrupt_header.wav", "channel count is zero"),
        ("not_audio.mp3", "not a readable audio file"),
        ("header_only.wav", "no samples"),
        ("nan_samples.wav", "nan or infinite"),
    ],
)
def test_broken_files_raise_a_clear_error(name, words):
    path = fixture_path("broken", name)
    with pytest.raises(sf.AudioDecodeError) as info:
        sf.load_audio(path)
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert str(path) in message  # names the source
    assert words in message.lower()


def test_truncated_wav_returns_what_is_there_and_warns():
    with pytest.warns(UserWarning, match="declares 42381 sample frames"):
        samples, rate = sf.load_audio(fixture_path("broken", "truncated.wav"))
    assert (len(samples), rate) == (10595, 16000)


def test_flac_named_wav_is_sniffed_from_content():
    samples, rate = sf.load_audio(fixture_path("broken", "flac_named.wav"))
    assert (len(samples), rate) == (16000, 16000)


def test_tiny_and_clipped_files_decode_normally():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tiny, _ = sf.load_audio(fixture_path("broken", "tiny_10ms.wav"))
        loud, _ = sf.load_audio(fixture_path("broken", "clipped_loud.wav"))
    assert len(tiny) == 160
    assert np.abs(loud).max() <= 1.0 and (np.abs(loud) > 0.999).mean() > 0.1


def test_header_only_is_empty_when_allowed_and_nan_cleaned_when_asked():
    empty, rate = sf.load_audio(fixture_path("broken", "header_only.wav"), allow_empty=True)
    assert empty.shape == (0,) and rate == 16000
    cleaned, _ = sf.load_audio(fixture_path("broken", "nan_samples.wav"), nonfinite="zero")
    assert np.isfinite(cleaned).all() and len(cleaned) == 16000
