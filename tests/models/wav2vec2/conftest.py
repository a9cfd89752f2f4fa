"""Tiny random Wav2Vec2/HuBERT checkpoints in the transformers layout, saved with save_pretrained."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")

VOCAB = ["<pad>", "<s>", "</s>", "<unk>", "|", "E", "T", "A", "O", "N", "I", "H", "S", "R", "D"]


def tiny_config(family: str, variant: str, **extra: object):
    """A 2-layer, width-32 config; variant "base" (group norm, post-norm) or "large"
    (layer norm on every conv, stable layer norm)."""
    cls = transformers.HubertConfig if family == "hubert" else transformers.Wav2Vec2Config
    large = variant == "large"
    return cls(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        conv_dim=(16, 16, 16),
        conv_kernel=(10, 3, 2),
        conv_stride=(5, 2, 2),
        conv_bias=large,
        feat_extract_norm="layer" if large else "group",
        do_stable_layer_norm=large,
        num_conv_pos_embeddings=16,
        # 16 channels a group: torch 2.13's bfloat16 grouped convolution on an AMX CPU is wrong
        # at 8 (relative error ~1.1; real checkpoints have 48 or 64)
        num_conv_pos_embedding_groups=2,
        vocab_size=len(VOCAB),
        pad_token_id=0,
        **extra,
    )


def make_tiny(folder: Path, family: str, variant: str, head: str = "ctc", seed: int = 0,
              legacy_weight_norm: bool = False, **extra: object):  # fmt: skip
    """Save a random model with `head` "ctc" or "classification"; return the transformers one.

    `legacy_weight_norm` renames the positional conv's `parametrizations.weight.original0/1` to
    the older `weight_g`/`weight_v` in the saved file.
    """
    torch.manual_seed(seed)
    config = tiny_config(family, variant, **extra)
    name = "Hubert" if family == "hubert" else "Wav2Vec2"
    suffix = "ForCTC" if head == "ctc" else "ForSequenceClassification"
    hf = getattr(transformers, name + suffix)(config).eval()
    with torch.no_grad():  # make the random model less flat than its init
        for p in hf.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    hf.save_pretrained(folder)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(VOCAB)}))
    (folder / "preprocessor_config.json").write_text(
        json.dumps({"do_normalize": True, "sampling_rate": 16000, "feature_size": 1,
                    "return_attention_mask": variant == "large"})
    )  # fmt: skip
    if legacy_weight_norm:
        from safetensors.torch import load_file, save_file

        path = folder / "model.safetensors"
        tensors = load_file(path)
        renamed = {
            k.replace("parametrizations.weight.original0", "weight_g").replace(
                "parametrizations.weight.original1", "weight_v"
            ): v
            for k, v in tensors.items()
        }
        save_file(renamed, path, metadata={"format": "pt"})
    return hf
