"""The zero-shot-audio-classification pipeline on the fixture sounds with a tiny random CLAP."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile
import torch

import soundformers
from soundformers.errors import ModelNotFoundError, SoundformersError
from tests.conftest import fixture_path
from tests.models.clap.tiny import make_tiny_clap

transformers = pytest.importorskip("transformers")

LABELS = ["a dog barking", "a cat", "rain", "a rooster", "a pure tone"]


@pytest.fixture(scope="module")
def zs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clap")
    make_tiny_clap(folder, transformers, fused=True)
    return soundformers.pipeline("zero-shot-audio-classification", model=str(folder))


@pytest.fixture(scope="module")
def animals():
    folder = fixture_path("sounds", "animals")
    return sorted(str(p) for p in folder.glob("*.flac"))[:5]


def test_scores_sum_to_one_sorted_and_stable(zs, animals):
    first = zs(animals[0], candidate_labels=LABELS)
    assert sorted(r["label"] for r in first) == sorted(LABELS)
    scores = [r["score"] for r in first]
    assert math.isclose(sum(scores), 1.0, abs_tol=1e-5)
    assert scores == sorted(scores, reverse=True)
    assert zs(animals[0], candidate_labels=LABELS) == first


def test_batch_equals_one_by_one(zs, animals):
    batched = zs(animals, candidate_labels=LABELS, batch_size=4)
    for path, result in zip(animals, batched):
        alone = zs(path, candidate_labels=LABELS)
        assert [r["label"] for r in result] == [r["label"] for r in alone]
        np.testing.assert_allclose([r["score"] for r in result], [r["score"] for r in alone],
                                   atol=1e-5)  # fmt: skip


def sound(rate: int, seconds: float = 3.0) -> np.ndarray:
    """The same band-limited sound (tones, a sweep, a decaying partial) sampled at `rate`."""
    t = np.arange(int(seconds * rate)) / rate
    x = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * (200 + 600 * t) * t)
         + 0.1 * np.sin(2 * np.pi * 3000 * t) * np.exp(-t))  # fmt: skip
    return x.astype(np.float32)


def scores_by_label(results):
    return {r["label"]: r["score"] for r in results}


def test_16k_and_48k_give_the_same_scores(zs):
    at16 = zs({"array": sound(16000), "sampling_rate": 16000}, candidate_labels=LABELS)
    at48 = zs(sound(48000), candidate_labels=LABELS)  # a bare array is at the model's rate
    assert scores_by_label(at16) == pytest.approx(scores_by_label(at48), abs=1e-4)
    e16 = zs.audio_embeddings({"array": sound(16000), "sampling_rate": 16000})
    torch.testing.assert_close(e16, zs.audio_embeddings(sound(48000)), atol=1e-3, rtol=0)


def test_16k_and_48k_fixture_files_agree(zs):
    # the two files were written separately as 16-bit PCM: their quantisation noise above
    # 8 kHz differs, which a random model sees a little, hence the looser tolerance
    tone16, rate16 = soundfile.read(fixture_path("sounds", "synthetic", "tone_440hz_16000.wav"),
                                    dtype="float32")  # fmt: skip
    at16 = zs({"array": tone16, "sampling_rate": rate16}, candidate_labels=LABELS)
    at48 = zs(str(fixture_path("sounds", "synthetic", "tone_440hz_48000.wav")),
              candidate_labels=LABELS)  # fmt: skip
    assert scores_by_label(at16) == pytest.approx(scores_by_label(at48), abs=5e-3)


def test_label_embeddings_are_computed_once(zs, animals, monkeypatch):
    calls = []
    encode = zs.model.text_embeddings

    def counting(texts):
        calls.append(list(texts))
        return encode(texts)

    monkeypatch.setattr(zs.model, "text_embeddings", counting)
    labels = ["a frog", "a horse", "an owl"]
    zs(animals[:2], candidate_labels=labels, batch_size=1)
    assert calls == [["This is a sound of a frog.", "This is a sound of a horse.",
                      "This is a sound of an owl."]]  # fmt: skip
    zs(animals[2], candidate_labels=labels)
    assert len(calls) == 1  # a cache hit: the text encoder did not run
    zs(animals[2], candidate_labels=labels, hypothesis_template="Sound: {}")
    assert len(calls) == 2  # a new template is a new label set


def test_embeddings_for_search(zs, animals):
    audio = zs.audio_embeddings(animals[:3], batch_size=2)
    assert audio.shape == (3, 24)
    torch.testing.assert_close(audio.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(zs.audio_embeddings(animals[0]), audio[0], atol=1e-5, rtol=0)
    text = zs.text_embeddings(["a dog", "rain"])
    assert text.shape == (2, 24)
    torch.testing.assert_close(zs.text_embeddings("a dog"), text[0], atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({}, "needs candidate_labels"),
        ({"candidate_labels": []}, "needs candidate_labels"),
        ({"candidate_labels": ["a", "a"]}, "duplicates"),
        ({"candidate_labels": ["a", 3]}, "must be strings"),
        ({"candidate_labels": ["a"], "hypothesis_template": "no slot"}, "'{}'"),
    ],
)
def test_bad_parameters(zs, params, match):
    with pytest.raises(SoundformersError, match=match):
        zs(np.zeros(48000, np.float32), **params)


def test_bad_input_is_reported_with_its_index(zs, animals):
    out = zs([animals[0], b"not audio"], candidate_labels=LABELS, errors="return")
    assert out[1]["index"] == 1 and "error" in out[1]
    assert len(out[0]) == len(LABELS)


def test_no_default_model():
    with pytest.raises(ModelNotFoundError, match="local folder"):
        soundformers.pipeline("zero-shot-audio-classification")
