"""CLAP against transformers' ClapModel on tiny random checkpoints, unfused and fused:
the model on the same inputs, end to end from audio and text, and loading errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from soundformers.errors import CheckpointError
from soundformers.models.clap import from_pretrained

from .tiny import make_tiny_clap

transformers = pytest.importorskip("transformers")

TEXTS = ["This is a sound of a dog barking.", "rain", "a cow and a sheep on a farm"]


@pytest.fixture(scope="module", params=[False, True], ids=["unfused", "fused"])
def tiny(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp("clap")
    hf, extractor, tokenizer = make_tiny_clap(folder, transformers, fused=request.param)
    return folder, hf, extractor, tokenizer, from_pretrained(folder)


def test_tokenizer_matches(tiny):
    _, _, _, tokenizer, ours = tiny
    ref = tokenizer(TEXTS, padding=True, return_tensors="pt")
    ids, mask = ours.tokenize(TEXTS)
    assert torch.equal(ids, ref["input_ids"]) and torch.equal(mask, ref["attention_mask"])


def test_logits_and_embeddings_on_the_same_inputs(tiny):
    _, hf, _, tokenizer, ours = tiny
    fused = ours.config.audio.enable_fusion
    torch.manual_seed(1)
    features = torch.randn(3, 4 if fused else 1, 1001, 64) * 10 - 40
    is_longer = torch.tensor([[True], [False], [True]])
    tokens = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        ref = hf(input_features=features, is_longer=is_longer, **tokens)
        out = ours.module(tokens["input_ids"], features, tokens["attention_mask"], is_longer[:, 0])
    for name in ("logits_per_audio", "logits_per_text", "audio_embeds", "text_embeds"):
        torch.testing.assert_close(getattr(out, name), getattr(ref, name), atol=1e-4, rtol=0)


def test_end_to_end_from_audio_and_text(tiny):
    _, hf, extractor, tokenizer, ours = tiny
    rng = np.random.default_rng(0)
    # short (padded), exactly 10 s, and 23 s (cropped or fused)
    audios = [(rng.standard_normal(n) * 0.1).astype(np.float32) for n in (30000, 480000, 1104000)]
    embeddings = []
    for audio in audios:  # one by one: ours seeds each item alone
        np.random.seed(0)
        inputs = extractor(audio, sampling_rate=48000, return_tensors="pt")
        if ours.config.audio.enable_fusion:  # the reference marks a lone short clip as longer
            inputs["is_longer"][:] = len(audio) > 480000
        with torch.no_grad():
            embeddings.append(hf.get_audio_features(**inputs).pooler_output)
    tokens = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        ref_text = hf.get_text_features(**tokens).pooler_output
    audio = ours.audio_embeddings(audios)
    torch.testing.assert_close(audio, torch.cat(embeddings), atol=1e-4, rtol=0)
    torch.testing.assert_close(ours.text_embeddings(TEXTS), ref_text, atol=1e-4, rtol=0)
    assert ours.logit_scale == pytest.approx(float(hf.logit_scale_a.detach().exp()))


def test_unknown_tensor_is_named(tmp_path):
    from safetensors.torch import load_file, save_file

    make_tiny_clap(tmp_path, transformers, fused=False)
    tensors = load_file(tmp_path / "model.safetensors")
    tensors["audio_model.extra.weight"] = torch.zeros(1)
    save_file(tensors, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="audio_model.extra.weight"):
        from_pretrained(tmp_path)


def test_missing_tokenizer_and_mismatched_preprocessor(tmp_path):
    make_tiny_clap(tmp_path, transformers, fused=True)
    preprocessor = json.loads((tmp_path / "preprocessor_config.json").read_text())
    preprocessor["truncation"] = "rand_trunc"
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(preprocessor))
    with pytest.raises(CheckpointError, match="fused.*truncation='fusion'"):
        from_pretrained(tmp_path)
    (tmp_path / "tokenizer.json").unlink()
    with pytest.raises(CheckpointError, match="tokenizer.json"):
        from_pretrained(tmp_path)
