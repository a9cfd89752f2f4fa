"""Text-to-speech speed, raced against the peers in one run.

1. The bundled Piper voice (en_US-joe-medium): our VITS vs onnxruntime running the same .onnx
   on the same phoneme ids, one sentence per call as Piper does (goal: ratio >= 1).
2. A random full-size MMS-TTS model (transformers' VitsConfig defaults are the
   facebook/mms-tts-eng sizes): ours vs transformers' VitsModel on the same weights and the same
   symbol ids, noise scales at 0 so both compute the same waveform (goal: ratio >= 1.5).

    .venv/bin/python benchmarks/tts.py [--sentences 20] [--mms-sentences 8] [--repeats 3]
                                       [--threads N] [--skip-piper] [--skip-mms]

Piper's engines run in this process one after the other (see `race` for why not call by
call); MMS's each in a process of its own, taking turns a round of all sentences at a time
(`bench_mms`). Each sentence counts its fastest of `--repeats` runs. A first line times each
sentence length once (`first_calls`, and the "first" command of the MMS children): the cost
of new text, which best-of-repeats hides. Prints the real-time factor (compute seconds /
audio seconds; wall clock and process CPU time) of each engine and the speed ratio (their
RTF / ours).
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

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


def _mms_folder(folder: Path) -> None:
    """A random full-size MMS-TTS checkpoint in `folder`: transformers' VitsConfig defaults are
    facebook/mms-tts-eng's sizes; noise at 0 makes both engines compute the same waveform;
    slower speech (2x) gives real-speech-like frame counts, since random duration predictors
    give about one frame per symbol."""
    import transformers

    vocab = {c: i for i, c in enumerate("_abcdefghijklmnopqrstuvwxyz '.,!?-")}
    config = transformers.VitsConfig(vocab_size=len(vocab), noise_scale=0.0,
                                     noise_scale_duration=0.0, speaking_rate=0.5)  # fmt: skip
    torch.manual_seed(0)
    transformers.VitsModel(config).eval().save_pretrained(folder)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"add_blank": True, "normalize": True})
    )


def _mms_engine(name: str, folder: Path) -> tuple[Callable[[list[int]], np.ndarray], int]:
    """(synthesize symbol ids -> waveform, sampling rate) of one engine on the MMS folder."""
    if name == "transformers":
        import transformers

        reference = transformers.VitsModel.from_pretrained(folder).eval()

        @torch.inference_mode()
        def run_transformers(ids: list[int]) -> np.ndarray:
            return reference(torch.tensor([ids])).waveform[0].numpy()

        return run_transformers, reference.config.sampling_rate
    from soundformers.models.vits import SynthesisOptions, from_pretrained

    voice = from_pretrained(folder)
    options = SynthesisOptions(noise_scale=0.0, noise_w=0.0, length_scale=2.0)
    return (lambda ids: voice.synthesize([ids], options=options)[0]), voice.sampling_rate


def serve_mms(name: str, folder: Path, sentences_file: Path, threads: int | None) -> None:
    """Child process of `bench_mms`: load one engine, then answer the parent's commands on
    stdin with one JSON line each: "first" (each sentence of a new length once, after a
    warm-up on two sentences joined: seconds and samples), "round" (every sentence once:
    per sentence wall seconds, CPU seconds, samples) and "wave" (the first sentence's
    waveform), until "exit" or the end of its input."""
    if threads:
        torch.set_num_threads(threads)
    sentences = json.loads(sentences_file.read_text())
    run, rate = _mms_engine(name, folder)

    def answer(value: object) -> None:
        print(json.dumps(value), flush=True)

    answer({"sampling_rate": rate})
    for line in iter(sys.stdin.readline, ""):
        command = line.strip()
        if command == "exit":
            break
        if command == "wave":
            answer(run(sentences[0]).tolist())
        elif command == "first":
            by_length = {len(ids): i for i, ids in reversed(list(enumerate(sentences))) if i}
            run(sentences[0] + sentences[1])  # a length none of them has
            start, samples = time.perf_counter(), 0
            for i in sorted(by_length.values()):
                samples += len(run(sentences[i]))
            answer({"seconds": time.perf_counter() - start, "samples": samples,
                    "sentences": len(by_length)})  # fmt: skip
        elif command == "round":
            out = []
            for ids in sentences:
                start, start_cpu = time.perf_counter(), time.process_time()
                n = len(run(ids))
                out.append((time.perf_counter() - start, time.process_time() - start_cpu, n))
            answer(out)


def bench_mms(texts: Sequence[str], repeats: int, threads: int | None) -> None:
    """Ours against transformers' VitsModel on a random full-size MMS-TTS model, each engine in
    its own process (no shared thread pool, allocator or oneDNN primitive cache), taking turns:
    first calls at new lengths, then `repeats` rounds of every sentence, the order alternating
    between rounds; each sentence counts its fastest round."""
    from soundformers.models.vits import from_pretrained

    engines = ("transformers", "soundformers")
    with tempfile.TemporaryDirectory(prefix="mms-bench-") as tmp:
        folder = Path(tmp) / "mms"
        _mms_folder(folder)
        voice = from_pretrained(folder)
        sentences = [voice.split(t)[0] for t in texts]
        sentences_file = Path(tmp) / "sentences.json"
        sentences_file.write_text(json.dumps(sentences))
        children = {}
        for name in engines:
            command = [sys.executable, __file__, "--mms-child", name, "--mms-folder", str(folder),
                       "--mms-sentences-file", str(sentences_file)]  # fmt: skip
            if threads:
                command += ["--threads", str(threads)]
            children[name] = subprocess.Popen(command, stdin=subprocess.PIPE,
                                              stdout=subprocess.PIPE, text=True)  # fmt: skip

        def ask(name: str, command: str | None = None) -> Any:
            child = children[name]
            assert child.stdin is not None and child.stdout is not None
            if command is not None:
                time.sleep(_PAUSE_S)  # the other engine's thread pool stops spinning
                child.stdin.write(command + "\n")
                child.stdin.flush()
            line = child.stdout.readline()
            if not line:
                raise RuntimeError(f"the {name} engine exited with code {child.wait()}")
            return json.loads(line)

        try:
            rates = {name: ask(name)["sampling_rate"] for name in engines}  # both loaded
            rate = rates["soundformers"]
            assert rates["transformers"] == rate, rates
            ref, ours = (np.asarray(ask(name, "wave"), np.float32) for name in engines)
            diff = float(np.abs(ours - ref).max()) if ours.shape == ref.shape else float("nan")
            print(f"\nrandom MMS-TTS (transformers VitsConfig defaults), {len(sentences)} "
                  f"sentences, each engine in its own process; max |ours - transformers| on "
                  f"the first: {diff:.1e}")  # fmt: skip
            first = {name: ask(name, "first") for name in engines}
            rtf = {n: f["seconds"] / (f["samples"] / rate) for n, f in first.items()}
            print(f"first call at a new length, {first['soundformers']['sentences']} sentences "
                  f"once each: transformers RTF {rtf['transformers']:.3f}, soundformers RTF "
                  f"{rtf['soundformers']:.3f}; speed ratio "
                  f"{rtf['transformers'] / rtf['soundformers']:.2f}x wall")  # fmt: skip
            best = {name: [(float("inf"), float("inf"), 0)] * len(sentences) for name in engines}
            for r in range(repeats):
                for name in engines if r % 2 == 0 else engines[::-1]:
                    for i, (wall, cpu, n) in enumerate(ask(name, "round")):
                        old = best[name][i]
                        best[name][i] = (min(old[0], wall), min(old[1], cpu), n)
            results = {}
            for name in engines:
                wall = sum(b[0] for b in best[name])
                cpu = sum(b[1] for b in best[name])
                seconds = sum(b[2] for b in best[name]) / rate
                results[name] = (wall / seconds, cpu / seconds)
                print(f"{name:>14}: {wall:6.2f} s wall, {cpu:6.2f} s CPU for {seconds:6.1f} s "
                      f"of audio: RTF {results[name][0]:.3f} (CPU {results[name][1]:.3f})")  # fmt: skip
            print_ratio(results, "transformers", "soundformers")
        finally:  # end of input: each child leaves its command loop
            for child in children.values():
                if child.stdin is not None:
                    child.stdin.close()
                child.wait(timeout=60)


_PAUSE_S = 0.5  # OpenMP pools spin ~200 ms after their last parallel region


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--sentences", type=int, default=20)
    parser.add_argument("--mms-sentences", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--skip-piper", action="store_true")
    parser.add_argument("--skip-mms", action="store_true")
    parser.add_argument("--mms-child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--mms-folder", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--mms-sentences-file", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mms_child:
        serve_mms(args.mms_child, Path(args.mms_folder), Path(args.mms_sentences_file),
                  args.threads)  # fmt: skip
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch threads: {torch.get_num_threads()}")
    texts = [r["transcription"] for r in csv.DictReader(FIXTURES.open(encoding="utf-8"))]
    if not args.skip_piper:
        bench_piper(texts[: args.sentences], args.repeats, args.threads)
    if not args.skip_mms:
        bench_mms(texts[: args.mms_sentences], args.repeats, args.threads)


if __name__ == "__main__":
    main()
