"""Mel scales, filter banks and windows against transformers, librosa and torch."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest

from soundformers.audio.filters import hertz_to_mel, mel_filter_bank, mel_to_hertz, window_function

transformers_audio = pytest.importorskip("transformers.audio_utils")
librosa = pytest.importorskip("librosa")

# (n_freqs, n_mels, f_min, f_max, sampling_rate, mel_scale, norm, triangularize_in_mel_space)
BANKS = [
    pytest.param(201, 80, 0.0, 8000.0, 16000, "slaney", "slaney", False, id="whisper-80"),
    pytest.param(201, 128, 0.0, 8000.0, 16000, "slaney", "slaney", False, id="whisper-128"),
    pytest.param(257, 128, 20.0, 8000.0, 16000, "kaldi", None, True, id="ast-kaldi-128"),
    pytest.param(257, 23, 20.0, 8000.0, 16000, "kaldi", None, True, id="kaldi-23"),
    pytest.param(513, 64, 50.0, 14000.0, 48000, "htk", None, False, id="clap-like-htk"),
    pytest.param(513, 64, 50.0, 14000.0, 48000, "htk", "slaney", False, id="htk-slaney-norm"),
    pytest.param(1025, 128, 0.0, 22050.0, 44100, "slaney", "slaney", False, id="librosa-default"),
    pytest.param(1025, 128, 0.0, 22050.0, 44100, "slaney", None, False, id="slaney-no-norm"),
    pytest.param(129, 40, 133.0, 6854.0, 16000, "slaney", "slaney", False, id="fb40"),
]


@pytest.mark.parametrize("n_freqs, n_mels, f_min, f_max, sr, scale, norm, in_mel", BANKS)
def test_mel_filter_bank_equals_transformers(
    n_freqs, n_mels, f_min, f_max, sr, scale, norm, in_mel
):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the Kaldi 128-mel bank has empty filters
        ours = mel_filter_bank(n_freqs, n_mels, f_min, f_max, sr, scale, norm, in_mel)
        ref = transformers_audio.mel_filter_bank(
            num_frequency_bins=n_freqs,
            num_mel_filters=n_mels,
            min_frequency=f_min,
            max_frequency=f_max,
            sampling_rate=sr,
            norm=norm,
            mel_scale=scale,
            triangularize_in_mel_space=in_mel,
        )
    assert ours.dtype == np.float64
    assert ours.shape == (n_freqs, n_mels)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-15)


@pytest.mark.parametrize(
    "n_freqs, n_mels, f_min, f_max, sr, scale, norm, in_mel",
    [b for b in BANKS if b.values[5] != "kaldi"],
)
def test_mel_filter_bank_equals_librosa(n_freqs, n_mels, f_min, f_max, sr, scale, norm, in_mel):
    ours = mel_filter_bank(n_freqs, n_mels, f_min, f_max, sr, scale, norm, in_mel)
    ref = librosa.filters.mel(
        sr=sr,
        n_fft=2 * (n_freqs - 1),
        n_mels=n_mels,
        fmin=f_min,
        fmax=f_max,
        htk=scale == "htk",
        norm=norm,
        dtype=np.float64,
    )
    # librosa writes the Slaney scale as f / (200 / 3) where we (and transformers) write 3 f / 200:
    # the filters agree to a few ulps of their peak value.
    np.testing.assert_allclose(ours, ref.T, rtol=0, atol=1e-12 * ref.max())


@pytest.mark.parametrize("scale", ["htk", "slaney", "kaldi"])
def test_mel_scale_conversions(scale):
    freqs = np.array([0.0, 20.0, 440.0, 999.9, 1000.0, 1000.1, 4000.0, 8000.0, 22050.0])
    mels = hertz_to_mel(freqs, scale)
    np.testing.assert_allclose(
        mels, transformers_audio.hertz_to_mel(freqs.copy(), scale), rtol=1e-15, atol=0
    )
    np.testing.assert_allclose(mel_to_hertz(mels, scale), freqs, rtol=1e-12, atol=1e-9)
    ref_hz = transformers_audio.mel_to_hertz(mels.copy(), scale)
    np.testing.assert_allclose(mel_to_hertz(mels, scale), ref_hz, rtol=1e-15, atol=0)
    if scale != "kaldi":
        np.testing.assert_allclose(mels, librosa.hz_to_mel(freqs, htk=scale == "htk"), rtol=1e-13)
    # scalars stay scalars
    assert isinstance(hertz_to_mel(1500.0, scale), float)
    assert isinstance(mel_to_hertz(10.0, scale), float)
    assert hertz_to_mel(1500.0, scale) == pytest.approx(
        float(hertz_to_mel(np.array([1500.0]), scale)[0]), rel=1e-15
    )


def test_htk_and_kaldi_scales_are_the_same_curve():
    freqs = np.linspace(0, 8000, 101)
    np.testing.assert_allclose(hertz_to_mel(freqs, "htk"), hertz_to_mel(freqs, "kaldi"), rtol=2e-4)


@pytest.mark.parametrize("name", ["hann", "hamming", "povey", "boxcar"])
@pytest.mark.parametrize("periodic", [True, False])
@pytest.mark.parametrize("length", [1, 2, 400, 512])
def test_window_equals_transformers(name, periodic, length):
    ours = window_function(name, length, periodic)
    ref = transformers_audio.window_function(length, name, periodic=periodic)
    assert ours.shape == (length,) and ours.dtype == np.float64
    np.testing.assert_array_equal(ours, ref)


def test_window_equals_torch():
    torch = pytest.importorskip("torch")
    cases = [
        (window_function("hann", 400), torch.hann_window(400, dtype=torch.float64)),
        (
            window_function("hanning", 400, periodic=False),
            torch.hann_window(400, periodic=False, dtype=torch.float64),
        ),
        (
            window_function("hamming", 400, periodic=False),
            torch.hamming_window(400, periodic=False, dtype=torch.float64),
        ),
        (
            window_function("blackman", 400, periodic=False),
            torch.blackman_window(400, periodic=False, dtype=torch.float64),
        ),
        (window_function("blackman", 400), torch.blackman_window(400, dtype=torch.float64)),
    ]
    for ours, ref in cases:
        np.testing.assert_allclose(ours, ref.numpy(), rtol=0, atol=1e-15)


def test_kaldi_windows():
    n = np.arange(400)
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * n / 399)
    np.testing.assert_allclose(
        window_function("povey", 400, periodic=False), hann**0.85, atol=1e-15
    )
    coeff = 0.4
    blackman = (
        coeff - 0.5 * np.cos(2 * np.pi * n / 399) + (0.5 - coeff) * np.cos(4 * np.pi * n / 399)
    )
    np.testing.assert_allclose(
        window_function("blackman", 400, periodic=False, blackman_coeff=coeff), blackman, atol=1e-15
    )
    np.testing.assert_array_equal(window_function("rectangular", 7), np.ones(7))
    assert window_function("hann", 0).shape == (0,)


def test_errors():
    with pytest.raises(ValueError, match="mel_scale"):
        hertz_to_mel(100.0, "bark")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mel_scale"):
        mel_to_hertz(100.0, "bark")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="norm"):
        mel_filter_bank(201, 80, 0, 8000, 16000, norm="l2")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_freqs"):
        mel_filter_bank(1, 80, 0, 8000, 16000)
    with pytest.raises(ValueError, match="f_min"):
        mel_filter_bank(201, 80, 9000, 8000, 16000)
    with pytest.raises(ValueError, match="Unknown window"):
        window_function("gauss", 10)  # type: ignore[arg-type]
    with pytest.warns(UserWarning, match="zero everywhere"):
        mel_filter_bank(33, 128, 0, 8000, 16000)


def test_filters_module_does_not_import_torch():
    code = "import sys, soundformers.audio.filters; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
