"""Random and mutated bytes give a Waveform or our AudioDecodeError: never a crash or a hang."""

from __future__ import annotations

import warnings
from datetime import timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import soundformers as sf
from tests.conftest import FIXTURES

SEEDS = ["01_wav-16k.wav", "16_flac-16k.flac", "19_mp3-22k.mp3", "21_ogg-22k.ogg",
         "23_opus-48k.opus", "26_m4a-16k.m4a", "28_wav-ulaw-8k.wav"]  # fmt: skip


def _seed_bytes() -> list[bytes]:
    paths = [FIXTURES / "speech" / name for name in SEEDS]
    if not all(p.exists() for p in paths):
        pytest.skip("../shared/fixtures is absent: the fuzz test mutates its files")
    # the head of each file is where the parsers live; keep inputs small so the test is quick
    return [p.read_bytes()[:12000] for p in paths]


def _decode(data: bytes) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            samples, rate = sf.load_audio(data)
        except sf.AudioDecodeError:
            return
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert rate > 0 and np.isfinite(samples).all()


FUZZ = settings(
    max_examples=500,
    deadline=timedelta(seconds=10),  # a hang fails the test
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)


@FUZZ
@given(st.binary(min_size=0, max_size=4096))
def test_random_bytes(data):
    _decode(data)


@FUZZ
@given(st.data())
def test_mutated_files(data):
    seeds = _seed_bytes()
    buffer = bytearray(data.draw(st.sampled_from(seeds)))
    for _ in range(data.draw(st.integers(1, 12))):
        op = data.draw(st.sampled_from(["flip", "set", "cut", "splice"]))
        where = data.draw(st.integers(0, max(0, len(buffer) - 1)))
        if op == "flip" and buffer:
            buffer[where] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "set" and buffer:
            buffer[where] = data.draw(st.sampled_from([0, 0x7F, 0x80, 0xFF]))
        elif op == "cut":
            buffer = buffer[:where]
        else:
            buffer[where:where] = data.draw(st.binary(max_size=16))
    _decode(bytes(buffer))
