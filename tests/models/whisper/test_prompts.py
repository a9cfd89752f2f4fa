"""Per-window prompts of different lengths in one batch decode as each window alone."""

from __future__ import annotations

import pytest
import torch

from soundformers.models.whisper.generate import DecodingOptions, decode
from soundformers.models.whisper.load import load_model

from .test_parity import _mel, _tokenizer


@pytest.mark.parametrize("which", ["english", "multilingual"])
@pytest.mark.parametrize("beam_size", [None, 3])
def test_left_padded_prompts_equal_one_by_one(which, beam_size, tiny_english, tiny_multilingual):
    tiny = tiny_english if which == "english" else tiny_multilingual
    model = load_model(tiny.folder).model
    tok = _tokenizer(tiny.multilingual)
    mel = _mel(3, seed=4)
    prompts = [tok.encode(" a much longer previous text, of many words"), None, [tok.eot - 7]]
    options = DecodingOptions(
        language="en" if tiny.multilingual else None, sample_len=12, beam_size=beam_size
    )
    together = decode(model, tok, mel, options, prompts=prompts)
    for i, prompt in enumerate(prompts):
        alone = decode(model, tok, mel[i : i + 1], options, prompts=[prompt])[0]
        assert together[i].tokens == alone.tokens, i
        assert together[i].no_speech_prob == pytest.approx(alone.no_speech_prob, abs=1e-5)
        assert together[i].avg_logprob == pytest.approx(alone.avg_logprob, abs=1e-4)


def test_step_with_start_matches_unpadded_logits(tiny_english):
    model = load_model(tiny_english.folder).model
    g = torch.Generator().manual_seed(3)
    tokens = torch.randint(0, 50000, (1, 6), generator=g)
    with torch.inference_mode():
        kv = model.cross_kv(model.encode(_mel(1)))
        plain = model.decode_step(tokens, kv, model.new_cache(1, 12), torch.arange(6))
        padded = torch.cat([torch.full((1, 3), 50256), tokens], dim=1)  # 3 padding slots
        cache, start = model.new_cache(1, 12), torch.tensor([3])
        out = model.decode_step(padded[:, :7], kv, cache, torch.arange(7), start)
        nxt = model.decode_step(padded[:, 7:], kv, cache, torch.arange(7, 9), start)
    torch.testing.assert_close(torch.cat([out, nxt], 1)[:, 3:], plain, atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="one per window"):
        decode(model, _tokenizer(False), _mel(2), prompts=[None])
