"""Beam search: the batched search against a literal transcription of openai-whisper's
algorithm, against transformers' beam search on a tiny random checkpoint, and (slow) against
faster-whisper's on real tiny.en weights."""

from __future__ import annotations

import pytest
import torch

from soundformers.generation.search import BeamSearch, length_normalized_scores
from soundformers.models.whisper.generate import DecodingOptions, FallbackOptions, decode
from soundformers.models.whisper.load import load_model

from .test_parity import _mel, _timestamp_ids, _tokenizer

EOT = 9


def _reference_beam(logits_for, n_audio: int, beam: int, steps: int, patience: float):
    """openai-whisper's BeamSearchDecoder (update, finalize) and MaximumLikelihoodRanker,
    written literally with dicts keyed by sequence. `logits_for(beams)` gives (N, V) logits
    for the current beams (lists of sampled tokens)."""
    max_candidates = round(beam * patience)
    beams = [[] for _ in range(n_audio * beam)]
    sums = [0.0] * (n_audio * beam)
    finished_all = [{} for _ in range(n_audio)]
    for _ in range(steps):
        logprobs = torch.log_softmax(logits_for(beams), dim=-1)
        next_beams, next_sums = [], []
        for i in range(n_audio):
            scores, finished = {}, {}
            for j in range(beam):
                idx = i * beam + j
                for lp, tok in zip(*logprobs[idx].topk(beam + 1)):
                    seq = (*beams[idx], int(tok))
                    scores[seq] = sums[idx] + float(lp)
            saved = 0
            for seq in sorted(scores, key=scores.get, reverse=True):
                if seq[-1] == EOT:
                    finished[seq] = scores[seq]
                else:
                    next_beams.append(list(seq))
                    next_sums.append(scores[seq])
                    saved += 1
                    if saved == beam:
                        break
            for seq in sorted(finished, key=finished.get, reverse=True):
                if len(finished_all[i]) >= max_candidates:
                    break
                finished_all[i][seq[:-1]] = finished[seq]
        beams, sums = next_beams, next_sums
        if all(len(f) >= max_candidates for f in finished_all):
            break
    best = []
    for i, fin in enumerate(finished_all):
        if len(fin) < beam:
            for j in sorted(range(beam), key=lambda j: sums[i * beam + j], reverse=True):
                fin[tuple(beams[i * beam + j])] = sums[i * beam + j]
                if len(fin) >= beam:
                    break
        best.append(max(fin, key=lambda s: fin[s] / len(s) if s else float("-inf")))
    return best


@pytest.mark.parametrize("seed", range(8))
def test_batched_beam_search_equals_the_reference_algorithm(seed):
    """Logits depend on each beam's history (a hash of its tokens), so reordering matters, and
    eot is likely enough that candidates finish at different steps."""
    n_audio, beam, vocab, steps = 2, 3, 12, 10
    patience = 1.0 if seed % 2 else 2.0
    g = torch.Generator().manual_seed(seed)
    table = torch.randn(101, vocab, generator=g) * 2

    def logits_for(beams):
        return torch.stack([table[hash(tuple(b)) % 101] for b in beams])

    search = BeamSearch(n_audio, beam, EOT, patience)
    sampled = torch.zeros(n_audio * beam, 0, dtype=torch.long)
    sums = torch.zeros(n_audio * beam)
    for step in range(steps):
        out = search.step(logits_for(sampled.tolist()), sampled, sums, first=step == 0)
        sampled = torch.cat([sampled[out.source], out.tokens[:, None]], dim=1)
        sums = out.sum_logprobs
        if out.done:
            break
    ours = []
    for group in search.finalize(sampled, sums):
        lengths = torch.tensor([len(s) for s, _ in group], dtype=torch.float32)
        scores = length_normalized_scores(torch.tensor([v for _, v in group]), lengths)
        ours.append(group[int(scores.argmax())][0])

    assert ours == _reference_beam(logits_for, n_audio, beam, steps, patience)


