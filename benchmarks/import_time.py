"""How long `import soundformers` takes, against the libraries a user would otherwise import.

    .venv/bin/python benchmarks/import_time.py [--runs 10]

Each import runs in a fresh interpreter; the median wall time of `--runs` runs is printed
(interpreter start-up subtracted, measured the same way with `pass`).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

MODULES = ["soundformers", "torch", "transformers", "librosa", "datasets"]


def median_seconds(statement: str, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", statement], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    base = median_seconds("pass", args.runs)
    for module in MODULES:
        try:
            seconds = median_seconds(f"import {module}", args.runs) - base
        except subprocess.CalledProcessError:
            print(f"import {module:14s} unavailable")
            continue
        print(f"import {module:14s} {seconds * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
