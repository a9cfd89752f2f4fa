"""Long-form transcription: WER and wall time of the two modes on the fixture recordings.

    .venv/bin/python benchmarks/longform.py [--model whisper-tiny.en] [--model whisper-base]

For each recording of ../shared/fixtures/longform (espeak_75s.wav, piper_4min.flac) and each
mode ("sequential": openai-whisper's window-after-window algorithm; "batched": cut at
silences, pieces decoded in parallel), prints the WER (Whisper English normalizer) against the
reference transcript and the wall time, then the corpus WER per mode and the difference.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import soundformers as sf
from soundformers.metrics import process_words

LONGFORM = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "longform"
FILES = ["espeak_75s.wav", "piper_4min.flac"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", default=None)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    for model in args.model or ["whisper-tiny.en"]:
        asr = sf.pipeline("automatic-speech-recognition", model=model)
        print(f"\n{model}")
        totals = {}
        for mode in ("sequential", "batched"):
            refs, hyps, seconds = [], [], 0.0
            for name in FILES:
                reference = json.loads((LONGFORM / name).with_suffix(".json").read_text())["text"]
                start = time.perf_counter()
                out = asr(LONGFORM / name, long_form=mode, batch_size=args.batch_size)
                elapsed = time.perf_counter() - start
                counts = process_words(reference, out["text"], normalizer="whisper_english")
                print(f"  {mode:10s} {name:16s} WER {100 * counts.wer:6.2f} %  {elapsed:6.1f} s")
                refs.append(reference)
                hyps.append(out["text"])
                seconds += elapsed
            corpus = process_words(refs, hyps, normalizer="whisper_english").wer
            totals[mode] = corpus
            print(f"  {mode:10s} {'both':16s} WER {100 * corpus:6.2f} %  {seconds:6.1f} s")
        diff = 100 * (totals["batched"] - totals["sequential"])
        print(f"  batched - sequential: {diff:+.2f} WER points")


if __name__ == "__main__":
    main()
