"""The fast paths of the VITS model against plain PyTorch: the channels-last, time-chunked
HiFi-GAN decoder, the decoder's last conv, and the oneDNN convolutions."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from soundformers.models.vits import VitsConfig, decoder, layers
from tests.conftest import copies


def small_config(resblock: str) -> VitsConfig:
    return VitsConfig(
        n_vocab=10, hidden_channels=16, inter_channels=8, filter_channels=32, n_layers=1,
        upsample_rates=(4, 2), upsample_kernel_sizes=(8, 4), upsample_initial_channel=32,
        resblock=resblock, resblock_kernel_sizes=(3, 5),
        resblock_dilation_sizes=((1, 2), (2, 6)) if resblock == "2" else ((1, 3, 5), (1, 3, 5)),
    )  # fmt: skip


def reference_decoder(dec: decoder.Generator, x: torch.Tensor) -> torch.Tensor:
    """HiFi-GAN written plainly on (B, C, T) tensors with the decoder's own modules."""
    slope = dec.slope
    x = dec.conv_pre(x)
    for i, up in enumerate(dec.ups):
        x = up(F.leaky_relu(x, slope))
        total = 0
        for block in dec.resblocks[i * dec.n_kernels : (i + 1) * dec.n_kernels]:
            y = x
            if isinstance(block, decoder.ResBlock1):
                for c1, c2 in zip(block.convs1, block.convs2):
                    y = y + c2(F.leaky_relu(c1(F.leaky_relu(y, slope)), slope))
            else:
                for conv in block.convs:
                    y = y + conv(F.leaky_relu(y, slope))
            total = total + y
        x = total / dec.n_kernels
    return torch.tanh(dec.conv_post(F.leaky_relu(x)))


@pytest.mark.parametrize("resblock", ["1", "2"])
@pytest.mark.parametrize("chunk_elements", [1 << 30, 64 * 16])
def test_decoder_matches_plain_hifigan(resblock, chunk_elements, monkeypatch):
    # tiny chunks (as short as one halo) exercise the overlap and in-place write-back
    monkeypatch.setattr(decoder, "CHUNK_ELEMENTS", chunk_elements)
    monkeypatch.setattr(decoder, "MIN_CHUNK_PER_HALO", 1)
    torch.manual_seed(0)
    dec = decoder.Generator(small_config(resblock)).eval()
    x = torch.randn(2, 8, 37)
    with torch.inference_mode():
        expected = reference_decoder(dec, x)
        got = dec(x)
        assert got.shape == expected.shape == (2, 1, 37 * 8)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(dec.prepare_()(x), expected, atol=1e-5, rtol=1e-4)


def test_chunked_equals_unchunked(monkeypatch):
    torch.manual_seed(1)
    dec = decoder.Generator(small_config("2")).eval().prepare_()
    x = torch.randn(1, 8, 300)
    with torch.inference_mode():
        whole = dec(x)
        monkeypatch.setattr(decoder, "CHUNK_ELEMENTS", 16 * 100)
        monkeypatch.setattr(decoder, "MIN_CHUNK_PER_HALO", 1)
        torch.testing.assert_close(dec(x), whole, atol=1e-6, rtol=0)


