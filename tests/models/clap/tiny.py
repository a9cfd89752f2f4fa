"""Tiny random CLAP checkpoints written by transformers (model, tokenizer, feature extractor),
shared by the model parity tests and the pipeline tests."""

from __future__ import annotations

import json
from pathlib import Path

import torch

CORPUS = [
    "This is a sound of a dog barking.", "This is a sound of rain on a roof.",
    "This is a sound of a cat.", "a cow, a duck, a frog, a horse, an owl, a pig",
    "a rooster and a sheep", "music, speech, silence, noise, a car engine",
]  # fmt: skip


def tiny_tokenizer(transformers):
    """A real-format RoBERTa tokenizer: a byte-level BPE trained here, wrapped by transformers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )  # fmt: skip
    bpe.train_from_iterator(CORPUS * 4, trainer)
    vocab = bpe.get_vocab()
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m)
              for m in json.loads(bpe.to_str())["model"]["merges"]]  # fmt: skip
    return transformers.RobertaTokenizer(vocab=vocab, merges=merges)


def make_tiny_clap(folder: Path, transformers, *, fused: bool, seed: int = 0):
    """Write a tiny CLAP checkpoint to `folder`; return (hf model, feature extractor, tokenizer).

    The audio side keeps the real input geometry (64 mels, a 256 x 256 image, 10 s windows of
    1001 frames) so the reference feature extractor works unchanged, with small widths."""
    torch.manual_seed(seed)
    tokenizer = tiny_tokenizer(transformers)
    audio = transformers.ClapAudioConfig(
        spec_size=256, num_mel_bins=64, window_size=8, patch_size=8, patch_stride=(8, 8),
        depths=[2, 1, 1], num_attention_heads=[2, 2, 4], patch_embeds_hidden_size=8,
        hidden_size=32, enable_fusion=fused, fusion_type=None,
    )  # fmt: skip
    text = transformers.ClapTextConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=37, max_position_embeddings=64,
    )  # fmt: skip
    config = transformers.ClapConfig(text_config=text.to_dict(), audio_config=audio.to_dict(),
                                     projection_dim=24)  # fmt: skip
    hf = transformers.ClapModel(config).eval()
    with torch.no_grad():  # move everything off its init values, BatchNorm statistics included
        for p in hf.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        for name, b in hf.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn_like(b) * 0.5)
            elif name.endswith("running_var"):
                b.copy_(torch.rand_like(b) + 0.5)
    hf.save_pretrained(folder)
    extractor = transformers.ClapFeatureExtractor(
        truncation="fusion" if fused else "rand_trunc", frequency_min=50
    )
    extractor.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return hf, extractor, tokenizer
