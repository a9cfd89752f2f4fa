"""CTC decoding, alignment and loss on hand-built emissions with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from soundformers.ctc import (
    BeamSearchDecoder,
    BeamSearchOptions,
    CTCPath,
    ctc_loss,
    forced_align,
    greedy_decode,
    word_spans,
)
from soundformers.text.arpa import ArpaLM

LABELS = ["", " ", "a", "c", "d", "e", "h", "t", "<unk>"]
ID = {t: i for i, t in enumerate(LABELS)}


def emissions(frames: str, peak: float = 0.9) -> torch.Tensor:
    """(T, V) log-probs where each frame puts `peak` on its character ("_" = blank, "|" = space)."""
    rest = (1 - peak) / (len(LABELS) - 1)
    out = torch.full((len(frames), len(LABELS)), rest)
    for t, ch in enumerate(frames):
        out[t, ID[{"_": "", "|": " "}.get(ch, ch)]] = peak
    return out.log()


def test_greedy_merges_repeats_keeps_blank_separated_ones_and_gives_spans():
    (path,) = greedy_decode(emissions("aa_acc__d|"))
    ids = [ID[c] for c in "aacd "]
    assert path == CTCPath(tuple(ids), (0, 3, 4, 8, 9), (2, 4, 6, 9, 10))


def test_greedy_batch_respects_lengths():
    x = torch.stack([emissions("ta_t"), emissions("ha_e")])
    paths = greedy_decode(x, lengths=[4, 2])
    assert paths[0].tokens == (ID["t"], ID["a"], ID["t"])
    assert paths[1].tokens == (ID["h"], ID["a"])


def test_word_spans_group_characters_at_the_delimiter():
    (path,) = greedy_decode(emissions("_th__e|||cat_"))
    words = word_spans(path, LABELS)
    assert [(w.word, w.start, w.end) for w in words] == [("the", 1, 6), ("cat", 9, 12)]


def test_forced_alignment_recovers_known_boundaries_in_a_batch():
    # true segmentation: "the" then "cat", with blanks; emissions are noisy but centred on it
    frames_a = "__tt_hhee__|ccc_aat__"
    frames_b = "_a__a_c"  # repeated "a" must be split by a blank
    g = torch.Generator().manual_seed(0)
    a = emissions(frames_a, peak=0.6) + 0.3 * torch.randn(len(frames_a), len(LABELS), generator=g)
    b = emissions(frames_b, peak=0.6)
    batch = torch.full((2, len(frames_a), len(LABELS)), -5.0)
    batch[0], batch[1, : len(frames_b)] = a, b
    targets = [[ID[c] for c in "the cat"], [ID[c] for c in "aac"]]
    pa, pb = forced_align(batch.log_softmax(-1), targets, input_lengths=[len(frames_a), 7])
    assert list(zip(pa.starts, pa.ends)) == [
        (2, 4),
        (5, 7),
        (7, 9),
        (11, 12),
        (12, 15),
        (16, 18),
        (18, 19),
    ]
    assert list(zip(pb.starts, pb.ends)) == [(1, 2), (4, 5), (6, 7)]


def test_forced_alignment_of_the_greedy_text_is_the_greedy_path():
    x = torch.randn(40, len(LABELS), generator=torch.Generator().manual_seed(3)) * 3
    (greedy,) = greedy_decode(x)
    (aligned,) = forced_align(x.log_softmax(-1)[None], [list(greedy.tokens)])
    assert aligned == greedy


def test_forced_alignment_needs_enough_frames():
    with pytest.raises(ValueError, match="needs at least 3 frames"):
        forced_align(emissions("aa")[None], [[ID["a"], ID["a"]]])


def test_ctc_loss_matches_torch_with_padded_targets():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 12, len(LABELS), generator=g)
    targets = torch.tensor([[2, 3, 4], [5, 6, -100]])
    lengths = torch.tensor([12, 9])
    lp = logits.log_softmax(-1)
    each = [
        torch.nn.functional.ctc_loss(
            lp[i, : lengths[i]], targets[i, :n], [int(lengths[i])], [n], reduction="sum"
        )  # fmt: skip
        for i, n in enumerate((3, 2))
    ]
    got = ctc_loss(logits, targets, lengths, reduction="none")
    torch.testing.assert_close(got, torch.stack(each))
    logits.requires_grad_(True)
    ctc_loss(logits, targets, lengths).backward()
    assert torch.isfinite(logits.grad).all()


# ------------------------------------------------------------------ beam search


def two_way(frames: int, p_blank: float, p_a: float) -> torch.Tensor:
    x = torch.full((frames, len(LABELS)), 1e-6)
    x[:, ID[""]] = p_blank
    x[:, ID["a"]] = p_a
    return x.log()


def test_beam_sums_paths_where_greedy_picks_the_best_single_path():
    x = two_way(2, p_blank=0.6, p_a=0.4)  # "" = 0.36, "a" = 0.16 + 0.24 + 0.24 = 0.64
    assert greedy_decode(x)[0].tokens == ()
    best = BeamSearchDecoder(LABELS).decode(x)[0]
    assert best.text == "a" and best.tokens == (ID["a"],)
    assert math.isclose(best.acoustic_score, math.log(0.64), abs_tol=1e-4)


def test_beam_keeps_repeats_separated_by_blank():
    beams = BeamSearchDecoder(LABELS).decode(emissions("a_a|t"))
    assert beams[0].text == "aa t"


ARPA = """
\\data\\
ngram 1=7
ngram 2=4

