"""One Whisper decode step, tiny.en: ours (float32, bfloat16, bfloat16 + int8 decoder)
against CTranslate2's float32 (faster-whisper's engine), same weights, at batch 1 and batch 8.

    .venv/bin/python benchmarks/decode_step.py [--threads 2] [--rounds 30] [--batches 1 8]

Ours: `decode_step` on one token per row at cache positions 50-145 of a window (random
features), 20 steps per round; the median and best round are printed, per step and, at
batch 8, per decoded token (a step decodes one token per row). CTranslate2: its `generate`
cannot be stepped from Python, so the step is the difference between generating 40 and 240
tokens (end-of-text suppressed) over the extra tokens, best of `--rounds // 6`.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

import numpy as np
import torch


def ours(
    dtype: torch.dtype, quantization: str | None, rounds: int, batch: int
) -> tuple[float, float]:
    """(median, best) ms per decode step of our model in this configuration, `batch` rows."""
    import soundformers

    kwargs = {"quantization": quantization} if quantization else {}
    asr = soundformers.pipeline("automatic-speech-recognition", dtype=dtype, model_kwargs=kwargs)
    model = asr.model.model
    times = []
    with torch.inference_mode():
        mel = torch.randn(1, 80, 3000, generator=torch.Generator().manual_seed(0))
        cross_kv = model.cross_kv(model.encode(mel.to(model.dtype)).expand(batch, -1, -1))
        cache = model.new_cache(batch, 448)
        prompt = torch.tensor([[50257, 50362, 440]]).expand(batch, -1)
        model.decode_step(prompt, cross_kv, cache, torch.arange(3))
        token = torch.full((batch, 1), 1000)
        slots = [torch.tensor([p]) for p in range(448)]
        for _ in range(rounds):
            start = time.perf_counter()
            for i in range(20):
                model.decode_step(token, cross_kv, cache, slots[50 + 5 * i], exact_from=50256)
            times.append((time.perf_counter() - start) / 20 * 1000)
    return statistics.median(times), min(times)


def ctranslate2_step(threads: int, rounds: int, batch: int) -> float:
    """Best ms per step (one token per row, `batch` rows) of CTranslate2's float32 Whisper
    (bundled tiny.en)."""
    import ctranslate2

    from soundformers.hub import resolve_model

    folder = resolve_model("whisper-tiny.en").folder
    model = ctranslate2.models.Whisper(str(folder), device="cpu", compute_type="float32",
                                       intra_threads=threads)  # fmt: skip
    mel = np.random.default_rng(0).standard_normal((1, 80, 3000)).astype(np.float32) * 0.1
    mel = np.repeat(mel, batch, axis=0)
    encoded = model.encode(ctranslate2.StorageView.from_array(mel), to_cpu=True)

    def generate(max_length: int) -> tuple[float, int]:
        start = time.perf_counter()
        out = model.generate(encoded, [[50257, 50362]] * batch, beam_size=1, max_length=max_length,
                             suppress_tokens=[50256], suppress_blank=False)  # fmt: skip
        return time.perf_counter() - start, len(out[0].sequences_ids[0])

    generate(10)
    best = {}
    for _ in range(max(rounds // 6, 3)):
        for n in (40, 240):
            seconds, tokens = generate(n)
            if n not in best or seconds < best[n][0]:
                best[n] = (seconds, tokens)
    return (best[240][0] - best[40][0]) / (best[240][1] - best[40][1]) * 1000


SYSTEMS = {
    "soundformers float32": (torch.float32, None),
    "soundformers bfloat16": (torch.bfloat16, None),
    "soundformers bfloat16 + int8": (torch.bfloat16, "int8"),
    "CTranslate2 float32": None,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--system", choices=SYSTEMS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.system is None:  # each system in its own process: no two thread pools compete
        for batch in args.batches:
            print(f"decode step at batch {batch}, tiny.en, {args.threads} threads")
            for name in SYSTEMS:
                command = [sys.executable, __file__, "--system", name, "--batches", str(batch),
                           "--threads", str(args.threads), "--rounds", str(args.rounds)]  # fmt: skip
                subprocess.run(command, check=True)
        return
    torch.set_num_threads(args.threads)
    batch = args.batches[0]
    if SYSTEMS[args.system] is None:
        try:
            step = ctranslate2_step(args.threads, args.rounds, batch)
        except ImportError:
            print(f"{args.system:32} not installed (pip install faster-whisper)")
        else:
            print(f"{args.system:32} {step:6.2f} ms per step (best), {step / batch:5.2f} per token")
        return
    median, best = ours(*SYSTEMS[args.system], args.rounds, batch)
    print(
        f"{args.system:32} {median:6.2f} ms median, {best:6.2f} ms best per step, "
        f"{best / batch:5.2f} per token"
    )


if __name__ == "__main__":
    main()
