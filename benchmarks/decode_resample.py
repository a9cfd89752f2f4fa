"""Decode + resample every file of the fixture speech set to 16 kHz: soundformers vs librosa vs
the datasets library's Audio cast (torchcodec), in one run.

    .venv/bin/python benchmarks/decode_resample.py [--rounds 5]

Prints files/s for each and the ratio of ours to the fastest rival. Each contender decodes the
whole set `--rounds` times after one warm-up round; the best round counts (least disturbed by
other load on the machine). The 30 files are wav (16/24/32-bit, mu-law), flac, mp3, ogg, opus,
m4a, at 8-48 kHz, one stereo: see ../shared/fixtures/README.md.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "speech"
TARGET_SR = 16000


def files() -> list[Path]:
    paths = sorted(p for p in FIXTURES.iterdir() if p.suffix != ".csv")
    if not paths:
        raise SystemExit(f"no fixture speech at {FIXTURES}")
    return paths


def soundformers_serial(paths):
    import soundformers as sf

    return [sf.load_audio(p, sampling_rate=TARGET_SR).samples for p in paths]


def soundformers_threads(paths):
    import soundformers as sf

    return [w.samples for w in sf.audio.load_audios(paths, sampling_rate=TARGET_SR)]


def librosa_load(paths):
    import librosa

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # librosa warns when it falls back to audioread
        return [librosa.load(p, sr=TARGET_SR)[0] for p in paths]


def datasets_audio(paths):
    import datasets

    ds = datasets.Dataset.from_dict({"audio": [str(p) for p in paths]})
    ds = ds.cast_column("audio", datasets.Audio(sampling_rate=TARGET_SR))
    return [np.asarray(row["audio"]["array"]) for row in ds]


CONTENDERS = {
    "soundformers (1 thread)": soundformers_serial,
    "soundformers (load_audios, thread pool)": soundformers_threads,
    "librosa.load": librosa_load,
    "datasets Audio cast (torchcodec)": datasets_audio,
}
OURS = ("soundformers (1 thread)", "soundformers (load_audios, thread pool)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    paths = files()
    reference = None
    rates: dict[str, float] = {}
    print(f"{len(paths)} files, {os.cpu_count()} CPUs, best of {args.rounds} rounds")
    for name, run in CONTENDERS.items():
        try:
            outputs = run(paths)  # warm-up: imports, caches
        except Exception as e:  # a rival that does not run here is reported, not fatal
            print(f"{name:42s} unavailable: {type(e).__name__}: {str(e)[:120]}")
            continue
        if reference is None:
            reference = outputs
        lengths_ok = all(
            abs(len(a) - len(b)) <= 0.06 * TARGET_SR for a, b in zip(outputs, reference)
        )
        best = float("inf")
        for _ in range(args.rounds):
            start = time.perf_counter()
            run(paths)
            best = min(best, time.perf_counter() - start)
        rates[name] = len(paths) / best
        note = "" if lengths_ok else "  (lengths differ from ours by > 60 ms!)"
        print(f"{name:42s} {rates[name]:8.1f} files/s  ({best * 1000:7.1f} ms per set){note}")
    rivals = {k: v for k, v in rates.items() if k not in OURS}
    if rivals:
        fastest = max(rivals, key=rivals.get)
        for ours in OURS:
            if ours in rates:
                print(
                    f"ratio {ours} / fastest rival ({fastest}): {rates[ours] / rivals[fastest]:.2f}x"
                )


if __name__ == "__main__":
    main()
