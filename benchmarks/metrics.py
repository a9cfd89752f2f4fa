"""WER/CER speed: soundformers.metrics vs jiwer, on the same corpus, in one run.

    .venv/bin/python benchmarks/metrics.py [--pairs 100000] [--rounds 2] [--seed 0]

The corpus: `--pairs` (reference, hypothesis) sentence pairs, seeded. References are 5-30 words
drawn with Zipf frequencies from a vocabulary of 20 000 pseudo-words (1-4 syllables); each
hypothesis edits its reference at a rate drawn in [10 %, 20 %] per sentence (half substitutions,
a quarter deletions, a quarter insertions).

Timed, corpus level, same inputs: `wer` vs `jiwer.wer`, `process_words` (counts only, then with
the alignments built) vs `jiwer.process_words`, `cer` vs `jiwer.cer`, `process_chars` vs
`jiwer.process_characters`. Then two other regimes: one pair per call (the first 2000 pairs, one
call each), and one long document (the first 200 pairs joined into one string, as when scoring a
long-form transcript).

Ours runs twice: with numpy only (a default install: rapidfuzz hidden), and with rapidfuzz, which
soundformers uses where it is faster when installed (jiwer needs it, so it is here). Results must
equal jiwer's (1e-12; counts and alignments exactly) or the script fails; that check is also the
warm-up. Then each contender runs `--rounds` times and the best round counts (least disturbed by
other load on the machine). Prints seconds and the ratios jiwer / ours (> 1: we are faster).
"""

from __future__ import annotations

import argparse
import gc
import random
import time
import warnings
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from unittest import mock

import jiwer

from soundformers import metrics
from soundformers.metrics import _levenshtein


def make_corpus(pairs: int, seed: int) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    onsets = [
        "",
        "b",
        "c",
        "d",
        "f",
        "g",
        "h",
        "k",
        "l",
        "m",
        "n",
        "p",
        "r",
        "s",
        "t",
        "w",
        "th",
        "st",
    ]
    vowels = ["a", "e", "i", "o", "u", "ea", "ou", "ai"]
    codas = ["", "", "n", "r", "s", "t", "ng", "ck"]
    vocabulary = sorted(
        {
            "".join(
                rng.choice(onsets) + rng.choice(vowels) + rng.choice(codas)
                for _ in range(rng.choice([1, 1, 2, 2, 2, 3, 4]))
            )
            for _ in range(25_000)
        }
    )[:20_000]
    rng.shuffle(vocabulary)
    weights = [1.0 / rank for rank in range(1, len(vocabulary) + 1)]  # Zipf
    draws = iter(rng.choices(vocabulary, weights, k=pairs * 40))

    references, hypotheses = [], []
    for _ in range(pairs):
        reference = [next(draws) for _ in range(rng.randint(5, 30))]
        rate = rng.uniform(0.10, 0.20)
        hypothesis = []
        for word in reference:
            u = rng.random()
            if u >= rate:
                hypothesis.append(word)
            elif u < rate / 2:
                hypothesis.append(next(draws))  # substitution
            elif u < 3 * rate / 4:
                hypothesis += [word, next(draws)]  # insertion
            # else: deletion
        references.append(" ".join(reference))
        hypotheses.append(" ".join(hypothesis))
    return references, hypotheses


def best_time(fn: Callable[[], object], rounds: int) -> float:
    """Best of `rounds` timed calls (the correctness check before it is the warm-up). Results are
    dropped at once, so that every contender runs with the same live objects: a big result left
    alive slows the garbage collector for whoever runs next."""
    gc.collect()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
        gc.collect()
    return min(times)


def counts(result) -> tuple[int, int, int, int]:
    return result.hits, result.substitutions, result.deletions, result.insertions


def chunks(result, ours: bool) -> list[list[tuple]]:
    if ours:
        return [[tuple(chunk) for chunk in pair] for pair in result.alignments]
    return [
        [(c.type, c.ref_start_idx, c.ref_end_idx, c.hyp_start_idx, c.hyp_end_idx) for c in pair]
        for pair in result.alignments
    ]


