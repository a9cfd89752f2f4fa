"""Peak memory of speech recognition at batch 1, tiny.en, one process per configuration.

    .venv/bin/python benchmarks/asr_memory.py [--threads 2]

For float32, bfloat16 and bfloat16 + int8 decoder, a fresh process reports its resident
memory (VmRSS, and the peak so far, VmHWM) after `import torch`, after loading the bundled
tiny.en through `pipeline()`, after eight short fixture files one at a time, and after the
4-minute long-form recording (sequential). `benchmarks/asr.py` reports the peak of its batch-8
runs; this is the figure for one file at a time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
CONFIGS = {
    "float32": ("float32", None),
    "bfloat16": ("bfloat16", None),
    "bfloat16 + int8 decoder": ("bfloat16", "int8"),
}


def memory_mb() -> tuple[float, float]:
    """(current, peak) resident memory of this process in MB, from /proc/self/status."""
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.split()
    return int(fields["VmRSS"][0]) / 1024, int(fields["VmHWM"][0]) / 1024


def run_one(dtype_name: str, quantization: str | None) -> None:
    """Child process: print one JSON line of (stage, current MB, peak MB)."""
    import torch

    stages = [("import torch", *memory_mb())]
    import soundformers

    kwargs = {"quantization": quantization} if quantization else {}
    asr = soundformers.pipeline(
        "automatic-speech-recognition", dtype=getattr(torch, dtype_name), model_kwargs=kwargs
    )
    stages.append(("loaded", *memory_mb()))
    for path in sorted((FIXTURES / "speech").glob("*.wav"))[:8]:
        asr(str(path))
    stages.append(("8 short files", *memory_mb()))
    asr(str(FIXTURES / "longform" / "piper_4min.flac"))
    stages.append(("long recording", *memory_mb()))
    print(json.dumps(stages))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        dtype_name, quantization = args.child
        run_one(dtype_name, None if quantization == "-" else quantization)
        return
    if not (FIXTURES / "longform" / "piper_4min.flac").is_file():
        raise SystemExit(f"fixtures not found under {FIXTURES}")
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    print(f"{'configuration':26}{'stage':>16}{'RSS MB':>9}{'peak MB':>9}")
    for name, (dtype_name, quantization) in CONFIGS.items():
        out = subprocess.run(
            [sys.executable, __file__, "--child", dtype_name, quantization or "-"],
            env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        for stage, current, peak in json.loads(out.stdout.strip().splitlines()[-1]):
            print(f"{name:26}{stage:>16}{current:>9.0f}{peak:>9.0f}")
            name = ""


if __name__ == "__main__":
    main()
