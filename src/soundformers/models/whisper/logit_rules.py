"""Whisper's logit rules: suppress-blank, suppressed tokens and the timestamp rules
(openai-whisper `SuppressBlank`, `SuppressTokens`, `ApplyTimestampRules`).

Each rule reads only O(batch) state, so a decoding step costs the same at any length.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from ...text.whisper_tokenizer import TIME_PRECISION, WhisperTokenizer

if TYPE_CHECKING:
    from .generate import DecodingOptions, WhisperGenerationConfig

__all__ = ["LogitRules", "suppress_ids"]


def suppress_ids(
    tokenizer: WhisperTokenizer, options: DecodingOptions, config: WhisperGenerationConfig
) -> list[int]:
    """Ids never sampled: `options.suppress_tokens` ("-1" expands to the checkpoint's list, or
    the tokenizer's non-speech symbols) plus the task and start tokens."""
    spec = options.suppress_tokens
    if spec is None or (not isinstance(spec, str) and len(spec) == 0):
        ids: set[int] = set()
    elif isinstance(spec, str):
        ids = {int(t) for t in spec.split(",") if t.strip()}
    else:
        ids = {int(t) for t in spec}
    if -1 in ids:
        ids.discard(-1)
        if config.suppress_tokens is not None:
            ids.update(config.suppress_tokens)
        else:
            ids.update(tokenizer.non_speech_tokens)
    # never sample these, whatever the list says (openai-whisper does the same)
    ids.update(
        [tokenizer.transcribe, tokenizer.translate, tokenizer.sot, tokenizer.sot_prev,
         tokenizer.sot_lm, tokenizer.no_speech]
    )  # fmt: skip
    return sorted(ids)


class LogitRules:
    """Suppress-blank, suppressed tokens and the timestamp rules, applied in place.

    Timestamp rules (openai-whisper `ApplyTimestampRules`):
      - `<|notimestamps|>` is never sampled;
      - timestamps come in pairs: after a lone timestamp, another timestamp or `<|endoftext|>`;
        after a pair, text;
      - timestamps never decrease, and a segment has non-zero length;
      - the first token is a timestamp, at most `max_initial_timestamp` seconds;
      - when the timestamps' total probability beats every text token, a timestamp is forced.
    """

    def __init__(
        self,
        tokenizer: WhisperTokenizer,
        options: DecodingOptions,
        config: WhisperGenerationConfig,
        sample_begin: int,
        n_vocab: int,
        device: torch.device,
    ) -> None:
        self.sample_begin = sample_begin
        self.eot = tokenizer.eot
        self.ts_begin = tokenizer.timestamp_begin
        self.timestamps = not options.without_timestamps
        self.no_timestamps = tokenizer.no_timestamps

        def mask(ids: Sequence[int]) -> torch.Tensor:
            m = torch.zeros(n_vocab, dtype=torch.bool, device=device)
            m[[i for i in ids if i < n_vocab]] = True
            return m

        always = suppress_ids(tokenizer, options, config)
        if self.timestamps:
            always.append(self.no_timestamps)
        # ids, not a mask: index_fill_ writes ~100 logits where a vocabulary-wide masked_fill_
        # reads 51 864 flags (3 against 15 us a step)
        self.always = torch.tensor(
            sorted({i for i in always if i < n_vocab}), dtype=torch.long, device=device
        )
        begin = list(always)
        if options.suppress_blank:
            if config.begin_suppress_tokens is not None:
                begin += list(config.begin_suppress_tokens)
            else:
                begin += [*tokenizer.encode(" "), tokenizer.eot]
        if self.timestamps:
            begin += range(self.ts_begin)  # the first token must be a timestamp
            if options.max_initial_timestamp is not None:
                last = self.ts_begin + round(options.max_initial_timestamp / TIME_PRECISION)
                begin += range(last + 1, n_vocab)
        self.first = mask(begin)
        # relative index of each timestamp token: 0 for <|0.00|>
        self.ts_offsets = torch.arange(n_vocab - self.ts_begin, device=device)

    def apply(
        self, logits: torch.Tensor, tokens: torch.Tensor, step: int, last_ts: torch.Tensor
    ) -> None:
        """Mask `logits` (N, V) for sampling position `step` (absolute) in place.

        Args:
            logits: (N, V) float32.
            tokens: (N, max_len) token buffer; positions before `step` are filled.
            step: index of the position being sampled.
            last_ts: (N,) the last sampled timestamp id per row, -1 if none yet.
        """
        if step == self.sample_begin:
            logits.masked_fill_(self.first, float("-inf"))
        else:
            logits.index_fill_(1, self.always, float("-inf"))
            if self.timestamps:
                self._timestamp_rules(logits, tokens, step, last_ts)
        if self.timestamps:
            # force a timestamp when their total probability beats every text token: compared
            # on logits, as the softmax normaliser cancels out of both sides
            ts_mass = logits[:, self.ts_begin :].logsumexp(dim=-1)
            text_max = logits[:, : self.ts_begin].amax(dim=-1)  # 6 us; max(): 29 us
            _fill_rows(logits[:, : self.ts_begin], ts_mass > text_max)

    def _timestamp_rules(
        self, logits: torch.Tensor, tokens: torch.Tensor, step: int, last_ts: torch.Tensor
    ) -> None:
        if len(logits) == 1:
            self._timestamp_rules_one_row(logits[0], tokens[0], step, int(last_ts[0]))
            return
        n_sampled = step - self.sample_begin
        last_was_ts = tokens[:, step - 1] >= self.ts_begin
        if n_sampled >= 2:
            penultimate_was_ts = tokens[:, step - 2] >= self.ts_begin
        else:
            penultimate_was_ts = torch.ones_like(last_was_ts)
        pair_closed = last_was_ts & penultimate_was_ts  # -> text (or eot) next
        pair_open = last_was_ts & ~penultimate_was_ts  # -> timestamp or eot next
        timestamps = logits[:, self.ts_begin :]  # (N, n_timestamps) view
        timestamps.masked_fill_(pair_closed[:, None], float("-inf"))
        _fill_rows(logits[:, : self.eot], pair_open)
        # no decreasing timestamps; a segment may end where it began only right after opening
        # (rows without a timestamp yet have last_ts = -1: a negative floor forbids nothing)
        floor = torch.where(pair_open, last_ts, last_ts + 1) - self.ts_begin
        timestamps.masked_fill_(self.ts_offsets < floor[:, None], float("-inf"))

    def _timestamp_rules_one_row(
        self, logits: torch.Tensor, tokens: torch.Tensor, step: int, last_ts: int
    ) -> None:
        """`_timestamp_rules` of one row (V,), decided in Python: three slice fills at most
        where the batched form runs ~14 small tensor ops (~60 us a step in a decoding)."""
        recent = tokens[max(step - 2, self.sample_begin) : step].tolist()
        last_was_ts = recent[-1] >= self.ts_begin
        penultimate_was_ts = len(recent) < 2 or recent[0] >= self.ts_begin
        if last_was_ts and penultimate_was_ts:  # a closed pair: text (or eot) next
            logits[self.ts_begin :] = float("-inf")
        elif last_was_ts:  # an open pair: a timestamp or eot next
            logits[: self.eot] = float("-inf")
        # no decreasing timestamps; a segment may end where it began only right after opening
        floor = (last_ts if last_was_ts and not penultimate_was_ts else last_ts + 1) - self.ts_begin
        if floor > 0 and last_ts >= 0:
            logits[self.ts_begin : self.ts_begin + floor] = float("-inf")


def _fill_rows(logits: torch.Tensor, rows: torch.Tensor) -> None:
    """`logits` (N, K) = -inf in the rows where `rows` (N,) bool is True, in place. Most steps
    select no row: the check skips a pass over ~50 000 logits per row (15 us a step). The
    rows are filled by index: a (N, 1) mask broadcast over a (N, 50 257) view took 101 us at
    N = 8 (17 at N = 1), `index_fill_` 20 (14)."""
    if bool(rows.any()):
        logits.index_fill_(0, rows.nonzero().squeeze(1), float("-inf"))
