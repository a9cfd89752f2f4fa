"""Whisper encoder + classification head against transformers' WhisperForAudioClassification
on tiny random checkpoints saved in the transformers layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from soundformers.errors import CheckpointError
from soundformers.models.whisper.classification import (
    WhisperForAudioClassification,
    from_pretrained_classifier,
)

transformers = pytest.importorskip("transformers")

LABELS = {0: "english", 1: "german", 2: "french", 3: "music", 4: "noise"}


def make_tiny_classifier(folder: Path, use_weighted_layer_sum: bool, seed: int = 0):
    """A 2-layer, width-64 WhisperForAudioClassification (30 s window), saved with its feature
    extractor. Every parameter, layer_weights included, is perturbed so that no weight is at
    its symmetric initial value."""
    torch.manual_seed(seed)
    config = transformers.WhisperConfig(
        num_mel_bins=80, encoder_layers=2, decoder_layers=1, d_model=64,
        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=256,
        decoder_ffn_dim=256, classifier_proj_size=16, init_std=0.1,
        use_weighted_layer_sum=use_weighted_layer_sum, id2label=LABELS,
        label2id={v: k for k, v in LABELS.items()},
    )  # fmt: skip
    hf = transformers.WhisperForAudioClassification(config).eval()
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if name != "encoder.embed_positions.weight":
                p.add_(torch.randn_like(p) * (0.5 if name == "layer_weights" else 0.05))
    hf.save_pretrained(folder)
    transformers.WhisperFeatureExtractor(feature_size=80).save_pretrained(folder)
    return hf


@pytest.fixture(scope="module", params=[False, True], ids=["last-layer", "weighted-layer-sum"])
def tiny(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp("whisper-clf")
    hf = make_tiny_classifier(folder, request.param, seed=int(request.param))
    return folder, hf


def test_logits_match_on_the_same_features(tiny):
    folder, hf = tiny
    ours = from_pretrained_classifier(folder)
    assert isinstance(ours.module, WhisperForAudioClassification)
    assert ours.module.config.use_weighted_layer_sum == hf.config.use_weighted_layer_sum
    mel = torch.randn(3, 80, 3000) * 0.5
    with torch.no_grad():
        ref = hf(mel).logits
    with torch.inference_mode():
        got = ours.module(mel)
    torch.testing.assert_close(got, ref, atol=1e-4, rtol=0)
    assert ours.labels == tuple(LABELS.values())


def test_end_to_end_from_audio(tiny):
    folder, hf = tiny
    ours = from_pretrained_classifier(folder)
    extractor = transformers.WhisperFeatureExtractor.from_pretrained(folder)
    rng = np.random.default_rng(0)
    # shorter than, and longer than, the 30 s window (the extractor cuts at 30 s)
    audios = [(rng.standard_normal(n) * 0.1).astype(np.float32) for n in (16000, 31 * 16000)]
    inputs = extractor(audios, sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        ref = hf(inputs.input_features).logits
    torch.testing.assert_close(ours.classify(audios), ref, atol=1e-4, rtol=0)


def test_layer_weights_matter(tmp_path):
    """The weighted sum really mixes layers: changing one weight changes the logits."""
    make_tiny_classifier(tmp_path, use_weighted_layer_sum=True)
    ours = from_pretrained_classifier(tmp_path)
    mel = torch.randn(1, 80, 3000) * 0.5
    before = ours.module(mel)
    with torch.no_grad():
        ours.module.layer_weights[0] += 1.0
    assert not torch.allclose(ours.module(mel), before, atol=1e-4)


def save_tiny_recognizer(folder: Path) -> None:
    """A 1-layer random `WhisperForConditionalGeneration` (a speech recognizer, no
    classification head), saved in the transformers layout."""
    config = transformers.WhisperConfig(
        num_mel_bins=80, encoder_layers=1, decoder_layers=1, d_model=32,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=128,
        decoder_ffn_dim=128, vocab_size=100, pad_token_id=0, bos_token_id=0, eos_token_id=0,
        decoder_start_token_id=1,
    )  # fmt: skip
    transformers.WhisperForConditionalGeneration(config).save_pretrained(folder)


def test_speech_recognition_checkpoint_is_refused(tmp_path):
    save_tiny_recognizer(tmp_path)
    with pytest.raises(CheckpointError, match="automatic-speech-recognition"):
        from_pretrained_classifier(tmp_path)


def test_unknown_and_missing_tensors_are_named(tmp_path):
    from safetensors.torch import load_file, save_file

    make_tiny_classifier(tmp_path, use_weighted_layer_sum=True)
    tensors = load_file(tmp_path / "model.safetensors")
    tensors["classifier.extra"] = torch.zeros(1)
    save_file(tensors, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="classifier.extra"):
        from_pretrained_classifier(tmp_path)
    del tensors["classifier.extra"], tensors["layer_weights"]
    save_file(tensors, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="missing \\[layer_weights\\]"):
        from_pretrained_classifier(tmp_path)


def test_config_without_required_keys(tmp_path):
    make_tiny_classifier(tmp_path, use_weighted_layer_sum=False)
    config = json.loads((tmp_path / "config.json").read_text())
    del config["encoder_layers"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="encoder_layers"):
        from_pretrained_classifier(tmp_path)


def test_wrong_mel_shape_says_what_to_do(tiny):
    ours = from_pretrained_classifier(tiny[0])
    with pytest.raises(ValueError, match="pad or trim the audio to 30 s"):
        ours.module(torch.zeros(1, 80, 1000))
