"""Speech recognition on CPU, one run: soundformers vs transformers' pipeline vs faster-whisper.

    .venv/bin/python benchmarks/asr.py [--threads 2] [--quick] [--repeats 1] [--beam 1]
                                       [--blocks]

Same weights everywhere: the bundled Whisper tiny.en (CTranslate2), read by us, by faster-whisper
(int8 and float32), and by transformers from the Hugging Face folder our `convert` writes. Same
audio everywhere, decoded once to 16 kHz by the parent process:

- short: every utterance of the fixture speech set (speech/ and speech_split/: 60 files,
  169 s), greedy, no timestamps, one pass (no temperature fallback);
- long: longform/piper_4min.flac (240 s), greedy, sequential 30 s windows conditioned on the
  previous text (soundformers also in its batched long-form mode).

`--beam 5`: beam search of 5 everywhere instead (faster-whisper's and openai-whisper's
default), still one pass at temperature 0.

Each system runs in its own subprocess (`--system NAME`, serving the parent's commands), so its
peak RSS is its own. Reported: cold start (imports + loading tiny.en), wall time and real-time
factor (wall / audio seconds) of each part, WER (Whisper English normalizer) and peak RSS;
then each rival's wall time divided by ours (> 1: we are faster). Audio decoding is not timed.
`--quick`: 6 utterances and the 73 s espeak recording, a smoke run.

The machine may be shared with other work: a system's speed moves by up to 25 % from one
quarter of an hour to the next, and not every system's alike. So every system is loaded first
(one at a time: the cold starts do not overlap), and then `--repeats N` rounds each run every
system's parts once, the systems taking turns, the order rotating between rounds (`run_all`);
each part keeps its fastest round, and its first round's texts are scored. `--blocks` runs
each system's rounds back to back instead, one system after the other (the earlier method).
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


Parts = dict[str, Callable[[], Any]]


def _load_soundformers(dtype_name: str, data: dict, threads: int, beam: int) -> Parts:
    import torch

    torch.set_num_threads(threads)
    import soundformers as sf
    from soundformers.models.whisper import from_pretrained

    # int8: bfloat16 encoder, int8 decoder weights (`quantization="int8"`)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "int8": torch.bfloat16}[dtype_name]
    quantization = "int8" if dtype_name == "int8" else None
    model = from_pretrained("whisper-tiny.en", dtype=dtype, quantization=quantization)
    asr = sf.pipeline("automatic-speech-recognition", model=model)
    greedy = {"temperature": 0.0, "num_beams": beam}  # one pass, as the rivals below
    rows = [{"array": a, "sampling_rate": 16000} for a in data["short"]]
    long = {"array": data["long"], "sampling_rate": 16000}

    def read_long(mode: str) -> str:
        return asr(long, long_form=mode, batch_size=8, generate_kwargs=greedy)["text"]

    return {
        "short": lambda: [o["text"] for o in asr(rows, batch_size=8, generate_kwargs=greedy)],
        "long": lambda: read_long("sequential"),
        "long_batched": lambda: read_long("batched"),
    }


def _load_transformers(batch: int, data: dict, threads: int, beam: int, hf_dir: str) -> Parts:
    import warnings

    import torch

    torch.set_num_threads(threads)
    import transformers

    transformers.logging.set_verbosity_error()
    warnings.simplefilter("ignore")
    pipe = transformers.pipeline("automatic-speech-recognition", model=hf_dir, device="cpu")
    greedy = {"num_beams": beam}  # the pipeline's own default is beam search (5)

    def rows() -> list[dict]:  # new dicts for every run: the pipeline pops their "raw"
        return [{"raw": a, "sampling_rate": 16000} for a in data["short"]]

    return {
        "short": lambda: [
            o["text"] for o in pipe(rows(), batch_size=batch, generate_kwargs=greedy)
        ],
        "long": lambda: pipe(
            {"raw": data["long"], "sampling_rate": 16000},
            return_timestamps=True,
            generate_kwargs={**greedy, "condition_on_prev_tokens": True},
        )["text"],
    }


def _load_faster_whisper(compute_type: str, data: dict, threads: int, beam: int,
                         ct2_dir: str) -> Parts:  # fmt: skip
    import faster_whisper

    model = faster_whisper.WhisperModel(
        ct2_dir, device="cpu", compute_type=compute_type, cpu_threads=threads
    )

    def read(audio, **options) -> str:
        segments = model.transcribe(audio, beam_size=beam, temperature=0.0, **options)[0]
        return "".join(s.text for s in segments)

    return {
        "short": lambda: [read(a, without_timestamps=True) for a in data["short"]],
        "long": lambda: read(data["long"]),
    }


def serve_system(args: argparse.Namespace) -> None:
    """Child process: say it is ready, wait for "load" on stdin, load the system (timed: the
    cold start), then run each part named on stdin once, answering every command with one
    JSON line on stdout, until "exit" (answered with the peak RSS)."""
    commands = iter(sys.stdin.readline, "")

    def answer(value: dict) -> None:
        print(json.dumps(value), flush=True)

    answer({"ready": True})  # started: no other start-up overlaps a cold start from here on
    if next(commands, "").strip() != "load":
        return
    started = time.perf_counter()  # nothing heavy imported before: the cold start counts from here
    import numpy as np

    with np.load(args.audio) as npz:
        data = {
            "short": [npz[f"short{i}"] for i in range(int(npz["n_short"]))],
            "long": npz["long"],
        }
    family, variant = args.system.rsplit("-", 1)
    if family == "soundformers":
        parts = _load_soundformers(variant, data, args.threads, args.beam)
    elif family == "transformers":
        parts = _load_transformers(int(variant[1:]), data, args.threads, args.beam, args.hf_dir)
    else:
        compute_type = {"int8": "int8", "fp32": "float32"}[variant]
        parts = _load_faster_whisper(compute_type, data, args.threads, args.beam, args.ct2_dir)
    answer({"cold_s": time.perf_counter() - started, "parts": list(parts)})
    for line in commands:
        name = line.strip()
        if name == "exit":
            break
        begin = time.perf_counter()
        result = parts[name]()
        answer({"wall": time.perf_counter() - begin, "result": result})
    answer({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})  # KB


class Child:
    """One system's process (`serve_system`), driven a command at a time; `row` collects its
    cold start, the fastest wall time and the first result of each part, and its peak RSS."""

    def __init__(self, system: str, command: list[str], env: dict[str, str]) -> None:
        self.system = system
        self.process = subprocess.Popen(command, env=env, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)  # fmt: skip
        self.parts: list[str] = []
        self.row: dict[str, Any] = {"system": system}
        self._reply()  # its interpreter has started

    def ask(self, command: str) -> dict:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self._reply()

    def _reply(self) -> dict:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.system} exited with code {self.process.wait()}")
        return json.loads(line)

    def load(self) -> None:
        reply = self.ask("load")
        self.row["cold_s"], self.parts = reply["cold_s"], reply["parts"]

    def run_parts(self) -> None:
        """Run every part once: keep the fastest wall time and the first run's result."""
        for part in self.parts:
            reply = self.ask(part)
            wall = f"{part}_wall"
            self.row[wall] = min(self.row.get(wall, float("inf")), reply["wall"])
            self.row.setdefault(f"{part}_result", reply["result"])

    def finish(self) -> dict:
        self.row["peak_rss_mb"] = self.ask("exit")["peak_rss_mb"]
        self.process.wait()
        return self.row

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()


