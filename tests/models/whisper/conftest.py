"""Tiny random Whisper checkpoints in the transformers layout, shared by the parity tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")


@dataclass
class TinyCheckpoint:
    folder: Path
    hf: object  # transformers.WhisperForConditionalGeneration, eval mode
    multilingual: bool


def _special_ids(multilingual: bool) -> dict[str, int]:
    eot = 50257 if multilingual else 50256
    return {
        "eot": eot,
        "sot": eot + 1,
        "translate": eot + 101,
        "transcribe": eot + 102,
        "no_timestamps": eot + 106,
    }


def make_tiny(folder: Path, multilingual: bool, seed: int = 0) -> TinyCheckpoint:
    """A 2-layer, width-64 Whisper with a real-size vocabulary, saved with save_pretrained.

    `init_std` is raised from 0.02 so that outputs depend visibly on the input.
    """
    ids = _special_ids(multilingual)
    torch.manual_seed(seed)
    config = transformers.WhisperConfig(
        vocab_size=51865 if multilingual else 51864,
        num_mel_bins=80,
        encoder_layers=2,
        decoder_layers=2,
        d_model=64,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=256,
        decoder_ffn_dim=256,
        init_std=0.1,
        decoder_start_token_id=ids["sot"],
        pad_token_id=ids["eot"],
        bos_token_id=ids["eot"],
        eos_token_id=ids["eot"],
    )
    hf = transformers.WhisperForConditionalGeneration(config).eval()
    gc = hf.generation_config
    gc.no_timestamps_token_id = ids["no_timestamps"]
    gc.is_multilingual = multilingual
    gc.task_to_id = {"transcribe": ids["transcribe"], "translate": ids["translate"]}
    if multilingual:
        gc.lang_to_id = {"<|en|>": ids["sot"] + 1, "<|de|>": ids["sot"] + 3}
    gc.decoder_start_token_id = ids["sot"]
    gc.max_initial_timestamp_index = 50
    gc.suppress_tokens = None
    gc.begin_suppress_tokens = None
    hf.save_pretrained(folder)
    return TinyCheckpoint(folder, hf, multilingual)


@pytest.fixture(scope="session")
def tiny_multilingual(tmp_path_factory: pytest.TempPathFactory) -> TinyCheckpoint:
    return make_tiny(tmp_path_factory.mktemp("tiny-multilingual"), multilingual=True)


@pytest.fixture(scope="session")
def tiny_english(tmp_path_factory: pytest.TempPathFactory) -> TinyCheckpoint:
    return make_tiny(tmp_path_factory.mktemp("tiny-en"), multilingual=False, seed=1)
