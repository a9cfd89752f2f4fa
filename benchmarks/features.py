"""Feature extraction speed: soundformers vs transformers and faster-whisper, in one run.

    .venv/bin/python benchmarks/features.py [--batch 8] [--rounds 5]

Whisper: log-mel of a batch of 30 s clips (cut from the fixture recording piper_4min.flac),
80 mels, padded to 30 s. Rivals: `WhisperFeatureExtractor.__call__` (it uses torch.stft when
torch is installed), its numpy path (`_np_extract_fbank_features`, what it runs without torch)
and faster-whisper's numpy `FeatureExtractor`, one clip at a time. AST: the input features of
a batch of 10 s clips vs `ASTFeatureExtractor` (its numpy Kaldi path: torchaudio is not
installed). Each contender runs once to warm up, then `--rounds` times; the best round counts
(least disturbed by other load on the machine). Prints seconds per batch, the max-abs
difference to the reference, and the ratio rival / ours (> 1: we are faster).
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile
import torch

FIXTURE = (
    Path(__file__).resolve().parents[1].parent
    / "shared"
    / "fixtures"
    / "longform"
    / "piper_4min.flac"
)
SR = 16000


def clips(seconds: int, count: int) -> list[np.ndarray]:
    if not FIXTURE.exists():
        raise SystemExit(f"no fixture recording at {FIXTURE}")
    audio, rate = soundfile.read(FIXTURE, dtype="float32")
    if rate != SR:
        raise SystemExit(f"{FIXTURE} is at {rate} Hz, expected {SR}")
    size = seconds * SR
    starts = [(i * size) % (len(audio) - size) for i in range(count)]
    return [audio[s : s + size] for s in starts]


def best_time(fn: Callable[[], object], rounds: int) -> tuple[float, object]:
    result = fn()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def report(
    title: str, contenders: dict[str, Callable[[], object]], reference: str, rounds: int
) -> None:
    print(f"\n{title}")
    results = {name: best_time(fn, rounds) for name, fn in contenders.items()}
    ours_time, _ = results["soundformers"]
    ref = np.asarray(results[reference][1])
    for name, (seconds, out) in results.items():
        diff = float(np.abs(np.asarray(out) - ref).max())
        ratio = seconds / ours_time
        print(
            f"  {name:<38} {seconds * 1000:9.1f} ms   max-abs vs {reference}: {diff:.1e}   ratio {ratio:5.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    import transformers
    from faster_whisper.feature_extractor import FeatureExtractor

    from soundformers.audio.features import ast_features, whisper_log_mel

    transformers.logging.set_verbosity_error()
    warnings.filterwarnings("ignore", category=UserWarning)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; transformers {transformers.__version__}"
    )

    whisper_batch = clips(30, args.batch)
    stacked = np.stack(whisper_batch)
    whisper_fe = transformers.WhisperFeatureExtractor(feature_size=80)
    fw = FeatureExtractor(feature_size=80)

    def tf_call():
        return whisper_fe(whisper_batch, sampling_rate=SR, return_tensors="np")["input_features"]

    def tf_numpy():
        return whisper_fe._np_extract_fbank_features(stacked, "cpu")

    def faster_whisper():
        return np.stack([fw(clip)[:, :3000] for clip in whisper_batch])

    report(
        f"Whisper log-mel, {args.batch} x 30 s, 80 mels",
        {
            "soundformers": lambda: whisper_log_mel(stacked).numpy(),
            "soundformers (list input)": lambda: whisper_log_mel(whisper_batch).numpy(),
            "transformers WhisperFeatureExtractor": tf_call,
            "transformers numpy path": tf_numpy,
            "faster-whisper FeatureExtractor": faster_whisper,
        },
        reference="transformers WhisperFeatureExtractor",
        rounds=args.rounds,
    )

    ast_batch = clips(10, args.batch)
    ast_fe = transformers.ASTFeatureExtractor()
    report(
        f"AST features, {args.batch} x 10 s, 128 mels, 1024 frames",
        {
            "soundformers": lambda: ast_features(np.stack(ast_batch)).numpy(),
            "transformers ASTFeatureExtractor": lambda: ast_fe(
                ast_batch, sampling_rate=SR, return_tensors="np"
            )["input_values"],
        },
        reference="transformers ASTFeatureExtractor",
        rounds=args.rounds,
    )


if __name__ == "__main__":
    main()
