"""AST against transformers on a tiny random checkpoint: model on the same features, and
end to end from audio (our fbank vs ASTFeatureExtractor)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from soundformers.errors import CheckpointError
from soundformers.models.ast import from_pretrained

transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.filterwarnings("ignore:At least one mel filter:UserWarning")

LABELS = {0: "Speech", 1: "Dog", 2: "Music", 3: "Silence"}


def make_tiny(folder, max_length=128, seed=0):
    torch.manual_seed(seed)
    config = transformers.ASTConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        patch_size=16, frequency_stride=10, time_stride=10, max_length=max_length,
        num_mel_bins=128, id2label=LABELS, label2id={v: k for k, v in LABELS.items()},
    )  # fmt: skip
    hf = transformers.ASTForAudioClassification(config).eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    hf.save_pretrained(folder)
    extractor = transformers.ASTFeatureExtractor(max_length=max_length)
    extractor.save_pretrained(folder)
    return hf, extractor


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ast")
    hf, extractor = make_tiny(folder)
    return folder, hf, extractor


def test_logits_match_on_the_same_features(tiny):
    folder, hf, _ = tiny
    ours = from_pretrained(folder)
    x = torch.randn(3, 128, 128)
    with torch.no_grad():
        ref = hf(x).logits
    torch.testing.assert_close(ours.module(x), ref, atol=1e-4, rtol=0)
    assert ours.labels == ("Speech", "Dog", "Music", "Silence")


def test_end_to_end_from_audio(tiny):
    folder, hf, extractor = tiny
    ours = from_pretrained(folder)
    rng = np.random.default_rng(0)
    audios = [(rng.standard_normal(n) * 0.1).astype(np.float32) for n in (16000, 9000)]
    inputs = extractor(audios, sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        ref = hf(**inputs).logits
    torch.testing.assert_close(ours.classify(audios), ref, atol=1e-3, rtol=0)


def test_unknown_tensor_is_named(tmp_path):
    from safetensors.torch import load_file, save_file

    make_tiny(tmp_path)
    tensors = load_file(tmp_path / "model.safetensors")
    tensors["classifier.extra"] = torch.zeros(1)
    save_file(tensors, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="classifier.extra"):
        from_pretrained(tmp_path)


def test_config_without_required_keys(tmp_path):
    make_tiny(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    del config["hidden_size"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="hidden_size"):
        from_pretrained(tmp_path)


def test_a_missing_part_of_the_fused_attention_projection_is_named(tmp_path):
    from safetensors.torch import load_file, save_file

    make_tiny(tmp_path)
    tensors = load_file(tmp_path / "model.safetensors")
    del tensors["audio_spectrogram_transformer.encoder.layer.0.attention.attention.value.weight"]
    save_file(tensors, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match=r"layers.0.attention.qkv.weight fuses .*'key'\]"):
        from_pretrained(tmp_path)


def test_all_tokens_and_the_pooled_tokens_only_agree(tiny):
    """The classifier computes the last block for CLS and DIST only; the full pass agrees."""
    folder, _, _ = tiny
    ours = from_pretrained(folder)
    x = torch.randn(2, 128, 128)
    with torch.inference_mode():
        pooled_full, tokens = ours.module.backbone(x, all_tokens=True)
        pooled_short, two = ours.module.backbone(x, all_tokens=False)
    assert tokens.shape == (2, ours.config.num_patches + 2, 32) and two.shape == (2, 2, 32)
    torch.testing.assert_close(pooled_short, pooled_full, atol=1e-5, rtol=0)
    torch.testing.assert_close(two, tokens[:, :2], atol=1e-5, rtol=0)


def test_all_token_attention_runs_per_head_and_matches_sdpa(tiny, monkeypatch):
    """146 tokens (>= PER_HEAD_MIN_QUERIES) take `layers.float32_attention`; the last block's
    two pooled queries take SDPA; the logits are SDPA's within float32 rounding."""
    from soundformers.models import layers
    from soundformers.models.ast import model as ast_model

    folder, _, _ = tiny
    ours = from_pretrained(folder)
    x = torch.randn(2, 128, 128)
    calls = []

    def spy(q, k, v, scale=None):
        calls.append(q.shape)
        return layers.float32_attention(q, k, v, scale)

    monkeypatch.setattr(ast_model, "float32_attention", spy)
    with torch.inference_mode():
        fast = ours.module(x)
        assert calls == [(2, 4, ours.config.num_patches + 2, 8)]  # block 1; block 2: pooled
        monkeypatch.setattr(ast_model, "PER_HEAD_MIN_QUERIES", 10**9)
        plain = ours.module(x)
    assert len(calls) == 1
    torch.testing.assert_close(fast, plain, atol=1e-5, rtol=0)
