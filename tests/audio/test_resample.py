"""Property tests for `soundformers.audio.resample` (soxr HQ)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from soundformers.audio import resample, resampled_length
from soundformers.errors import SoundformersError

RATES = [8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000, 96000]
rates = st.sampled_from(RATES)


@settings(max_examples=150, deadline=None)
@given(n=st.integers(0, 20000), orig=rates, new=rates)
def test_output_length_is_predicted(n, orig, new):
    x = np.random.default_rng(n).standard_normal(n).astype(np.float32) * 0.1
    y = resample(x, orig, new)
    assert y.dtype == np.float32
    assert len(y) == resampled_length(n, orig, new)
    assert abs(len(y) - n * new / orig) <= 0.5


@pytest.mark.parametrize(
    ("n", "orig", "new", "expected"),
    [(480, 96000, 44100, 220), (400, 24000, 22050, 367), (1800, 24000, 44100, 3307),
     (441, 44100, 16000, 160), (3, 16000, 48000, 9)],
)  # fmt: skip
def test_output_length_at_an_exact_half_is_soxrs(n, orig, new, expected):
    """n * new / orig = 220.5, 367.5 or 3307.5: soxr's double arithmetic rounds these down."""
    assert resampled_length(n, orig, new) == expected
    assert len(resample(np.ones(n, np.float32), orig, new)) == expected


@settings(max_examples=60, deadline=None)
@given(
    orig=rates,
    new=rates,
    frequency=st.floats(50, 3500),
    seconds=st.floats(0.25, 1.0),
)
def test_a_tone_keeps_its_frequency(orig, new, frequency, seconds):
    t = np.arange(int(orig * seconds)) / orig
    y = resample(np.sin(2 * np.pi * frequency * t).astype(np.float32), orig, new)
    window = np.hanning(len(y))
    spectrum = np.abs(np.fft.rfft(y * window, n=8 * len(y)))
    peak = np.fft.rfftfreq(8 * len(y), 1 / new)[spectrum.argmax()]
    assert peak == pytest.approx(frequency, abs=max(2.0, new / len(y)))


@settings(max_examples=60, deadline=None)
@given(orig=rates, new=rates, frequency=st.floats(50, 3000))
def test_full_scale_tone_stays_within_the_ripple(orig, new, frequency):
    t = np.arange(orig // 2) / orig
    y = resample(np.sin(2 * np.pi * frequency * t).astype(np.float32), orig, new)
    middle = y[len(y) // 8 : -len(y) // 8]  # away from the filter's edge transients
    assert np.abs(middle).max() <= 1.0 + 1e-3  # HQ passband ripple is far below 0.01 dB
    assert np.abs(middle).max() >= 1.0 - 1e-2


def test_batch_equals_row_by_row_and_keeps_leading_shape():
    x = np.random.default_rng(0).standard_normal((2, 3, 4410)).astype(np.float32)
    y = resample(x, 44100, 16000)
    assert y.shape == (2, 3, 1600)
    for i in range(2):
        for j in range(3):
            np.testing.assert_allclose(y[i, j], resample(x[i, j], 44100, 16000), atol=1e-6)


def test_torch_in_torch_out_and_same_rate_is_identity():
    import torch

    x = torch.randn(2, 1000)
    y = resample(x, 16000, 8000)
    assert isinstance(y, torch.Tensor) and y.shape == (2, 500) and y.dtype == torch.float32
    assert resample(x, 16000, 16000) is x
    z = resample(np.zeros(100, np.float64), 16000, 8000)
    assert z.dtype == np.float64


@pytest.mark.parametrize("bad", [0, -16000, 16000.5, "16k", None, True])
def test_bad_rates_are_refused(bad):
    with pytest.raises(SoundformersError, match="orig_sr"):
        resample(np.zeros(10, np.float32), bad, 16000)
