"""Text-to-speech speed, raced against the peers in one run.

1. The bundled Piper voice (en_US-joe-medium): our VITS vs onnxruntime running the same .onnx
   on the same phoneme ids, one sentence per call as Piper does (goal: ratio >= 1).
2. A random full-size MMS-TTS model (transformers' VitsConfig defaults are the
   facebook/mms-tts-eng sizes): ours vs transformers' VitsModel on the same weights and the same
   symbol ids, noise scales at 0 so both compute the same waveform (goal: ratio >= 1.5).

    .venv/bin/python benchmarks/tts.py [--sentences 20] [--mms-sentences 8] [--repeats 3]
                                       [--threads N] [--skip-piper] [--skip-mms]

Engines run one after the other (see `race` for why not interleaved), and each sentence
counts its fastest of `--repeats` runs. For Piper, a first line times each sentence length once
(`first_calls`): the cost of new text, which best-of-repeats hides. Prints the real-time
factor (compute seconds / audio seconds; wall clock and process CPU time) of each engine and
the speed ratio (their RTF / ours).
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "speech" / "metadata.csv"


def race(
    engines: dict[str, Callable[[int], int]], n_items: int, repeats: int, sampling_rate: int
) -> dict[str, tuple[float, float]]:
    """Run every engine on items 0..n_items-1, one engine after the other; best of `repeats`
    per item.

    Not interleaved call by call: onnxruntime's thread pool spins for a while after each run
    and PyTorch's OpenMP threads do too, so with two threads on two cores whichever engine
    runs right after the other loses its second core (ours measured 0.61x interleaved, 0.81x
    in blocks, 1.0x interleaved with onnxruntime's spinning turned off).

    Args:
        engines: name -> run(item index) returning the number of audio samples made.
        n_items: items to synthesize.
        repeats: runs per item and engine (the fastest counts).
        sampling_rate: of the audio, to turn samples into seconds.

    Returns:
        name -> (wall-clock RTF, CPU-time RTF).
    """
    for run in engines.values():
        run(0)  # warm up
    wall = {name: 0.0 for name in engines}
    cpu = {name: 0.0 for name in engines}
    samples = {name: 0 for name in engines}
    for name, run in engines.items():
        for item in range(n_items):
            best_wall = best_cpu = float("inf")
            for _ in range(repeats):
                start, start_cpu = time.perf_counter(), time.process_time()
                n = run(item)
                best_wall = min(best_wall, time.perf_counter() - start)
                best_cpu = min(best_cpu, time.process_time() - start_cpu)
            wall[name] += best_wall
            cpu[name] += best_cpu
            samples[name] += n
    out = {}
    for name in engines:
        seconds = samples[name] / sampling_rate
        out[name] = (wall[name] / seconds, cpu[name] / seconds)
        print(f"{name:>14}: {wall[name]:6.2f} s wall, {cpu[name]:6.2f} s CPU for {seconds:6.1f} s "
              f"of audio: RTF {out[name][0]:.3f} (CPU {out[name][1]:.3f})")  # fmt: skip
    return out


def first_calls(engines: dict[str, Callable[[int], int]], items: Sequence[int], warm_up: int,
                sampling_rate: int) -> None:  # fmt: skip
    """Each engine on `items` once (sentences of lengths it has not seen), after one warm-up
    call on the `warm_up` item (of another length): what a user pays for new text, where oneDNN
    sets up convolutions for each new input shape. Prints the RTFs and their ratio."""
    rtf = {}
    for name, run in engines.items():
        run(warm_up)
        start, samples = time.perf_counter(), 0
        for item in items:
            samples += run(item)
        rtf[name] = (time.perf_counter() - start) / (samples / sampling_rate)
    (peer, theirs), (ours, mine) = rtf.items()
    print(f"first call at a new length, {len(items)} sentences once each: {peer} RTF {theirs:.3f}, "
          f"{ours} RTF {mine:.3f}; speed ratio {theirs / mine:.2f}x wall")  # fmt: skip


def print_ratio(results: dict[str, tuple[float, float]], peer: str, ours: str) -> None:
    wall = results[peer][0] / results[ours][0]
    cpu = results[peer][1] / results[ours][1]
    print(f"speed ratio ({peer} RTF / ours): {wall:.2f}x wall, {cpu:.2f}x CPU")


def bench_piper(texts: Sequence[str], repeats: int, threads: int | None) -> None:
    import onnxruntime as ort

    from soundformers.hub import resolve_model
    from soundformers.models.vits import SynthesisOptions, load_piper

    path = resolve_model("en_US-joe-medium").weights[0]
    voice = load_piper(path)
    sentences = [voice.split(t)[0] for t in texts]
    options = SynthesisOptions(noise_scale=0.667, length_scale=1.0, noise_w=0.0)
    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])

    def run_ort(item: int) -> int:
        ids = sentences[item]
        out = session.run(None, {
            "input": np.array([ids], np.int64),
            "input_lengths": np.array([len(ids)], np.int64),
            "scales": np.array([0.667, 1.0, 0.0], np.float32),
        })[0]  # fmt: skip
        return out.size

    def run_ours(item: int) -> int:
        return len(voice.synthesize([sentences[item]], options=options)[0])

    print(f"Piper en_US-joe-medium, {len(sentences)} sentences, one per call")
    # first, before any engine has seen these lengths: one sentence per length, a warm-up
    # sentence of another length (two sentences joined)
    by_length = {len(ids): item for item, ids in reversed(list(enumerate(sentences)))}
    sentences.append(sentences[0] + sentences[1])
    assert len(sentences[-1]) not in by_length
    first_calls({"onnxruntime": run_ort, "soundformers": run_ours}, sorted(by_length.values()),
                len(sentences) - 1, voice.sampling_rate)  # fmt: skip
    sentences.pop()
    results = race({"onnxruntime": run_ort, "soundformers": run_ours}, len(sentences), repeats,
                   voice.sampling_rate)  # fmt: skip
    print_ratio(results, "onnxruntime", "soundformers")
    # what the pipeline does with a long text: all sentences in one call, batched by length
    best_wall = best_cpu = float("inf")
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        samples = sum(len(a) for a in voice.synthesize(sentences, options=options))
        best_wall = min(best_wall, time.perf_counter() - start)
        best_cpu = min(best_cpu, time.process_time() - start_cpu)
    seconds = samples / voice.sampling_rate
    print(f"  soundformers, all {len(sentences)} sentences in one call (batches of similar "
          f"length): RTF {best_wall / seconds:.3f} (CPU {best_cpu / seconds:.3f})")  # fmt: skip


def bench_mms(texts: Sequence[str], repeats: int) -> None:
    import transformers

    from soundformers.models.vits import SynthesisOptions, from_pretrained

    vocab = {c: i for i, c in enumerate("_abcdefghijklmnopqrstuvwxyz '.,!?-")}
    # transformers' defaults are facebook/mms-tts-eng's sizes; noise at 0 makes the two
    # computations identical; slower speech (2x) gives real-speech-like frame counts, since
    # random duration predictors give about one frame per symbol
    config = transformers.VitsConfig(vocab_size=len(vocab), noise_scale=0.0,
                                     noise_scale_duration=0.0, speaking_rate=0.5)  # fmt: skip
    torch.manual_seed(0)
    reference = transformers.VitsModel(config).eval()
    with tempfile.TemporaryDirectory() as folder:
        reference.save_pretrained(folder)
        (Path(folder) / "vocab.json").write_text(json.dumps(vocab))
        (Path(folder) / "tokenizer_config.json").write_text(
            json.dumps({"add_blank": True, "normalize": True})
        )
        voice = from_pretrained(folder)
    sentences = [voice.split(t)[0] for t in texts]
    options = SynthesisOptions(noise_scale=0.0, noise_w=0.0, length_scale=2.0)

    @torch.inference_mode()
    def run_transformers(item: int) -> int:
        return reference(torch.tensor([sentences[item]])).waveform.shape[-1]

    def run_ours(item: int) -> int:
        return len(voice.synthesize([sentences[item]], options=options)[0])

    with torch.inference_mode():
        ref = reference(torch.tensor([sentences[0]])).waveform[0].numpy()
    [ours] = voice.synthesize([sentences[0]], options=options)
    diff = float(np.abs(ours - ref).max()) if ours.shape == ref.shape else float("nan")
    print(f"\nrandom MMS-TTS (transformers VitsConfig defaults), {len(sentences)} sentences; "
          f"max |ours - transformers| on the first: {diff:.1e}")  # fmt: skip
    # new lengths first (sentence 0 was just run by both): a warm-up of two sentences joined
    by_length = {len(ids): item for item, ids in reversed(list(enumerate(sentences))) if item}
    sentences.append(sentences[0] + sentences[1])
    first_calls({"transformers": run_transformers, "soundformers": run_ours},
                sorted(by_length.values()), len(sentences) - 1, voice.sampling_rate)  # fmt: skip
    sentences.pop()
    results = race({"transformers": run_transformers, "soundformers": run_ours}, len(sentences),
                   repeats, voice.sampling_rate)  # fmt: skip
    print_ratio(results, "transformers", "soundformers")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--sentences", type=int, default=20)
    parser.add_argument("--mms-sentences", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--skip-piper", action="store_true")
    parser.add_argument("--skip-mms", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch threads: {torch.get_num_threads()}")
    texts = [r["transcription"] for r in csv.DictReader(FIXTURES.open(encoding="utf-8"))]
    if not args.skip_piper:
        bench_piper(texts[: args.sentences], args.repeats, args.threads)
    if not args.skip_mms:
        bench_mms(texts[: args.mms_sentences], args.repeats)


if __name__ == "__main__":
    main()