\\1-grams:
-1.0 <s> -0.5
-1.0 </s>
-2.0 <unk>
-1.2 the -0.3
-1.5 cat -0.2
-3.0 cad
-2.5 hat

\\2-grams:
-0.1 <s> the
-0.2 the cat
-0.3 cat </s>
-2.0 the cad

\\end\\
"""


@pytest.fixture(scope="module")
def lm() -> ArpaLM:
    return ArpaLM.from_lines(ARPA.splitlines())


def test_arpa_backoff(lm):
    assert lm.order == 2
    assert lm.log10_prob(("the",), "cat") == pytest.approx(-0.2)
    assert lm.log10_prob(("cat",), "the") == pytest.approx(-0.2 - 1.2)  # backoff(cat) + p(the)
    assert lm.log10_prob(("hat",), "cat") == pytest.approx(-1.5)  # no backoff listed: 0
    assert lm.log10_prob(("the",), "dog") == pytest.approx(-0.3 - 2.0)  # -> <unk>
    assert lm.sentence_log10_prob(["the", "cat"]) == pytest.approx(-0.1 - 0.2 - 0.3)


def test_arpa_header_counts_are_checked():
    from soundformers.text.arpa import ArpaError

    with pytest.raises(ArpaError, match="announces 8 1-grams"):
        ArpaLM.from_lines(ARPA.replace("ngram 1=7", "ngram 1=8").splitlines())


def ambiguous_cat() -> torch.Tensor:
    """ "the ca?" with the last letter a bit more "d" than "t"."""
    x = emissions("the|ca_")
    last = torch.full((len(LABELS),), 0.01)
    last[ID["d"]], last[ID["t"]] = 0.5, 0.42
    return torch.cat([x, last.log()[None], emissions("_")])


def test_an_lm_flips_the_decision(lm):
    x = ambiguous_cat()
    assert BeamSearchDecoder(LABELS).decode(x)[0].text == "the cad"
    with_lm = BeamSearchDecoder(LABELS, lm, BeamSearchOptions(alpha=0.5, beta=1.0))
    assert with_lm.decode(x)[0].text == "the cat"
    no_weight = BeamSearchDecoder(LABELS, lm, BeamSearchOptions(alpha=0.0, beta=0.0))
    assert no_weight.decode(x)[0].text == "the cad"


def test_hotwords_flip_the_decision():
    x = ambiguous_cat()
    boosted = BeamSearchDecoder(LABELS, options=BeamSearchOptions(hotwords=("cat",)))
    assert boosted.decode(x)[0].text == "the cat"


def test_decode_batch_and_pruning_options():
    x = torch.stack([emissions("th_e"), emissions("ca_t")])
    out = BeamSearchDecoder(LABELS, options=BeamSearchOptions(beam_width=3)).decode_batch(x, [4, 3])
    assert [b[0].text for b in out] == ["the", "ca"]
    assert all(len(b) <= 3 for b in out)
    with pytest.raises(ValueError, match="beam_width"):
        BeamSearchOptions(beam_width=0)


def test_beam_equals_greedy_on_peaked_random_emissions():
    g = torch.Generator().manual_seed(5)
    x = (torch.randn(60, len(LABELS), generator=g) * 8).log_softmax(-1)
    x[:, ID["<unk>"]] = -30
    greedy = greedy_decode(x)[0]
    beam = BeamSearchDecoder(LABELS, options=BeamSearchOptions(beam_width=8)).decode(x)[0]
    assert beam.tokens == greedy.tokens
    assert np.isfinite(beam.score)


def exhaustive_prefix_scores(log_probs: torch.Tensor, blank: int = 0) -> dict[tuple, float]:
    """log P(collapsed tokens) summed over every path: the exact answer a wide beam must give."""
    import itertools

    lp = log_probs.double()
    T, V = lp.shape
    totals: dict[tuple, float] = {}
    for path in itertools.product(range(V), repeat=T):
        collapsed = tuple(
            k for i, k in enumerate(path) if k != blank and (i == 0 or path[i - 1] != k)
        )
        score = float(sum(lp[t, k] for t, k in enumerate(path)))
        totals[collapsed] = float(np.logaddexp(totals.get(collapsed, -np.inf), score))
    return totals


@pytest.mark.parametrize("prune", [-1e9, float("-inf")])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_wide_beam_equals_the_exhaustive_sum_over_paths(seed, prune):
    """With no pruning, every prefix's score is the exact sum over its paths: checks the blank /
    repeat bookkeeping and the merging of an extension into a beam that holds the same prefix.
    Impossible candidates (probability 0, e.g. an extension merged into another beam) are never
    kept, even with an infinite `beam_prune_logp`."""
    labels = ["", "a", "b", " "]
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(6, len(labels), generator=g) * 1.5).log_softmax(-1)
    exact = exhaustive_prefix_scores(x)
    options = BeamSearchOptions(beam_width=10_000, beam_prune_logp=prune, token_min_logp=-1e9)
    beams = BeamSearchDecoder(labels, options=options).decode(x)
    assert len(beams) == len(exact)
    for beam in beams:
        assert beam.acoustic_score == pytest.approx(exact[beam.tokens], abs=1e-6)
    assert beams[0].tokens == max(exact, key=exact.get)


def test_scalar_and_array_frame_steps_agree(lm, monkeypatch):
    """Frames are scored with Python floats when beams x tokens is small, with arrays otherwise:
    forcing either path for every frame gives the same beams."""
    import soundformers.ctc as ctc

    g = torch.Generator().manual_seed(3)
    x = (torch.randn(40, len(LABELS), generator=g) * 2.5).log_softmax(-1)
    options = BeamSearchOptions(beam_width=6, alpha=0.5, beta=1.0, hotwords=("cat",))
    results = []
    for threshold in (0, 10**9):
        monkeypatch.setattr(ctc, "SMALL_STEP", threshold)
        beams = BeamSearchDecoder(LABELS, lm, options).decode(x)
        results.append([(b.tokens, b.score) for b in beams])
    assert [t for t, _ in results[0]] == [t for t, _ in results[1]]
    np.testing.assert_allclose([s for _, s in results[0]], [s for _, s in results[1]], rtol=1e-12)
    assert len(results[0]) == 6


def reference_beam_search(
    log_probs: torch.Tensor, labels: list[str], lm: ArpaLM | None, opts: BeamSearchOptions
) -> list[tuple[tuple[int, ...], float]]:
    """Prefix beam search written plainly, frame by frame, prefixes as token tuples: what the
    decoder's fast path must reproduce. Returns (tokens, total score) best first."""
    lp = log_probs.double().log_softmax(-1).numpy()
    blank, neg_inf = labels.index(""), float("-inf")
    lp[:, [i for i, t in enumerate(labels) if t.startswith("<")]] = neg_inf  # never emitted
    hotwords = {w.lower() for h in opts.hotwords for w in h.split()}
    prefixes = {w[:i] for w in lm.vocabulary for i in range(1, len(w) + 1)} if lm else None

    def word_bonus(word):  # a partial word: hotword fraction, penalty if no LM word starts so
        if not word:
            return 0.0
        hot = [len(word) / len(h) for h in hotwords if h.startswith(word.lower())]
        bonus = opts.hotword_weight * max(hot, default=0.0)
        return bonus + (opts.unk_score_offset if prefixes and word not in prefixes else 0.0)

    def lm_part(prefix, final=False):  # LM + bonuses of the prefix's text
        state = lm.begin_state() if lm and opts.score_boundary else ()
        *words, partial = "".join(labels[t] for t in prefix).split(" ")
        score = 0.0
        for word in [*words, partial] if final else words:
            if not word:
                continue
            score += opts.hotword_weight if word.lower() in hotwords else 0.0
            if lm is not None:
                log10p, state = lm.score(state, word)
                score += opts.alpha * log10p * math.log(10) + opts.beta
                score += opts.unk_score_offset if word not in lm.vocabulary else 0.0
        if final:
            if lm is not None and opts.score_boundary:
                score += opts.alpha * lm.score(state, "</s>")[0] * math.log(10)
            return score
        return score + word_bonus(partial)

    add = np.logaddexp
    beams = {(): (0.0, neg_inf)}  # prefix -> (pb, pnb), best first
    for frame in lp:
        tried = [c for c in range(len(labels)) if c != blank and
                 (frame[c] >= opts.token_min_logp or c == frame.argmax())]  # fmt: skip
        stays = {}
        for prefix, (pb, pnb) in beams.items():
            last = prefix[-1] if prefix else None
            stays[prefix] = [add(pb, pnb) + frame[blank],
                             pnb + frame[last] if last in tried else neg_inf]  # fmt: skip
        extensions = {}  # beam -> [(new prefix, its pnb)]
        for prefix, (pb, pnb) in beams.items():
            extensions[prefix] = []
            for c in tried:
                v = (pb if prefix and c == prefix[-1] else add(pb, pnb)) + frame[c]
                if prefix + (c,) in stays:  # a beam already: merge
                    stays[prefix + (c,)][1] = add(stays[prefix + (c,)][1], v)
                else:
                    extensions[prefix].append((prefix + (c,), v))
        cands = []  # (score, prefix, (pb, pnb)): beam by beam, staying before extensions
        for prefix in beams:
            pb, pnb = stays[prefix]
            cands.append((add(pb, pnb) + lm_part(prefix), prefix, (pb, pnb)))
            cands += [(v + lm_part(new), new, (neg_inf, v)) for new, v in extensions[prefix]]
        cands.sort(key=lambda c: c[0], reverse=True)
        floor = cands[0][0] + opts.beam_prune_logp
        beams = {p: s for score, p, s in cands[: opts.beam_width] if score >= floor > neg_inf}
    ranked = [(p, add(*s) + lm_part(p, final=True)) for p, s in beams.items()]
    return sorted(ranked, key=lambda r: r[1], reverse=True)


