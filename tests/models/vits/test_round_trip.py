"""Round trip with real models on both sides: text -> speech -> text.

Each sentence of ../shared/fixtures/speech/metadata.csv is spoken by the bundled Piper voice
twice, by our text-to-speech pipeline and by the piper-tts package (the reference; GPL, so
test-only) on the same .onnx, then transcribed by the bundled Whisper models (tiny.en, base).
Our word error rate (Whisper English normalizer) must be at most 1 point above piper-tts's.

Both engines run with the noise scales at 0: piper-tts's noise comes from onnxruntime's unseeded
RandomNormalLike, so with noise its WER would change from run to run. Sentences are joined
into clips of up to 25 s (0.2 s pauses), so Whisper runs a few 30 s windows, not one per
sentence.
"""

from __future__ import annotations

import csv
import importlib.util

import numpy as np
import pytest

from tests.conftest import fixture_path

pytestmark = pytest.mark.slow

CLIP_SECONDS = 25.0
PAUSE_SECONDS = 0.2
MAX_EXCESS_WER = 0.01  # 1 point


def _need(module: str, pip_name: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"needs `pip install {pip_name}`")


@pytest.fixture(scope="module")
def sentences() -> list[str]:
    path = fixture_path("speech", "metadata.csv")
    with open(path, newline="", encoding="utf-8") as f:
        return [row["transcription"] for row in csv.DictReader(f)]


@pytest.fixture(scope="module")
def spoken(sentences, joe_path) -> tuple[int, dict[str, list[np.ndarray]]]:
    """(sampling rate, engine name -> one float32 waveform per sentence)."""
    piper = pytest.importorskip("piper", reason="the reference needs `pip install piper-tts`")
    from piper.config import SynthesisConfig

    _need("espeakng_loader", "espeakng-loader")
    import soundformers

    tts = soundformers.pipeline("text-to-speech", model=str(joe_path))
    outputs = tts(sentences, batch_size=len(sentences), noise_scale=0.0, noise_w=0.0)
    ours = [out["audio"] for out in outputs]
    reference = piper.PiperVoice.load(joe_path)
    config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0, normalize_audio=False)
    theirs = []
    for s in sentences:
        chunks = [c.audio_float_array for c in reference.synthesize(s, config)]
        assert chunks, f"piper-tts said nothing for {s!r}"
        pause = np.zeros(round(PAUSE_SECONDS * reference.config.sample_rate), np.float32)
        theirs.append(np.concatenate([p for c in chunks for p in (c, pause)][:-1]))
    assert tts.sampling_rate == reference.config.sample_rate
    return tts.sampling_rate, {"soundformers": ours, "piper-tts": theirs}


def clips(audio: list[np.ndarray], texts: list[str], sampling_rate: int):
    """Join consecutive sentences into clips of at most CLIP_SECONDS.

    Returns:
        (clips as {"array", "sampling_rate"} dicts, the reference text of each clip).
    """
    pause = np.zeros(round(PAUSE_SECONDS * sampling_rate), np.float32)
    groups: list[tuple[list[np.ndarray], list[str]]] = []
    length = 0
    for wave, text in zip(audio, texts):
        if not groups or length + len(wave) > CLIP_SECONDS * sampling_rate:
            groups.append(([], []))
            length = 0
        groups[-1][0].extend([wave, pause])
        groups[-1][1].append(text)
        length += len(wave) + len(pause)
    inputs = [{"array": np.concatenate(w[:-1]), "sampling_rate": sampling_rate} for w, _ in groups]
    return inputs, [" ".join(t) for _, t in groups]


def test_clips_keep_every_sentence_in_order():
    sr = 100
    audio = [np.ones(1000, np.float32) * i for i in range(7)]  # 10 s each at 100 Hz
    inputs, refs = clips(audio, [f"s{i}" for i in range(7)], sr)
    assert refs == ["s0 s1", "s2 s3", "s4 s5", "s6"]
    assert [len(x["array"]) for x in inputs] == [2020, 2020, 2020, 1000]
    assert all(len(x["array"]) <= CLIP_SECONDS * sr for x in inputs)


@pytest.mark.parametrize("asr_model", ["whisper-tiny.en", "whisper-base"])
def test_wer_at_most_one_point_above_piper_tts(spoken, sentences, asr_model):
    import soundformers
    from soundformers.errors import ModelNotFoundError
    from soundformers.metrics import wer

    try:
        asr = soundformers.pipeline("automatic-speech-recognition", model=asr_model)
    except ModelNotFoundError as e:  # the bundled weights are not installed
        pytest.skip(str(e))
    sampling_rate, audio_by_engine = spoken
    rates = {}
    for engine, audio in audio_by_engine.items():
        inputs, references = clips(audio, sentences, sampling_rate)
        hypotheses = [out["text"] for out in asr(inputs, batch_size=len(inputs))]
        rates[engine] = wer(references, hypotheses, normalizer="whisper_english")
    assert rates["piper-tts"] < 0.5, f"the reference itself is unintelligible: {rates}"
    assert rates["soundformers"] <= rates["piper-tts"] + MAX_EXCESS_WER, rates
