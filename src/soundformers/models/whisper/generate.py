"""Decoding for Whisper: prompts, logit rules, batched greedy/sampling, temperature fallback.

Follows openai-whisper's `decoding.py` semantics (suppress-blank, suppress tokens, the
timestamp rules, beam search with patience, the maximum-likelihood ranker with length penalty,
no-speech probability, average log-probability), written so that each step
costs the same whatever the sequence length: the rules read a few per-row state tensors, the
model reads a static KV cache.

Entry point: `WhisperForConditionalGeneration.generate(mel, options) -> list[DecodingResult]`.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from ...generation.cache import StepBuffers
from ...generation.search import BeamSearch, GreedySearch, length_normalized_scores
from ...text.whisper_tokenizer import WhisperTokenizer
from .logit_rules import LogitRules
from .model import Whisper

__all__ = [
    "DecodingOptions",
    "DecodingResult",
    "FallbackOptions",
    "WhisperForConditionalGeneration",
    "WhisperGenerationConfig",
    "compression_ratio",
    "decode",
    "detect_language",
]


@dataclass(frozen=True)
class DecodingOptions:
    """How to decode one 30 s window (openai-whisper `DecodingOptions`).

    Attributes:
        task: "transcribe" or "translate" (multilingual models).
        language: language code; None detects it (multilingual) or means English.
        temperature: 0 for greedy; > 0 samples.
        sample_len: most tokens to generate; default half the decoder context (224).
        best_of: with temperature > 0, candidates sampled per window (the best is kept).
        beam_size: beams per window (beam search, temperature 0); None decodes greedily.
        patience: with beam search, stop once round(beam_size * patience) candidates have
            finished (None: 1.0, as openai-whisper).
        length_penalty: None ranks by log-probability / length; alpha uses ((5 + n) / 6)^alpha.
        prompt: previous text (str or ids) given after `<|startofprev|>`.
        prefix: text (str or ids) forced at the start of the output.
        suppress_tokens: "-1" for the model's default list (symbols and special tokens), a
            comma-separated string or ids, or None / () for nothing.
        suppress_blank: forbid a blank or `<|endoftext|>` as the first sampled token.
        without_timestamps: add `<|notimestamps|>` and predict text only.
        max_initial_timestamp: the first timestamp is at most this many seconds.
    """

    task: str = "transcribe"
    language: str | None = None
    temperature: float = 0.0
    sample_len: int | None = None
    best_of: int | None = None
    beam_size: int | None = None
    patience: float | None = None
    length_penalty: float | None = None
    prompt: str | Sequence[int] | None = None
    prefix: str | Sequence[int] | None = None
    suppress_tokens: str | Sequence[int] | None = "-1"
    suppress_blank: bool = True
    without_timestamps: bool = False
    max_initial_timestamp: float | None = 1.0

    def __post_init__(self) -> None:
        if self.task not in ("transcribe", "translate"):
            raise ValueError(f"task must be 'transcribe' or 'translate', got {self.task!r}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.best_of is not None and (self.best_of < 1 or self.temperature == 0):
            raise ValueError("best_of needs temperature > 0 and best_of >= 1 (greedy is one pass)")
        if self.beam_size is not None:
            if self.beam_size < 1:
                raise ValueError(f"beam_size must be >= 1, got {self.beam_size}")
            if self.best_of is not None:
                raise ValueError("beam_size and best_of can't be given together")
            if self.temperature > 0:
                raise ValueError(
                    "beam search is deterministic: give beam_size with temperature 0, or "
                    "best_of to sample at temperature > 0"
                )
        if self.patience is not None and (self.beam_size is None or self.patience <= 0):
            raise ValueError("patience needs beam_size and must be > 0")
        if self.sample_len is not None and self.sample_len < 1:
            raise ValueError(f"sample_len must be >= 1, got {self.sample_len}")
        if self.max_initial_timestamp is not None and self.max_initial_timestamp < 0:
            raise ValueError("max_initial_timestamp must be >= 0 seconds or None")


@dataclass(frozen=True)
class DecodingResult:
    """The decoding of one window.

    Attributes:
        tokens: sampled ids, without prompt, start sequence or `<|endoftext|>`; timestamps kept.
        text: the text (special and timestamp tokens dropped).
        language: language code used (detected or given).
        language_probs: probability of each language when it was detected, else None.
        avg_logprob: sum of the tokens' log-probabilities / (len(tokens) + 1).
        no_speech_prob: probability of `<|nospeech|>` right after `<|startoftranscript|>`.
        temperature: the temperature that produced this result.
        compression_ratio: gzip ratio of the text (repetition loops score high).
    """

    tokens: tuple[int, ...]
    text: str
    language: str | None
    avg_logprob: float
    no_speech_prob: float
    temperature: float
    compression_ratio: float
    language_probs: dict[str, float] | None = None


@dataclass(frozen=True)
class WhisperGenerationConfig:
    """A checkpoint's decoding defaults (not architecture).

    Attributes:
        suppress_tokens: the default "-1" list; None derives it from the tokenizer.
        begin_suppress_tokens: suppressed at the first sampled position; None derives
            [" ", `<|endoftext|>`].
        alignment_heads: (layer, head) pairs for word timing, from the checkpoint's config.
    """

    suppress_tokens: tuple[int, ...] | None = None
    begin_suppress_tokens: tuple[int, ...] | None = None
    alignment_heads: tuple[tuple[int, int], ...] = ()

    @classmethod
    def from_json(cls, *configs: dict[str, Any]) -> WhisperGenerationConfig:
        """From the keys of a CTranslate2 `config.json` or a transformers
        `generation_config.json` (first config that has a key wins)."""

        def first(*keys: str) -> Any:
            for cfg in configs:
                for key in keys:
                    if cfg.get(key) is not None:
                        return cfg[key]
            return None

        suppress = first("suppress_ids", "suppress_tokens")
        begin = first("suppress_ids_begin", "begin_suppress_tokens")
        heads = first("alignment_heads") or ()
        return cls(
            suppress_tokens=tuple(suppress) if suppress is not None else None,
            begin_suppress_tokens=tuple(begin) if begin is not None else None,
            alignment_heads=tuple((int(a), int(b)) for a, b in heads),
        )


def compression_ratio(text: str) -> float:
    """len(utf-8 bytes) / len(zlib-compressed bytes): high when the text repeats itself."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