def spoken(text: str, rng: np.random.Generator) -> torch.Tensor:
    """(T, V) noisy logits spelling `text`: 0-2 blank frames before each character, 15% of the
    frames with a second letter almost as likely."""
    frames = []
    for ch in text:
        frames += [ID[""]] * int(rng.integers(0, 3)) + [ID[ch]] * int(rng.integers(1, 3))
    x = rng.normal(0, 1.0, (len(frames) + 1, len(LABELS)))
    for t, k in enumerate([*frames, ID[""]]):
        x[t, k] += 6.0
        if rng.random() < 0.15:
            x[t, rng.integers(2, len(LABELS) - 1)] += 5.5
    return torch.from_numpy(x).float()


@pytest.mark.parametrize("small_step", [0, 10**9])
@pytest.mark.parametrize("seed", range(6))
def test_beam_search_equals_a_plain_reference(lm, monkeypatch, small_step, seed):
    """Beams, their order and scores equal a frame-by-frame search over token tuples, with an
    LM and hotwords, in both the Python-float and the array frame step."""
    import soundformers.ctc as ctc

    monkeypatch.setattr(ctc, "SMALL_STEP", small_step)
    rng = np.random.default_rng(seed)
    x = spoken(" ".join(rng.choice(["the", "cat", "cad", "hat", "ca"], size=3)), rng)
    options = BeamSearchOptions(beam_width=[3, 8, 30][seed % 3], alpha=0.5, beta=1.0,
                                hotwords=("hat",) if seed % 2 else (), token_min_logp=-6.0,
                                score_boundary=seed != 4)  # fmt: skip
    got = BeamSearchDecoder(LABELS, lm, options).decode(x)
    want = reference_beam_search(x, LABELS, lm, options)
    assert [b.tokens for b in got] == [tokens for tokens, _ in want]
    np.testing.assert_allclose([b.score for b in got], [s for _, s in want], rtol=1e-9)
