"""Audio datasets: soundformers vs the datasets library, and memory over a long dataset.

    .venv/bin/python benchmarks/audio_datasets.py [--rounds 3] [--rows 20000]

1. The fixture speech folder (30 files: wav, flac, mp3, ogg, opus, m4a at 8-48 kHz) loaded as an
   audiofolder, cast to 16 kHz and iterated, every row decoded: rows/s for each library and
   the ratio (best of `--rounds` after a warm-up; loading is not timed).
2. A synthetic dataset of `--rows` short tones (0.1 s, 16 kHz flac) made by the benchmark:
   `map` (RMS of each clip) + `filter` throughput, then the peak RSS sampled while iterating
   every decoded row, which should stay flat (not grow with the rows read).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "speech"
RATE = 16000


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 1e6


def best_rate(fn, n_rows: int, rounds: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return n_rows / min(times)


_THEIRS = """
import sys, time, warnings
warnings.simplefilter("ignore")
import datasets
datasets.utils.logging.set_verbosity_error()
folder, cache, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
ds = datasets.load_dataset("audiofolder", data_dir=folder, split="train", cache_dir=cache)
ds = ds.cast_column("audio", datasets.Audio(sampling_rate=16000))
run = lambda: sum(row["audio"]["array"].shape[-1] for row in ds)
run()
times = []
for _ in range(rounds):
    start = time.perf_counter(); run(); times.append(time.perf_counter() - start)
print(datasets.__version__, len(ds) / min(times))
"""


def bench_folder(rounds: int, cache: Path) -> None:
    import soundformers as sf

    ours = sf.load_dataset("audiofolder", data_dir=FIXTURES, split="train", cache_dir=cache / "sf")
    ours = ours.cast_column("audio", sf.Audio(sampling_rate=RATE))

    def run_ours():
        return sum(row["audio"]["array"].shape[-1] for row in ours)

    rates = {"soundformers": best_rate(run_ours, len(ours), rounds)}
    # The datasets library is measured in a child process, so that its imports and caches do
    # not touch ours (and a benchmarks/ file can never shadow it).
    out = subprocess.run(
        [sys.executable, "-c", _THEIRS, str(FIXTURES), str(cache / "hf"), str(rounds)],
        capture_output=True,
        text=True,
        cwd=cache,
    )
    if out.returncode == 0:
        name, rate = out.stdout.split()[-2:]
        rates[f"datasets {name}"] = float(rate)
    else:  # not installed, or its decoder (torchcodec) missing
        print("datasets library skipped: " + (out.stderr.strip().splitlines() or ["?"])[-1])
    print(f"\n1. audiofolder {FIXTURES.name}/ ({len(ours)} rows) -> cast 16 kHz -> iterate decoded")
    for name, rate in rates.items():
        print(f"   {name:<24} {rate:8.1f} rows/s")
    if len(rates) == 2:
        a, b = rates.values()
        print(f"   ratio soundformers / datasets: {a / b:.2f}x (goal >= 3x)")


def make_tones(folder: Path, rows: int) -> None:
    import soundfile

    t = np.arange(RATE // 10) / RATE
    rng = np.random.default_rng(0)
    for i in range(rows):
        sub = folder / f"{i // 1000:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        amp = rng.uniform(0.05, 0.9)
        tone = (amp * np.sin(2 * np.pi * rng.uniform(100, 4000) * t)).astype(np.float32)
        soundfile.write(sub / f"{i:06d}.flac", tone, RATE)


def bench_synthetic(rows: int, cache: Path) -> None:
    import soundformers as sf

    folder = cache / "tones"
    start = time.perf_counter()
    make_tones(folder, rows)
    made = time.perf_counter() - start
    start = time.perf_counter()
    ds = sf.load_dataset(
        "audiofolder", data_dir=folder, split="train", cache_dir=cache / "sf", drop_labels=True
    )
    loaded = time.perf_counter() - start
    print(
        f"\n2. synthetic: {rows} tones of 0.1 s as flac (made in {made:.1f} s, loaded in {loaded:.2f} s)"
    )

    start = time.perf_counter()
    mapped = ds.map(lambda r: {"rms": float(np.sqrt(np.mean(r["audio"]["array"] ** 2)))})
    t_map = time.perf_counter() - start
    start = time.perf_counter()
    loud = mapped.filter(lambda rms: rms > 0.3, input_columns="rms")
    t_filter = time.perf_counter() - start
    print(f"   map (decode + rms)   {rows / t_map:8.0f} rows/s")
    print(f"   filter (rms > 0.3)   {rows / t_filter:8.0f} rows/s   ({len(loud)} rows kept)")

    checkpoints = {rows // 10, rows // 2, rows - 1}
    samples = []
    peak = rss_mb()
    for i, _row in enumerate(ds):
        if i % 500 == 0:
            peak = max(peak, rss_mb())
        if i in checkpoints:
            samples.append((i + 1, max(peak, rss_mb())))
    print(
        "   peak RSS while iterating decoded rows: "
        + ", ".join(f"{n} rows: {mb:.0f} MB" for n, mb in samples)
    )
    growth = samples[-1][1] - samples[0][1]
    print(
        f"   growth from {samples[0][0]} to {samples[-1][0]} rows: {growth:+.1f} MB "
        f"({'flat' if growth < 50 else 'GROWING'})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=20000)
    args = parser.parse_args()
    if not FIXTURES.is_dir():
        raise SystemExit(f"no fixture speech at {FIXTURES}")
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory(prefix="sf-bench-datasets-") as tmp:
        bench_folder(args.rounds, Path(tmp))
        bench_synthetic(args.rows, Path(tmp))


if __name__ == "__main__":
    main()
