"""Token selection, independent of any model: greedy / sampling, beam search, and ranking.

A decoding loop calls `GreedySearch.step(logits, finished, sum_logprobs)` or
`BeamSearch.step(logits, sampled, sum_logprobs)` once per position; the search returns the next
tokens and keeps running log-probabilities. Both follow openai-whisper's `decoding.py`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .cache import StepBuffers

__all__ = [
    "BeamSearch",
    "BeamStep",
    "GreedySearch",
    "block_topk",
    "first_argmax",
    "length_normalized_scores",
]


ARGMAX_BLOCK = 64  # `first_argmax`: the columns of a block


def first_argmax(x: torch.Tensor) -> torch.Tensor:
    """`x.argmax(dim=-1)` of a (N, V) tensor: each row's first maximum (a NaN counting as the
    maximum, as in torch), (N,) int64.

    torch's argmax is not vectorised on CPU (124 us for 8 rows of Whisper's 51 864 logits);
    the maxima of blocks of `ARGMAX_BLOCK` columns are (`amax`): the first block holding the
    row's maximum, then the first maximum inside it, give the same index in 51 us (25 against
    31 at one row). Short rows, other devices and rows that are not contiguous take argmax.
    """
    n, v = x.shape
    width = ARGMAX_BLOCK
    if v < 4 * width or x.stride(-1) != 1 or x.device.type != "cpu":
        return x.argmax(dim=-1)
    start = _block_maxima(x, width).argmax(dim=-1) * width
    # the block's columns; past the row's end, its last column again (never before the first)
    cols = (start[:, None] + torch.arange(width, device=x.device)).clamp_(max=v - 1)
    return start + x.gather(1, cols).argmax(dim=-1)


def block_topk(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`x.topk(k, dim=-1)` of a (N, V) tensor for a few k among many columns: (values,
    indices), each (N, k), largest first.

    torch's topk of 6 among Whisper's 51 864 log-probabilities takes ~43 us a row (a partial
    sort). The k largest values lie in the k blocks of `ARGMAX_BLOCK` columns with the
    largest maxima (a value outside them would have k larger block maxima, hence k larger
    values, above it), so the topk of those k blocks' columns is the row's. Equal values may
    come out in another order than torch's, which leaves it unspecified too. Short rows,
    other devices and rows that are not contiguous take topk.
    """
    n, v = x.shape
    width = ARGMAX_BLOCK
    if v < 4 * k * width or x.stride(-1) != 1 or x.device.type != "cpu":
        return x.topk(k, dim=-1)
    blocks = _block_maxima(x, width).topk(k, dim=-1).indices  # (N, k)
    cols = (blocks[:, :, None] * width + torch.arange(width, device=x.device)).view(n, -1)
    outside = cols >= v  # columns of the last, narrower block past the row's end
    values = x.gather(1, cols.clamp(max=v - 1)).masked_fill_(outside, float("-inf"))
    top, where = values.topk(k, dim=-1)
    return top, cols.gather(1, where)


