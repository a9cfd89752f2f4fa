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
    when the node is created: its LM score and state, the word being spelled, and `child_scores`,
    the prefix-only score of every one-token extension."""

    __slots__ = ("parent", "token", "children", "lm_score", "lm_state", "word", "bonus",
                 "child_scores")  # fmt: skip

    def __init__(self, parent: _Node | None, token: int, lm_score: float,
                 lm_state: tuple[str, ...], word: str, bonus: float) -> None:  # fmt: skip
        self.parent = parent
        self.token = token
        self.children: dict[int, _Node] = {}
        self.lm_score = lm_score  # LM + word bonuses + hotwords of the completed words
        self.lm_state = lm_state
        self.word = word  # the partial word after the last delimiter
        self.bonus = bonus  # provisional reward (hotword) or penalty (no LM word) of the word
        # (V,) float64: lm_score + bonus of the prefix extended by each token (-inf for the
        # blank and excluded tokens); computed by the decoder while the node is in the beam
        self.child_scores: np.ndarray | None = None

    def tokens(self) -> tuple[int, ...]:
        out = []
        node: _Node | None = self
        while node is not None and node.parent is not None:
            out.append(node.token)
            node = node.parent
        return tuple(reversed(out))


class _BeamSet:
    """The prefixes kept after a frame.

    Attributes:
        nodes: the N trie nodes (their `child_scores` computed).
        pb, pnb: per beam, log-probability of the prefix with its paths ending in a blank / not.
        merges: (i, j, token) where beam i is beam j's prefix + token: extending j by token
            adds to beam i instead of making a new prefix.
    """

    __slots__ = ("nodes", "pb", "pnb", "merges")

    def __init__(self, nodes: list[_Node], pb: list[float], pnb: list[float]) -> None:
        self.nodes, self.pb, self.pnb = nodes, pb, pnb
        index = {node: i for i, node in enumerate(nodes)}
        self.merges = [
            (i, index[n.parent], n.token) for i, n in enumerate(nodes) if n.parent in index
        ]


class BeamSearchDecoder:
    """CTC prefix beam search, with an optional word n-gram LM and hotwords.

    Each frame is one set of array operations over (beams, vocabulary): every beam's blank and
    repeat continuations, every one-token extension, the merge of an extension into a beam that
    already holds that prefix, and the choice of the best `beam_width` by total score (acoustic
    + LM + bonuses). What depends on the prefix alone (LM scores of completed words, the
    penalty for spelling no known word, hotword rewards) is computed once per trie node as a
    (V,) vector, so Python work per frame is proportional to the beams kept, not to the
    candidates scored.

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
        self._spaces = [i for i, t in enumerate(self.labels) if t == " "]
        self._letters = [i for i, t in enumerate(self.labels) if t != " " and i not in skipped]
        # partial word -> (V,) bonus of each extension (letters only; -inf elsewhere)
        self._letter_bonus: dict[str, np.ndarray] = {}
        # (LM state, word) -> (score of completing the word, LM state after it)
        self._completions: dict[tuple[tuple[str, ...], str], tuple[float, tuple[str, ...]]] = {}

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

    def _letter_bonuses(self, word: str) -> np.ndarray:
        """(V,) bonus of `word` + each letter token (-inf for the blank, delimiters and excluded
        tokens), cached per partial word."""
        vector = self._letter_bonus.get(word)
        if vector is None:
            vector = np.full(len(self.labels), NEG_INF)
            for token in self._letters:
                vector[token] = self._word_bonus(word + self.labels[token])
            self._letter_bonus[word] = vector
        return vector

    def _new_node(self, parent: _Node | None, token: int) -> _Node:
        """The trie node of `parent` + `token` (the root for parent None), with its scores."""
        if parent is None:
            use_lm = self.lm is not None and self.options.score_boundary
            node = _Node(None, -1, 0.0, self.lm.begin_state() if use_lm else (), "", 0.0)
        elif self.labels[token] == " ":
            lm_score, state = parent.lm_score, parent.lm_state
            if parent.word:
                score, state = self._word_score(parent.lm_state, parent.word)
                lm_score += score
            node = _Node(parent, token, lm_score, state, "", 0.0)
        else:
            word = parent.word + self.labels[token]
            bonus = float(self._letter_bonuses(parent.word)[token])  # = self._word_bonus(word)
            node = _Node(parent, token, parent.lm_score, parent.lm_state, word, bonus)
        if parent is not None:
            parent.children[token] = node
        return node

    def _child_scores(self, node: _Node) -> np.ndarray:
        """(V,) lm_score + bonus of `node` extended by each token; kept on the node (for a
        vocabulary of more than 64 tokens, only while the node is in the beam)."""
        if node.child_scores is None:
            scores = self._letter_bonuses(node.word) + node.lm_score
            if self._spaces:
                space = node.lm_score
                if node.word:
                    space += self._word_score(node.lm_state, node.word)[0]
                for token in self._spaces:
                    scores[token] = space
            node.child_scores = scores
        return node.child_scores

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

    def decode(self, logits: torch.Tensor, length: int | None = None) -> list[Beam]:
        """Search one utterance.

        Args:
            logits: (T, V) logits or log-probabilities (log-softmax is applied).
            length: valid frames (default T).

        Returns:
            Up to `beam_width` beams, best first.
        """
        opts = self.options
        width = opts.beam_width
        # log-softmax in numpy: a torch op would wake torch's worker threads, which then spin
        # on the cores this single-threaded search runs on (measured 2.5x slower on 2 cores)
        lp = logits[:length].detach().float().cpu().numpy().astype(np.float64)
        lp = lp - lp.max(-1, keepdims=True)
        lp -= np.log(np.exp(lp).sum(-1, keepdims=True))
        V = lp.shape[1]
        lp[:, self.excluded] = NEG_INF
        tried = lp >= opts.token_min_logp
        tried[np.arange(len(lp)), lp.argmax(-1)] = True
        tried[:, self.blank] = False
        # per frame: log-probs of the tokens tried, -inf elsewhere; one extra column (index V)
        # stands for the root's "previous token" and is never tried
        frames = np.full((len(lp), V + 1), NEG_INF)
        frames[:, :V] = np.where(tried, lp, NEG_INF)
        p_blanks = lp[:, self.blank].tolist()
        rows, columns = np.nonzero(tried)
        bounds = np.searchsorted(rows, np.arange(len(lp) + 1)).tolist()
        columns = columns.tolist()

        for cache in (self._letter_bonus, self._completions):
            if len(cache) > 65536:  # caches, not records of every word ever seen
                cache.clear()
        root = self._new_node(None, -1)
        self._child_scores(root)
        beam = _BeamSet([root], [0.0], [NEG_INF])
        for t in range(len(lp)):
            tokens = columns[bounds[t] : bounds[t + 1]]  # the tokens tried in this frame
            if not tokens:
                # blank only: every beam's score moves by the same amount; the set and its
                # order stay as they are
                p_blank = p_blanks[t]
                beam.pb = [_logaddexp(b, nb) + p_blank for b, nb in zip(beam.pb, beam.pnb)]
                beam.pnb = [NEG_INF] * len(beam.pb)
                continue
            # few beams x tokens: Python floats beat the fixed cost of array calls
            small = len(beam.nodes) * (len(tokens) + 1) <= SMALL_STEP
            step = self._step_scalars if small else self._step_arrays
            stay_pb, stay_pnb, via, kept = step(beam, tokens, frames[t], p_blanks[t])
            nodes, pb, pnb = [], [], []
            K1 = len(tokens) + 1
            for flat in kept:
                i, k = divmod(flat, K1)
                if k == 0:
                    nodes.append(beam.nodes[i])
                    pb.append(stay_pb[i])
                    pnb.append(stay_pnb[i])
                else:
                    parent, token = beam.nodes[i], tokens[k - 1]
                    nodes.append(parent.children.get(token) or self._new_node(parent, token))
                    pb.append(NEG_INF)
                    pnb.append(via[i][k - 1])
            if V > 64:  # large vocabularies: a prefix leaving the beam drops its (V,) scores
                staying = set(nodes)
                for node in beam.nodes:
                    if node not in staying:
                        node.child_scores = None
            for node in nodes:
                if node.child_scores is None:
                    self._child_scores(node)
            beam = _BeamSet(nodes, pb, pnb)
        nodes, pb, pnb = beam.nodes, beam.pb, beam.pnb
        ranked = []
        for node, b, nb in zip(nodes, pb, pnb):
            acoustic = _logaddexp(b, nb)
            ranked.append((acoustic + self._final_score(node), acoustic, node))
        ranked.sort(key=lambda r: r[0], reverse=True)
        return [
            Beam(self._text(node), node.tokens(), score, acoustic)
            for score, acoustic, node in ranked[:width]
        ]

    # One frame with at least one token tried. Both steps score, per beam i, "staying" (flat
    # index i * (K + 1): blank, or a repeat of the last token) and each extension by tokens[k]
    # (flat index i * (K + 1) + 1 + k), merge extensions into beams that hold the same prefix,
    # and return lists (stay_pb (N,), stay_pnb (N,), via (N, K), kept flat indices): the best
    # `beam_width` within `beam_prune_logp` of the best, best first, ties in flat order.

    def _step_arrays(self, beam: _BeamSet, tokens: list[int], frame: np.ndarray,
                     p_blank: float) -> tuple:  # fmt: skip
        opts = self.options
        V = len(frame) - 1
        cand = np.array(tokens)  # (K,)
        last = np.array([n.token if n.parent is not None else V for n in beam.nodes])  # (N,)
        pb, pnb = np.array(beam.pb), np.array(beam.pnb)
        total = np.logaddexp(pb, pnb)
        stay_pb = total + p_blank
        stay_pnb = pnb + frame[last]  # a repeat merges into the same prefix
        # extension by token c: from any ending, but a repeat only after a blank
        repeat = last[:, None] == cand[None, :]
        via = np.where(repeat, pb[:, None], total[:, None]) + frame[cand]  # (N, K)
        if beam.merges:  # an extension spelling a prefix already in the beam joins it
            column = {c: k for k, c in enumerate(tokens)}
            for i, j, token in beam.merges:
                k = column.get(token)
                if k is not None and via[j, k] > NEG_INF:
                    stay_pnb[i] = np.logaddexp(stay_pnb[i], via[j, k])
                    via[j, k] = NEG_INF
        prefix = np.array([n.lm_score + n.bonus for n in beam.nodes])
        children = np.stack([n.child_scores for n in beam.nodes])[:, cand]  # (N, K)
        stay = np.logaddexp(stay_pb, stay_pnb) + prefix
        scores = np.concatenate([stay[:, None], via + children], axis=1).ravel()
        order = np.argsort(-scores, kind="stable")[: opts.beam_width]
        order = order[scores[order] >= scores[order[0]] + opts.beam_prune_logp]
        return stay_pb.tolist(), stay_pnb.tolist(), via.tolist(), order.tolist()

    def _step_scalars(self, beam: _BeamSet, tokens: list[int], frame: np.ndarray,
                      p_blank: float) -> tuple:  # fmt: skip
        opts = self.options
        lps = [frame.item(c) for c in tokens]
        stay_pb, stay_pnb, via = [], [], []
        for node, b, nb in zip(beam.nodes, beam.pb, beam.pnb):
            total = _logaddexp(b, nb)
            last = node.token if node.parent is not None else -1
            stay_pb.append(total + p_blank)
            stay_pnb.append(nb + frame.item(last) if last >= 0 else NEG_INF)
            via.append([(b if c == last else total) + lp for c, lp in zip(tokens, lps)])
        for i, j, token in beam.merges:
            if token in tokens:
                k = tokens.index(token)
                if via[j][k] > NEG_INF:
                    stay_pnb[i] = _logaddexp(stay_pnb[i], via[j][k])
                    via[j][k] = NEG_INF
        scores = []
        for node, b, nb, row in zip(beam.nodes, stay_pb, stay_pnb, via):
            scores.append(_logaddexp(b, nb) + node.lm_score + node.bonus)
            item = node.child_scores.item
            scores.extend([v + item(c) for v, c in zip(row, tokens)])
        # stable: equal scores keep their flat order, as in `_step_arrays`
        order = sorted(range(len(scores)), key=scores.__getitem__, reverse=True)
        order = order[: opts.beam_width]
        floor = scores[order[0]] + opts.beam_prune_logp
        return stay_pb, stay_pnb, via, [f for f in order if scores[f] >= floor]

    def _text(self, node: _Node) -> str:
        return " ".join("".join(self.labels[t] for t in node.tokens()).split())

    def decode_batch(self, logits: torch.Tensor,
                     lengths: torch.Tensor | Sequence[int] | None = None) -> list[list[Beam]]:  # fmt: skip
        """Search each item of a padded batch: logits (B, T, V), lengths (B,)."""
        return [self.decode(x, n) for x, n in zip(logits, _lengths(logits, lengths))]
