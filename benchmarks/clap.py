"""Zero-shot audio classification speed: soundformers vs transformers' pipeline, same weights.

    .venv/bin/python benchmarks/clap.py [--clips 10] [--labels 10] [--batch-size 10]

Model: the full-size `laion/clap-htsat-unfused` architecture (transformers' default ClapConfig:
HTSAT-base + RoBERTa-base) with random weights and a small BPE tokenizer, saved and loaded from
disk as a user would. Inputs: the 10 animal sounds of the fixtures (decoded and resampled to
48 kHz once, outside the timing), 10 label texts. Both sides run their whole pipeline
(features, text and audio encoders, softmax) under `torch.inference_mode`.

Two races, each run once after one warm-up call with *other* labels:
- "new labels": the label set is new to both pipelines;
- "same labels again": the same labels a second time (ours reuses the cached text embeddings;
  transformers re-encodes the labels for every clip).
Prints seconds, the max-abs difference of the scores, and transformers / ours (> 1: faster).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT.parent / "shared" / "fixtures" / "sounds" / "animals"
LABELS = ["dog", "cat", "cow", "duck", "frog", "horse", "owl", "pig", "rooster", "sheep",
          "rain", "a car engine", "speech", "music"]  # fmt: skip


def scores(results: list[list[dict]], labels: list[str]) -> torch.Tensor:
    return torch.tensor([[{r["label"]: r["score"] for r in res}[lb] for lb in labels]
                         for res in results])  # fmt: skip


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=10)
    parser.add_argument("--labels", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=10)
    args = parser.parse_args()
    logging.getLogger("transformers").setLevel(logging.ERROR)

    import transformers

    import soundformers
    from soundformers.audio.io import load_audio

    sys.path.insert(0, str(ROOT))
    from tests.models.clap.tiny import tiny_tokenizer

    paths = sorted(FIXTURES.glob("*.flac"))
    audios = [load_audio(str(paths[i % len(paths)]), sampling_rate=48000).samples
              for i in range(args.clips)]  # fmt: skip
    labels = [f"{LABELS[i % len(LABELS)]} {i // len(LABELS) or ''}".strip()
              for i in range(args.labels)]  # fmt: skip
    warm_labels = ["warm-up", "labels"]

    with tempfile.TemporaryDirectory() as folder:
        torch.manual_seed(0)
        hf = transformers.ClapModel(transformers.ClapConfig()).eval()
        hf.save_pretrained(folder)
        extractor = transformers.ClapFeatureExtractor(truncation="rand_trunc", frequency_min=50)
        extractor.save_pretrained(folder)
        tokenizer = tiny_tokenizer(transformers)
        tokenizer.save_pretrained(folder)
        ours = soundformers.pipeline("zero-shot-audio-classification", model=folder,
                                     batch_size=args.batch_size)  # fmt: skip
    theirs = transformers.pipeline("zero-shot-audio-classification", model=hf,
                                   tokenizer=tokenizer, feature_extractor=extractor)  # fmt: skip

    def run_ours(candidates):
        return ours(audios, candidate_labels=candidates)

    def run_theirs(candidates):
        with torch.inference_mode():
            return theirs(audios, candidate_labels=candidates)

    print(f"CLAP htsat-unfused (random), {args.clips} clips x {args.labels} labels, "
          f"torch threads {torch.get_num_threads()}, ours batch_size {args.batch_size}")  # fmt: skip
    run_ours(warm_labels), run_theirs(warm_labels)
    for title in ("new labels", "same labels again"):
        t_ours, y_ours = timed(lambda: run_ours(labels))
        t_theirs, y_theirs = timed(lambda: run_theirs(labels))
        diff = (scores(y_ours, labels) - scores(y_theirs, labels)).abs().max().item()
        print(f"{title:>18}: ours {t_ours:7.3f} s  transformers {t_theirs:7.3f} s  "
              f"ratio {t_theirs / t_ours:5.2f}x  max |score diff| {diff:.1e}")  # fmt: skip


if __name__ == "__main__":
    main()
