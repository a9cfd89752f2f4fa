"""Wav2Vec2/HuBERT against transformers on tiny random checkpoints: CTC and classification heads,
both feature-encoder variants, both weight-norm layouts, padded batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from soundformers.errors import CheckpointError
from soundformers.models.wav2vec2 import from_pretrained_classifier, from_pretrained_ctc
from soundformers.models.wav2vec2.load import normalize

from .conftest import make_tiny

ATOL = 1e-4
CASES = [
    (family, variant, legacy)
    for family in ("wav2vec2", "hubert")
    for variant in ("base", "large")
    for legacy in (False, True)
]


def audio(n: int, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(n) * 0.3).astype(np.float32)


@pytest.mark.parametrize(("family", "variant", "legacy"), CASES)
def test_ctc_logits_match_transformers(tmp_path, family, variant, legacy):
    hf = make_tiny(tmp_path, family, variant, legacy_weight_norm=legacy)
    ours = from_pretrained_ctc(tmp_path)
    x = audio(4000)
    with torch.no_grad():
        ref = hf(torch.from_numpy(normalize(x))[None]).logits[0]
    got = ours.logits([x])[0]
    torch.testing.assert_close(got, ref, atol=ATOL, rtol=0)


@pytest.mark.parametrize("family", ["wav2vec2", "hubert"])
def test_padded_batch_of_the_large_variant_matches_masked_transformers(tmp_path, family):
    hf = make_tiny(tmp_path, family, "large")
    ours = from_pretrained_ctc(tmp_path)
    xs = [audio(4000, 1), audio(2500, 2), audio(3300, 3)]
    got = ours.logits(xs)
    batch = torch.zeros(3, 4000)
    mask = torch.zeros(3, 4000, dtype=torch.long)
    for i, x in enumerate(xs):
        batch[i, : len(x)] = torch.from_numpy(normalize(x))
        mask[i, : len(x)] = 1
    with torch.no_grad():
        ref = hf(batch, attention_mask=mask).logits
    for i, x in enumerate(xs):
        n = ours.config.output_length(len(x))
        assert got[i].shape == (n, 15)
        torch.testing.assert_close(got[i], ref[i, :n], atol=ATOL, rtol=0)
        torch.testing.assert_close(got[i], ours.logits([x])[0], atol=ATOL, rtol=0)


def test_base_variant_batches_equal_lengths_only_and_matches_alone(tmp_path):
    make_tiny(tmp_path, "wav2vec2", "base")
    ours = from_pretrained_ctc(tmp_path)
    xs = [audio(3000, 1), audio(2000, 2), audio(3000, 3)]
    assert ours._batches([len(x) for x in xs]) == [[1], [0, 2]]
    for got, x in zip(ours.logits(xs), xs):
        torch.testing.assert_close(got, ours.logits([x])[0], atol=ATOL, rtol=0)


@pytest.mark.parametrize(
    ("family", "variant", "weighted"),
    [("wav2vec2", "base", True), ("hubert", "base", True), ("wav2vec2", "large", False),
     ("hubert", "large", False)],
)  # fmt: skip
def test_sequence_classification_matches_transformers(tmp_path, family, variant, weighted):
    labels = {0: "yes", 1: "no", 2: "up"}
    hf = make_tiny(tmp_path, family, variant, head="classification", use_weighted_layer_sum=weighted,
                   classifier_proj_size=8, id2label=labels,
                   label2id={v: k for k, v in labels.items()})  # fmt: skip
    ours = from_pretrained_classifier(tmp_path)
    assert ours.labels == ("yes", "no", "up")
    xs = [audio(3000, 4), audio(3000, 5)]
    with torch.no_grad():
        ref = hf(torch.from_numpy(np.stack([normalize(x) for x in xs]))).logits
    torch.testing.assert_close(ours.classify(xs), ref, atol=ATOL, rtol=0)


def test_stable_layer_norm_weighted_sum_uses_the_normed_last_layer(tmp_path):
    """transformers 4.x put the final LayerNorm's output last in `hidden_states` (what checkpoints
    were trained with); 5.x records the raw last block. We follow 4.x: check against a manual sum."""
    hf = make_tiny(tmp_path, "wav2vec2", "large", head="classification",
                   use_weighted_layer_sum=True, classifier_proj_size=8, num_labels=3)  # fmt: skip
    ours = from_pretrained_classifier(tmp_path)
    x = torch.from_numpy(normalize(audio(3000, 6)))[None]
    with torch.no_grad():
        out = hf.wav2vec2(x, output_hidden_states=True)
        states = [*out.hidden_states[:-1], out.last_hidden_state]
        w = hf.layer_weights.softmax(-1)
        pooled = hf.projector(sum(wi * s for wi, s in zip(w, states))).mean(1)
        ref = hf.classifier(pooled)
    torch.testing.assert_close(ours.classify([x[0].numpy()]), ref, atol=ATOL, rtol=0)


def test_missing_and_unexpected_tensors_are_listed(tmp_path):
    from safetensors.torch import load_file, save_file

    make_tiny(tmp_path, "wav2vec2", "base")
    path = tmp_path / "model.safetensors"
    tensors = load_file(path)
    tensors.pop("lm_head.bias")
    save_file(tensors, path, metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match=r"missing \[lm_head.bias\]"):
        from_pretrained_ctc(tmp_path)
    tensors["wav2vec2.quantizer.codevectors"] = torch.zeros(1)
    save_file(tensors, path, metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="quantizer.codevectors"):
        from_pretrained_ctc(tmp_path)


def test_unsupported_variant_is_refused(tmp_path):
    make_tiny(tmp_path, "wav2vec2", "base", add_adapter=True)
    with pytest.raises(CheckpointError, match="add_adapter"):
        from_pretrained_ctc(tmp_path)


def test_a_missing_part_of_the_fused_attention_projection_is_named(tmp_path):
    from safetensors.torch import load_file, save_file

    make_tiny(tmp_path, "wav2vec2", "base")
    path = tmp_path / "model.safetensors"
    tensors = load_file(path)
    tensors.pop("wav2vec2.encoder.layers.1.attention.k_proj.bias")
    save_file(tensors, path, metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match=r"layers.1.attention.qkv.bias fuses 3 tensors"):
        from_pretrained_ctc(tmp_path)


@pytest.mark.parametrize("variant", ["base", "large"])
def test_bfloat16_weights_stay_near_float32(tmp_path, variant):
    make_tiny(tmp_path, "wav2vec2", variant)
    full = from_pretrained_ctc(tmp_path)
    half = from_pretrained_ctc(tmp_path, dtype=torch.bfloat16)
    x = audio(4000)
    got, ref = half.logits([x])[0], full.logits([x])[0]
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, ref, atol=0.05 * ref.abs().max().item(), rtol=0)


def test_group_normed_first_layer_is_float32_then_rounded_once(tmp_path):
    """The base variant's first convolution and its per-channel norm over time run in float32
    from float32 audio (not bfloat16-rounded samples); only the result is rounded."""
    make_tiny(tmp_path, "wav2vec2", "base")
    half = from_pretrained_ctc(tmp_path, dtype=torch.bfloat16)
    layer = half.module.backbone.feature_extractor.conv_layers[0]
    samples = torch.from_numpy(normalize(audio(4000, 7)))[None, :, None]  # (1, S, 1)
    got = layer(samples)
    assert got.dtype == torch.bfloat16
    w, b = layer.conv.weight.double(), layer.layer_norm
    y = torch.nn.functional.conv1d(samples.double().transpose(1, 2), w, stride=layer.conv.stride)
    y = y.transpose(1, 2)
    y = (y - y.mean(1, keepdim=True)) / torch.sqrt(y.var(1, keepdim=True, correction=0) + b.eps)
    ref = torch.nn.functional.gelu(y * b.weight.double() + b.bias.double())
    # one bfloat16 rounding of the normalised value, then GELU in bfloat16
    torch.testing.assert_close(got.double(), ref, atol=0.02, rtol=2**-7)


def test_group_normed_first_layer_is_the_same_with_and_without_autograd(tmp_path):
    """Inference normalises in place (`_group_norm_`); with autograd, out of place."""
    make_tiny(tmp_path, "wav2vec2", "base")
    layer = from_pretrained_ctc(tmp_path).module.backbone.feature_extractor.conv_layers[0]
    samples = torch.from_numpy(normalize(audio(40000, 8)))[None, :, None]
    with torch.inference_mode():
        fast = layer(samples)
    tracked = layer(samples.clone().requires_grad_())
    assert tracked.requires_grad
    torch.testing.assert_close(fast, tracked.detach(), atol=1e-5, rtol=1e-5)
