"""The audio-classification pipeline with tiny random AST and Wav2Vec2 keyword-spotting models,
on the fixture sounds and commands."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

import soundformers as sf
from soundformers.errors import ModelNotFoundError, SoundformersError
from soundformers.pipelines.audio_classification import AudioClassificationPipeline
from tests.conftest import fixture_path

transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.filterwarnings("ignore:At least one mel filter:UserWarning")
from tests.models.ast.test_parity import LABELS as AST_LABELS  # noqa: E402
from tests.models.ast.test_parity import make_tiny as make_ast  # noqa: E402
from tests.models.wav2vec2.conftest import make_tiny as make_w2v  # noqa: E402
from tests.models.whisper.test_classification import LABELS as WHISPER_LABELS  # noqa: E402
from tests.models.whisper.test_classification import (  # noqa: E402
    make_tiny_classifier,
    save_tiny_recognizer,
)

WORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]


@pytest.fixture(scope="module")
def ast_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ast")
    make_ast(folder, max_length=256)
    return folder


@pytest.fixture(scope="module")
def ks(tmp_path_factory):
    """A keyword-spotting model in the superb/wav2vec2-base-superb-ks layout."""
    folder = tmp_path_factory.mktemp("ks")
    id2label = dict(enumerate(WORDS))
    hf = make_w2v(folder, "wav2vec2", "base", head="classification", use_weighted_layer_sum=True,
                  classifier_proj_size=8, id2label=id2label,
                  label2id={v: k for k, v in id2label.items()})  # fmt: skip
    return folder, hf


def animals() -> list:
    folder = fixture_path("sounds", "animals")
    return [folder / row["file_name"] for row in csv.DictReader(open(folder / "metadata.csv"))]


def commands() -> list:
    folder = fixture_path("commands", "test")
    rows = list(csv.DictReader(open(folder / "metadata.csv")))
    return [folder / r["file_name"] for r in rows[:4]]


def test_no_model_names_how_to_point_at_a_local_checkpoint():
    with pytest.raises(ModelNotFoundError, match="local folder holding config.json"):
        sf.pipeline("audio-classification")


def test_ast_on_the_animal_sounds(ast_folder):
    clf = sf.pipeline("audio-classification", model=ast_folder)
    assert isinstance(clf, AudioClassificationPipeline)
    paths = animals()
    results = clf(paths, batch_size=4, top_k=10)
    assert len(results) == len(paths)
    for result in results:
        assert sorted(r["label"] for r in result) == sorted(AST_LABELS.values())
        scores = [r["score"] for r in result]
        assert scores == sorted(scores, reverse=True)
        assert sum(scores) == pytest.approx(1.0, abs=1e-5)
    one_by_one = [clf(p, top_k=10) for p in paths[:3]]
    for a, b in zip(results[:3], one_by_one):
        assert [r["label"] for r in a] == [r["label"] for r in b]
        np.testing.assert_allclose([r["score"] for r in a], [r["score"] for r in b], atol=1e-5)


def test_top_k_and_score_functions(ast_folder):
    clf = sf.pipeline("audio-classification", model=ast_folder, top_k=2)
    path = animals()[0]
    assert len(clf(path)) == 2
    logits = clf.model.classify([sf.load_audio(path, sampling_rate=16000).samples])[0]
    raw = clf(path, top_k=4, function_to_apply="none")
    assert [r["score"] for r in raw] == pytest.approx(sorted(logits.tolist(), reverse=True))
    sig = clf(path, top_k=4, function_to_apply="sigmoid")
    assert [r["score"] for r in sig] == pytest.approx(
        sorted(torch.sigmoid(logits).tolist(), reverse=True)
    )
    with pytest.raises(SoundformersError, match="function_to_apply"):
        clf(path, function_to_apply="relu")
    with pytest.raises(SoundformersError, match="top_k"):
        clf(path, top_k=0)


def test_keyword_spotting_matches_the_transformers_pipeline(ks):
    folder, hf = ks
    clf = sf.pipeline("audio-classification", model=folder)
    reference = transformers.pipeline(
        "audio-classification", model=hf,
        feature_extractor=transformers.Wav2Vec2FeatureExtractor.from_pretrained(folder),
    )  # fmt: skip
    paths = commands()
    ours = clf(paths, batch_size=4, top_k=3)
    for path, result in zip(paths, ours):
        audio = sf.load_audio(path).samples
        theirs = reference(audio, top_k=3)
        assert [r["label"] for r in result] == [r["label"] for r in theirs]
        np.testing.assert_allclose([r["score"] for r in result],
                                   [r["score"] for r in theirs], atol=1e-4)  # fmt: skip


def test_every_input_form_and_resampling(ks):
    clf = sf.pipeline("audio-classification", model=ks[0], top_k=10)
    path = commands()[0]
    wave = sf.load_audio(path)
    at_44k = sf.audio.resample(wave.samples, wave.sampling_rate, 44100)
    forms = [
        str(path),
        path.read_bytes(),
        wave.samples,
        {"array": wave.samples, "sampling_rate": 16000},
    ]
    results = [clf(x) for x in forms]
    for r in results[1:]:
        assert r == results[0]
    resampled = clf({"array": at_44k, "sampling_rate": 44100})
    assert resampled[0]["label"] == results[0][0]["label"]


@pytest.fixture(scope="module")
def whisper_clf(tmp_path_factory):
    """A WhisperForAudioClassification (weighted layer sum, as the SUPERB-style recipes)."""
    folder = tmp_path_factory.mktemp("whisper-clf")
    hf = make_tiny_classifier(folder, use_weighted_layer_sum=True)
    return folder, hf


def test_whisper_classifier_matches_the_transformers_pipeline(whisper_clf):
    folder, hf = whisper_clf
    clf = sf.pipeline("audio-classification", model=folder)
    assert clf.labels == tuple(WHISPER_LABELS.values())
    reference = transformers.pipeline(
        "audio-classification", model=hf,
        feature_extractor=transformers.WhisperFeatureExtractor.from_pretrained(folder),
    )  # fmt: skip
    paths = animals()[:3] + commands()[:2]
    ours = clf(paths, batch_size=4, top_k=5)
    for path, result in zip(paths, ours):
        scores = [r["score"] for r in result]
        assert sorted(r["label"] for r in result) == sorted(WHISPER_LABELS.values())
        assert scores == sorted(scores, reverse=True)
        assert sum(scores) == pytest.approx(1.0, abs=1e-5)
        theirs = reference(sf.load_audio(path, sampling_rate=16000).samples, top_k=5)
        assert [r["label"] for r in result] == [r["label"] for r in theirs]
        np.testing.assert_allclose(scores, [r["score"] for r in theirs], atol=1e-4)
    one_by_one = [clf(p, top_k=5) for p in paths]
    for a, b in zip(ours, one_by_one):
        assert [r["label"] for r in a] == [r["label"] for r in b]
        np.testing.assert_allclose([r["score"] for r in a], [r["score"] for r in b], atol=1e-5)


def test_whisper_speech_recognition_checkpoint_is_not_a_classifier(tmp_path):
    save_tiny_recognizer(tmp_path)
    with pytest.raises(SoundformersError, match="no classification head"):
        sf.pipeline("audio-classification", model=tmp_path)