@pytest.fixture(params=["multilingual", "english"])
def tiny(request, tiny_multilingual, tiny_english):
    return tiny_multilingual if request.param == "multilingual" else tiny_english


def test_beam_tokens_equal_transformers_generate(tiny):
    """Without eot (suppressed in both) every beam runs to max_new_tokens, so both searches
    keep the beams of highest cumulative log-probability and return the best: comparable."""
    eot = 50257 if tiny.multilingual else 50256
    beam_size = 2 if tiny.multilingual else 3
    suppressed = [eot, *_timestamp_ids(tiny)]
    mel = _mel(2, seed=4)
    kwargs = {"language": "en", "task": "transcribe"} if tiny.multilingual else {}
    with torch.inference_mode():
        theirs = tiny.hf.generate(
            mel, num_beams=beam_size, do_sample=False, max_new_tokens=10,
            suppress_tokens=suppressed, return_timestamps=False, **kwargs,
        ).tolist()  # fmt: skip
    model = load_model(tiny.folder).model
    options = DecodingOptions(
        language="en" if tiny.multilingual else None, without_timestamps=True,
        suppress_tokens=suppressed, suppress_blank=False, sample_len=10, beam_size=beam_size,
    )  # fmt: skip
    ours = decode(model, _tokenizer(tiny.multilingual), mel, options)
    for mine, ref in zip(ours, theirs):
        assert list(mine.tokens) == [t for t in ref if t != eot]


def test_beam_options_are_validated():
    with pytest.raises(ValueError, match="best_of"):
        DecodingOptions(beam_size=5, best_of=5, temperature=0.5)
    with pytest.raises(ValueError, match="deterministic"):
        DecodingOptions(beam_size=5, temperature=0.5)
    with pytest.raises(ValueError, match="patience"):
        DecodingOptions(patience=2.0)
    assert FallbackOptions().best_of == 5


def test_fallback_uses_beams_at_zero_and_sampling_above(tiny_english):
    from soundformers.models.whisper.generate import decode_with_fallback

    model = load_model(tiny_english.folder).model
    tokenizer = _tokenizer(False)
    options = DecodingOptions(beam_size=2, without_timestamps=True, sample_len=6)
    # thresholds no result can pass: every temperature is tried, beams at 0, best_of above
    fallback = FallbackOptions(
        temperatures=(0.0, 0.5), logprob_threshold=0.0, no_speech_threshold=None, best_of=2
    )
    mel = _mel(2, seed=5)
    results = decode_with_fallback(
        model, tokenizer, mel, options, fallback, generator=torch.Generator().manual_seed(0)
    )
    assert [r.temperature for r in results] == [0.5, 0.5]
    beams = decode(model, tokenizer, mel, options)
    assert all(r.temperature == 0.0 and len(r.tokens) <= 6 for r in beams)


def test_step_weights_follow_the_parameters(tiny_english):
    """The fused weights of the cached step are derived once, and again after the parameters
    change (here: a state dict loaded in place after a first step)."""
    model = load_model(tiny_english.folder).model
    mel, tokens = _mel(1), torch.tensor([[50257, 50362, 400]])

    def stepped():
        with torch.inference_mode():
            kv, cache = model.cross_kv(model.encode(mel)), model.new_cache(1, 8)
            return model.decode_step(tokens, kv, cache, torch.arange(3))

    first = stepped()
    assert model.decoder.step_weights() is model.decoder.step_weights()  # cached
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["decoder.blocks.0.attn.query.weight"] *= 2
    state["decoder.token_embedding.weight"] *= 0.5
    model.load_state_dict(state)
    with torch.inference_mode():
        expected = model(mel, tokens)
    second = stepped()
    assert not torch.allclose(first, second)
    torch.testing.assert_close(second, expected, atol=1e-4, rtol=0)
