"""CTC decoding, alignment and loss. Knows no model: everything takes logits.

- `greedy_decode`: best path, repeats merged, blanks removed, with each token's frames.
- `BeamSearchDecoder`: prefix beam search, optionally with a word n-gram LM (`ArpaLM`),
  LM weight `alpha`, word bonus `beta` and hotword boosting.
- `forced_align`: batched Viterbi over the CTC trellis: frames of each target token.
- `word_spans`: token spans -> words with start/end frames.
- `ctc_loss`: the fine-tuning loss on logits with padded targets.

Shapes: B batch, T frames, V vocabulary (blank included), L target tokens.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter

import numpy as np
import torch
import torch.nn.functional as F

from .text.arpa import ArpaLM

__all__ = [
    "Beam",
    "BeamSearchDecoder",
    "BeamSearchOptions",
    "CTCPath",
    "WordSpan",
    "ctc_loss",
    "forced_align",
    "greedy_decode",
    "word_spans",
]

LN10 = math.log(10.0)
# beams x (tokens + 1) up to which a frame is scored with Python floats, not arrays (measured
# crossover: ~300 on a 29-token vocabulary)
SMALL_STEP = 300
NEG_INF = float("-inf")
LOWEST = -sys.float_info.max  # the pruning floor is never below it: -inf scores are dropped
_first = itemgetter(0)


@dataclass(frozen=True)
class CTCPath:
    """Tokens of one utterance and their frames: token k spans frames [starts[k], ends[k])."""

    tokens: tuple[int, ...]
    starts: tuple[int, ...]
    ends: tuple[int, ...]


@dataclass(frozen=True)
class WordSpan:
    """A word and its frames [start, end)."""

    word: str
    start: int
    end: int


def _lengths(x: torch.Tensor, lengths: torch.Tensor | Sequence[int] | None) -> list[int]:
    if lengths is None:
        return [x.shape[1]] * x.shape[0]
    return [int(n) for n in lengths]


def greedy_decode(
    logits: torch.Tensor, lengths: torch.Tensor | Sequence[int] | None = None, *, blank: int = 0
) -> list[CTCPath]:
    """Best-path decoding: argmax per frame, merge repeats, drop blanks.

    Args:
        logits: (B, T, V) or (T, V) logits or log-probabilities.
        lengths: (B,) valid frames per item (default: all T).
        blank: the blank id.

    Returns:
        One `CTCPath` per item; a token's span is the run of frames it was emitted on.
    """
    if logits.ndim == 2:
        logits = logits[None]
    best = logits.argmax(-1).cpu().numpy()  # (B, T)
    out = []
    for row, n in zip(best, _lengths(logits, lengths)):
        row = row[:n]
        change = np.flatnonzero(np.r_[True, row[1:] != row[:-1]])  # first frame of each run
        ends = np.r_[change[1:], n]
        keep = row[change] != blank
        out.append(
            CTCPath(tuple(row[change][keep].tolist()), tuple(change[keep].tolist()),
                    tuple(ends[keep].tolist()))
        )  # fmt: skip
    return out


def forced_align(
    log_probs: torch.Tensor,
    targets: torch.Tensor | Sequence[Sequence[int]],
    input_lengths: torch.Tensor | Sequence[int] | None = None,
    target_lengths: torch.Tensor | Sequence[int] | None = None,
    *,
    blank: int = 0,
) -> list[CTCPath]:
    """The most likely CTC path that spells each target (Viterbi over the trellis), batched.

    Args:
        log_probs: (B, T, V) log-probabilities (logits work too: per-frame constants do not
            change the path).
        targets: (B, L) target ids, padded after each item's length (or a list of lists).
        input_lengths: (B,) valid frames (default T).
        target_lengths: (B,) valid targets (default: list lengths, or L).
        blank: the blank id; targets must not contain it.

    Returns:
        Per item, a `CTCPath` with the target tokens and the frames each one occupies.

    Raises:
        ValueError: a target needs more frames than the item has (T < L + repeated pairs).
    """
    if not isinstance(targets, torch.Tensor):
        rows = [list(t) for t in targets]
        target_lengths = [len(r) for r in rows] if target_lengths is None else target_lengths
        width = max([len(r) for r in rows] + [1])
        targets = torch.tensor([r + [blank] * (width - len(r)) for r in rows], dtype=torch.long)
    B, T, _ = log_probs.shape
    L = targets.shape[1]
    t_lens = _lengths(log_probs, input_lengths)
    l_lens = [L] * B if target_lengths is None else [int(n) for n in target_lengths]
    targets = targets.to(log_probs.device, torch.long)
    for b in range(B):
        row = targets[b, : l_lens[b]].tolist()
        need = len(row) + sum(1 for x, y in zip(row, row[1:]) if x == y)
        if blank in row:
            raise ValueError(f"target {b} contains the blank id {blank}")
        if need > t_lens[b]:
            raise ValueError(f"target {b} needs at least {need} frames, the input has {t_lens[b]}")
    S = 2 * L + 1
    ext = torch.full((B, S), blank, dtype=torch.long, device=log_probs.device)
    ext[:, 1::2] = targets
    # s - 2 -> s is allowed onto a token that differs from the token two states back
    skip = torch.zeros((B, S), dtype=torch.bool, device=log_probs.device)
    skip[:, 3::2] = targets[:, 1:] != targets[:, :-1]
    lp = log_probs.float()
    alpha = torch.full((B, S), NEG_INF, device=log_probs.device)
    emit0 = lp[:, 0].gather(1, ext)
    alpha[:, :2] = emit0[:, :2]
    back = torch.zeros((T, B, S), dtype=torch.uint8, device=log_probs.device)
    lens = torch.tensor(t_lens, device=log_probs.device)
    pad = torch.full((B, 1), NEG_INF, device=log_probs.device)
    for t in range(1, T):
        stay = alpha
        step = torch.cat([pad, alpha[:, :-1]], 1)
        jump = torch.cat([pad, pad, alpha[:, :-2]], 1).masked_fill(~skip, NEG_INF)
        best, arg = torch.stack([stay, step, jump]).max(0)  # (B, S)
        active = (t < lens)[:, None]
        alpha = torch.where(active, best + lp[:, t].gather(1, ext), alpha)
        back[t] = torch.where(active, arg, 0).to(torch.uint8)
    back_np = back.cpu().numpy()
    alpha_np = alpha.cpu().numpy()
    paths = []
    for b in range(B):
        last = 2 * l_lens[b]
        s = last if last == 0 or alpha_np[b, last] >= alpha_np[b, last - 1] else last - 1
        states = np.empty(t_lens[b], dtype=np.int64)
        for t in range(t_lens[b] - 1, -1, -1):
            states[t] = s
            s -= int(back_np[t, b, s])
        starts, ends = [], []
        for k in range(l_lens[b]):
            frames = np.flatnonzero(states == 2 * k + 1)
            starts.append(int(frames[0]))
            ends.append(int(frames[-1]) + 1)
        paths.append(CTCPath(tuple(targets[b, : l_lens[b]].tolist()), tuple(starts), tuple(ends)))
    return paths


def word_spans(path: CTCPath, token_text: Sequence[str]) -> list[WordSpan]:
    """Group a path's tokens into words at the delimiter (the token whose text is " ").

    Args:
        path: tokens with spans (from `greedy_decode` or `forced_align`).
        token_text: id -> text, with the word delimiter as " " (`CTCTokenizer.token_strings()`).
    """
    words: list[WordSpan] = []
    chars: list[str] = []
    start = end = 0
    for token, s, e in zip(path.tokens, path.starts, path.ends):
        text = token_text[token]
        if text == " ":
            if chars:
                words.append(WordSpan("".join(chars), start, end))
            chars = []
            continue
        if not chars:
            start = s
        chars.append(text)
        end = e
    if chars:
        words.append(WordSpan("".join(chars), start, end))
    return words


def ctc_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    input_lengths: torch.Tensor,
    target_lengths: torch.Tensor | None = None,
    *,
    blank: int = 0,
    reduction: str = "mean",
    zero_infinity: bool = True,
) -> torch.Tensor:
    """CTC loss for fine-tuning, on logits.

    Args:
        logits: (B, T, V) raw logits; log-softmax is taken here, in float32.
        targets: (B, L) target ids, padded with negative values (e.g. -100) or past
            `target_lengths`.
        input_lengths: (B,) valid frames.
        target_lengths: (B,) valid targets (default: the count of non-negative ids per row).
        blank: the blank id.
        reduction: "mean" (per-target-length, as torch), "sum" or "none".
        zero_infinity: zero the loss of impossible alignments instead of returning inf.

    Returns:
        The loss: a scalar, or (B,) for reduction="none".
    """
    valid = targets >= 0
    if target_lengths is None:
        target_lengths = valid.sum(-1)
    else:
        valid = valid & (
            torch.arange(targets.shape[1], device=targets.device) < target_lengths[:, None]
        )
    log_probs = F.log_softmax(logits, dim=-1, dtype=torch.float32).transpose(0, 1)  # (T, B, V)
    with torch.backends.cudnn.flags(enabled=False):
        return F.ctc_loss(log_probs, targets.masked_select(valid), input_lengths, target_lengths,
                          blank=blank, reduction=reduction, zero_infinity=zero_infinity)  # fmt: skip


# --------------------------------------------------------------------------------------------
# prefix beam search


@dataclass(frozen=True)
class BeamSearchOptions:
    """Beam search settings (validated once).

    Attributes:
        beam_width: prefixes kept per frame.
        alpha: LM weight (the LM's natural-log score is multiplied by it).
        beta: bonus per word (counteracts the LM's preference for short outputs).
        beam_prune_logp: drop prefixes scoring this far (natural log) below the best.
        token_min_logp: tokens below this log-probability in a frame are not tried (the
            frame's best token always is).
        hotwords: words whose spelling is rewarded (case-insensitive; phrases split in words).
        hotword_weight: reward for a whole hotword; a partial match gets its fraction.
        unk_score_offset: added to a word the LM does not know.
        score_boundary: score <s> at the start and </s> at the end.
    """

    beam_width: int = 20
    alpha: float = 0.5
    beta: float = 1.0
    beam_prune_logp: float = -10.0
    token_min_logp: float = -5.0
    hotwords: tuple[str, ...] = ()
    hotword_weight: float = 10.0
    unk_score_offset: float = -10.0
    score_boundary: bool = True

    def __post_init__(self) -> None:
        if self.beam_width < 1:
            raise ValueError(f"beam_width must be at least 1, got {self.beam_width}")
        if self.beam_prune_logp > 0 or self.token_min_logp > 0:
            raise ValueError("beam_prune_logp and token_min_logp are log-probabilities: <= 0")


@dataclass(frozen=True)
class Beam:
    """A decoded hypothesis: text, collapsed token ids, total score (acoustic + LM + bonuses),
    acoustic log-probability."""

    text: str
    tokens: tuple[int, ...]
    score: float
    acoustic_score: float


def _logaddexp(a: float, b: float) -> float:
    if a == NEG_INF:
        return b
    if b == NEG_INF:
        return a
    return max(a, b) + math.log1p(math.exp(-abs(a - b)))


class _Node:
    """A prefix in the beam's trie. Everything that depends on the prefix alone is computed once,
    when the node is created: its LM score and state, the word being spelled, and its score."""

    __slots__ = ("parent", "token", "children", "lm_score", "lm_state", "word", "score", "row",
                 "space_score")  # fmt: skip

    def __init__(self, parent: _Node | None, token: int, lm_score: float,
                 lm_state: tuple[str, ...], word: str, score: float, row: int) -> None:  # fmt: skip
        self.parent = parent
        self.token = token  # the last token; the blank for the root
        self.children: dict[int, _Node] | None = None  # token -> node, once there is one
        self.lm_score = lm_score  # LM + word bonuses + hotwords of the completed words
        self.lm_state = lm_state
        self.word = word  # the partial word after the last delimiter
        # lm_score + the provisional reward (hotword) or penalty (no LM word) of `word`
        self.score = score
        self.row = row  # the decoder's letter-bonus row of `word`
        self.space_score: float | None = None  # lm_score once `word` is completed (when needed)

    def tokens(self) -> tuple[int, ...]:
        out = []
        node = self
        while node.parent is not None:
            out.append(node.token)
            node = node.parent
        return tuple(reversed(out))


# The beams after a frame, best first: {prefix: (log-probability of its paths ending in a blank,
# of those ending in its last token)}.
_Beams = dict[_Node, tuple[float, float]]


def _blank_run(beam: _Beams, p_blanks: list[float]) -> _Beams:
    """The beams after frames where only the blank is tried (`p_blanks`: its log-probability in
    each): every prefix moves by the same amount, so the set and its order stay as they are."""
    first = p_blanks[0]
    beam = {node: ((b if nb == NEG_INF else _logaddexp(b, nb)) + first, NEG_INF)
            for node, (b, nb) in beam.items()}  # fmt: skip
    for p_blank in p_blanks[1:]:
        beam = {node: (b + p_blank, NEG_INF) for node, (b, _) in beam.items()}
    return beam


class BeamSearchDecoder:
    """CTC prefix beam search, with an optional word n-gram LM and hotwords.

    Per frame, every beam "stays" (blank, or a repeat of its last token) and is extended by each
    token tried; an extension spelling a prefix already in the beam merges into it, and the best
    `beam_width` by total score (acoustic + LM + bonuses) are kept. What depends on the prefix
    alone (LM scores of completed words, the penalty for spelling no known word, hotword
    rewards) is computed once per trie node, or cached per partial word. A frame is scored with
    Python floats, skipping extensions already below the pruning floor, or, for wide beams, as
    (beams, tokens) arrays. Frames where only the blank is tried cost next to nothing: they are
    folded into the next frame that tries a token.

    Args:
        labels: text of each token id: "" for the blank, " " for the word delimiter; tokens
            written `<...>` (special tokens) are never emitted.
        lm: a word language model (`ArpaLM`, or anything with `begin_state()`,
            `score(state, word) -> (log10 prob, state)` and a `vocabulary` set), or None.
        options: `BeamSearchOptions`.

    Example:
        >>> decoder = BeamSearchDecoder(tokenizer.token_strings(), ArpaLM.from_file("3gram.arpa"))
        >>> decoder.decode(log_probs)[0].text           # log_probs: (T, V)
    """

    def __init__(self, labels: Sequence[str], lm: ArpaLM | None = None,
                 options: BeamSearchOptions | None = None) -> None:  # fmt: skip
        self.labels = list(labels)
        blanks = [i for i, t in enumerate(self.labels) if t == ""]
        if len(blanks) != 1:
            raise ValueError(f"labels must contain exactly one blank (''), found {len(blanks)}")
        self.blank = blanks[0]
        self.excluded = [
            i for i, t in enumerate(self.labels) if t.startswith("<") and t.endswith(">")
        ]
        self.lm = lm
        self.options = options or BeamSearchOptions()
        self.hotwords = {w.lower() for h in self.options.hotwords for w in h.split()}
        vocabulary = getattr(lm, "vocabulary", None)
        self.prefixes = (
            {w[:i] for w in vocabulary for i in range(1, len(w) + 1)} if vocabulary else None
        )
        skipped = {self.blank, *self.excluded}
        self._spaces = frozenset(i for i, t in enumerate(self.labels) if t == " ")
        self._letters = [i for i, t in enumerate(self.labels) if t != " " and i not in skipped]
        # (LM state, word) -> (score of completing the word, LM state after it)
        self._completions: dict[tuple[tuple[str, ...], str], tuple[float, tuple[str, ...]]] = {}
        self._reset_rows()

    @classmethod
    def from_tokenizer(
        cls, tokenizer, lm: ArpaLM | str | None = None, **options
    ) -> BeamSearchDecoder:
        """From a `CTCTokenizer`, an LM (or the path of an .arpa file) and `BeamSearchOptions`."""
        if isinstance(lm, str):
            lm = ArpaLM.from_file(lm)
        return cls(tokenizer.token_strings(), lm, BeamSearchOptions(**options))

    # -- scores that depend only on the prefix

    def _hotword_bonus(self, word: str) -> float:
        if not self.hotwords or not word:
            return 0.0
        w = word.lower()
        best = max((len(w) / len(h) for h in self.hotwords if h.startswith(w)), default=0.0)
        return self.options.hotword_weight * best

    def _word_bonus(self, word: str) -> float:
        """Provisional score of a partial word: hotword reward, and the penalty for spelling
        no word the LM knows."""
        bonus = self._hotword_bonus(word)
        if self.prefixes is not None and word not in self.prefixes:
            bonus += self.options.unk_score_offset
        return bonus

    def _word_score(self, state: tuple[str, ...], word: str) -> tuple[float, tuple[str, ...]]:
        """(LM + word bonus + hotword score of completing `word` after `state`, the new state),
        cached."""
        key = (state, word)
        hit = self._completions.get(key)
        if hit is None:
            hit = self._completions[key] = self._new_word_score(state, word)
        return hit

    def _new_word_score(self, state: tuple[str, ...], word: str) -> tuple[float, tuple[str, ...]]:
        score = self.options.hotword_weight if word.lower() in self.hotwords else 0.0
        if self.lm is None:
            return score, state
        log10p, state = self.lm.score(state, word)
        score += self.options.alpha * log10p * LN10 + self.options.beta
        if word not in self.lm.vocabulary:
            score += self.options.unk_score_offset
        return score, state

    def _reset_rows(self) -> None:
        """Empty the letter-bonus table. Row r holds, for a partial word w, the bonus of w + each
        letter token (0 for delimiters, whose score is the node's `space_score`; -inf for the
        blank and excluded tokens), as a list in `_row_lists` (read a token at a time) and as
        a row of the (rows, V) array `_row_table` (read a block at a time)."""
        V = len(self.labels)
        self._row_of: dict[str, int] = {}  # partial word -> row
        self._row_lists: list[list[float]] = []
        self._row_table = np.empty((64, V))
        self._row_template = [0.0 if i in self._spaces else NEG_INF for i in range(V)]
        # the row of a word that starts no LM word and no hotword, nor does any continuation
        dead = self.options.unk_score_offset if self.prefixes is not None else 0.0
        self._dead_row = self._add_row([dead if i in self._letters else x
                                        for i, x in enumerate(self._row_template)])  # fmt: skip

    def _add_row(self, row: list[float]) -> int:
        n = len(self._row_lists)
        if n == len(self._row_table):
            self._row_table = np.concatenate([self._row_table, np.empty_like(self._row_table)])
        self._row_table[n] = row
        self._row_lists.append(row)
        return n

    def _row(self, word: str) -> int:
        """The letter-bonus row of a partial word, cached."""
        row = self._row_of.get(word)
        if row is None:
            prefixes = self.prefixes
            if not self.hotwords and (prefixes is None or (word and word not in prefixes)):
                row = self._dead_row
            else:
                values = list(self._row_template)
                for token in self._letters:
                    values[token] = self._word_bonus(word + self.labels[token])
                row = self._add_row(values)
            self._row_of[word] = row
        return row

    def _space_score(self, node: _Node) -> float:
        """lm_score of `node` + a delimiter: its partial word scored as a word (cached)."""
        score = node.space_score
        if score is None:
            score = node.lm_score
            if node.word:
                score += self._word_score(node.lm_state, node.word)[0]
            node.space_score = score
        return score

    def _root(self) -> _Node:
        use_lm = self.lm is not None and self.options.score_boundary
        state = self.lm.begin_state() if use_lm else ()
        return _Node(None, self.blank, 0.0, state, "", 0.0, self._row(""))

    def _new_node(self, parent: _Node, token: int) -> _Node:
        """The trie node of `parent` + `token`, with its scores."""
        if token in self._spaces:
            lm_score, state = self._space_score(parent), parent.lm_state
            if parent.word:
                state = self._word_score(parent.lm_state, parent.word)[1]
            node = _Node(parent, token, lm_score, state, "", lm_score, self._row(""))
        else:
            word = parent.word + self.labels[token]
            score = parent.lm_score + self._row_lists[parent.row][token]
            # a word that starts no LM word (nor hotword) cannot be continued into one
            row = self._dead_row if parent.row == self._dead_row else self._row(word)
            node = _Node(parent, token, parent.lm_score, parent.lm_state, word, score, row)
        if parent.children is None:
            parent.children = {}
        parent.children[token] = node
        return node

    def _final_score(self, node: _Node) -> float:
        score, state = node.lm_score, node.lm_state
        if node.word:
            extra, state = self._word_score(state, node.word)
            score += extra
        if self.lm is not None and self.options.score_boundary:
            log10p, _ = self.lm.score(state, "</s>")
            score += self.options.alpha * log10p * LN10
        return score

    # -- search

    def _log_probs(self, logits: torch.Tensor, length: int | None) -> np.ndarray:
        """(T, V) float64 log-softmax of the first `length` frames, excluded tokens at -inf."""
        # in numpy: a torch op would wake torch's worker threads, which then spin on the cores
        # this single-threaded search runs on (measured 2.5x slower on 2 cores)
        lp = logits[:length].detach().float().cpu().numpy().astype(np.float64)
        lp -= lp.max(-1, keepdims=True)
        lp -= np.log(np.exp(lp).sum(-1, keepdims=True))
        if self.excluded:
            lp[:, self.excluded] = NEG_INF
        return lp

    def _schedule(self, lp: np.ndarray) -> list[tuple[int, list[tuple[int, float]]]]:
        """The frames where a token is tried, in order: (frame, [(token, log-prob), ...]).

        Tried: the tokens with log-prob >= `token_min_logp`, and the frame's best one; never
        the blank, whose paths every step scores anyway.
        """
        T, V = lp.shape
        tried = lp >= self.options.token_min_logp
        tried[np.arange(T), lp.argmax(-1)] = True
        tried[:, self.blank] = False
        frames, columns = np.divmod(np.flatnonzero(tried), V)
        counts = np.bincount(frames, minlength=T)
        active = np.flatnonzero(counts)
        counts = counts[active]
        ends = np.cumsum(counts).tolist()
        pairs = list(zip(columns.tolist(), lp[tried].tolist()))
        return [(t, pairs[e - n : e]) for t, n, e in zip(active.tolist(), counts.tolist(), ends)]

    def decode(self, logits: torch.Tensor, length: int | None = None) -> list[Beam]:
        """Search one utterance.

        Args:
            logits: (T, V) logits or log-probabilities (log-softmax is applied).
            length: valid frames (default T).

        Returns:
            Up to `beam_width` beams, best first.
        """
        if len(self._completions) > 65536:  # caches, not records of every word ever seen
            self._completions.clear()
        if len(self._row_of) > 65536:
            self._reset_rows()
        lp = self._log_probs(logits, length)
        p_blanks = lp[:, self.blank].tolist()
        beam: _Beams = {self._root(): (0.0, NEG_INF)}
        done = 0  # frames applied
        for t, tried in self._schedule(lp):
            # few beams x tokens: Python floats beat the fixed cost of array calls
            small = len(beam) * (len(tried) + 1) <= SMALL_STEP
            step = self._step_scalars if small else self._step_arrays
            beam = step(beam, p_blanks[done:t], tried, p_blanks[t])
            done = t + 1
        if len(lp) > done:
            beam = _blank_run(beam, p_blanks[done:])
        ranked = []
        for node, (b, nb) in beam.items():
            acoustic = _logaddexp(b, nb)
            ranked.append((acoustic + self._final_score(node), acoustic, node))
        ranked.sort(key=lambda r: r[0], reverse=True)
        beams = []
        for score, acoustic, node in ranked[: self.options.beam_width]:
            tokens = node.tokens()
            text = " ".join("".join([self.labels[t] for t in tokens]).split())
            beams.append(Beam(text, tokens, score, acoustic))
        return beams

    # One frame with at least one token tried, after the frames `blanks` (the blank's
    # log-probability in each) where only the blank was. Both steps score each beam staying and
    # each extension by a token of `tried` ([(token, log-prob)]), merge an extension into the
    # beam that holds its prefix, and return the best `beam_width` candidates within
    # `beam_prune_logp` of the best (never those of probability 0), best first; equal scores
    # keep the order beam by beam, staying before extensions.

    def _step_scalars(self, beam: _Beams, blanks: list[float], tried: list[tuple[int, float]],
                      p_blank: float) -> _Beams:  # fmt: skip
        """One frame scored with Python floats (for beams x tokens up to `SMALL_STEP`)."""
        prune = self.options.beam_prune_logp
        lp_of = dict(tried)
        spaces, row_lists = self._spaces, self._row_lists
        best = floor = NEG_INF  # so far; the final floor is at least as high
        cands = []  # (score, node or None if not made yet, parent or None to stay, token, pb, pnb)
        for node, (b, nb) in beam.items():
            total = b if nb == NEG_INF else _logaddexp(b, nb)
            if blanks:
                for p in blanks:
                    total += p
                b, nb = total, NEG_INF
            last = node.token
            stay_pb = total + p_blank
            lp_last = lp_of.get(last)
            if lp_last is None:  # the last token is not tried: no repeat, no merge
                score = stay_pb + node.score
                cands.append((score, node, None, None, stay_pb, NEG_INF))
            else:
                stay_pnb = nb + lp_last  # a repeat stays in the prefix
                parent = beam.get(node.parent)
                if parent is not None:  # the parent's extension by `last` merges into this beam
                    b_j, nb_j = parent
                    if blanks or (last != node.parent.token and nb_j != NEG_INF):
                        b_j = b_j if nb_j == NEG_INF else _logaddexp(b_j, nb_j)
                        for p in blanks:
                            b_j += p
                    stay_pnb = _logaddexp(stay_pnb, b_j + lp_last)
                score = _logaddexp(stay_pb, stay_pnb) + node.score
                cands.append((score, node, None, None, stay_pb, stay_pnb))
            if score > best:
                best, floor = score, max(score + prune, LOWEST)
            children, bonus, lm = node.children, row_lists[node.row], node.lm_score
            for c, lp in tried:
                # from any ending, but a repeat of the last token only after a blank
                v = (b if c == last else total) + lp
                score = v + (self._space_score(node) if c in spaces else bonus[c] + lm)
                if score < floor:
                    continue  # below the final floor too
                child = children.get(c) if children else None
                if child in beam:
                    continue  # merged into that beam
                cands.append((score, child, node, c, NEG_INF, v))
                if score > best:
                    best, floor = score, max(score + prune, LOWEST)
        cands.sort(key=_first, reverse=True)  # stable: ties keep their order
        new: _Beams = {}
        for score, node, parent, token, b, nb in cands[: self.options.beam_width]:
            if score < floor:
                break
            new[node or self._new_node(parent, token)] = (b, nb)
        return new

    def _step_arrays(self, beam: _Beams, blanks: list[float], tried: list[tuple[int, float]],
                     p_blank: float) -> _Beams:  # fmt: skip
        """One frame scored as (beams, tokens) arrays (for wide beams)."""
        opts = self.options
        if blanks:
            beam = _blank_run(beam, blanks)
        nodes = list(beam)
        tokens = [c for c, _ in tried]
        cand = np.array(tokens)  # (K,)
        frame = np.full(len(self.labels), NEG_INF)  # (V,) log-probs of the tokens tried
        frame[cand] = [lp for _, lp in tried]
        # (N, 6): last token, letter-bonus row, score, lm_score, pb, pnb
        info = np.array([(n.token, n.row, n.score, n.lm_score, b, nb)
                         for n, (b, nb) in beam.items()])  # fmt: skip
        last, rows = info[:, 0].astype(np.intp), info[:, 1].astype(np.intp)
        pb, pnb = info[:, 4], info[:, 5]
        total = np.logaddexp(pb, pnb)
        stay_pb = total + p_blank
        stay_pnb = pnb + frame[last]  # a repeat stays in the prefix
        # extension by token c: from any ending, but a repeat only after a blank
        via = np.where(last[:, None] == cand, pb[:, None], total[:, None]) + frame[cand]  # (N, K)
        index = {node: i for i, node in enumerate(nodes)}
        column = {c: k for k, c in enumerate(tokens)}
        for i, node in enumerate(nodes):  # merge j's extension by `last` into its child i
            j, k = index.get(node.parent), column.get(node.token)
            if j is not None and k is not None and via[j, k] > NEG_INF:
                stay_pnb[i] = np.logaddexp(stay_pnb[i], via[j, k])
                via[j, k] = NEG_INF
        children = self._row_table[rows[:, None], cand] + info[:, 3:4]  # (N, K)
        for k, c in enumerate(tokens):
            if c in self._spaces:
                children[:, k] = [self._space_score(n) for n in nodes]
        stay = np.logaddexp(stay_pb, stay_pnb) + info[:, 2]
        scores = np.concatenate([stay[:, None], via + children], axis=1).ravel()
        kept = np.flatnonzero(scores >= max(scores.max() + opts.beam_prune_logp, LOWEST))
        kept = kept[np.argsort(-scores[kept], kind="stable")[: opts.beam_width]].tolist()
        stay_pb, stay_pnb, via = stay_pb.tolist(), stay_pnb.tolist(), via.tolist()
        new: _Beams = {}
        K1 = len(tokens) + 1  # flat index i * K1: beam i stays; i * K1 + 1 + k: extended by k
        for flat in kept:
            i, k = divmod(flat, K1)
            if k == 0:
                new[nodes[i]] = (stay_pb[i], stay_pnb[i])
            else:
                parent, token = nodes[i], tokens[k - 1]
                child = (parent.children or {}).get(token) or self._new_node(parent, token)
                new[child] = (NEG_INF, via[i][k - 1])
        return new

    def decode_batch(self, logits: torch.Tensor,
                     lengths: torch.Tensor | Sequence[int] | None = None) -> list[list[Beam]]:  # fmt: skip
        """Search each item of a padded batch: logits (B, T, V), lengths (B,)."""
        return [self.decode(x, n) for x, n in zip(logits, _lengths(logits, lengths))]
