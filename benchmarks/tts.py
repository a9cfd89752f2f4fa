"""Text-to-speech speed: our VITS vs onnxruntime on the bundled Piper voice (same .onnx, same
phoneme ids), one sentence per run, as Piper does.

    .venv/bin/python benchmarks/tts.py [--sentences 20] [--threads N]

Prints the real-time factor (compute seconds / audio seconds) of each engine and their ratio.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np
import torch

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "speech" / "metadata.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sentences", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    import onnxruntime as ort

    from soundformers.hub import resolve_model
    from soundformers.models.vits import SynthesisOptions, load_piper

    if args.threads:
        torch.set_num_threads(args.threads)
    path = resolve_model("en_US-joe-medium").weights[0]
    voice = load_piper(path)
    texts = [r["transcription"] for r in csv.DictReader(FIXTURES.open(encoding="utf-8"))]
    sentences = [voice.split(t)[0] for t in texts[: args.sentences]]
    options = SynthesisOptions(noise_scale=0.667, length_scale=1.0, noise_w=0.0)
    so = ort.SessionOptions()
    if args.threads:
        so.intra_op_num_threads = args.threads
    session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])

    def run_ort(ids: list[int]) -> int:
        out = session.run(None, {
            "input": np.array([ids], np.int64),
            "input_lengths": np.array([len(ids)], np.int64),
            "scales": np.array([0.667, 1.0, 0.0], np.float32),
        })[0]  # fmt: skip
        return out.size

    def run_ours(ids: list[int]) -> int:
        return len(voice.synthesize([ids], options=options)[0])

    results = {}
    for name, run in (("onnxruntime", run_ort), ("soundformers", run_ours)):
        run(sentences[0])  # warm up
        samples, start = 0, time.perf_counter()
        for ids in sentences:
            samples += run(ids)
        elapsed = time.perf_counter() - start
        results[name] = elapsed / (samples / voice.sampling_rate)
        print(f"{name:>13}: {elapsed:6.2f} s for {samples / voice.sampling_rate:6.1f} s of audio, "
              f"RTF {results[name]:.3f}")  # fmt: skip
    print(
        f"speed ratio (onnxruntime RTF / ours): {results['onnxruntime'] / results['soundformers']:.2f}x"
    )


if __name__ == "__main__":
    main()
