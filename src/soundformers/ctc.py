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
from collections.abc import Sequence
from dataclasses import dataclass

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
SMALL_STEP = 24  # beams x (tokens + 1) up to which a frame is scored with Python floats
NEG_INF = float("-inf")


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
        self.token = token  # the last token; V (no token) for the root
        self.children: dict[int, _Node] = {}
        self.lm_score = lm_score  # LM + word bonuses + hotwords of the completed words
        self.lm_state = lm_state
        self.word = word  # the partial word after the last delimiter
        # lm_score + the provisional reward (hotword) or penalty (no LM word) of `word`
        self.score = score
        self.row = row  # the decoder's letter-bonus row of `word`
        self.space_score: float | None = None  # lm_score once `word` is completed (when needed)

    def tokens(self) -> tuple[int, ...]:
        out = []
        node: _Node | None = self
        while node is not None and node.parent is not None:
            out.append(node.token)
            node = node.parent
        return tuple(reversed(out))


def _merges(nodes: list[_Node]) -> list[tuple[int, int, int]]:
    """(i, j, token) for each beam i that is beam j's prefix + token: extending j by token adds
    to beam i instead of making a new prefix."""
    index = {node: i for i, node in enumerate(nodes)}
    return [(i, index[n.parent], n.token) for i, n in enumerate(nodes) if n.parent in index]


def _blank_run(pb: list[float], pnb: list[float], p_blanks: list[float]) -> list[float]:
    """Blank-ending log-probabilities of the beams after frames where only the blank is tried
    (the letter-ending ones become -inf). Every beam moves by the same amount, so the set and
    its order stay as they are."""
    pb = [_logaddexp(b, nb) + p_blanks[0] for b, nb in zip(pb, pnb)]
    for p_blank in p_blanks[1:]:
        pb = [b + p_blank for b in pb]
    return pb


