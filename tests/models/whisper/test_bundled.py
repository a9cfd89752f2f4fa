"""Real bundled weights (CTranslate2 format) against faster-whisper on the same features.

faster-whisper pads the log-mel (not the audio) to 30 s; both models get those same features
here, so greedy tokens must be identical (NOTES-checkpoints.md).
"""

from __future__ import annotations

import csv
import re
import shutil

import numpy as np
import pytest
import torch

from soundformers.hub import resolve_model
from soundformers.models.whisper.generate import DecodingOptions
from soundformers.models.whisper.load import from_pretrained
from tests.conftest import fixture_path

pytestmark = pytest.mark.slow
faster_whisper = pytest.importorskip("faster_whisper")
ctranslate2 = pytest.importorskip("ctranslate2")


def _speech():
    folder = fixture_path("speech_split", "test")
    with open(folder / "metadata.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [(folder / r["file_name"], r["transcription"]) for r in rows]


def _faster_whisper_features(fw, paths) -> np.ndarray:
    import soundfile

    mels = np.zeros((len(paths), 80, 3000), np.float32)
    for i, path in enumerate(paths):
        audio, sr = soundfile.read(path, dtype="float32")
        assert sr == 16000
        feats = fw.feature_extractor(audio)[:, :3000]
        mels[i, :, : feats.shape[1]] = feats  # zero-padded features, as faster-whisper does
    return mels


def _words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9 ]", "", text.lower()).split()


@pytest.fixture(scope="module")
def tiny_pair():
    try:
        folder = resolve_model("whisper-tiny.en").folder
    except Exception as e:
        pytest.skip(f"whisper-tiny.en not installed: {e}")
    fw = faster_whisper.WhisperModel(
        str(folder), device="cpu", compute_type="float32", cpu_threads=2
    )
    return from_pretrained("whisper-tiny.en"), fw


def test_tiny_en_matches_faster_whisper(tiny_pair):
    ours, fw = tiny_pair
    speech = _speech()
    mels = _faster_whisper_features(fw, [p for p, _ in speech])

    fw_enc = fw.model.encode(ctranslate2.StorageView.from_array(mels), to_cpu=True)
    with torch.inference_mode():
        enc = ours.model.encode(torch.from_numpy(mels))
    np.testing.assert_allclose(enc.numpy(), np.array(fw_enc), atol=2e-4, rtol=0)

    for timestamps in (True, False):
        prompt = list(ours.tokenizer.sot_sequence(timestamps=timestamps))
        theirs = fw.model.generate(
            fw_enc, [prompt] * len(speech), beam_size=1, max_length=448, suppress_blank=True,
            suppress_tokens=[-1], max_initial_timestamp_index=50, return_no_speech_prob=True,
        )  # fmt: skip
        results = ours.generate(
            torch.from_numpy(mels), DecodingOptions(without_timestamps=not timestamps)
        )
        for (path, _), mine, ref in zip(speech, results, theirs):
            assert list(mine.tokens) == ref.sequences_ids[0], path.name
            assert mine.no_speech_prob == pytest.approx(ref.no_speech_prob, abs=1e-4)
            if timestamps:
                assert mine.tokens[0] >= ours.tokenizer.timestamp_begin

    # sanity: the transcripts are mostly right (tiny.en on synthetic voices)
    for (path, truth), mine in zip(speech, results):
        hits = len(set(_words(mine.text)) & set(_words(truth)))
        assert hits >= len(_words(truth)) // 2, (path.name, mine.text, truth)


def test_base_split_checkpoint_transcribes(tmp_path, tiny_pair):
    try:
        files = resolve_model("whisper-base")
    except Exception as e:
        pytest.skip(f"whisper-base not installed: {e}")
    ours = from_pretrained("whisper-base")
    assert ours.tokenizer.multilingual and ours.model.config.n_audio_state == 512
    # faster-whisper needs one model.bin: join the parts into a scratch folder
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copy(files.folder / name, tmp_path / name)
    with open(tmp_path / "model.bin", "wb") as out:
        for part in files.weights:
            out.write(part.read_bytes())
    fw = faster_whisper.WhisperModel(
        str(tmp_path), device="cpu", compute_type="float32", cpu_threads=2
    )

    path, truth = _speech()[1]
    mels = _faster_whisper_features(fw, [path])
    results = ours.generate(torch.from_numpy(mels), DecodingOptions(without_timestamps=True))
    assert results[0].language == "en" and results[0].language_probs["en"] > 0.5
    fw_enc = fw.model.encode(ctranslate2.StorageView.from_array(mels), to_cpu=True)
    prompt = list(ours.tokenizer.sot_sequence("en", timestamps=False))
    ref = fw.model.generate(
        fw_enc, [prompt], beam_size=1, suppress_blank=True, suppress_tokens=[-1]
    )
    assert list(results[0].tokens) == ref[0].sequences_ids[0]
    assert _words(results[0].text) == _words(truth)


def test_tiny_en_beam_search_matches_faster_whisper(tiny_pair):
    """openai-whisper's beam search (ours) and CTranslate2's agree on these files with
    timestamps. (Without timestamps they differ on some files: CTranslate2 ranks and stops
    its beams differently, e.g. it keeps searching after beam_size candidates finished.)"""
    ours, fw = tiny_pair
    speech = _speech()
    mels = _faster_whisper_features(fw, [p for p, _ in speech])
    fw_enc = fw.model.encode(ctranslate2.StorageView.from_array(mels), to_cpu=True)
    prompt = list(ours.tokenizer.sot_sequence(timestamps=True))
    theirs = fw.model.generate(
        fw_enc, [prompt] * len(speech), beam_size=5, patience=1, length_penalty=1,
        max_length=448, suppress_blank=True, suppress_tokens=[-1], max_initial_timestamp_index=50,
    )  # fmt: skip
    results = ours.generate(torch.from_numpy(mels), DecodingOptions(beam_size=5))
    for (path, _), mine, ref in zip(speech, results, theirs):
        assert list(mine.tokens) == ref.sequences_ids[0], path.name


def test_tiny_en_bfloat16_transcribes_like_float32(tiny_pair):
    """The opt-in bfloat16 mode (bf16 weights and matrix products, float32 residual stream,
    norms and softmax) gives the float32 tokens on these files."""
    ours, fw = tiny_pair
    speech = _speech()
    mels = torch.from_numpy(_faster_whisper_features(fw, [p for p, _ in speech]))
    bf16 = from_pretrained("whisper-tiny.en", dtype=torch.bfloat16)
    assert bf16.model.decoder.token_embedding.weight.dtype == torch.bfloat16
    for options in (DecodingOptions(), DecodingOptions(without_timestamps=True)):
        reference = ours.generate(mels, options)
        for (path, _), mine, ref in zip(speech, bf16.generate(mels, options), reference):
            assert mine.tokens == ref.tokens, path.name
            assert mine.avg_logprob == pytest.approx(ref.avg_logprob, abs=0.05)
