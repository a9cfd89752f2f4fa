"""Peak memory of long audio on the way to Whisper's features, one process per step.

    .venv/bin/python benchmarks/long_audio_memory.py [--minutes 60]

The fixture recording `longform/piper_4min.flac` is tiled to `--minutes` of audio. Each
step runs in a fresh process and prints its resident memory (VmRSS) and peak (VmHWM) before
and after, in MB, and its wall time:

- `load stereo 44.1 kHz WAV` / `load stereo 44.1 kHz AAC`: `load_audio(path, 16000)` of a
  third of that length written as a 16-bit stereo WAV (libsndfile decodes it) and as
  stereo AAC in an .m4a (FFmpeg decodes it), at 44.1 kHz (decode, mono mix, resampling);
- `long-form log-mel`: the log-mel of the whole recording followed by 30 s of silence, as
  sequential long form computes it (`transcribe._full_mel`);
- `pause energies`: the silent 10 ms frames (`transcribe._silence`).
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

FIXTURE = (
    Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "longform" / "piper_4min.flac"
)
STEPS = (
    "load stereo 44.1 kHz WAV",
    "load stereo 44.1 kHz AAC",
    "long-form log-mel",
    "pause energies",
)


def run_step(step: str, minutes: float, wav: str) -> None:
    """Child process: one JSON line (before, after, seconds)."""
    import numpy as np
    import torch

    torch.set_num_threads(2)
    from soundformers.audio.io import load_audio
    from soundformers.models.whisper import transcribe

    if step in STEPS[:2]:
        before = memory_mb()
        start = time.perf_counter()
        load_audio(wav if step == STEPS[0] else str(Path(wav).with_suffix(".m4a")), 16000)
    else:
        piece = load_audio(FIXTURE, 16000).samples
        audio = np.resize(piece, int(minutes * 60 * 16000))  # tiled
        before = memory_mb()
        start = time.perf_counter()
        if step == STEPS[2]:
            transcribe._full_mel(audio, 80)
        else:
            transcribe._silence(audio)
    seconds = time.perf_counter() - start
    print(json.dumps([before, memory_mb(), seconds]))


def write_aac(path: str, stereo) -> None:
    """(2, time) float32 at 44.1 kHz as AAC in an .m4a, through PyAV."""
    import av
    import numpy as np

    with av.open(path, "w") as out:
        stream = out.add_stream("aac", rate=44100, layout="stereo")
        for begin in range(0, stereo.shape[1], 1 << 16):
            chunk = np.ascontiguousarray(stereo[:, begin : begin + (1 << 16)], dtype=np.float32)
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            frame.sample_rate = 44100
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        step, minutes, wav = args.child
        run_step(step, float(minutes), wav)
        return
    if not FIXTURE.is_file():
        raise SystemExit(f"fixture not found: {FIXTURE}")
    import numpy as np
    import soundfile

    from soundformers.audio.io import load_audio

    with tempfile.TemporaryDirectory() as folder:
        wav = str(Path(folder) / "stereo.wav")
        mono = load_audio(FIXTURE, 44100).samples
        mono = np.resize(mono, int(args.minutes / 3 * 60 * 44100))
        stereo = np.stack([mono, 0.5 * mono])
        soundfile.write(wav, stereo.T, 44100, subtype="PCM_16")
        write_aac(str(Path(wav).with_suffix(".m4a")), stereo)
        print(f"{args.minutes:.0f} min of audio (the WAV: {args.minutes / 3:.0f} min)")
        print(f"{'step':28}{'RSS before':>11}{'after':>8}{'peak':>8}{'peak - before':>15}{'s':>7}")
        for step in STEPS:
            out = subprocess.run(
                [sys.executable, __file__, "--child", step, str(args.minutes), wav],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            (rss, _), (after, peak), seconds = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{step:28}{rss:>11.0f}{after:>8.0f}{peak:>8.0f}{peak - rss:>15.0f}"
                  f"{seconds:>7.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
