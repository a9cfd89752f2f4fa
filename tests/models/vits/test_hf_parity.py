"""transformers VitsModel (MMS-TTS layout) on tiny random configs: same weights, same waveform."""

from __future__ import annotations

import json

import pytest
import torch

transformers = pytest.importorskip("transformers")

VOCAB = {c: i for i, c in enumerate("_abcdefghijklmnopqrstuvwxyz '.,")}


def tiny_config(**overrides):
    kwargs = dict(
        vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
        ffn_dim=32, flow_size=8, spectrogram_bins=9, upsample_initial_channel=16,
        upsample_rates=[4, 2], upsample_kernel_sizes=[8, 4], resblock_kernel_sizes=[3, 5],
        resblock_dilation_sizes=[[1, 3], [1, 3]], prior_encoder_num_flows=2,
        prior_encoder_num_wavenet_layers=2, duration_predictor_num_flows=2,
        duration_predictor_filter_channels=24, noise_scale=0.0, noise_scale_duration=0.0,
        sampling_rate=16000,
    )  # fmt: skip
    kwargs.update(overrides)
    return transformers.VitsConfig(**kwargs)


def save(model, folder):
    model.save_pretrained(folder)
    (folder / "vocab.json").write_text(json.dumps(VOCAB))
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"add_blank": True, "normalize": True})
    )


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"use_stochastic_duration_prediction": False},
        {"num_speakers": 3, "speaker_embedding_size": 4},
        {"speaking_rate": 0.7},
    ],
    ids=["sdp", "deterministic", "speakers", "slow"],
)
def test_waveform_matches_transformers(tmp_path, overrides):
    from soundformers.models.vits import SynthesisOptions, from_pretrained

    torch.manual_seed(0)
    config = tiny_config(**overrides)
    reference = transformers.VitsModel(config).eval()
    with torch.no_grad():  # make durations non-trivial (untrained flows give ~1 frame each)
        for p in reference.duration_predictor.parameters():
            p.add_(0.05 * torch.randn_like(p))
    save(reference, tmp_path)
    voice = from_pretrained(tmp_path)
    [ids] = voice.split("hello world")
    speaker = 2 if "num_speakers" in overrides else None
    with torch.no_grad():
        ref = reference(torch.tensor([ids]), speaker_id=speaker).waveform[0]
    options = SynthesisOptions(noise_scale=0.0, noise_w=0.0,
                               length_scale=voice.defaults.length_scale)  # fmt: skip
    [ours] = voice.synthesize([ids], options=options, speaker=voice.speaker_id(speaker))
    assert ours.shape == tuple(ref.shape)
    torch.testing.assert_close(torch.from_numpy(ours), ref, atol=1e-4, rtol=0)


def test_character_front_end_intersperses_blanks(tmp_path):
    from soundformers.text.phonemize import CharacterFrontEnd

    front = CharacterFrontEnd(VOCAB)
    assert front("Ab!") == [[0, VOCAB["a"], 0, VOCAB["b"], 0]]