def _block_maxima(x: torch.Tensor, width: int) -> torch.Tensor:
    """(N, V) -> (N, ceil(V / width)): the maximum of each block of `width` columns (the last
    block narrower where V is not a multiple), NaN where the block holds one."""
    n, v = x.shape
    full = v - v % width
    best = x[:, :full].view(n, full // width, width).amax(dim=-1)  # (N, blocks)
    if full < v:  # the last, narrower block
        best = torch.cat([best, x[:, full:].amax(dim=-1, keepdim=True)], dim=1)
    return best


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
        self.buffers = StepBuffers()  # the log-probabilities of each step

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
            tokens = first_argmax(logits)
        else:
            probs = F.softmax(logits / self.temperature, dim=-1)
            tokens = torch.multinomial(probs, 1, generator=self.generator).squeeze(1)
        # openai-whisper's log_softmax(logits)[token]: one fused pass, where the chosen logit
        # minus `logsumexp` took twice as long (191 against 99 us at N = 8, V = 51 864)
        logprobs = _log_softmax(logits, self.buffers)
        chosen = logprobs.gather(1, tokens[:, None]).squeeze(1)
        sum_logprobs.add_(chosen.masked_fill(finished, 0.0))
        tokens.masked_fill_(finished, self.eot)
        finished |= tokens == self.eot
        return tokens


class BeamStep:
    """What one beam-search step decided (all tensors (N,), N = groups * beam_size).

    Attributes:
        tokens: the next token of each beam (never `eot`: finished beams leave the beam).
        source: the row each beam continues (reorder caches and token buffers by it).
        sum_logprobs: each beam's cumulative log-probability.
        done: every group holds enough finished candidates; decoding can stop.
    """

    def __init__(
        self, tokens: torch.Tensor, source: torch.Tensor, sum_logprobs: torch.Tensor, done: bool
    ) -> None:
        self.tokens, self.source, self.sum_logprobs, self.done = tokens, source, sum_logprobs, done


class BeamSearch:
    """Batched beam search with openai-whisper's `BeamSearchDecoder` semantics.

    Rows are grouped: group g (one audio) owns rows g * beam_size ... (g + 1) * beam_size - 1.
    At each step every beam proposes its beam_size + 1 most probable tokens; per group, the
    candidates are ranked by cumulative log-probability, candidates ending in `eot` become
    finished sequences (up to `round(beam_size * patience)` per group), and the best
    beam_size others continue. At the first step all beams of a group are the same sequence,
    so only the first beam proposes.

    Args:
        n_groups: audios decoded together.
        beam_size: beams per audio.
        eot: end-of-text id.
        patience: finished candidates to collect per audio, as a multiple of beam_size
            (None: 1.0).
    """

    def __init__(
        self, n_groups: int, beam_size: int, eot: int, patience: float | None = None
    ) -> None:
        if beam_size < 1:
            raise ValueError(f"beam_size must be >= 1, got {beam_size}")
        patience = 1.0 if patience is None else patience
        if patience <= 0:
            raise ValueError(f"patience must be > 0, got {patience}")
        self.n_groups = n_groups
        self.beam_size = beam_size
        self.eot = eot
        self.max_candidates = max(1, round(beam_size * patience))
        # per group: finished sampled sequence (without eot) -> its cumulative log-probability
        self.finished: list[dict[tuple[int, ...], float]] = [{} for _ in range(n_groups)]
        self.buffers = StepBuffers()  # the log-probabilities of each step

    def step(
        self,
        logits: torch.Tensor,
        sampled: torch.Tensor,
        sum_logprobs: torch.Tensor,
        first: bool = False,
    ) -> BeamStep:
        """Extend every beam by one token.

        Args:
            logits: (N, V) float32, already filtered (-inf where forbidden).
            sampled: (N, L) tokens sampled so far (read only for beams that finish now).
            sum_logprobs: (N,) cumulative log-probabilities of the beams.
            first: the beams of each group are still identical (the first sampled position).

        Returns:
            The next tokens, the rows they continue, and the new scores.
        """
        g, k = self.n_groups, self.beam_size
        logprobs = _log_softmax(logits.float(), self.buffers)
        top_lp, top_tok = block_topk(logprobs, k + 1)  # (N, k + 1), best first
        scores = (sum_logprobs[:, None] + top_lp).view(g, k, k + 1)
        tokens = top_tok.view(g, k, k + 1)
        source = torch.arange(g * k, device=logits.device).view(g, k, 1).expand(g, k, k + 1)
        if first:
            scores, tokens, source = scores[:, :1], tokens[:, :1], source[:, :1]
        # candidates of a group in openai-whisper's order: by beam, then by rank within it
        scores, tokens, source = scores.flatten(1), tokens.flatten(1), source.flatten(1)
        order = scores.sort(dim=1, descending=True, stable=True).indices  # (G, C)
        scores, tokens, source = (
            scores.gather(1, order),
            tokens.gather(1, order),
            source.gather(1, order),
        )
        is_eot = tokens == self.eot
        n_alive = (~is_eot).cumsum(dim=1)  # beams kept up to and including each candidate
        keep = ~is_eot & (n_alive <= k)  # exactly k per group (at most one eot per beam)
        newly_finished = is_eot & (n_alive < k)  # seen before the k-th beam was kept
        if bool(newly_finished.any()):
            self._collect(newly_finished, scores, source, sampled)
        cols = keep.nonzero()[:, 1].view(g, k)  # row-major: kept candidates in score order
        done = all(len(f) >= self.max_candidates for f in self.finished)
        return BeamStep(
            tokens.gather(1, cols).flatten(),
            source.gather(1, cols).flatten(),
            scores.gather(1, cols).flatten(),
            done,
        )

    def _collect(
        self,
        newly_finished: torch.Tensor,
        scores: torch.Tensor,
        source: torch.Tensor,
        sampled: torch.Tensor,
    ) -> None:
        """Add this step's finished candidates, best first, to groups that still have room."""
        for group, col in newly_finished.nonzero().tolist():
            finished = self.finished[group]
            if len(finished) >= self.max_candidates:
                continue
            row = int(source[group, col])
            finished[tuple(sampled[row].tolist())] = float(scores[group, col])

    def finalize(
        self, sampled: torch.Tensor, sum_logprobs: torch.Tensor
    ) -> list[list[tuple[tuple[int, ...], float]]]:
        """Candidates of each group: its finished sequences, topped up to beam_size with the
        best unfinished beams (openai-whisper `finalize`).

        Args:
            sampled: (N, L) tokens of the live beams (without `eot`).
            sum_logprobs: (N,) their scores.

        Returns:
            Per group, (sequence, cumulative log-probability) pairs.
        """
        k = self.beam_size
        rows = sampled.tolist()
        sums = sum_logprobs.view(self.n_groups, k)
        for group, finished in enumerate(self.finished):
            if len(finished) >= k:
                continue
            for j in sums[group].argsort(descending=True, stable=True).tolist():
                seq = tuple(rows[group * k + j])
                finished[seq] = float(sums[group, j])
                if len(finished) >= k:
                    break
        return [list(f.items()) for f in self.finished]


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


def _log_softmax(logits: torch.Tensor, buffers: StepBuffers) -> torch.Tensor:
    """`logits.log_softmax(dim=-1)` of (N, V) float32 logits into a kept buffer."""
    out = buffers.get("logprobs", tuple(logits.shape), logits.dtype, logits.device)
    return torch.ops.aten._log_softmax.out(logits, -1, False, out=out)
