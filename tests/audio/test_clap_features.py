"""`clap_features` against `transformers.ClapFeatureExtractor`: every truncation x padding, the
random crops made equal by seeding both."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from soundformers.audio.clap_features import clap_features
from soundformers.errors import FeatureError

transformers = pytest.importorskip("transformers")

WINDOW_S = 2  # a 2 s window keeps the reference's per-frame Python loop fast
RATE = 48000


@pytest.fixture(scope="module")
def reference():
    return transformers.ClapFeatureExtractor(frequency_min=50)


def signals(seed=0):
    rng = np.random.default_rng(seed)
    n_window = WINDOW_S * RATE
    lengths = (RATE // 3 + 17, n_window, n_window + 100, int(2.7 * n_window) + 5, 4 * n_window)
    return [(rng.standard_normal(n) * 0.1).astype(np.float32) for n in lengths]


@pytest.mark.parametrize("truncation", ["rand_trunc", "fusion"])
@pytest.mark.parametrize("padding", ["repeatpad", "repeat", "pad"])
def test_matches_reference(reference, truncation, padding):
    audios = signals()
    np.random.seed(7)
    ref = reference(audios, sampling_rate=RATE, truncation=truncation, padding=padding,
                    max_length=WINDOW_S * RATE, return_tensors="pt")  # fmt: skip
    ours = clap_features(audios, truncation=truncation, padding=padding, max_length_s=WINDOW_S,
                         f_min=50, seed=7, mark_one_longer=True)  # fmt: skip
    assert ours.features.shape == ref["input_features"].shape
    assert ours.features.dtype == torch.float32
    torch.testing.assert_close(ours.features, ref["input_features"], atol=2e-5, rtol=0)
    assert ours.is_longer.tolist() == ref["is_longer"].flatten().tolist()


def test_fusion_of_short_clips_marks_one_only_when_asked(reference):
    short = signals()[:2]
    np.random.seed(3)
    ref = reference(short, sampling_rate=RATE, truncation="fusion", max_length=WINDOW_S * RATE)
    assert sum(ref["is_longer"], []).count(True) == 1  # the reference's training-time habit
    ours = clap_features(short, truncation="fusion", max_length_s=WINDOW_S, seed=3,
                         mark_one_longer=True)  # fmt: skip
    assert ours.is_longer.tolist() == sum(ref["is_longer"], [])
    plain = clap_features(short, truncation="fusion", max_length_s=WINDOW_S)
    assert not plain.is_longer.any()
    torch.testing.assert_close(plain.features[:, 0], plain.features[:, 3])  # 4 equal copies


def test_seed_makes_crops_reproducible():
    long = signals()[-1]
    a = clap_features(long, truncation="fusion", max_length_s=WINDOW_S, seed=1).features
    b = clap_features(long, truncation="fusion", max_length_s=WINDOW_S, seed=1).features
    torch.testing.assert_close(a, b, atol=0, rtol=0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sampling_rate": 16000}, "48000 Hz.*resample"),
        ({"truncation": "cut"}, "truncation"),
        ({"padding": "zeros"}, "padding"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(FeatureError, match=match):
        clap_features(np.zeros(1000, np.float32), **kwargs)


@pytest.mark.parametrize(
    ("audio", "match"),
    [
        (np.zeros((2, 3, 100), np.float32), "mono"),
        ([np.zeros(0, np.float32)], "non-empty"),
        ([np.zeros(100, np.int16)], "int16"),
        ([np.array([0.0, np.nan])], "NaN"),
        ("dog.wav", "expected a numpy array"),
    ],
)
def test_bad_audio(audio, match):
    with pytest.raises(FeatureError, match=match):
        clap_features(audio)