@contextmanager
def numpy_only():
    """soundformers as installed without rapidfuzz (jiwer needs it, so it is installed here)."""
    with mock.patch.object(_levenshtein, "_rapidfuzz_levenshtein", lambda: None):
        yield


def same(ours, theirs) -> bool:
    if isinstance(ours, float):
        return abs(ours - theirs) <= 1e-12
    if isinstance(ours, list):  # one WER per pair
        return len(ours) == len(theirs) and all(map(same, ours, theirs))
    return counts(ours) == counts(theirs) and chunks(ours, True) == chunks(theirs, False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    refs, hyps = make_corpus(args.pairs, args.seed)
    few = list(zip(refs[:2000], hyps[:2000]))
    document = " ".join(refs[:200]), " ".join(hyps[:200])
    n_words = sum(len(r.split()) for r in refs)
    print(f"corpus: {args.pairs} pairs, {n_words} reference words; best of {args.rounds} rounds")
    print(
        f"{'seconds':36s} {'numpy only':>10s} {'+rapidfuzz':>10s} {'jiwer':>8s}"
        f" {'jiwer/numpy':>12s} {'jiwer/+rf':>10s}"
    )
    words = lambda: metrics.process_words(refs, hyps)  # noqa: E731
    chars = lambda: metrics.process_chars(refs, hyps)  # noqa: E731
    jiwer_words = lambda: jiwer.process_words(refs, hyps)  # noqa: E731
    jiwer_chars = lambda: jiwer.process_characters(refs, hyps)  # noqa: E731
    # (title, ours, jiwer, ours as compared with jiwer's result, time numpy alone too)
    cases = [
        ("wer", lambda: metrics.wer(refs, hyps), lambda: jiwer.wer(refs, hyps), None, True),
        ("process_words, counts", words, jiwer_words, None, True),
        ("process_words, + alignments", lambda: words().alignments, jiwer_words, words, True),
        ("cer", lambda: metrics.cer(refs, hyps), lambda: jiwer.cer(refs, hyps), None, True),
        ("process_chars, + alignments", lambda: chars().alignments, jiwer_chars, chars, True),
        (
            "wer, 2000 calls of one pair",
            lambda: [metrics.wer(r, h) for r, h in few],
            lambda: [jiwer.wer(r, h) for r, h in few],
            None,
            True,
        ),
        (
            f"wer, one {len(document[0])}-char document",
            lambda: metrics.wer(*document),
            lambda: jiwer.wer(*document),
            None,
            True,
        ),
        (
            f"cer, one {len(document[0])}-char document",
            lambda: metrics.cer(*document),
            lambda: jiwer.cer(*document),
            None,
            True,
        ),
    ]
    jiwer_times: dict[int, float] = {}  # the same jiwer call serves two rows
    for title, ours_fn, jiwer_fn, compared_fn, time_numpy in cases:
        expected = jiwer_fn()
        for engine in ([numpy_only] if time_numpy else []) + [nullcontext]:
            with engine(), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # "install rapidfuzz"
                if not same((compared_fn or ours_fn)(), expected):
                    raise SystemExit(f"{title}: results differ from jiwer's")
        del expected
        numpy_time = float("nan")
        if time_numpy:
            with numpy_only(), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                numpy_time = best_time(ours_fn, args.rounds)
        rapidfuzz_time = best_time(ours_fn, args.rounds)
        if id(jiwer_fn) not in jiwer_times:
            jiwer_times[id(jiwer_fn)] = best_time(jiwer_fn, args.rounds)
        jiwer_time = jiwer_times[id(jiwer_fn)]
        print(
            f"{title:36s} {numpy_time:10.3f} {rapidfuzz_time:10.3f} {jiwer_time:8.3f}"
            f" {jiwer_time / numpy_time:11.1f}x {jiwer_time / rapidfuzz_time:9.1f}x"
        )


if __name__ == "__main__":
    main()
