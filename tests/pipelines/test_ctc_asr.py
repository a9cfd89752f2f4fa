"""The automatic-speech-recognition pipeline with CTC models (tiny random Wav2Vec2/HuBERT)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import soundformers as sf
from soundformers.ctc import BeamSearchDecoder, BeamSearchOptions
from soundformers.errors import SoundformersError
from soundformers.pipelines.ctc_speech_recognition import (
    CTCSpeechRecognitionPipeline,
    keep_frames,
    plan_chunks,
)
from tests.conftest import fixture_path

transformers = pytest.importorskip("transformers")
from tests.models.wav2vec2.conftest import make_tiny  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("w2v-ctc")
    hf = make_tiny(folder, "wav2vec2", "base", seed=3)
    return folder, hf


@pytest.fixture(scope="module")
def asr(tiny):
    return sf.pipeline("automatic-speech-recognition", model=tiny[0])


def speech(n: int = 3) -> list:
    return [fixture_path("speech", f"0{i}_wav-16k.wav") for i in range(1, n + 1)]


def test_a_ctc_checkpoint_routes_to_the_ctc_pipeline(asr, tiny):
    assert isinstance(asr, CTCSpeechRecognitionPipeline)
    hubert = tiny[0].parent / "hubert-large"
    hubert.mkdir(exist_ok=True)
    make_tiny(hubert, "hubert", "large")
    assert isinstance(sf.pipeline("automatic-speech-recognition", model=hubert),
                      CTCSpeechRecognitionPipeline)  # fmt: skip


def test_text_matches_the_transformers_pipeline(asr, tiny):
    folder, hf = tiny
    reference = transformers.pipeline(
        "automatic-speech-recognition", model=hf,
        tokenizer=transformers.Wav2Vec2CTCTokenizer(str(folder / "vocab.json")),
        feature_extractor=transformers.Wav2Vec2FeatureExtractor.from_pretrained(folder),
    )  # fmt: skip
    audio, _ = sf.load_audio(speech(1)[0])
    for kwargs in ({}, {"chunk_length_s": 1.0, "stride_length_s": 0.2}):
        ours = asr(audio, **kwargs)["text"]
        theirs = reference(audio.copy(), **kwargs)["text"]
        assert ours == " ".join(theirs.split()), kwargs


def test_batch_equals_one_by_one(asr):
    paths = speech(3)
    together = asr(paths, batch_size=3, chunk_length_s=1.0)
    assert together == [asr(p, chunk_length_s=1.0) for p in paths]


def test_word_and_char_timestamps(asr):
    path = speech(1)[0]
    duration = sf.load_audio(path).duration
    words = asr(path, return_timestamps="word")
    assert [c["text"] for c in words["chunks"]] == words["text"].split()
    chars = asr(path, return_timestamps="char")
    assert "".join(c["text"] for c in chars["chunks"]).strip() == chars["text"]
    for out in (words, chars):
        spans = [c["timestamp"] for c in out["chunks"]]
        assert all(0 <= s < e <= duration + 0.02 for s, e in spans)
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))


def test_beam_decoder_and_its_alignment(asr, tiny):
    decoder = BeamSearchDecoder.from_tokenizer(asr.model.tokenizer, beam_width=4)
    out = asr(speech(1)[0], decoder=decoder, return_timestamps="word")
    assert [c["text"] for c in out["chunks"]] == out["text"].split()
    with_decoder = sf.pipeline("automatic-speech-recognition", model=tiny[0], decoder=decoder)
    assert with_decoder(speech(1)[0])["text"] == out["text"]


def test_bad_arguments_are_refused(asr):
    with pytest.raises(SoundformersError, match="return_timestamps"):
        asr(speech(1)[0], return_timestamps="segment")
    with pytest.raises(SoundformersError, match="strides"):
        asr(speech(1)[0], chunk_length_s=1.0, stride_length_s=0.5)
    with pytest.raises(SoundformersError, match="BeamSearchDecoder"):
        asr(speech(1)[0], decoder=BeamSearchOptions())


def test_audio_shorter_than_a_frame_gives_empty_text(asr):
    assert asr(np.zeros(20, np.float32)) == {"text": ""}


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 50_000),
    chunk=st.integers(4, 40).map(lambda k: k * 320),
    left=st.integers(0, 10).map(lambda k: k * 320),
    right=st.integers(0, 10).map(lambda k: k * 320),
)
def test_kept_parts_of_the_chunks_tile_the_input(n, chunk, left, right):
    if chunk <= left + right:
        with pytest.raises(SoundformersError):
            plan_chunks(n, chunk, left, right)
        return
    chunks = plan_chunks(n, chunk, left, right)
    kept = [(c.start + c.left, c.end - c.right) for c in chunks]
    assert kept[0][0] == 0 and kept[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(kept, kept[1:]))
    assert all(c.end - c.start <= chunk for c in chunks)
    import torch

    frames = sum(
        len(keep_frames(torch.zeros((c.end - c.start) // 320 + 1, 1), c, 320)) for c in chunks
    )
    assert abs(frames - n / 320) <= len(chunks)
