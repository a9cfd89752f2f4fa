"""Token selection, independent of any model: greedy / sampling, and ranking of candidates.

A decoding loop calls `GreedySearch.step(logits, finished, sum_logprobs)` once per position;
the search returns the next tokens and keeps running log-probabilities.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["GreedySearch", "length_normalized_scores"]


class GreedySearch:
    """Argmax at temperature 0, otherwise a sample from softmax(logits / temperature).

    Args:
        eot: end-of-text id; a finished row keeps emitting it.
        temperature: 0 for greedy.
        generator: random generator for sampling (reproducible runs).
    """

    def __init__(
        self, eot: int, temperature: float = 0.0, generator: torch.Generator | None = None
    ) -> None:
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        self.eot = eot
        self.temperature = temperature
        self.generator = generator

    def step(
        self, logits: torch.Tensor, finished: torch.Tensor, sum_logprobs: torch.Tensor
    ) -> torch.Tensor:
        """Choose one token per row.

        Args:
            logits: (N, V) float32, already filtered (-inf where forbidden).
            finished: (N,) bool, rows that already emitted `eot`; updated in place.
            sum_logprobs: (N,) float32 running sum of the chosen tokens' log-probabilities
                (at temperature 1, as openai-whisper scores), updated in place for unfinished
                rows.

        Returns:
            (N,) int64 next tokens (`eot` for finished rows).
        """
        if self.temperature == 0:
            tokens = logits.argmax(dim=-1)
        else:
            probs = F.softmax(logits / self.temperature, dim=-1)
            tokens = torch.multinomial(probs, 1, generator=self.generator).squeeze(1)
        logprobs = F.log_softmax(logits, dim=-1)
        chosen = logprobs.gather(1, tokens[:, None]).squeeze(1)
        sum_logprobs.add_(chosen.masked_fill(finished, 0.0))
        tokens.masked_fill_(finished, self.eot)
        finished |= tokens == self.eot
        return tokens


def length_normalized_scores(
    sum_logprobs: torch.Tensor, lengths: torch.Tensor, length_penalty: float | None = None
) -> torch.Tensor:
    """Scores for ranking candidates (openai-whisper `MaximumLikelihoodRanker`).

    Args:
        sum_logprobs: (N,) total log-probability of each candidate.
        lengths: (N,) number of tokens of each candidate.
        length_penalty: None divides by the length; alpha uses Google NMT's
            ((5 + length) / 6) ** alpha.

    Returns:
        (N,) scores, higher is better.
    """
    lengths = lengths.to(sum_logprobs.dtype)
    if length_penalty is None:
        return sum_logprobs / lengths
    return sum_logprobs / ((5 + lengths) / 6) ** length_penalty
