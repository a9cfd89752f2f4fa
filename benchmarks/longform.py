"""Long-form transcription: WER and wall time of the two modes on the fixture recordings.

    .venv/bin/python benchmarks/longform.py [--model whisper-tiny.en] [--model whisper-base]

For each recording of ../shared/fixtures/longform (espeak_75s.wav, piper_4min.flac) and each
mode ("sequential": openai-whisper's window-after-window algorithm; "batched": cut at
silences, pieces decoded in parallel), prints the WER (Whisper English normalizer) against the
reference transcript and the wall time, then the corpus WER per mode and the difference; the
same for faster-whisper (per recording and together) on the same weights.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
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
        faster_whisper(model, args.batch_size)


def faster_whisper(model: str, batch_size: int) -> None:
    """The same recordings through faster-whisper (CTranslate2 fp32, greedy): its sequential
    `transcribe` and its `BatchedInferencePipeline` (Silero VAD cuts, bundled in its wheel)."""
    try:
        from faster_whisper import BatchedInferencePipeline, WhisperModel
    except ImportError:
        print("  faster-whisper: not installed")
        return
    from soundformers.hub import resolve_model

    files = resolve_model(model)
    folder = files.folder
    if len(files.weights) != 1:  # a split model.bin: faster-whisper needs the joined file
        folder = Path(tempfile.mkdtemp(prefix="fw-"))
        with open(folder / "model.bin", "wb") as out:
            for part in files.weights:
                out.write(Path(part).read_bytes())
        for extra in ("config.json", "tokenizer.json", "vocabulary.txt"):
            if (files.folder / extra).exists():
                shutil.copy(files.folder / extra, folder / extra)
    fw = WhisperModel(str(folder), device="cpu", compute_type="float32")
    modes = {
        "sequential": lambda audio: fw.transcribe(audio, beam_size=1)[0],
        "batched": lambda audio: BatchedInferencePipeline(fw).transcribe(
            audio, beam_size=1, batch_size=batch_size
        )[0],
    }
    totals = {}
    for mode, run in modes.items():
        refs, hyps, seconds = [], [], 0.0
        for name in FILES:
            reference = json.loads((LONGFORM / name).with_suffix(".json").read_text())["text"]
            audio = sf.load_audio(LONGFORM / name, sampling_rate=16000).samples
            start = time.perf_counter()
            text = "".join(segment.text for segment in run(audio))
            elapsed = time.perf_counter() - start
            seconds += elapsed
            counts = process_words(reference, text, normalizer="whisper_english")
            print(
                f"  faster-whisper {mode:10s} {name:16s} WER {100 * counts.wer:6.2f} %  "
                f"{elapsed:6.1f} s"
            )
            refs.append(reference)
            hyps.append(text)
        totals[mode] = process_words(refs, hyps, normalizer="whisper_english").wer
        print(
            f"  faster-whisper {mode:10s} both  WER {100 * totals[mode]:6.2f} %  {seconds:6.1f} s"
        )
    diff = 100 * (totals["batched"] - totals["sequential"])
    print(f"  faster-whisper batched - sequential: {diff:+.2f} WER points")


if __name__ == "__main__":
    main()
