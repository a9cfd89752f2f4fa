"""The decoder's inference windows (`Generator.forward_windows`): the same waveform as the
whole-sequence decoder at any length, from a bounded set of convolution shapes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from soundformers.models.vits import decoder

from .test_decoder import small_config


@pytest.mark.parametrize("resblock", ["1", "2"])
@pytest.mark.parametrize("multiples", [0, 64])  # window lengths: doublings, every multiple
def test_windows_equal_the_whole_sequence(resblock, multiples, monkeypatch):
    # small windows: lengths below, at and past one window, not multiples of any size
    monkeypatch.setattr(decoder, "CHUNK_ELEMENTS", 32 * 64)
    monkeypatch.setattr(decoder, "MAX_WINDOW_MULTIPLES", multiples)
    monkeypatch.setattr(decoder, "WINOGRAD_MIN_WIDTH", 8 * 5)
    torch.manual_seed(10)
    dec = decoder.Generator(small_config(resblock)).eval().prepare_()
    for batch, frames in [(1, 1), (1, 7), (2, 33), (1, 64), (1, 129), (3, 250)]:
        x = torch.randn(batch, 8, frames)
        assert torch.is_grad_enabled()
        whole = dec(x).detach()  # autograd on: the whole-sequence path
        with torch.inference_mode():
            got = dec(x)
        assert got.shape == whole.shape == (batch, 1, frames * 8)
        torch.testing.assert_close(got, whole, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("multiples", [0, 64])
def test_window_cover_tiles_every_length(multiples, monkeypatch):
    monkeypatch.setattr(decoder, "MAX_WINDOW_MULTIPLES", multiples)
    monkeypatch.setattr(decoder, "CHUNK_ELEMENTS", 32 * 64)
    sizes = decoder.window_sizes(32, 6, 4)
    smallest = 48  # MIN_WINDOW_PER_HALO halos of 6, a multiple of 4
    assert sizes[-1] == smallest and sizes[0] >= decoder.MIN_CHUNK_PER_HALO * 6
    if multiples:  # every multiple of the smallest
        assert sizes == list(range(sizes[0], 0, -smallest))
    else:  # doublings
        assert sizes == [smallest * 2**i for i in range(len(sizes))][::-1]
    for length in range(1, 3 * sizes[0]):
        windows = decoder.window_cover(length, sizes, 6)
        starts = [start for start, _ in windows]
        assert starts == [sum(size for _, size in windows[:i]) for i in range(len(windows))]
        end = windows[-1][0] + windows[-1][1]
        assert length <= end < length + sizes[0]


def test_convolution_shapes_stay_bounded(monkeypatch):
    """Over 20 lengths, the convolutions see a few input shapes, not 20 per layer."""
    torch.manual_seed(11)
    dec = decoder.Generator(small_config("2")).eval().prepare_()
    shapes: set[tuple[str, tuple[int, ...]]] = set()
    conv2d, conv_transpose2d = F.conv2d, F.conv_transpose2d

    def record(name, fn):
        def wrapped(x, *args, **kwargs):
            shapes.add((name, tuple(x.shape)))
            return fn(x, *args, **kwargs)

        return wrapped

    monkeypatch.setattr(F, "conv2d", record("conv", conv2d))
    monkeypatch.setattr(F, "conv_transpose2d", record("up", conv_transpose2d))
    packed_call = decoder.PackedConv.__call__
    monkeypatch.setattr(decoder.PackedConv, "__call__",
                        lambda self, x, *args: record("packed",
                                                      lambda x: packed_call(self, x, *args))(x))  # fmt: skip
    packed_up = decoder.PackedConvTranspose.__call__
    monkeypatch.setattr(decoder.PackedConvTranspose, "__call__",
                        lambda self, x: record("packed up", lambda x: packed_up(self, x))(x))  # fmt: skip
    with torch.inference_mode():
        for frames in range(200, 600, 20):
            dec(torch.randn(1, 8, frames))
    # the first conv (8 latent channels) on whole multiples of FRAME_BUCKET frames
    first = {(name, shape) for name, shape in shapes if shape[1] == 8}
    assert all(shape[-1] % decoder.FRAME_BUCKET == 0 for _, shape in first)
    # the rest: without windows, a shape per length for each level's upsampling and convs
    rest = {(name, shape) for name, shape in shapes if shape[1] != 8}
    assert len(rest) <= 30, sorted(rest)