class BeamSearchDecoder:
    """CTC prefix beam search, with an optional word n-gram LM and hotwords.

    Per frame, every beam is scored "staying" (blank, or a repeat of its last token) and
    extended by each token tried; an extension spelling a prefix already in the beam merges into
    it, and the best `beam_width` by total score (acoustic + LM + bonuses) are kept. What depends
    on the prefix alone (LM scores of completed words, the penalty for spelling no known word,
    hotword rewards) is computed once per trie node or cached per partial word, so a frame
    costs a few list operations when beams x tokens is small and one set of array operations
    over (beams, tokens) when it is not. Runs of frames where only the blank is tried are
    applied in one go.

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
        """Empty the letter-bonus table: row r holds, for a partial word w, the bonus of w + each
        letter token (0 for delimiters, whose score is the node's `space_score`; -inf for the
        blank and excluded tokens), as a list (`_row_lists`, read one token at a time) and as
        a row of the (rows, V) array `_row_table` (read a block at a time)."""
        V = len(self.labels)
        template = [0.0 if i in self._spaces else NEG_INF for i in range(V)]
        # a word that starts no LM word and no hotword: every letter gets the same bonus
        dead = self._word_bonus("\0")
        self._row_of: dict[str, int] = {}
        self._row_lists: list[list[float]] = []
        self._row_table = np.empty((64, V))
        self._row_template = template
        self._dead_row = self._add_row([dead if i in self._letters else x
                                        for i, x in enumerate(template)])  # fmt: skip

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
                row = self._dead_row  # then no word + letter is a prefix either
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
        return _Node(None, len(self.labels), 0.0, state, "", 0.0, self._row(""))

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
            node = _Node(parent, token, parent.lm_score, parent.lm_state, word, score,
                         self._row(word))  # fmt: skip
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
        lp = lp - lp.max(-1, keepdims=True)
        lp -= np.log(np.exp(lp).sum(-1, keepdims=True))
        lp[:, self.excluded] = NEG_INF
        return lp

    def decode(self, logits: torch.Tensor, length: int | None = None) -> list[Beam]:
        """Search one utterance.

        Args:
            logits: (T, V) logits or log-probabilities (log-softmax is applied).
            length: valid frames (default T).

        Returns:
            Up to `beam_width` beams, best first.
        """
        opts = self.options
        lp = self._log_probs(logits, length)
        T, V = lp.shape
        tried = lp >= opts.token_min_logp
        tried[np.arange(T), lp.argmax(-1)] = True
        tried[:, self.blank] = False
        # per frame: log-probs of the tokens tried, -inf elsewhere; one extra column (index V)
        # stands for the root's "last token" and is never tried
        frames = np.full((T, V + 1), NEG_INF)
        frames[:, :V] = np.where(tried, lp, NEG_INF)
        p_blanks = lp[:, self.blank].tolist()
        rows, columns = np.nonzero(tried)
        values = lp[rows, columns].tolist()
        bounds = np.searchsorted(rows, np.arange(T + 1)).tolist()
        columns = columns.tolist()

        if len(self._completions) > 65536:  # caches, not records of every word ever seen
            self._completions.clear()
        if len(self._row_of) > 65536:
            self._reset_rows()
        nodes, pb, pnb = [self._root()], [0.0], [NEG_INF]
        done = 0  # frames applied
        for t in np.unique(rows).tolist():  # the frames with a token tried, in order
            if t > done:
                pb = _blank_run(pb, pnb, p_blanks[done:t])
                pnb = [NEG_INF] * len(pb)
            start, end = bounds[t], bounds[t + 1]
            tokens, lps = columns[start:end], values[start:end]
            # few beams x tokens: Python floats beat the fixed cost of array calls
            if len(nodes) * (len(tokens) + 1) <= SMALL_STEP:
                nodes, pb, pnb = self._step_scalars(nodes, pb, pnb, tokens, lps, p_blanks[t])
            else:
                step = self._step_arrays(nodes, pb, pnb, tokens, frames[t], p_blanks[t])
                nodes, pb, pnb = self._keep(nodes, tokens, *step)
            done = t + 1
        if T > done:
            pb = _blank_run(pb, pnb, p_blanks[done:])
            pnb = [NEG_INF] * len(pb)
        ranked = []
        for node, b, nb in zip(nodes, pb, pnb):
            acoustic = _logaddexp(b, nb)
            ranked.append((acoustic + self._final_score(node), acoustic, node))
        ranked.sort(key=lambda r: r[0], reverse=True)
        return [
            Beam(self._text(node), node.tokens(), score, acoustic)
            for score, acoustic, node in ranked[: opts.beam_width]
        ]

    # One frame with at least one token tried. Both steps score, per beam i, "staying" (flat
    # index i * (K + 1): blank, or a repeat of the last token) and each extension by tokens[k]
    # (flat index i * (K + 1) + 1 + k), merge extensions into beams that hold the same prefix,
    # and return lists (stay_pb (N,), stay_pnb (N,), via (N, K), kept flat indices): the best
    # `beam_width` within `beam_prune_logp` of the best, best first, ties in flat order.

    def _step_arrays(self, nodes: list[_Node], pb: list[float], pnb: list[float],
                     tokens: list[int], frame: np.ndarray, p_blank: float) -> tuple:  # fmt: skip
        opts = self.options
        cand = np.array(tokens)  # (K,)
        last = np.array([n.token for n in nodes])  # (N,)
        pb_, pnb_ = np.array(pb), np.array(pnb)
        total = np.logaddexp(pb_, pnb_)
        stay_pb = total + p_blank
        stay_pnb = pnb_ + frame[last]  # a repeat merges into the same prefix
        # extension by token c: from any ending, but a repeat only after a blank
        via = np.where(last[:, None] == cand, pb_[:, None], total[:, None]) + frame[cand]  # (N, K)
        merges = _merges(nodes)
        if merges:  # an extension spelling a prefix already in the beam joins it
            column = {c: k for k, c in enumerate(tokens)}
            for i, j, token in merges:
                k = column.get(token)
                if k is not None and via[j, k] > NEG_INF:
                    stay_pnb[i] = np.logaddexp(stay_pnb[i], via[j, k])
                    via[j, k] = NEG_INF
        prefix = np.array([n.score for n in nodes])
        lm = np.array([n.lm_score for n in nodes])
        word_rows = np.array([n.row for n in nodes])
        children = self._row_table[word_rows[:, None], cand] + lm[:, None]  # (N, K)
        for k, c in enumerate(tokens):
            if c in self._spaces:
                children[:, k] = [self._space_score(n) for n in nodes]
        stay = np.logaddexp(stay_pb, stay_pnb) + prefix
        scores = np.concatenate([stay[:, None], via + children], axis=1).ravel()
        order = np.argsort(-scores, kind="stable")[: opts.beam_width]
        order = order[scores[order] >= scores[order[0]] + opts.beam_prune_logp]
        return stay_pb.tolist(), stay_pnb.tolist(), via.tolist(), order.tolist()

    def _step_scalars(self, nodes: list[_Node], pb: list[float], pnb: list[float],
                      tokens: list[int], lps: list[float], p_blank: float) -> tuple:  # fmt: skip
        """The beams after one frame, scored with Python floats: (nodes, pb, pnb)."""
        opts = self.options
        lp_of = dict(zip(tokens, lps))
        index = {node: i for i, node in enumerate(nodes)}
        totals = [b if nb == NEG_INF else _logaddexp(b, nb) for b, nb in zip(pb, pnb)]
        scores: list[float] = []
        # per flat index: (node, None, pb, pnb) to stay, (parent, token, -inf, pnb) to extend
        made: list[tuple] = []
        spaces, row_lists = self._spaces, self._row_lists
        for node, b, nb, total in zip(nodes, pb, pnb, totals):
            last, children = node.token, node.children
            stay_pb = total + p_blank
            lp_last = lp_of.get(last)
            if lp_last is None:  # the last token is not tried: no repeat, no merge
                stay = stay_pb
                stay_pnb = NEG_INF
            else:
                stay_pnb = nb + lp_last
                j = index.get(node.parent)
                if j is not None:  # node = beam j + last: j's extension joins this beam
                    v = (pb[j] if last == nodes[j].token else totals[j]) + lp_last
                    if v > NEG_INF:
                        stay_pnb = _logaddexp(stay_pnb, v)
                stay = _logaddexp(stay_pb, stay_pnb)
            scores.append(stay + node.score)
            made.append((node, None, stay_pb, stay_pnb))
            bonus, lm = row_lists[node.row], node.lm_score
            for c, lp in zip(tokens, lps):
                v = (b if c == last else total) + lp
                if children and v > NEG_INF and children.get(c) in index:
                    v = NEG_INF  # merged into that beam, above or below
                scores.append(v + (self._space_score(node) if c in spaces else bonus[c] + lm))
                made.append((node, c, NEG_INF, v))
        # stable: equal scores keep their flat order, as in `_step_arrays`
        order = sorted(range(len(scores)), key=scores.__getitem__, reverse=True)
        floor = scores[order[0]] + opts.beam_prune_logp
        new_nodes, new_pb, new_pnb = [], [], []
        for flat in order[: opts.beam_width]:
            if scores[flat] < floor:
                break
            node, token, b, nb = made[flat]
            if token is not None:
                node = node.children.get(token) or self._new_node(node, token)
            new_nodes.append(node)
            new_pb.append(b)
            new_pnb.append(nb)
        return new_nodes, new_pb, new_pnb

    def _keep(self, nodes: list[_Node], tokens: list[int], stay_pb: list[float],
              stay_pnb: list[float], via: list[list[float]], kept: list[int]) -> tuple:  # fmt: skip
        """The beams after a frame: (nodes, pb, pnb) of the kept flat indices."""
        new_nodes, new_pb, new_pnb = [], [], []
        K1 = len(tokens) + 1
        for flat in kept:
            i, k = divmod(flat, K1)
            if k == 0:
                new_nodes.append(nodes[i])
                new_pb.append(stay_pb[i])
                new_pnb.append(stay_pnb[i])
            else:
                parent, token = nodes[i], tokens[k - 1]
                new_nodes.append(parent.children.get(token) or self._new_node(parent, token))
                new_pb.append(NEG_INF)
                new_pnb.append(via[i][k - 1])
        return new_nodes, new_pb, new_pnb

    def _text(self, node: _Node) -> str:
        return " ".join("".join(self.labels[t] for t in node.tokens()).split())

    def decode_batch(self, logits: torch.Tensor,
                     lengths: torch.Tensor | Sequence[int] | None = None) -> list[list[Beam]]:  # fmt: skip
        """Search each item of a padded batch: logits (B, T, V), lengths (B,)."""
        return [self.decode(x, n) for x, n in zip(logits, _lengths(logits, lengths))]
