"""Peak memory of loading Whisper weights, one process per load.

    .venv/bin/python benchmarks/load_memory.py [--large]

Loads the bundled tiny.en and base (CTranslate2, float16 as stored) and, with `--large`, a
random checkpoint of large-v3's size written here as openai-whisper's `.pt` (float16 as
released, 3.1 GB, in a temporary folder), as float32 and as bfloat16. Each load runs in a
fresh process, which prints its resident memory (VmRSS) before and after and the peak
(VmHWM) in MB, and the load's wall time (after a first load that brings the file into the
page cache).

Every load runs twice: as the library does it, and with the file pages behind converted
tensors kept until the checkpoint closes (`checkpoints.release_file_pages` switched off, the
behaviour before it), so the figures compare in one run. The files are memory-mapped: each
page a conversion reads is resident until released, on top of the converted weights.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from asr_memory import memory_mb  # a sibling script (this folder is on the path)

DTYPES = ("float32", "bfloat16")
LARGE_V3 = {  # openai-whisper's ModelDimensions of large-v3
    "n_mels": 128, "n_audio_ctx": 1500, "n_audio_state": 1280, "n_audio_head": 20,
    "n_audio_layer": 32, "n_vocab": 51866, "n_text_ctx": 448, "n_text_state": 1280,
    "n_text_head": 20, "n_text_layer": 32,
}  # fmt: skip


def run_one(model: str, dtype_name: str, release: bool) -> None:
    """Child process: load `model` as `dtype_name`; print one JSON line of figures."""
    import torch

    from soundformers import checkpoints
    from soundformers.models.whisper import model as whisper_model
    from soundformers.models.whisper.load import load_model

    if not release:
        checkpoints._release = lambda tensors, mapped: 0
        whisper_model.release_file_pages = lambda tensors: 0
    before, _ = memory_mb()
    start = time.perf_counter()
    loaded = load_model(model, dtype=getattr(torch, dtype_name))
    seconds = time.perf_counter() - start
    after, peak = memory_mb()
    params = sum(p.numel() * p.element_size() for p in loaded.model.parameters()) / 2**20
    print(json.dumps([before, after, peak, seconds, params]))


def write_large(folder: Path) -> Path:
    """A random large-v3-sized checkpoint as openai-whisper's .pt (float16)."""
    import torch

    from soundformers.models.whisper.config import WhisperConfig
    from soundformers.models.whisper.model import Whisper

    with torch.device("meta"):
        shapes = {k: v.shape for k, v in Whisper(WhisperConfig(**LARGE_V3)).state_dict().items()}
    gen = torch.Generator().manual_seed(0)
    state = {k: (torch.randn(s, generator=gen) * 0.02).half() for k, s in shapes.items()}
    path = folder / "large-v3-random.pt"
    torch.save({"dims": LARGE_V3, "model_state_dict": state}, path)
    return path


def child(model: str, dtype_name: str, release: str) -> list[float]:
    """Run one load in a fresh process: [before, after, peak MB, seconds, weights MB]."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", model, dtype_name, release],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--large", action="store_true", help="also a large-v3-sized .pt")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        model, dtype_name, release = args.child
        run_one(model, dtype_name, release == "release")
        return
    with tempfile.TemporaryDirectory() as tmp:
        models = {"tiny.en (ct2 float16)": "whisper-tiny.en", "base (ct2 float16)": "whisper-base"}
        if args.large:
            models["large-v3 size (.pt float16)"] = str(write_large(Path(tmp)))
        print(f"{'checkpoint':30}{'dtype':>10}{'pages':>10}{'weights':>9}{'before':>8}"
              f"{'after':>8}{'peak':>8}{'peak-before':>12}{'load s':>8}")  # fmt: skip
        for name, model in models.items():
            child(model, "bfloat16", "keep")  # the first read of a file comes from the disk
            for dtype_name in DTYPES:
                for release in ("keep", "release"):
                    before, after, peak, seconds, params = child(model, dtype_name, release)
                    print(f"{name:30}{dtype_name:>10}{release:>10}{params:>9.0f}{before:>8.0f}"
                          f"{after:>8.0f}{peak:>8.0f}{peak - before:>12.0f}{seconds:>8.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
