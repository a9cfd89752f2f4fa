"""Audio classification and CTC beam search speed: soundformers vs transformers / pyctcdecode.

    .venv/bin/python benchmarks/classification.py [--rounds 3] [--skip-models] [--skip-beam]
    .venv/bin/python benchmarks/classification.py --ctc-only     # the beam search alone

Models: full-size configs with random weights, saved and loaded from disk as a user would:
wav2vec2-base (`Wav2Vec2ForSequenceClassification`, weighted layer sum as in
superb/wav2vec2-base-superb-ks, 12 labels) and AST-base (`ASTForAudioClassification`, 1024
frames, 527 labels). Batches of 1 and 8 clips of 5 s cut from the fixture recording
piper_4min.flac. Both sides include their feature extraction (transformers: the model's
FeatureExtractor, then the model under `torch.inference_mode`).

CTC beam search: a 3-gram ARPA LM built here from the fixture transcripts, emissions generated
from those sentences. Like with like: both decoders get the same log-probabilities, beam width
20, LM weight alpha 0.5, word bonus beta 1.0, unknown-word offset -10, and the same pruning
(tokens below log-prob -5 in a frame are not tried, the frame's best always is:
`token_min_logp`; beams more than 10 below the best are dropped: `beam_prune_logp`), except
that pyctcdecode applies `token_min_logp` to the blank too, while we score the blank in every
frame (more work for us, not less). pyctcdecode (with kenlm) is used when it imports. Two sets:
"hard" emissions (noise, confusable letters, and double letters sometimes without a blank
between them, so that only the LM can restore them) and "clean" ones (every letter peaked, a
blank between repeats), where the two decoders should agree. On the hard set they need not:
pyctcdecode keeps a prefix's blank- and letter-ending halves as separate beams (fewer distinct
prefixes in a beam of 20), scales its unknown-word offset by alpha in log10 units and penalises
long out-of-vocabulary partial words more; the printed agreement and sentence accuracies show
how much that matters. Our beams are also checked to be the same (tokens, order, scores)
whichever way frames are scored: Python floats (the default for beams x tokens up to
`soundformers.ctc.SMALL_STEP`) or arrays.

Each contender runs once to warm up, then `--rounds` times (the two models alternating, so that
load from other processes hits both alike); the best round counts. Prints
seconds, the max-abs difference of the outputs, and rival / ours (> 1: we are faster).
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile
import torch

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "longform"
SR = 16000


def clips(seconds: float, count: int) -> list[np.ndarray]:
    audio, rate = soundfile.read(FIXTURES / "piper_4min.flac", dtype="float32")
    assert rate == SR, rate
    size = int(seconds * SR)
    return [audio[i * size : (i + 1) * size] for i in range(count)]


def interleaved(contenders: list[Callable[[], object]], rounds: int) -> tuple[list, list]:
    """Run each contender once to warm up (keeping its result), then all of them in turn
    `rounds` times, so that load from other processes hits them alike.

    Returns:
        (best seconds of each, first result of each).
    """
    results = [fn() for fn in contenders]
    best = [math.inf] * len(contenders)
    for _ in range(rounds):
        for i, fn in enumerate(contenders):
            start = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - start)
    return best, results


def race(title: str, ours: Callable[[], torch.Tensor], theirs: Callable[[], torch.Tensor],
         rounds: int) -> None:  # fmt: skip
    (t_ours, t_theirs), (y_ours, y_theirs) = interleaved([ours, theirs], rounds)
    diff = (y_ours - y_theirs).abs().max().item()
    print(f"{title:<34} ours {t_ours:7.3f} s   transformers {t_theirs:7.3f} s   "
          f"ratio {t_theirs / t_ours:5.2f}x   max|diff| {diff:.1e}", flush=True)  # fmt: skip


def bench_models(rounds: int) -> None:
    import transformers

    from soundformers.models.ast import from_pretrained as load_ast
    from soundformers.models.wav2vec2 import from_pretrained_classifier

    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        w2v_dir, ast_dir = Path(tmp, "w2v"), Path(tmp, "ast")
        config = transformers.Wav2Vec2Config(use_weighted_layer_sum=True, num_labels=12)
        w2v = transformers.Wav2Vec2ForSequenceClassification(config).eval()
        w2v.save_pretrained(w2v_dir)
        w2v_fe = transformers.Wav2Vec2FeatureExtractor(return_attention_mask=False)
        w2v_fe.save_pretrained(w2v_dir)
        ast = transformers.ASTForAudioClassification(transformers.ASTConfig(num_labels=527)).eval()
        ast.save_pretrained(ast_dir)
        ast_fe = transformers.ASTFeatureExtractor()
        ast_fe.save_pretrained(ast_dir)
        ours_w2v = from_pretrained_classifier(w2v_dir)
        ours_ast = load_ast(ast_dir)

    def theirs(model, fe, audios):
        def run():
            with torch.inference_mode():
                inputs = fe(audios, sampling_rate=SR, return_tensors="pt")
                return model(**inputs).logits

        return run

    print(f"torch threads: {torch.get_num_threads()}; 5 s clips")
    for batch in (1, 8):
        audios = clips(5.0, batch)
        race(f"wav2vec2-base classify, batch {batch}", lambda a=audios: ours_w2v.classify(a),
             theirs(w2v, w2v_fe, audios), rounds)  # fmt: skip
        race(f"AST-base classify, batch {batch}", lambda a=audios: ours_ast.classify(a),
             theirs(ast, ast_fe, audios), rounds)  # fmt: skip


# ------------------------------------------------------------------ CTC beam search + LM

LABELS = ["", " ", *"abcdefghijklmnopqrstuvwxyz'"]


def sentences() -> list[str]:
    text = (FIXTURES / "piper_4min.txt").read_text() + (FIXTURES / "espeak_75s.txt").read_text()
    lines = [
        " ".join("".join(c for c in s.lower() if c in LABELS).split()) for s in text.splitlines()
    ]
    return [s for s in lines if s]


def write_arpa(lines: list[str], path: Path, discount: float = 0.5) -> None:
    """A 3-gram ARPA with absolute discounting and back-off (enough for a benchmark)."""
    counts = [Counter() for _ in range(3)]
    for line in lines:
        words = ["<s>", *line.split(), "</s>"]
        for n in range(1, 4):
            for i in range(len(words) - n + 1):
                counts[n - 1][tuple(words[i : i + n])] += 1
    counts[0][("<unk>",)] = 1
    history_totals = [Counter() for _ in range(3)]
    history_types = [Counter() for _ in range(3)]
    for n in (2, 3):
        for gram, c in counts[n - 1].items():
            history_totals[n - 1][gram[:-1]] += c
            history_types[n - 1][gram[:-1]] += 1
    total = sum(counts[0].values())
    out = ["\\data\\"] + [f"ngram {n}={len(counts[n - 1])}" for n in (1, 2, 3)] + [""]
    for n in (1, 2, 3):
        out.append(f"\\{n}-grams:")
        for gram, c in sorted(counts[n - 1].items()):
            if n == 1:
                p = c / total
            else:
                p = (c - discount) / history_totals[n - 1][gram[:-1]]
            logp = -99.0 if gram == ("<s>",) else math.log10(p)
            line = f"{logp:.6f}\t{' '.join(gram)}"
            if n < 3:
                seen = history_totals[n].get(gram)
                backoff = discount * history_types[n][gram] / seen if seen else 1.0
                line += f"\t{math.log10(backoff):.6f}"
            out.append(line)
        out.append("")
    out.append("\\end\\")
    path.write_text("\n".join(out) + "\n")


def emissions(text: str, rng: np.random.Generator, hard: bool = True) -> np.ndarray:
    """(T, V) log-probs spelling `text`.

    hard: logit noise N(0, 1), 15% of frames with a confusable letter almost as likely, and 0-2
    blanks before each character (so a double letter is sometimes not separated). Clean: noise
    N(0, 0.3), no confusions, 1-2 blanks before each character.
    """
    frames = []
    for ch in text:
        frames += [0] * int(rng.integers(0, 3) if hard else rng.integers(1, 3))
        frames += [LABELS.index(ch)] * int(rng.integers(1, 3))
    frames += [0, 0]
    logits = rng.normal(0, 1.0 if hard else 0.3, (len(frames), len(LABELS)))
    for t, k in enumerate(frames):
        logits[t, k] += 6.0
        if hard and rng.random() < 0.15:  # a confusion: another letter almost as likely
            logits[t, rng.integers(2, len(LABELS))] += 5.5
    logits -= np.log(np.exp(logits).sum(-1, keepdims=True))
    return logits.astype(np.float32)


def same_beams_both_steps(decoder, utterances: list[torch.Tensor]) -> bool:
    """Whether every utterance gets the same beams (tokens, order, scores) with all frames
    scored as arrays as with the default (mostly Python floats)."""
    from soundformers import ctc

    default = [[(b.tokens, b.score) for b in decoder.decode(u)] for u in utterances]
    saved, ctc.SMALL_STEP = ctc.SMALL_STEP, 0
    try:
        arrays = [[(b.tokens, b.score) for b in decoder.decode(u)] for u in utterances]
    finally:
        ctc.SMALL_STEP = saved
    return default == arrays


def bench_beam(rounds: int) -> None:
    from soundformers.ctc import BeamSearchDecoder, BeamSearchOptions, greedy_decode
    from soundformers.text.arpa import ArpaLM

    lines = sentences()
    rng = np.random.default_rng(0)
    sets = {"hard": [emissions(s, rng) for s in lines],
            "clean": [emissions(s, rng, hard=False) for s in lines]}  # fmt: skip
    width, prune, token_min = 20, -10.0, -5.0
    with tempfile.TemporaryDirectory() as tmp:
        arpa = Path(tmp, "3gram.arpa")
        write_arpa(lines, arpa)
        lm = ArpaLM.from_file(arpa)
        options = BeamSearchOptions(beam_width=width, alpha=0.5, beta=1.0, unk_score_offset=-10.0,
                                    beam_prune_logp=prune, token_min_logp=token_min)  # fmt: skip
        ours = BeamSearchDecoder(LABELS, lm, options)
        try:
            import kenlm  # noqa: F401
            from pyctcdecode import build_ctcdecoder

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                theirs = build_ctcdecoder(LABELS, kenlm_model_path=str(arpa), alpha=0.5, beta=1.0,
                                          unk_score_offset=-10.0)  # fmt: skip
        except ImportError as e:
            print(f"\npyctcdecode/kenlm not importable here ({e}); no rival run")
            theirs = None
        print(f"\nCTC beam search, 3-gram LM ({arpa.stat().st_size // 1024} kB ARPA), beam "
              f"{width}, token_min_logp {token_min}, beam_prune_logp {prune} on both sides")  # fmt: skip
        for name, utterances in sets.items():
            frames = sum(len(u) for u in utterances)
            tensors = [torch.from_numpy(u) for u in utterances]
            contenders = [lambda ts=tensors: [ours.decode(u)[0].text for u in ts]]
            if theirs is not None:
                contenders.append(
                    lambda us=utterances: [
                        theirs.decode(u, beam_width=width, beam_prune_logp=prune,
                                      token_min_logp=token_min)
                        for u in us
                    ]
                )  # fmt: skip
            times, outputs = interleaved(contenders, rounds)
            texts = outputs[0]
            steps_agree = same_beams_both_steps(ours, tensors)
            greedy = [
                " ".join("".join(LABELS[t] for t in p.tokens).split())
                for p in (greedy_decode(u)[0] for u in tensors)
            ]
            accuracy = np.mean([t == s for t, s in zip(texts, lines)])
            print(f"{name}: {len(utterances)} utterances, {frames} frames; sentence accuracy "
                  f"greedy {np.mean([g == s for g, s in zip(greedy, lines)]):.2f}, "
                  f"ours {accuracy:.2f}")  # fmt: skip
            print(f"  ours          {times[0]:7.3f} s   ({frames / times[0]:,.0f} frames/s); "
                  f"same beams with array-scored frames: {steps_agree}")  # fmt: skip
            if theirs is not None:
                their_texts = outputs[1]
                agree = np.mean([a == b for a, b in zip(texts, their_texts)])
                print(f"  pyctcdecode   {times[1]:7.3f} s   ratio {times[1] / times[0]:5.2f}x   "
                      f"same top text {agree:.2f}; their sentence accuracy "
                      f"{np.mean([t == s for t, s in zip(their_texts, lines)]):.2f}", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-models", action="store_true")
    parser.add_argument("--skip-beam", action="store_true")
    parser.add_argument("--ctc-only", action="store_true", help="only the CTC beam search")
    args = parser.parse_args()
    if not (args.skip_models or args.ctc_only):
        bench_models(args.rounds)
    if not args.skip_beam:
        bench_beam(args.rounds)


if __name__ == "__main__":
    main()
