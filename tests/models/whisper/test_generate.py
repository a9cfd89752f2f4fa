"""Decoding rules in isolation: timestamp rules, suppression, options, fallback decisions."""

from __future__ import annotations

import pytest
import torch

from soundformers.hub import resolve_model
from soundformers.models.whisper.generate import (
    DecodingOptions,
    DecodingResult,
    FallbackOptions,
    LogitRules,
    WhisperGenerationConfig,
    compression_ratio,
)
from soundformers.text.whisper_tokenizer import WhisperTokenizer

NEG = float("-inf")


@pytest.fixture(scope="module")
def tok():
    try:
        return WhisperTokenizer.from_folder(resolve_model("whisper-tiny.en").folder)
    except Exception as e:
        pytest.skip(f"whisper-tiny.en not installed: {e}")


def _rules(tok, **options):
    opts = DecodingOptions(**options)
    return LogitRules(tok, opts, WhisperGenerationConfig(), 1, tok.vocab_size, torch.device("cpu"))


def _apply(tok, rules, sampled, logits=None):
    """Rules for the position after `sampled` (tokens after the 1-token prompt)."""
    tokens = torch.tensor([[tok.sot, *sampled, tok.eot]])
    if logits is None:  # text clearly likelier than any timestamp: no timestamp is forced
        logits = torch.zeros(1, tok.vocab_size)
        logits[0, : tok.timestamp_begin] = 10.0
    ts = [t for t in sampled if t >= tok.timestamp_begin]
    last_ts = torch.tensor([ts[-1] if ts else -1])
    rules.apply(logits, tokens, 1 + len(sampled), last_ts)
    return logits[0]


def test_first_token_is_an_early_timestamp(tok):
    allowed = torch.isfinite(_apply(tok, _rules(tok), []))
    assert allowed.nonzero().squeeze(1).tolist() == list(
        range(tok.timestamp_begin, tok.timestamp_begin + 51)
    )  # <|0.00|> .. <|1.00|> (max_initial_timestamp=1.0)


def test_timestamp_pairs_and_order(tok):
    rules = _rules(tok)
    hello = tok.encode(" Hello")[0]
    t = tok.timestamp_begin
    after_text = torch.isfinite(_apply(tok, rules, [t + 10, hello]))
    # text or a timestamp at/after 0.22 s (segments have non-zero length), never before
    assert after_text[hello] and after_text[t + 11] and not after_text[t + 10]
    assert not after_text[tok.no_timestamps] and not after_text[tok.sot]
    opened = torch.isfinite(_apply(tok, rules, [t + 10, hello, t + 50]))
    # a lone timestamp closes a segment: the next is a timestamp (>= itself) or eot
    assert not opened[: tok.eot].any() and opened[tok.eot] and opened[t + 50] and not opened[t + 49]
    closed = torch.isfinite(_apply(tok, rules, [t + 10, hello, t + 50, t + 50]))
    assert not closed[t:].any() and closed[hello]


def test_probable_timestamp_is_forced(tok):
    rules = _rules(tok)
    logits = torch.zeros(1, tok.vocab_size)
    logits[0, tok.timestamp_begin :] = 5.0  # total timestamp mass beats any text token
    out = _apply(tok, rules, [tok.timestamp_begin, tok.encode(" a")[0]], logits)
    assert not torch.isfinite(out[: tok.timestamp_begin]).any()


def test_without_timestamps_and_suppression(tok):
    rules = _rules(tok, without_timestamps=True, suppress_tokens="-1")
    first = _apply(tok, rules, [])
    assert first[tok.eot] == NEG and first[tok.encode(" ")[0]] == NEG  # suppress_blank
    later = _apply(tok, rules, [tok.encode(" Hi")[0]])
    assert later[tok.eot] == 10 and later[tok.timestamp_begin] == 0
    assert all(later[i] == NEG for i in tok.non_speech_tokens)


def test_options_are_validated():
    with pytest.raises(ValueError, match="task"):
        DecodingOptions(task="summarize")
    with pytest.raises(ValueError, match="best_of"):
        DecodingOptions(best_of=5)
    with pytest.raises(ValueError, match="temperature"):
        DecodingOptions(temperature=-1)


def _result(avg_logprob=-0.2, no_speech_prob=0.1, text="hello there"):
    return DecodingResult((), text, "en", avg_logprob, no_speech_prob, 0.0, compression_ratio(text))


def test_fallback_decisions():
    fb = FallbackOptions()
    assert not fb.needs_fallback(_result())
    assert fb.needs_fallback(_result(avg_logprob=-1.5))
    assert not fb.needs_fallback(_result(avg_logprob=-1.5, no_speech_prob=0.9))  # silence
    loop = "the same words again " * 20
    assert compression_ratio(loop) > 2.4 and fb.needs_fallback(_result(text=loop))


def test_rules_of_a_batch_are_those_of_each_row(tok):
    """Rows in different states (a segment just closed, one open, text, a timestamp forced by
    its mass) get each its own mask in one batched call."""
    t, hello = tok.timestamp_begin, tok.encode(" Hello")[0]
    histories = [
        [t + 10, hello, t + 50, t + 50],  # pair closed: text or eot next
        [t + 10, hello, t + 50],  # pair open: a timestamp (>= itself) or eot next
        [t + 10, hello],  # after text: anything but an earlier timestamp
        [t + 10, hello],  # the same, with the timestamps' mass beating every text token
        [t + 20, hello, t + 60],  # open too (two rows filled in one call)
        [t + 5, hello, hello],  # forced too
    ]
    width = max(map(len, histories))
    logits = torch.zeros(len(histories), tok.vocab_size)
    logits[:, :t] = 10.0
    logits[[3, 5], :t] = 0.0
    logits[[3, 5], t:] = 5.0
    expected = []
    for history, row in zip(histories, logits):
        expected.append(_apply(tok, _rules(tok), history, row[None].clone()))
    # left-pad the shorter histories with text, so that every row's last tokens are its own
    tokens = torch.tensor([[tok.sot, *[hello] * (width - len(h)), *h, tok.eot] for h in histories])
    last_ts = torch.tensor([max((x for x in h if x >= t), default=-1) for h in histories])
    _rules(tok).apply(logits, tokens, 1 + width, last_ts)
    for row, want in zip(logits, expected):
        assert torch.equal(row, want)