# --------------------------------------------------------------------------------------------
# Prompt


def _as_ids(tokenizer: WhisperTokenizer, text: str | Sequence[int] | None) -> list[int]:
    if text is None:
        return []
    if isinstance(text, str):
        return tokenizer.encode(" " + text.strip())
    return [int(t) for t in text]


def _initial_tokens(
    tokenizer: WhisperTokenizer,
    options: DecodingOptions,
    language: str | None,
    n_text_ctx: int,
    prompt: str | Sequence[int] | None,
) -> list[int]:
    """`[<|startofprev|> prompt] <|sot|> [<|lang|> <|task|>] [<|notimestamps|>] [prefix]`."""
    tokens = list(tokenizer.sot_sequence(language, options.task, not options.without_timestamps))
    prefix = _as_ids(tokenizer, options.prefix)
    if prefix:
        max_prefix = n_text_ctx // 2
        tokens += prefix[-max_prefix:]
    prompt_ids = _as_ids(tokenizer, prompt)
    if prompt_ids:
        tokens = [tokenizer.sot_prev, *prompt_ids[-(n_text_ctx // 2 - 1) :], *tokens]
    return tokens


# --------------------------------------------------------------------------------------------
# Decoding


@torch.inference_mode()
def detect_language(
    model: Whisper, tokenizer: WhisperTokenizer, encoder_out: torch.Tensor
) -> tuple[list[str], list[dict[str, float]]]:
    """Most likely language of each window, and every language's probability.

    Args:
        encoder_out: (B, 1500, D).

    Returns:
        (codes, probabilities), one entry per window.
    """
    if not tokenizer.multilingual:
        raise ValueError("an English-only model has no language tokens to detect")
    b = encoder_out.shape[0]
    cache = model.new_cache(b, max_len=1)
    sot = torch.full((b, 1), tokenizer.sot, dtype=torch.long, device=encoder_out.device)
    pos = torch.zeros(1, dtype=torch.long, device=encoder_out.device)
    logits = model.decode_step(
        sot, model.cross_kv(encoder_out), cache, pos, exact_from=tokenizer.eot
    )[:, 0]
    lang_ids = torch.tensor(tokenizer.language_ids, device=logits.device)
    probs = logits[:, lang_ids].softmax(dim=-1)  # (B, n_languages)
    codes = tokenizer.language_codes
    best = [codes[i] for i in probs.argmax(dim=-1).tolist()]
    all_probs = [dict(zip(codes, row)) for row in probs.tolist()]
    return best, all_probs


@torch.inference_mode()
def decode(
    model: Whisper,
    tokenizer: WhisperTokenizer,
    mel: torch.Tensor | None = None,
    options: DecodingOptions | None = None,
    *,
    config: WhisperGenerationConfig | None = None,
    encoder_out: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    prompts: Sequence[str | Sequence[int] | None] | None = None,
) -> list[DecodingResult]:
    """Decode a batch of 30 s windows (greedy, beam search, or sampling with best-of), one
    result per window.

    Windows may have prompts of different lengths (`prompts`): their start sequences are
    left-padded to the longest, the padding masked out of self-attention and positions
    counted from each row's own first token, so each window decodes as it would alone.

    Args:
        model: the Whisper model.
        tokenizer: its tokenizer.
        mel: (B, n_mels, 3000) log-mel features; or give `encoder_out` instead.
        options: decoding options (default greedy with timestamps).
        config: the checkpoint's decoding defaults.
        encoder_out: (B, 1500, D) precomputed encoder output.
        generator: random generator for temperature > 0.
        prompts: B per-window previous texts (str, ids or None), replacing `options.prompt`.

    Returns:
        B results, in input order.
    """
    options = DecodingOptions() if options is None else options
    config = WhisperGenerationConfig() if config is None else config
    if encoder_out is None:
        if mel is None:
            raise ValueError("decode needs mel features or encoder_out")
        encoder_out = model.encode(mel)
    n_audio = encoder_out.shape[0]
    device = encoder_out.device

    language_probs: list[dict[str, float] | None] = [None] * n_audio
    if tokenizer.multilingual:
        if options.language is None:
            languages, probs = detect_language(model, tokenizer, encoder_out)
            language_probs = list(probs)
        else:
            languages = [options.language] * n_audio
    else:
        languages = ["en"] * n_audio

    if prompts is None:
        prompts = [options.prompt] * n_audio
    elif len(prompts) != n_audio:
        raise ValueError(f"got {len(prompts)} prompts for {n_audio} windows; give one per window")
    initial = [
        _initial_tokens(tokenizer, options, lang, model.config.n_text_ctx, prompt)
        for lang, prompt in zip(languages, prompts)
    ]
    sample_begin = max(len(i) for i in initial)
    pads = [sample_begin - len(i) for i in initial]  # left padding of each window's rows
    n_group = options.best_of or options.beam_size or 1  # rows per window
    sample_len = options.sample_len or model.config.n_text_ctx // 2
    max_len = min(sample_begin + sample_len, model.config.n_text_ctx)
    if sample_begin >= max_len:
        raise ValueError(
            f"the prompt and prefix take {sample_begin} tokens, leaving none to sample within "
            f"the decoder's {model.config.n_text_ctx} positions"
        )

    n = n_audio * n_group  # rows: each window repeated best_of / beam_size times
    tokens = torch.full((n_audio, max_len), tokenizer.eot, dtype=torch.long, device=device)
    for row, (pad, ids) in enumerate(zip(pads, initial)):
        tokens[row, pad:sample_begin] = torch.tensor(ids, device=device)
    # per window: first slot (None when no row is padded: the unmasked fast path), <|sot|> slot
    start = torch.tensor(pads, device=device) if any(pads) else None
    sot_slots = torch.tensor(
        [pad + ids.index(tokenizer.sot) for pad, ids in zip(pads, initial)], device=device
    )
    # one copy of each window's cross-attention keys and values for all its rows
    cross_kv = model.cross_kv(encoder_out)
    cache = model.new_cache(n, max_len)
    positions = torch.arange(max_len, device=device)
    rules = LogitRules(tokenizer, options, config, sample_begin, model.config.n_vocab, device)
    beam = (
        BeamSearch(n_audio, n_group, tokenizer.eot, options.patience)
        if options.beam_size is not None
        else None
    )
    greedy = GreedySearch(tokenizer.eot, options.temperature, generator)
    buffers = StepBuffers()  # each step's logits below float32, in the same memory

    # the prompt's logits at <|sot|> (no-speech probability) and at its last token; the rows
    # of a window share the prompt: it runs once per window, then its cache slots are copied
    logits_at = torch.stack([sot_slots, torch.full_like(sot_slots, sample_begin - 1)], dim=1)
    prompt_cache = cache if n_group == 1 else model.new_cache(n_audio, max_len)
    logits = model.decode_step(
        tokens[:, :sample_begin], cross_kv, prompt_cache, positions[:sample_begin], start,
        logits_at, exact_from=tokenizer.eot, buffers=buffers,
    )  # fmt: skip
    no_speech_probs = logits[:, 0].softmax(dim=-1)[:, tokenizer.no_speech]
    logits = logits[:, 1]
    if n_group > 1:
        cache.repeat_rows_from(prompt_cache, n_group, sample_begin)
        del prompt_cache
        tokens = tokens.repeat_interleave(n_group, 0)
        logits = logits.repeat_interleave(n_group, 0)
        start = None if start is None else start.repeat_interleave(n_group)
    finished = torch.zeros(n, dtype=torch.bool, device=device)
    sum_logprobs = torch.zeros(n, dtype=torch.float32, device=device)
    last_ts = torch.full((n,), -1, dtype=torch.long, device=device)
    identity = torch.arange(n, device=device)
    # below float32, steps recompute specials and timestamps in float32 when the timestamp
    # rules weigh them; without timestamps only <|endoftext|> competes, as any text token
    exact_from = None if options.without_timestamps else tokenizer.eot
    end = max_len
    for step in range(sample_begin, max_len):
        rules.apply(logits, tokens, step, last_ts)
        if beam is not None:
            chosen = beam.step(
                logits, tokens[:, sample_begin:step], sum_logprobs, first=step == sample_begin
            )
            next_tokens, sum_logprobs, done = chosen.tokens, chosen.sum_logprobs, chosen.done
            if not torch.equal(chosen.source, identity):  # beams moved: follow their parents
                tokens = tokens.index_select(0, chosen.source)
                last_ts = last_ts.index_select(0, chosen.source)
                cache.reorder(chosen.source, length=step, begin=sample_begin)
        else:
            next_tokens = greedy.step(logits, finished, sum_logprobs)
            done = bool(finished.all())
        tokens[:, step] = next_tokens
        last_ts = torch.where(next_tokens >= tokenizer.timestamp_begin, next_tokens, last_ts)
        if done or step + 1 == max_len:
            end = step + 1
            break
        logits = model.decode_step(
            next_tokens[:, None], cross_kv, cache, positions[step : step + 1], start,
            exact_from=exact_from, buffers=buffers,
        )  # fmt: skip
        logits = logits[:, -1]

    sampled = tokens[:, sample_begin:end]
    if beam is not None:
        candidates = beam.finalize(sampled, sum_logprobs)
    else:
        candidates = _row_candidates(tokenizer, sampled, sum_logprobs, n_audio, n_group)
    no_speech = no_speech_probs.tolist()  # one per window
    return _results(tokenizer, candidates, no_speech, languages, language_probs, options)


def _row_candidates(
    tokenizer: WhisperTokenizer,
    sampled: torch.Tensor,
    sum_logprobs: torch.Tensor,
    n_audio: int,
    n_group: int,
) -> list[list[tuple[tuple[int, ...], float]]]:
    """Each row cut at its first `<|endoftext|>`, grouped by window: (sequence, score) pairs."""
    rows = sampled.tolist()
    seqs = [tuple(row[: row.index(tokenizer.eot)] if tokenizer.eot in row else row) for row in rows]
    sums = sum_logprobs.tolist()
    return [
        [(seqs[r], sums[r]) for r in range(a * n_group, (a + 1) * n_group)] for a in range(n_audio)
    ]


def _results(
    tokenizer: WhisperTokenizer,
    candidates: list[list[tuple[tuple[int, ...], float]]],
    no_speech: list[float],
    languages: list[str],
    language_probs: list[dict[str, float] | None],
    options: DecodingOptions,
) -> list[DecodingResult]:
    """Keep the best candidate of each window (maximum likelihood with length penalty)."""
    results = []
    for a, group in enumerate(candidates):
        lengths = torch.tensor([len(seq) for seq, _ in group], dtype=torch.float32)
        sums = torch.tensor([score for _, score in group], dtype=torch.float32)
        scores = length_normalized_scores(sums, lengths, options.length_penalty)
        seq, sum_logprob = group[int(scores.argmax())]
        text = tokenizer.decode(list(seq))
        results.append(
            DecodingResult(
                tokens=tuple(seq),
                text=text,
                language=languages[a],
                avg_logprob=sum_logprob / (len(seq) + 1),
                no_speech_prob=no_speech[a],
                temperature=options.temperature,
                compression_ratio=compression_ratio(text),
                language_probs=language_probs[a],
            )
        )
    return results


# --------------------------------------------------------------------------------------------
# Temperature fallback


@dataclass(frozen=True)
class FallbackOptions:
    """When a window's decoding is retried at a higher temperature (openai-whisper defaults).

    Attributes:
        temperatures: tried in order; the first result that passes is kept.
        compression_ratio_threshold: retry when the text's compression ratio is above this.
        logprob_threshold: retry when the average log-probability is below this.
        no_speech_threshold: but accept (as silence) when the no-speech probability is above
            this and the average log-probability is below `logprob_threshold`.
        best_of: candidates sampled per window at temperature > 0.
    """

    temperatures: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    compression_ratio_threshold: float | None = 2.4
    logprob_threshold: float | None = -1.0
    no_speech_threshold: float | None = 0.6
    best_of: int = 5

    def needs_fallback(self, result: DecodingResult) -> bool:
        if (
            self.no_speech_threshold is not None
            and self.logprob_threshold is not None
            and result.no_speech_prob > self.no_speech_threshold
            and result.avg_logprob < self.logprob_threshold
        ):
            return False  # silence: nothing better to find
        if (
            self.compression_ratio_threshold is not None
            and result.compression_ratio > self.compression_ratio_threshold
        ):
            return True
        return self.logprob_threshold is not None and result.avg_logprob < self.logprob_threshold


def decode_with_fallback(
    model: Whisper,
    tokenizer: WhisperTokenizer,
    mel: torch.Tensor | None,
    options: DecodingOptions,
    fallback: FallbackOptions,
    *,
    config: WhisperGenerationConfig | None = None,
    generator: torch.Generator | None = None,
    encoder_out: torch.Tensor | None = None,
    prompts: Sequence[str | Sequence[int] | None] | None = None,
) -> list[DecodingResult]:
    """Decode a batch; re-decode only the windows that fail, at the next temperature.

    The encoder runs once (or not at all, given `encoder_out` (B, 1500, D)); each retry
    decodes just the failing windows, batched. `prompts`: per-window previous text, as in
    `decode`.
    """
    if encoder_out is None:
        if mel is None:
            raise ValueError("decode_with_fallback needs mel features or encoder_out")
        with torch.inference_mode():
            encoder_out = model.encode(mel)
    results: list[DecodingResult | None] = [None] * encoder_out.shape[0]
    pending = list(range(encoder_out.shape[0]))
    for i, t in enumerate(fallback.temperatures):
        if t > 0:  # sampling: best_of candidates; beam search only at temperature 0
            opts = replace(options, temperature=t, best_of=fallback.best_of, beam_size=None,
                           patience=None)  # fmt: skip
        else:
            opts = replace(options, temperature=t, best_of=None)
        batch = decode(
            model, tokenizer, None, opts, config=config, encoder_out=encoder_out[pending],
            generator=generator,
            prompts=None if prompts is None else [prompts[i] for i in pending],
        )  # fmt: skip
        last = i == len(fallback.temperatures) - 1
        still = []
        for idx, res in zip(pending, batch):
            results[idx] = res
            if not last and fallback.needs_fallback(res):
                still.append(idx)
        pending = still
        if not pending:
            break
    return [r for r in results if r is not None]


# --------------------------------------------------------------------------------------------
# The model-level entry point used by pipelines


@dataclass
class WhisperForConditionalGeneration:
    """A Whisper model with its tokenizer and decoding defaults: features in, text out.

    Attributes:
        model: the `Whisper` module.
        tokenizer: its tokenizer.
        generation_config: the checkpoint's decoding defaults.
    """

    model: Whisper
    tokenizer: WhisperTokenizer
    generation_config: WhisperGenerationConfig = field(default_factory=WhisperGenerationConfig)

    @property
    def sampling_rate(self) -> int:
        return 16000

    @property
    def n_mels(self) -> int:
        return self.model.config.n_mels

    def encode(self, mel: torch.Tensor) -> torch.Tensor:
        """Encoder output of 30 s windows: mel (B, n_mels, 3000) -> (B, 1500, D)."""
        with torch.inference_mode():
            return self.model.encode(mel.to(self.model.device))

    def generate(
        self,
        mel: torch.Tensor | None = None,
        options: DecodingOptions | None = None,
        *,
        fallback: FallbackOptions | None = None,
        generator: torch.Generator | None = None,
        encoder_out: torch.Tensor | None = None,
        prompts: Sequence[str | Sequence[int] | None] | None = None,
    ) -> list[DecodingResult]:
        """Transcribe a batch of 30 s windows.

        Args:
            mel: (B, n_mels, 3000) log-mel features; or give `encoder_out`.
            options: decoding options; default greedy with timestamps.
            fallback: retry failing windows at higher temperatures (None: one pass).
            generator: random generator for sampling.
            encoder_out: (B, 1500, D) from `encode(mel)`, when the caller needs it again
                (word timestamps).
            prompts: B per-window previous texts (str, ids or None), of any lengths, in place
                of `options.prompt`.

        Returns:
            One `DecodingResult` per window, in order.
        """
        options = DecodingOptions() if options is None else options
        if encoder_out is None:
            if mel is None:
                raise ValueError("generate needs mel features or encoder_out")
            encoder_out = self.encode(mel)
        if fallback is not None:
            return decode_with_fallback(
                self.model, self.tokenizer, None, options, fallback,
                config=self.generation_config, generator=generator, encoder_out=encoder_out,
                prompts=prompts,
            )  # fmt: skip
        return decode(
            self.model, self.tokenizer, None, options, config=self.generation_config,
            generator=generator, encoder_out=encoder_out, prompts=prompts,
        )  # fmt: skip