def run_all(systems: list[str], command: Callable[[str], list[str]], env: dict[str, str],
            repeats: int, interleave: bool) -> dict[str, dict]:  # fmt: skip
    """Every system's row (`Child.row`), by system; a system that fails is reported on stderr
    and left out.

    Interleaved (the default), every system is loaded first, one at a time, and then each of
    the `repeats` rounds runs every system's parts once, one system after the other, the order
    rotating from round to round: a slower minute of the shared machine falls on all systems
    alike. Otherwise each system runs all its rounds before the next one starts. A pause before
    each turn lets the previous system's thread pools stop spinning.
    """
    groups = [systems] if interleave else [[s] for s in systems]
    rows = {}
    for group in groups:
        children: list[Child] = []
        try:
            for system in group:  # all started before any loads
                try:
                    children.append(Child(system, command(system), env))
                except RuntimeError as e:
                    print(f"  {e}", file=sys.stderr)
            for child in list(children):
                print(f"  loading {child.system} ...", file=sys.stderr, flush=True)
                try:
                    child.load()
                except RuntimeError as e:
                    print(f"  {e}", file=sys.stderr)
                    children.remove(child)
            for r in range(repeats if children else 0):
                order = children[r % len(children) :] + children[: r % len(children)]
                print(f"  round {r + 1}/{repeats}: {', '.join(c.system for c in order)}",
                      file=sys.stderr, flush=True)  # fmt: skip
                for child in order:
                    time.sleep(_PAUSE_S)
                    try:
                        child.run_parts()
                    except RuntimeError as e:
                        print(f"  {e}", file=sys.stderr)
                        children.remove(child)
            for child in children:
                rows[child.system] = child.finish()
        finally:
            for child in children:
                child.kill()
    return rows


_PAUSE_S = 0.5  # OpenMP pools spin ~200 ms after their last parallel region


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
                        help="rounds: runs of each part per system; the fastest counts")  # fmt: skip
    parser.add_argument("--beam", type=int, default=1,
                        help="beam size of every system (default 1: greedy)")  # fmt: skip
    parser.add_argument("--blocks", action="store_true",
                        help="each system runs all its rounds before the next one starts")  # fmt: skip
    parser.add_argument("--system", default=None, help=argparse.SUPPRESS)  # child mode
    parser.add_argument("--audio", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--hf-dir", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--ct2-dir", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.system:
        serve_system(args)
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
            f"({seconds_long:.0f} s), {args.threads} threads, "
            + ("greedy" if args.beam == 1 else f"beam search of {args.beam}"),
            file=sys.stderr,
        )

        def command(system: str) -> list[str]:
            return [sys.executable, __file__, "--system", system, "--audio", str(audio_file),
                    "--hf-dir", str(hf_dir), "--ct2-dir", str(ct2_dir),
                    "--threads", str(args.threads), "--beam", str(args.beam)]  # fmt: skip

        rows = run_all(args.systems, command, env, args.repeats, interleave=not args.blocks)

    norm = "whisper_english"
    header = (f"{'system':22}{'cold s':>8}{'short s':>9}{'RTF':>7}{'WER %':>7}"
              f"{'long s':>8}{'RTF':>7}{'WER %':>7}{'RSS MB':>8}")  # fmt: skip
    print(header)
    for name, r in rows.items():
        lines = [(name, r["long_wall"], r["long_result"])]
        if "long_batched_wall" in r:
            lines.append((f"{name} batched", r["long_batched_wall"], r["long_batched_result"]))
        for i, (label, long_wall, long_text) in enumerate(lines):
            short_cells = (
                f"{r['cold_s']:>8.2f}{r['short_wall']:>9.2f}{r['short_wall'] / seconds_short:>7.3f}"
                f"{100 * wer(refs, r['short_result'], normalizer=norm):>7.2f}"
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
