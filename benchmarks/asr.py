"""Speech recognition on CPU, one run: soundformers vs transformers' pipeline vs faster-whisper.

    .venv/bin/python benchmarks/asr.py [--threads 2] [--quick] [--repeats 1]

Same weights everywhere: the bundled Whisper tiny.en (CTranslate2), read by us, by faster-whisper
(int8 and float32), and by transformers from the Hugging Face folder our `convert` writes. Same
audio everywhere, decoded once to 16 kHz by the parent process:

- short: every utterance of the fixture speech set (speech/ and speech_split/: 60 files,
  169 s), greedy, no timestamps, one pass (no temperature fallback);
- long: longform/piper_4min.flac (240 s), greedy, sequential 30 s windows conditioned on the
  previous text (soundformers also in its batched long-form mode).

Each system runs in its own subprocess (`--system NAME`, printing one JSON line), so its peak
RSS is its own. Reported: cold start (imports + loading tiny.en), wall time and real-time
factor (wall / audio seconds) of each part, WER (Whisper English normalizer) and peak RSS;
then each rival's wall time divided by ours (> 1: we are faster). Audio decoding is not timed.
`--quick`: 6 utterances and the 73 s espeak recording, a smoke run.

The machine may be shared with other work: figures from one run are noisy. `--repeats N` runs
each part N times in the same process (the first run's texts are scored) and keeps the
fastest, for every system alike; the cold start is measured once.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

STARTED = time.perf_counter()  # before any heavy import: the cold start counts from here

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"
SYSTEMS = (
    "soundformers-fp32",
    "soundformers-bf16",
    "soundformers-int8",
    "transformers-b1",
    "transformers-b8",
    "faster-whisper-int8",
    "faster-whisper-fp32",
)
OURS = "soundformers-fp32"


# --------------------------------------------------------------------------------------------
# one system, in a child process


def _best(run: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """(fastest wall time of `repeats` calls of `run`, the first call's result)."""
    walls, results = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        results.append(run())
        walls.append(time.perf_counter() - start)
    return min(walls), results[0]


def _measure(loaded: float, short: Callable[[], list[str]], long: Callable[[], str],
             repeats: int) -> dict:  # fmt: skip
    """Time `short()` (the short utterances' texts), then `long()` (the long recording's
    text), each the fastest of `repeats` runs: the result every system reports, with its cold
    start (`loaded` - start-up)."""
    short_wall, short_texts = _best(short, repeats)
    long_wall, long_text = _best(long, repeats)
    return {
        "cold_s": loaded - STARTED,
        "short_wall": short_wall,
        "short_texts": short_texts,
        "long_wall": long_wall,
        "long_text": long_text,
    }


def _run_soundformers(dtype_name: str, data: dict, threads: int, repeats: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    import soundformers as sf
    from soundformers.models.whisper import from_pretrained

    # int8: bfloat16 encoder, int8 decoder weights (`quantization="int8"`)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "int8": torch.bfloat16}[dtype_name]
    quantization = "int8" if dtype_name == "int8" else None
    model = from_pretrained("whisper-tiny.en", dtype=dtype, quantization=quantization)
    asr = sf.pipeline("automatic-speech-recognition", model=model)
    loaded = time.perf_counter()
    greedy = {"temperature": 0.0}  # one pass, as the rivals below
    rows = [{"array": a, "sampling_rate": 16000} for a in data["short"]]
    long = {"array": data["long"], "sampling_rate": 16000}

    def read_long(mode: str) -> str:
        return asr(long, long_form=mode, batch_size=8, generate_kwargs=greedy)["text"]

    out = _measure(
        loaded,
        lambda: [o["text"] for o in asr(rows, batch_size=8, generate_kwargs=greedy)],
        lambda: read_long("sequential"),
        repeats,
    )
    out["long_batched_wall"], out["long_batched_text"] = _best(
        lambda: read_long("batched"), repeats
    )
    return out


def _run_transformers(batch: int, data: dict, threads: int, hf_dir: str, repeats: int) -> dict:
    import warnings

    import torch

    torch.set_num_threads(threads)
    import transformers

    transformers.logging.set_verbosity_error()
    warnings.simplefilter("ignore")
    pipe = transformers.pipeline("automatic-speech-recognition", model=hf_dir, device="cpu")
    loaded = time.perf_counter()
    greedy = {"num_beams": 1}  # the pipeline's own default is beam search (5)

    def rows() -> list[dict]:  # new dicts for every run: the pipeline pops their "raw"
        return [{"raw": a, "sampling_rate": 16000} for a in data["short"]]

    return _measure(
        loaded,
        lambda: [o["text"] for o in pipe(rows(), batch_size=batch, generate_kwargs=greedy)],
        lambda: pipe(
            {"raw": data["long"], "sampling_rate": 16000},
            return_timestamps=True,
            generate_kwargs={**greedy, "condition_on_prev_tokens": True},
        )["text"],
        repeats,
    )


def _run_faster_whisper(
    compute_type: str, data: dict, threads: int, ct2_dir: str, repeats: int
) -> dict:
    import faster_whisper

    model = faster_whisper.WhisperModel(
        ct2_dir, device="cpu", compute_type=compute_type, cpu_threads=threads
    )
    loaded = time.perf_counter()

    def read(audio, **options) -> str:
        segments = model.transcribe(audio, beam_size=1, temperature=0.0, **options)[0]
        return "".join(s.text for s in segments)

    return _measure(
        loaded,
        lambda: [read(a, without_timestamps=True) for a in data["short"]],
        lambda: read(data["long"]),
        repeats,
    )


def run_system(args: argparse.Namespace) -> None:
    import numpy as np

    with np.load(args.audio) as npz:
        data = {
            "short": [npz[f"short{i}"] for i in range(int(npz["n_short"]))],
            "long": npz["long"],
        }
    family, variant = args.system.rsplit("-", 1)
    if family == "soundformers":
        out = _run_soundformers(variant, data, args.threads, args.repeats)
    elif family == "transformers":
        out = _run_transformers(int(variant[1:]), data, args.threads, args.hf_dir, args.repeats)
    else:
        compute_type = {"int8": "int8", "fp32": "float32"}[variant]
        out = _run_faster_whisper(compute_type, data, args.threads, args.ct2_dir, args.repeats)
    out["system"] = args.system
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KB
    print(json.dumps(out))


# --------------------------------------------------------------------------------------------
# the parent: audio, conversion, one child per system, the table


def load_audio_set(quick: bool) -> tuple[list, list[str], object, str]:
    """(short arrays, their references, long array, long reference), all at 16 kHz."""
    from soundformers.audio.io import load_audio

    metas = [FIXTURES / "speech" / "metadata.csv"]
    metas += sorted((FIXTURES / "speech_split").glob("*/metadata.csv"))
    short, refs = [], []
    for meta in metas:
        with open(meta, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                short.append(load_audio(meta.parent / row["file_name"], 16000).samples)
                refs.append(row["transcription"])
    name = "espeak_75s.wav" if quick else "piper_4min.flac"
    long = load_audio(FIXTURES / "longform" / name, 16000).samples
    reference = json.loads((FIXTURES / "longform" / name).with_suffix(".json").read_text())
    if quick:
        short, refs = short[:6], refs[:6]
    return short, refs, long, reference["text"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="6 utterances + the 73 s recording")
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=SYSTEMS)
    parser.add_argument("--repeats", type=int, default=1,
                        help="runs of each part per system; the fastest counts")  # fmt: skip
    parser.add_argument("--system", default=None, help=argparse.SUPPRESS)  # child mode
    parser.add_argument("--audio", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--hf-dir", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--ct2-dir", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.system:
        run_system(args)
        return

    import numpy as np

    from soundformers.hub import resolve_model
    from soundformers.metrics import wer
    from soundformers.models.whisper.convert import convert

    short, refs, long, long_ref = load_audio_set(args.quick)
    seconds_short = sum(len(a) for a in short) / 16000
    seconds_long = len(long) / 16000
    rows = {}
    with tempfile.TemporaryDirectory(prefix="asr-bench-") as tmp:
        audio_file = Path(tmp) / "audio.npz"
        np.savez(
            audio_file,
            n_short=len(short),
            long=long,
            **{f"short{i}": a for i, a in enumerate(short)},
        )
        hf_dir = convert("whisper-tiny.en", Path(tmp) / "tiny.en-hf")
        ct2_dir = resolve_model("whisper-tiny.en").folder
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "TOKENIZERS_PARALLELISM": "0"}
        print(
            f"{len(short)} utterances ({seconds_short:.0f} s) + one recording "
            f"({seconds_long:.0f} s), {args.threads} threads",
            file=sys.stderr,
        )
        for system in args.systems:
            command = [sys.executable, __file__, "--system", system, "--audio", str(audio_file),
                       "--hf-dir", str(hf_dir), "--ct2-dir", str(ct2_dir),
                       "--threads", str(args.threads), "--repeats", str(args.repeats)]  # fmt: skip
            print(f"  running {system} ...", file=sys.stderr, flush=True)
            done = subprocess.run(command, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                print(f"  {system} failed:\n{done.stderr[-2000:]}", file=sys.stderr)
                continue
            rows[system] = json.loads(done.stdout.strip().splitlines()[-1])

    norm = "whisper_english"
    header = (f"{'system':22}{'cold s':>8}{'short s':>9}{'RTF':>7}{'WER %':>7}"
              f"{'long s':>8}{'RTF':>7}{'WER %':>7}{'RSS MB':>8}")  # fmt: skip
    print(header)
    for name, r in rows.items():
        lines = [(name, r["long_wall"], r["long_text"])]
        if "long_batched_wall" in r:
            lines.append((f"{name} batched", r["long_batched_wall"], r["long_batched_text"]))
        for i, (label, long_wall, long_text) in enumerate(lines):
            short_cells = (
                f"{r['cold_s']:>8.2f}{r['short_wall']:>9.2f}{r['short_wall'] / seconds_short:>7.3f}"
                f"{100 * wer(refs, r['short_texts'], normalizer=norm):>7.2f}"
                if i == 0
                else " " * 31
            )
            rss = f"{r['peak_rss_mb']:>8.0f}" if i == 0 else ""
            print(
                f"{label:22}{short_cells}{long_wall:>8.2f}{long_wall / seconds_long:>7.3f}"
                f"{100 * wer(long_ref, long_text, normalizer=norm):>7.2f}{rss}"
            )
    if OURS in rows:
        ours = rows[OURS]
        print(f"\nwall time / {OURS}'s (> 1: {OURS} is faster)")
        print(f"{'system':22}{'cold':>8}{'short':>9}{'long':>8}{'RSS':>8}")
        for name, r in rows.items():
            if name == OURS:
                continue
            print(
                f"{name:22}{r['cold_s'] / ours['cold_s']:>8.2f}"
                f"{r['short_wall'] / ours['short_wall']:>9.2f}"
                f"{r['long_wall'] / ours['long_wall']:>8.2f}"
                f"{r['peak_rss_mb'] / ours['peak_rss_mb']:>8.2f}"
            )


if __name__ == "__main__":
    main()
