"""Feature extraction against the references: transformers' Whisper and AST feature extractors,
faster-whisper's feature extractor, and transformers' numpy Kaldi fbank (its path without
torchaudio). Options the references lack are checked against a direct float64 numpy
transcription of Kaldi's per-frame recipe, below."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
import torch

from soundformers.audio.features import ast_features, kaldi_fbank, whisper_log_mel
from soundformers.errors import FeatureError
from tests.conftest import fixture_path

transformers = pytest.importorskip("transformers")
transformers_audio = pytest.importorskip("transformers.audio_utils")

WHISPER_TOL = 1e-4  # max-abs, in Whisper's normalised log10 units
AST_TOL = 1e-3  # max-abs, in AST's normalised units: (log - mean) / (2 * 4.5689974)
FBANK_TOL = AST_TOL * 2 * 4.5689974  # the same, in natural-log fbank units
EPS32 = float(np.finfo(np.float32).eps)  # Kaldi's log floor


@pytest.fixture(scope="module", autouse=True)
def _quiet_transformers():
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    yield
    transformers.logging.set_verbosity(verbosity)


@pytest.fixture(scope="module")
def speech() -> list[np.ndarray]:
    """The six test-split clips (2.5-3 s; espeak en-gb, en-us, f5, klatt2 and Piper voices)."""
    paths = sorted(fixture_path("speech_split").glob("*/*.wav"))[:6]
    return [_read(p) for p in paths]


@pytest.fixture(scope="module")
def all_speech() -> list[np.ndarray]:
    return [_read(p) for p in sorted(fixture_path("speech_split").glob("*/*.wav"))]


@pytest.fixture(scope="module")
def long_speech() -> np.ndarray:
    return _read(fixture_path("longform", "espeak_75s.wav"))


def _read(path) -> np.ndarray:
    samples, rate = soundfile.read(path, dtype="float32")
    assert rate == 16000 and samples.ndim == 1
    return samples


def _max_abs(a, b) -> float:
    a = a.numpy() if isinstance(a, torch.Tensor) else a
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.abs(a - b).max()) if a.size else 0.0


# --------------------------------------------------------------------------- Whisper


def _whisper_ref(audio, n_mels, **kwargs) -> np.ndarray:
    extractor = transformers.WhisperFeatureExtractor(feature_size=n_mels)
    return extractor(audio, sampling_rate=16000, return_tensors="np", **kwargs)["input_features"]


@pytest.mark.parametrize("n_mels", [80, 128])
def test_whisper_padded_to_30s_equals_transformers(all_speech, n_mels):
    ours = whisper_log_mel(all_speech[0], n_mels)
    assert ours.shape == (n_mels, 3000) and ours.dtype == torch.float32
    assert _max_abs(ours, _whisper_ref(all_speech[0], n_mels)[0]) < WHISPER_TOL
    # all 30 clips, as one batch on both sides (an item's features do not depend on the batch)
    assert (
        _max_abs(whisper_log_mel(all_speech, n_mels), _whisper_ref(all_speech, n_mels))
        < WHISPER_TOL
    )


@pytest.mark.parametrize("n_mels", [80, 128])
def test_whisper_unpadded_equals_transformers(speech, n_mels):
    for audio in speech:
        ours = whisper_log_mel(audio, n_mels, padding="longest")
        assert ours.shape == (n_mels, len(audio) // 160)
        ref = _whisper_ref(audio, n_mels, padding="longest", truncation=False)[0]
        assert _max_abs(ours, ref) < WHISPER_TOL
        assert torch.equal(ours, whisper_log_mel(audio, n_mels, padding=None))


@pytest.mark.parametrize("n_mels", [80, 128])
def test_whisper_long_form(long_speech, n_mels):
    # no truncation: every frame of the 75 s recording
    ours = whisper_log_mel(long_speech, n_mels, padding=None)
    ref = _whisper_ref(long_speech, n_mels, padding="longest", truncation=False)[0]
    assert ours.shape == (n_mels, len(long_speech) // 160)
    assert _max_abs(ours, ref) < WHISPER_TOL
    # default: cut to the first 30 s
    assert (
        _max_abs(whisper_log_mel(long_speech, n_mels), _whisper_ref(long_speech, n_mels)[0])
        < WHISPER_TOL
    )


@pytest.mark.parametrize("frames", [3001, 6000, 7777])
def test_whisper_long_signals_are_transformed_in_blocks(monkeypatch, frames):
    """Past 3000 frames the STFT runs a block at a time (memory flat in the length), with
    the features of one whole centred STFT, reflected ends included."""
    from soundformers.audio import features

    g = torch.Generator().manual_seed(frames)
    audio = torch.randn(2, frames * 160 + 77, generator=g) * 0.1
    seen = []
    stft = torch.stft
    monkeypatch.setattr(
        torch, "stft", lambda x, *a, **k: seen.append(x.shape[-1]) or stft(x, *a, **k)
    )
    blocked = whisper_log_mel(audio, padding=None)
    assert seen and max(seen) <= 3000 * 160 + 400 and len(seen) == -(-frames // 3000)
    monkeypatch.setattr(features, "_MEL_BLOCK_FRAMES", 10**9)
    whole = whisper_log_mel(audio, padding=None)
    assert blocked.shape == whole.shape == (2, 80, frames)
    torch.testing.assert_close(blocked, whole, atol=1e-6, rtol=0)


@pytest.mark.parametrize("real", [100, 5000, 3000 * 160 - 30, 7777 * 160 + 77])
def test_whisper_trailing_zeros_equal_a_padded_copy(real):
    """Zeros appended without a copy (long-form's 30 s of silence) give the padded copy's
    features bit for bit: short signals, blocks that end inside the audio or straddle it, and
    audio shorter than the STFT's reflection."""
    g = torch.Generator().manual_seed(real)
    audio = torch.randn(real, generator=g) * 0.1
    zeros = 30 * 16000
    copied = whisper_log_mel(torch.cat([audio, torch.zeros(zeros)]), padding=None)
    virtual = whisper_log_mel(audio, padding=None, trailing_zeros=zeros)
    assert virtual.shape == copied.shape == (80, (real + zeros) // 160)
    assert torch.equal(virtual, copied)
    short = whisper_log_mel(audio, padding=None, trailing_zeros=160 * 7)  # the unblocked path
    padded = whisper_log_mel(torch.cat([audio, torch.zeros(160 * 7)]), padding=None)
    assert torch.equal(short, padded)
    with pytest.raises(ValueError, match="trailing_zeros"):
        whisper_log_mel(audio, trailing_zeros=zeros)  # padding="max_length"


@pytest.mark.parametrize("n_mels", [80, 128])
def test_whisper_ragged_batch(speech, n_mels):
    batch = [speech[0], speech[1][:20000], speech[2][:1234]]
    padded = whisper_log_mel(batch, n_mels)
    assert padded.shape == (3, n_mels, 3000)
    assert _max_abs(padded, _whisper_ref(batch, n_mels)) < WHISPER_TOL
    for item, audio in zip(padded, batch):  # padded to 30 s, an item does not see the others
        assert torch.equal(item, whisper_log_mel(audio, n_mels))
    longest = whisper_log_mel(batch, n_mels, padding="longest")
    assert longest.shape == (3, n_mels, len(speech[0]) // 160)
    assert _max_abs(longest, _whisper_ref(batch, n_mels, padding="longest")) < WHISPER_TOL


def test_whisper_input_forms(speech):
    audio = speech[0]
    expected = whisper_log_mel(audio)
    assert (
        _max_abs(
            whisper_log_mel(audio.astype(np.float64)), _whisper_ref(audio.astype(np.float64), 80)[0]
        )
        < WHISPER_TOL
    )
    assert torch.equal(whisper_log_mel(torch.from_numpy(audio)), expected)
    assert torch.equal(whisper_log_mel(list(audio[:3200].tolist())), whisper_log_mel(audio[:3200]))
    # (..., time): leading dims are independent signals
    stack = np.stack(
        [audio[:40000], audio[1000:41000], audio[2000:42000], audio[3000:43000]]
    ).reshape(2, 2, -1)
    out = whisper_log_mel(stack, padding=None)
    assert out.shape == (2, 2, 80, 250)
    assert torch.equal(out[1, 0], whisper_log_mel(stack[1, 0], padding=None))
    out_device = whisper_log_mel(audio, device="cpu")
    assert out_device.device.type == "cpu" and torch.equal(out_device, expected)


@pytest.mark.parametrize("n_mels", [80, 128])
def test_whisper_10ms_clip(speech, n_mels):
    clip = speech[0][8000:8160]
    assert _max_abs(whisper_log_mel(clip, n_mels), _whisper_ref(clip, n_mels)[0]) < WHISPER_TOL
    silence = whisper_log_mel(np.zeros(0, np.float32), n_mels)
    assert torch.equal(silence, torch.full((n_mels, 3000), -1.5))  # (log10(1e-10) + 4) / 4


@pytest.mark.parametrize("n_mels", [80, 128])
def test_whisper_faster_whisper_variant(speech, long_speech, n_mels):
    fw = pytest.importorskip("faster_whisper.feature_extractor")
    fw_audio = pytest.importorskip("faster_whisper.audio")
    extractor = fw.FeatureExtractor(feature_size=n_mels)
    for audio in [*speech[:3], long_speech]:
        # faster-whisper's first window: log-mel of the whole audio, then the features padded
        ref = fw_audio.pad_or_trim(extractor(audio)[:, :-1])
        ours = whisper_log_mel(audio, n_mels, pad_mode="features")
        # numpy float64 FFT there, torch float32 here: a little more rounding than vs transformers
        assert _max_abs(ours, ref) < 2e-4
    batch = [speech[0], speech[1][:20000], speech[2][:1234]]
    padded = whisper_log_mel(batch, n_mels, pad_mode="features")
    for item, audio in zip(padded, batch):
        assert torch.equal(item, whisper_log_mel(audio, n_mels, pad_mode="features"))
    longest = whisper_log_mel(batch, n_mels, pad_mode="features", padding="longest")
    assert longest.shape == (3, n_mels, len(speech[0]) // 160)
    assert torch.equal(longest, padded[..., : longest.shape[-1]])
    alone = whisper_log_mel(speech[0], n_mels, pad_mode="features", padding=None)
    assert torch.equal(alone, longest[0])


def test_whisper_errors(speech):
    audio = speech[0]
    with pytest.raises(
        FeatureError, match=r"16000 Hz.*sampling_rate=44100.*soundformers\.audio\.resample"
    ):
        whisper_log_mel(audio, sampling_rate=44100)
    bad = audio.copy()
    bad[100] = np.nan
    with pytest.raises(FeatureError, match="NaN"):
        whisper_log_mel(bad)
    with pytest.raises(FeatureError, match=r"item\(s\) \[1\]"):
        whisper_log_mel([audio, bad])
    with pytest.raises(FeatureError, match="int16.*32768"):
        whisper_log_mel((audio * 32767).astype(np.int16))
    with pytest.raises(FeatureError, match="scalar"):
        whisper_log_mel(np.array(0.5, dtype=np.float32))
    with pytest.raises(FeatureError, match=r"audio\[1\] has shape \(2, 100\)"):
        whisper_log_mel([audio, np.zeros((2, 100), np.float32)])
    with pytest.raises(FeatureError, match="padding='longest'"):
        whisper_log_mel([audio, audio[:100]], padding=None)
    with pytest.raises(FeatureError, match="too few"):
        whisper_log_mel(audio[:100], padding=None)
    with pytest.raises(FeatureError, match="empty list"):
        whisper_log_mel([])
    with pytest.raises(ValueError, match="padding"):
        whisper_log_mel(audio, padding="shortest")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pad_mode"):
        whisper_log_mel(audio, pad_mode="both")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- Kaldi fbank


def _fbank_ref(
    audio,
    *,
    sr=16000,
    n_mels=128,
    window="hanning",
    preemphasis=0.97,
    dc=True,
    power=2.0,
    log=True,
    low=20.0,
    high=0.0,
):
    """transformers' numpy Kaldi fbank, as ASTFeatureExtractor runs it without torchaudio."""
    win, shift = int(sr * 0.025), int(sr * 0.010)
    n_fft = 1 << (win - 1).bit_length()
    name = {"hanning": "hann", "rectangular": "boxcar"}.get(window, window)
    filters = transformers_audio.mel_filter_bank(
        n_fft // 2 + 1,
        n_mels,
        low,
        high if high > 0 else sr / 2 + high,
        sr,
        None,
        "kaldi",
        triangularize_in_mel_space=True,
    )
    spec = transformers_audio.spectrogram(
        audio,
        transformers_audio.window_function(win, name, periodic=False),
        frame_length=win,
        hop_length=shift,
        fft_length=n_fft,
        power=power,
        center=False,
        preemphasis=preemphasis or None,
        mel_filters=filters,
        log_mel="log" if log else None,
        mel_floor=EPS32 if log else 0.0,
        remove_dc_offset=dc,
    )
    return spec.T  # (frames, n_mels)


@pytest.mark.filterwarnings("ignore:At least one mel filter:UserWarning")
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"window": "povey"},
        {"window": "hamming", "n_mels": 80},
        {"window": "rectangular", "n_mels": 23, "low": 64.0, "high": -400.0},
        {"preemphasis": 0.0, "dc": False},
        {"sr": 8000, "n_mels": 40},
        {"power": 1.0},
        {"log": False},
    ],
    ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "ast-defaults",
)
def test_kaldi_fbank_equals_transformers_numpy(speech, options):
    audio = speech[3]
    ref = _fbank_ref(audio, **options)
    o = options
    sr = o.get("sr", 16000)
    for dtype, tol in [(torch.float32, FBANK_TOL), (torch.float64, 1e-4)]:
        ours = kaldi_fbank(
            audio,
            sampling_rate=sr,
            num_mel_bins=o.get("n_mels", 128),
            window=o.get("window", "hanning"),
            preemphasis=o.get("preemphasis", 0.97),
            remove_dc_offset=o.get("dc", True),
            use_power=o.get("power", 2.0) == 2.0,
            use_log_fbank=o.get("log", True),
            low_freq=o.get("low", 20.0),
            high_freq=o.get("high", 0.0),
            dtype=dtype,
        )
        assert ours.dtype == dtype
        assert (
            ours.shape
            == ref.shape
            == (1 + (len(audio) - sr // 40) // (sr // 100), o.get("n_mels", 128))
        )
        if o.get("log", True):
            assert _max_abs(ours, ref) < tol
        else:
            np.testing.assert_allclose(ours.numpy(), ref, rtol=tol, atol=1e-6)


def _kaldi_direct(
    audio: np.ndarray,
    *,
    sr=16000,
    n_mels=128,
    window="hanning",
    energy=False,
    raw_energy=True,
    energy_floor=1.0,
    htk_compat=False,
    snip_edges=True,
    subtract_mean=False,
):
    """Kaldi's recipe frame by frame, in float64, written from Kaldi's documentation."""
    x = audio.astype(np.float64)
    win, shift, n = int(sr * 0.025), int(sr * 0.010), len(audio)
    if snip_edges:
        starts = [f * shift for f in range(max(0, 1 + (n - win) // shift))]
    else:
        starts = [f * shift + shift // 2 - win // 2 for f in range((n + shift // 2) // shift)]
    if window == "blackman":
        phase = 2 * np.pi * np.arange(win) / (win - 1)
        w = 0.42 - 0.5 * np.cos(phase) + 0.08 * np.cos(2 * phase)
    else:
        name = {"hanning": "hann", "rectangular": "boxcar"}.get(window, window)
        w = transformers_audio.window_function(win, name, periodic=False)
    filters = transformers_audio.mel_filter_bank(
        257, n_mels, 20.0, sr / 2, sr, None, "kaldi", triangularize_in_mel_space=True
    )
    rows = []
    for start in starts:
        idx = np.arange(start, start + win)
        idx = np.where(idx < 0, -idx - 1, idx)
        idx = np.where(idx >= n, 2 * n - 1 - idx, idx)
        frame = x[idx] - x[idx].mean()
        log_energy = np.log(max(np.sum(frame**2), EPS32))
        frame = np.concatenate([frame[:1] * (1 - 0.97), frame[1:] - 0.97 * frame[:-1]]) * w
        if not raw_energy:
            log_energy = np.log(max(np.sum(frame**2), EPS32))
        log_energy = max(log_energy, np.log(energy_floor)) if energy_floor > 0 else log_energy
        mel = np.log(np.maximum(np.abs(np.fft.rfft(frame, 512)) ** 2 @ filters, EPS32))
        if energy:
            mel = np.append(mel, log_energy) if htk_compat else np.insert(mel, 0, log_energy)
        rows.append(mel)
    feats = np.array(rows).reshape(len(starts), n_mels + int(energy))
    return feats - feats.mean(axis=0) if subtract_mean else feats


@pytest.mark.filterwarnings("ignore:At least one mel filter:UserWarning")
@pytest.mark.parametrize(
    "options",
    [
        {"energy": True},
        {"energy": True, "raw_energy": False, "htk_compat": True, "energy_floor": 0.0},
        {"energy": True, "energy_floor": 20.0},
        {"snip_edges": False, "window": "povey", "n_mels": 23},
        {"subtract_mean": True, "window": "blackman"},
    ],
    ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()),
)
def test_kaldi_fbank_options_beyond_the_reference(speech, options):
    audio = speech[1][:8000]
    ref = _kaldi_direct(audio, **options)
    o = options
    for dtype, tol in [(torch.float32, FBANK_TOL), (torch.float64, 1e-8)]:
        ours = kaldi_fbank(
            audio,
            num_mel_bins=o.get("n_mels", 128),
            window=o.get("window", "hanning"),
            use_energy=o.get("energy", False),
            raw_energy=o.get("raw_energy", True),
            energy_floor=o.get("energy_floor", 1.0),
            htk_compat=o.get("htk_compat", False),
            snip_edges=o.get("snip_edges", True),
            subtract_mean=o.get("subtract_mean", False),
            dtype=dtype,
        )
        assert _max_abs(ours, ref) < tol


def test_kaldi_fbank_batching(speech):
    batch = [speech[0], speech[1][:5000], speech[2][:399], speech[3][:400]]
    for snip_edges in (True, False):
        out = kaldi_fbank(batch, snip_edges=snip_edges, use_energy=True, subtract_mean=True)
        for item, audio in zip(out, batch):
            alone = kaldi_fbank(audio, snip_edges=snip_edges, use_energy=True, subtract_mean=True)
            assert _max_abs(item[: len(alone)], alone.numpy()) < 1e-5
            assert not item[len(alone) :].any()  # rows past an item's own frames are zeros
    assert kaldi_fbank(speech[2][:399]).shape == (0, 128)
    assert kaldi_fbank(speech[2][:400]).shape == (1, 128)
    assert kaldi_fbank(speech[2][:399], snip_edges=False).shape == (2, 128)
    # (..., time)
    stack = np.stack(
        [speech[0][:16000], speech[1][:16000], speech[2][:16000], speech[3][:16000]]
    ).reshape(2, 2, -1)
    out = kaldi_fbank(torch.from_numpy(stack), num_mel_bins=40)
    assert out.shape == (2, 2, 98, 40)
    assert _max_abs(out[1, 1], kaldi_fbank(stack[1, 1], num_mel_bins=40).numpy()) < 1e-6


def test_kaldi_fbank_dither(speech):
    audio = speech[0][:16000]
    first = kaldi_fbank(audio, dither=1e-4, generator=torch.Generator().manual_seed(0))
    again = kaldi_fbank(audio, dither=1e-4, generator=torch.Generator().manual_seed(0))
    plain = kaldi_fbank(audio)
    assert torch.equal(first, again) and not torch.equal(first, plain)
    floor = float(np.log(EPS32))
    assert torch.all(kaldi_fbank(np.zeros(4000, np.float32))[:, 64] == floor)
    dithered = kaldi_fbank(np.zeros(4000, np.float32), dither=1.0)[:, 64]
    assert torch.all(dithered > floor + 5)  # dither lifts digital silence off the floor


def test_kaldi_fbank_errors(speech):
    with pytest.raises(ValueError, match="high_freq"):
        kaldi_fbank(speech[0], low_freq=9000.0)
    with pytest.raises(ValueError, match="frames"):
        kaldi_fbank(speech[0], frame_length_ms=0.05)
    with pytest.raises(FeatureError, match="NaN"):
        kaldi_fbank(np.full(1000, np.inf, np.float32))


# --------------------------------------------------------------------------- AST


def _ast_ref(audio, **kwargs) -> np.ndarray:
    return transformers.ASTFeatureExtractor(**kwargs)(
        audio, sampling_rate=16000, return_tensors="np"
    )["input_values"]


@pytest.mark.filterwarnings("ignore:At least one mel filter:UserWarning")
def test_ast_equals_transformers(speech, long_speech):
    for audio in speech[:3]:
        ours = ast_features(audio)
        assert ours.shape == (1024, 128) and ours.dtype == torch.float32
        assert _max_abs(ours, _ast_ref(audio)[0]) < AST_TOL
    # longer than 10.24 s: cut to 1024 frames
    assert _max_abs(ast_features(long_speech), _ast_ref(long_speech)[0]) < AST_TOL
    # shorter than one frame: all padding
    assert _max_abs(ast_features(speech[0][:300]), _ast_ref(speech[0][:300])[0]) < AST_TOL
    assert _max_abs(ast_features(speech[0][:160]), _ast_ref(speech[0][:300])[0]) < AST_TOL
    # another length, float64 input
    audio = speech[4].astype(np.float64)
    assert (
        _max_abs(ast_features(audio, max_length=128), _ast_ref(audio, max_length=128)[0]) < AST_TOL
    )


@pytest.mark.filterwarnings("ignore:At least one mel filter:UserWarning")
def test_ast_batch(speech):
    batch = [speech[0], speech[1][:20000], speech[5]]
    ours = ast_features(batch)
    assert ours.shape == (3, 1024, 128)
    assert _max_abs(ours, _ast_ref(batch)) < AST_TOL
    for item, audio in zip(ours, batch):
        assert _max_abs(item, ast_features(audio).numpy()) < 1e-5
    unnormalised = ast_features(batch, normalize=False)
    assert torch.allclose(
        unnormalised, kaldi_fbank([*batch, np.zeros(16000 * 11, np.float32)])[:3, :1024]
    )


def test_ast_errors(speech):
    with pytest.raises(FeatureError, match=r"AST expects audio sampled at 16000 Hz.*resample"):
        ast_features(speech[0], sampling_rate=22050)
    with pytest.raises(FeatureError, match="float"):
        ast_features([speech[0], np.arange(100)])


@pytest.mark.gpu
def test_cuda_equals_cpu(speech):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    batch = [speech[0], speech[1][:20000]]
    for fn in (whisper_log_mel, kaldi_fbank, ast_features):
        on_gpu = fn(batch, device="cuda")
        assert on_gpu.device.type == "cuda"
        assert _max_abs(on_gpu.cpu(), fn(batch).numpy()) < 1e-3
