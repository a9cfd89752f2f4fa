"""Long-form segment times: how many sentence starts each system places within 0.5 s.

    .venv/bin/python benchmarks/longform_starts.py [--model whisper-tiny.en] [--threads 2]

For each recording of ../shared/fixtures/longform, whose .json lists every sentence's start
time, runs our two long-form modes and faster-whisper (sequential greedy, sequential beam 5,
and its batched pipeline with Silero VAD) on the same weights, and prints per system: the WER
(Whisper English normalizer), the share of sentences whose start lies within 0.5 s of some
segment start, and the wall time.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import soundformers as sf
from soundformers.metrics import process_words

LONGFORM = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "longform"
FILES = ["piper_4min.flac", "espeak_75s.wav"]


def starts_within(truth: list[float], starts: list[float], tolerance: float = 0.5) -> float:
    """Share of `truth` times that have a segment start within `tolerance` seconds."""
    if not starts:
        return 0.0
    found = np.asarray(starts)
    return float(np.mean([np.min(np.abs(found - t)) <= tolerance for t in truth]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="whisper-tiny.en")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import torch
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    torch.set_num_threads(args.threads)
    asr = sf.pipeline("automatic-speech-recognition", model=args.model)
    folder = str(sf.hub.resolve_model(args.model).folder)
    fw = WhisperModel(folder, device="cpu", compute_type="float32", cpu_threads=args.threads)
    fw_batched = BatchedInferencePipeline(fw)

    def ours(mode):
        def run(audio):
            out = asr(audio, long_form=mode, return_timestamps=True, batch_size=8)
            return out["text"], [chunk["timestamp"][0] for chunk in out["chunks"]]

        return run

    def theirs(transcribe):
        def run(audio):
            segments = list(transcribe(audio)[0])
            return "".join(s.text for s in segments), [s.start for s in segments]

        return run

    systems = {
        "soundformers sequential": ours("sequential"),
        "soundformers batched": ours("batched"),
        "faster-whisper greedy": theirs(lambda a: fw.transcribe(a, beam_size=1)),
        "faster-whisper beam 5": theirs(lambda a: fw.transcribe(a, beam_size=5)),
        "faster-whisper batched": theirs(
            lambda a: fw_batched.transcribe(a, beam_size=1, batch_size=8)
        ),
    }
    print(f"{args.model}, {args.threads} threads")
    for name in FILES:
        meta = json.loads((LONGFORM / name).with_suffix(".json").read_text())
        truth = [segment["start"] for segment in meta["segments"]]
        audio = sf.load_audio(LONGFORM / name, sampling_rate=16000).samples
        print(f"\n{name}: {len(truth)} sentences")
        print(f"{'system':26}{'WER %':>8}{'starts ok %':>13}{'wall s':>9}")
        for system, run in systems.items():
            start = time.perf_counter()
            text, starts = run(audio)
            wall = time.perf_counter() - start
            wer = process_words(meta["text"], text, normalizer="whisper_english").wer
            ok = starts_within(truth, starts)
            print(f"{system:26}{100 * wer:>8.2f}{100 * ok:>13.1f}{wall:>9.1f}")


if __name__ == "__main__":
    main()