def test_conv_post_matches_conv1d():
    torch.manual_seed(2)
    conv = torch.nn.Conv1d(16, 1, 7, padding=3, bias=False)
    x = torch.randn(3, 16, 50)
    x_nwc = x.unsqueeze(2).contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(decoder.conv_post_nwc(x_nwc, conv), conv(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("c_in", "c_out", "kernel", "groups", "dilation", "length"),
    [(192, 768, 3, 1, 1, 91), (192, 384, 1, 1, 1, 200), (192, 192, 3, 192, 3, 2000),
     (16, 32, 5, 1, 2, 2000)],
)  # fmt: skip
def test_onednn_conv_matches_default_path(c_in, c_out, kernel, groups, dilation, length,
                                          monkeypatch):  # fmt: skip
    if not layers._ONEDNN:
        pytest.skip("this PyTorch has no oneDNN")
    calls = []
    onednn = torch.mkldnn_convolution
    monkeypatch.setattr(torch, "mkldnn_convolution", lambda *a: calls.append(1) or onednn(*a))
    torch.manual_seed(3)
    pad = dilation * (kernel - 1) // 2
    conv = layers.Conv1d(c_in, c_out, kernel, padding=pad, dilation=dilation, groups=groups)
    x = torch.randn(2, c_in, length)
    with torch.inference_mode():
        fast = conv(x)
        assert calls, "the oneDNN path was not taken"
        monkeypatch.setattr(layers, "_ONEDNN", False)
        plain = conv(x)
    assert len(calls) == 1
    torch.testing.assert_close(fast, plain, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("tile", [2, 3, 4])
def test_winograd_matrices_compute_a_correlation(tile):
    points = {2: (0.0, -1.0), 3: (0.0, 1.0, -1.0, 2.0), 4: decoder.WINOGRAD_POINTS}[tile]
    bt, g, at = decoder.winograd_matrices(tile, points)
    d = torch.randn(2 * tile - 1, dtype=torch.float64)
    w = torch.randn(tile, dtype=torch.float64)
    expected = torch.stack([(w * d[a : a + tile]).sum() for a in range(tile)])
    torch.testing.assert_close(at @ ((g @ w) * (bt @ d)), expected)


@pytest.mark.parametrize(("kernel", "size"), [(11, 32), (11, 24), (11, 16), (7, 16), (3, 8)])
def test_fft_algorithm_computes_a_correlation(kernel, size):
    bt, g, at = decoder.fft_algorithm(kernel, size)
    outputs = size - kernel + 1
    assert bt.shape == (3 * size // 2 - 1, size) and g.shape == (len(bt), kernel)
    assert at.shape == (outputs, len(bt))
    d = torch.randn(size, dtype=torch.float64)
    w = torch.randn(kernel, dtype=torch.float64)
    expected = torch.stack([(w * d[a : a + kernel]).sum() for a in range(outputs)])
    torch.testing.assert_close(at @ ((g @ w) * (bt @ d)), expected)


def algorithm(name: str, kernel: int) -> decoder.FirAlgorithm:
    """Winograd F(4, 4) (polyphase for kernels over 4 taps), an FFT of 16 or 32 points, or
    ("fft-short") one of 12 points whatever the kernel: for 11 taps, 2 outputs a tile, whose
    12 inputs reach five tiles past their own (five spare tiles per dilated sequence)."""
    if name == "winograd":
        return decoder.winograd_algorithm()
    if name == "fft-short":
        return decoder.fft_algorithm(kernel, 12)
    return decoder.fft_algorithm(kernel, 32 if kernel > 7 else 16)


@pytest.fixture(params=["intel_cpu", "onednn_cpu"])
def cpu_route(request):
    """FastConv's one-tap products as on an Intel CPU (one MKL bmm) and as elsewhere (a
    grouped oneDNN convolution), whatever CPU runs the tests."""
    request.getfixturevalue(request.param)
    return request.param


@pytest.mark.parametrize(("name", "kernel", "one_tap"), [
    ("fft", 11, True), ("fft-short", 11, True), ("winograd", 3, True), ("winograd", 7, False),
])  # fmt: skip
def test_fast_conv_takes_a_bmm_for_one_tap_products_on_intel(name, kernel, one_tap, cpu_route):
    conv = torch.nn.Conv1d(24, 20, kernel, padding=kernel // 2)
    fast = decoder.FastConv(conv, algorithm(name, kernel))
    assert (fast.matrices is not None) == (one_tap and cpu_route == "intel_cpu")
    assert (fast.products is None) == (fast.matrices is not None)


@pytest.mark.parametrize("name", ["winograd", "fft", "fft-short"])
@pytest.mark.parametrize(("kernel", "dilation"), [(7, 1), (11, 3), (11, 5), (3, 2), (5, 1)])
@pytest.mark.parametrize("length", [1, 6, 37, 301])
def test_fast_conv_matches_conv1d(name, kernel, dilation, length, cpu_route):
    torch.manual_seed(4)
    padding = dilation * (kernel - 1) // 2
    conv = torch.nn.Conv1d(24, 20, kernel, dilation=dilation, padding=padding)
    x = torch.randn(2, 24, length)
    x_nwc = x.unsqueeze(2).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        got = decoder.FastConv(conv, algorithm(name, kernel))(x_nwc)
        assert got.shape == (2, 20, 1, length)
        torch.testing.assert_close(got.squeeze(2), conv(x), atol=2e-5, rtol=1e-4)


def test_fft_conv_is_nearer_the_exact_convolution_than_winograd():
    torch.manual_seed(16)
    conv = torch.nn.Conv1d(128, 128, 11, padding=5)
    x = torch.randn(1, 128, 1, 500).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        exact = decoder.conv_nwc(x.double(), conv.double()).float()
        conv.float()
        errors = [float((decoder.FastConv(conv, algorithm(name, 11))(x) - exact).abs().max())
                  for name in ("winograd", "fft")]  # fmt: skip
    assert errors[1] < errors[0] / 3


def test_fast_algorithm_takes_the_fft_for_wide_eleven_tap_convs(onednn_cpu):
    fft = decoder.fast_algorithm(256, 11)
    assert fft is not None and fft.bt.shape == (47, 32)  # 32 points, 22 outputs a tile
    assert decoder.fast_algorithm(128, 11).bt.shape == (35, 24)
    for channels, kernel in [(256, 7), (256, 3), (128, 7), (64, 11)]:  # Winograd F(4, 4)
        assert decoder.fast_algorithm(channels, kernel).bt.shape == (7, 7)
    assert decoder.fast_algorithm(64, 7) is None and decoder.fast_algorithm(32, 11) is None


def test_fast_algorithm_takes_the_fft_from_seven_taps_where_mkl_multiplies(intel_cpu):
    # one-tap products as one MKL bmm: the FFT pays from 7 taps and 64 channels
    for channels, kernel in [(256, 11), (128, 11), (64, 11), (256, 7), (128, 7), (64, 7)]:
        fft = decoder.fast_algorithm(channels, kernel)
        assert fft is not None and fft.g.shape[1] == kernel, (channels, kernel)
    assert decoder.fast_algorithm(256, 3).bt.shape == (7, 7)  # Winograd F(4, 4)
    assert decoder.fast_algorithm(32, 11) is None and decoder.fast_algorithm(128, 3) is None


@pytest.mark.parametrize("name", ["winograd", "fft", "fft-short"])
@pytest.mark.parametrize(("kernel", "dilation"), [(3, 1), (7, 1), (11, 1), (7, 3), (11, 5)])
@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("length", [1, 9, 40, 301])
def test_fast_conv_residual_and_leaky_relu(name, kernel, dilation, batch, length, cpu_route):
    # batch 1 and dilation 1: one sequence, transformed in place; else the phase-major layout
    # (batch times dilation sequences, a spare tile each); lengths with and without a last
    # tile that reaches past the end; inputs and residuals that are windows of longer tensors
    torch.manual_seed(14)
    padding = dilation * (kernel - 1) // 2
    conv = torch.nn.Conv1d(24, 20, kernel, dilation=dilation, padding=padding)
    wide = torch.randn(batch, 24, 1, length + 7).contiguous(memory_format=torch.channels_last)
    x = wide[..., 3 : 3 + length]
    residual = torch.randn(batch, 20, 1, length + 5).contiguous(memory_format=torch.channels_last)
    residual = residual[..., 5:]
    fast = decoder.FastConv(conv, algorithm(name, kernel))
    with torch.inference_mode():
        plain = decoder.conv_nwc(x, conv)
        for got, expected in [
            (fast(x), plain),
            (fast(x, residual), plain + residual),
            (fast(x, slope=0.2), F.leaky_relu(plain, 0.2)),
            (fast(x, residual, slope=0.2), plain + residual),  # the residual wins
        ]:
            assert got.shape == (batch, 20, 1, length)
            assert got.is_contiguous(memory_format=torch.channels_last)
            torch.testing.assert_close(got, expected, atol=2e-5, rtol=1e-4)
        # the sum written over the residual (a window of a longer tensor, as in the decoder)
        target = residual.clone(memory_format=torch.channels_last)
        got = fast(x, target, accumulate=True)
        torch.testing.assert_close(got, plain + residual, atol=2e-5, rtol=1e-4)
        stride = fast.stride  # (else a new output, as without)
        if batch * dilation > 1 or length % stride == 0:
            assert got.data_ptr() == target.data_ptr()
            torch.testing.assert_close(target, plain + residual, atol=2e-5, rtol=1e-4)
        # a batch's rows as the rows alone (a batch of 2 takes the other layout)
        torch.testing.assert_close(fast(x[:1], residual[:1]), fast(x, residual)[:1],
                                   atol=1e-6, rtol=1e-6)  # fmt: skip


@pytest.mark.parametrize("name", ["winograd", "fft"])
@pytest.mark.parametrize("resblock", ["1", "2"])
@pytest.mark.parametrize("chunk_elements", [1 << 30, 64 * 16])
def test_decoder_with_fast_convs_matches_plain_hifigan(name, resblock, chunk_elements,
                                                       monkeypatch, cpu_route):  # fmt: skip
    monkeypatch.setattr(decoder, "CHUNK_ELEMENTS", chunk_elements)
    monkeypatch.setattr(decoder, "MIN_CHUNK_PER_HALO", 1)
    monkeypatch.setattr(decoder, "WINOGRAD_MIN_WIDTH", 8 * 5)
    if name == "fft":  # the small config's 5-tap convs (16 and 8 channels)
        for suffix in ("", "_MKL"):
            monkeypatch.setattr(decoder, "FFT_MIN_KERNEL" + suffix, 5)
            monkeypatch.setattr(decoder, "FFT_MIN_CHANNELS" + suffix, 8)
    else:
        monkeypatch.setattr(decoder, "FFT_MIN_KERNEL_MKL", decoder.FFT_MIN_KERNEL)
    torch.manual_seed(5)
    dec = decoder.Generator(small_config(resblock)).eval()
    x = torch.randn(2, 8, 37)
    with torch.inference_mode():
        expected = reference_decoder(dec, x)
        dec.prepare_()
        fast = [m for m in dec.resblocks.modules() if getattr(m, "fast", None) is not None]
        strides = {m.fast.stride for m in fast}
        assert strides == ({4} if name == "winograd" else {4, 12}), strides  # FFT: 16 - 5 + 1
        torch.testing.assert_close(dec(x), expected, atol=1e-5, rtol=1e-4)


def test_training_takes_the_direct_convolution(monkeypatch):
    monkeypatch.setattr(decoder, "WINOGRAD_MIN_WIDTH", 8 * 5)
    torch.manual_seed(6)
    dec = decoder.Generator(small_config("1")).prepare_()
    conv = next(m for m in dec.resblocks.modules() if getattr(m, "fast", None) is not None)
    dec(torch.randn(1, 8, 20)).square().sum().backward()
    assert conv.weight.grad is not None and bool(conv.weight.grad.abs().sum() > 0)


@pytest.mark.parametrize(("groups", "padding", "dilation"), [(1, 3, 1), (1, 0, 5), (7, 0, 3)])
def test_packed_conv_matches_conv2d(groups, padding, dilation):
    if not decoder._PACKED_CONV:
        pytest.skip("this PyTorch has no packed oneDNN convolutions")
    torch.manual_seed(7)
    weight = torch.randn(14, 21 // groups, 1, 7).contiguous(memory_format=torch.channels_last)
    bias = torch.randn(14)
    conv = decoder.PackedConv(weight, bias, padding, dilation, groups)
    for batch, length in [(1, 200), (2, 57)]:  # other lengths than the first call's
        x = torch.randn(batch, 21, 1, length).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            expected = F.conv2d(x, weight, bias, 1, (0, padding), (1, dilation), groups)
            torch.testing.assert_close(conv(x), expected, atol=1e-5, rtol=1e-5)


def test_packed_conv_fuses_leaky_relu_and_residual():
    if not decoder._PACKED_CONV:
        pytest.skip("this PyTorch has no packed oneDNN convolutions")
    torch.manual_seed(12)
    weight = torch.randn(16, 16, 1, 5).contiguous(memory_format=torch.channels_last)
    bias = torch.randn(16)
    conv = decoder.PackedConv(weight, bias, 6, 3)  # "same" padding: (5 - 1) * 3 / 2
    x = torch.randn(2, 16, 1, 90).contiguous(memory_format=torch.channels_last)
    # a residual that is a window of a longer tensor, as the decoder passes it
    residual = torch.randn(2, 16, 1, 100).contiguous(memory_format=torch.channels_last)[..., 4:94]
    with torch.inference_mode():
        plain = F.conv2d(x, weight, bias, 1, (0, 6), (1, 3))
        torch.testing.assert_close(conv(x, 0.1), F.leaky_relu(plain, 0.1), atol=1e-5, rtol=1e-5)
        got = conv(x, residual=residual)
        torch.testing.assert_close(got, plain + residual, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("path", ["winograd", "packed", "plain"])
@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("dilation", [1, 3])
def test_res_conv_accumulates_into_the_residual(path, batch, dilation, monkeypatch):
    if path == "packed" and not decoder._PACKED_CONV:
        pytest.skip("this PyTorch has no packed oneDNN convolutions")
    monkeypatch.setattr(decoder, "_PACKED_CONV", path == "packed")
    monkeypatch.setattr(decoder, "WINOGRAD_MIN_WIDTH", 16 * 7 if path == "winograd" else 1 << 30)
    torch.manual_seed(15)
    conv = decoder.ResConv(16, 16, 7, dilation=dilation, padding=3 * dilation)
    conv.prepare_()
    x = torch.randn(batch, 16, 1, 80).contiguous(memory_format=torch.channels_last)
    # the decoder's residuals are windows of its level's tensor
    wide = torch.randn(batch, 16, 1, 90).contiguous(memory_format=torch.channels_last)
    residual = wide[..., 6:86]
    with torch.inference_mode():
        expected = decoder.conv_nwc(x, conv) + residual
        target = residual.clone(memory_format=torch.channels_last)
        got = conv.forward_nwc(x, residual=target, accumulate=True)
        torch.testing.assert_close(got, expected, atol=2e-5, rtol=1e-4)
        assert got.is_contiguous(memory_format=torch.channels_last)
        window = wide.clone(memory_format=torch.channels_last)
        got = conv.forward_nwc(x, residual=window[..., 6:86], accumulate=True)
        torch.testing.assert_close(got, expected, atol=2e-5, rtol=1e-4)
        # only the window may change: where the sum was written over it, it is there
        torch.testing.assert_close(window[..., :6], wide[..., :6], atol=0, rtol=0)
        torch.testing.assert_close(window[..., 86:], wide[..., 86:], atol=0, rtol=0)
        if got.data_ptr() == window[..., 6:86].data_ptr():
            torch.testing.assert_close(window[..., 6:86], expected, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("path", ["winograd", "packed", "plain"])
def test_res_conv_leaky_relu_and_residual_on_every_path(path, monkeypatch):
    if path == "packed" and not decoder._PACKED_CONV:
        pytest.skip("this PyTorch has no packed oneDNN convolutions")
    monkeypatch.setattr(decoder, "_PACKED_CONV", path == "packed")
    monkeypatch.setattr(decoder, "WINOGRAD_MIN_WIDTH", 16 * 7 if path == "winograd" else 1 << 30)
    torch.manual_seed(13)
    conv = decoder.ResConv(16, 16, 7, dilation=3, padding=9)
    conv.prepare_()
    assert (conv.fast is not None, conv.packed is not None) == (
        path == "winograd", path == "packed"
    )  # fmt: skip
    x = torch.randn(2, 16, 1, 75).contiguous(memory_format=torch.channels_last)
    residual = torch.randn(2, 16, 1, 75).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        plain = decoder.conv_nwc(x, conv)
        got = conv.forward_nwc(x, slope=0.2)
        torch.testing.assert_close(got, F.leaky_relu(plain, 0.2), atol=2e-5, rtol=1e-4)
        got = conv.forward_nwc(x, residual=residual)
        torch.testing.assert_close(got, plain + residual, atol=2e-5, rtol=1e-4)
        torch.testing.assert_close(conv.forward_nwc(x), plain, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("packed", [True, False])
def test_prepared_decoder_with_and_without_packed_convs(packed, monkeypatch):
    if packed and not decoder._PACKED_CONV:
        pytest.skip("this PyTorch has no packed oneDNN convolutions")
    monkeypatch.setattr(decoder, "_PACKED_CONV", packed)
    monkeypatch.setattr(decoder, "WINOGRAD_MIN_WIDTH", 8 * 5)
    torch.manual_seed(8)
    dec = decoder.Generator(small_config("1")).eval()
    x = torch.randn(2, 8, 41)
    with torch.inference_mode():
        expected = reference_decoder(dec, x)
        dec.prepare_()
        convs = [m for m in dec.resblocks.modules() if isinstance(m, decoder.ResConv)]
        assert any(c.fast is not None for c in convs)
        assert any(c.fast is None for c in convs)
        assert all((c.packed is not None) == packed for c in convs if c.fast is None)
        torch.testing.assert_close(dec(x), expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("packed", [True, False])
def test_prepared_decoder_copies_and_pickles(packed, monkeypatch):
    monkeypatch.setattr(decoder, "_PACKED_CONV", packed and decoder._PACKED_CONV)
    monkeypatch.setattr(decoder, "WINOGRAD_MIN_WIDTH", 8 * 5)
    torch.manual_seed(9)
    dec = decoder.Generator(small_config("2")).eval().prepare_()
    x = torch.randn(1, 8, 30)
    with torch.inference_mode():
        expected = dec(x)
        for other in copies(dec):
            torch.testing.assert_close(other(x), expected, atol=1e-6, rtol=1e-5)
