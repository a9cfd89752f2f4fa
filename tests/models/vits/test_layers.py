"""The prepared fast paths of the VITS convolutions (`layers.Conv1d.prepare_`) against plain
PyTorch: one oneDNN matrix product of time windows on a pre-packed weight, and depthwise
convolutions on channels-last tensors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from soundformers.models.vits import VitsConfig, VitsModel, layers
from tests.conftest import copies

needs_packing = pytest.mark.skipif(
    not (layers._ONEDNN and layers.pack_linear_weight(torch.ones(2, 2)) is not None),
    reason="this PyTorch has no oneDNN products",
)


def prepared_conv(c_in, c_out, kernel, dilation=1, padding=None, groups=1, seed=0):
    torch.manual_seed(seed)
    if padding is None:
        padding = dilation * (kernel - 1) // 2
    conv = layers.Conv1d(c_in, c_out, kernel, dilation=dilation, padding=padding, groups=groups)
    conv.prepare_()
    return conv


def plain(conv: layers.Conv1d, x: torch.Tensor) -> torch.Tensor:
    return F.conv1d(x, conv.weight, conv.bias, 1, conv.padding, conv.dilation, conv.groups)


@needs_packing
@pytest.mark.parametrize(
    ("c_in", "c_out", "kernel", "dilation", "padding"),
    [(192, 192, 1, 1, 0), (96, 192, 1, 1, 0), (192, 768, 3, 1, 1), (768, 192, 3, 1, 1),
     (192, 384, 5, 1, 2), (64, 128, 5, 3, 6), (64, 80, 4, 1, 0), (64, 64, 3, 2, 0)],
)  # fmt: skip
@pytest.mark.parametrize(("batch", "length"), [(1, 1), (1, 37), (3, 200)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_matmul_path_matches_conv1d(c_in, c_out, kernel, dilation, padding, batch, length,
                                    channels_last):  # fmt: skip
    conv = prepared_conv(c_in, c_out, kernel, dilation, padding)
    assert conv.packed is not None, "the matrix-product path was not prepared"
    x = torch.randn(batch, c_in, length + dilation * (kernel - 1))
    if channels_last:  # as the previous prepared layer hands it over
        x = x.transpose(1, 2).contiguous().transpose(1, 2)
    with torch.inference_mode():
        got = conv(x)
        expected = plain(conv, x)
    assert got.shape == expected.shape
    assert got.stride(1) == 1, "the output is not channels-last"
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


@needs_packing
@pytest.mark.parametrize(("dilation", "length"), [(1, 85), (3, 40), (9, 200)])
def test_depthwise_path_matches_conv1d(dilation, length):
    conv = prepared_conv(192, 192, 3, dilation, groups=192, seed=1)
    assert conv.depthwise_nwc
    x = torch.randn(2, 192, length)
    with torch.inference_mode():
        torch.testing.assert_close(conv(x), plain(conv, x), atol=1e-5, rtol=1e-5)


@needs_packing
def test_few_channels_stay_on_the_default_path():
    for c_in, c_out in [(1, 192), (192, 29)]:  # the duration flows' pre and proj
        conv = prepared_conv(c_in, c_out, 1)
        assert conv.packed is None and not conv.depthwise_nwc


@needs_packing
def test_training_takes_the_default_path():
    conv = prepared_conv(64, 64, 3, seed=2)
    x = torch.randn(1, 64, 30)
    conv(x).square().sum().backward()
    assert conv.weight.grad is not None and bool(conv.weight.grad.abs().sum() > 0)


@needs_packing
def test_prepared_conv_copies_and_pickles():
    conv = prepared_conv(64, 96, 3, seed=3)
    x = torch.randn(1, 64, 50)
    with torch.inference_mode():
        expected = conv(x)
        for other in copies(conv):
            assert other.packed is not None
            torch.testing.assert_close(other(x), expected, atol=0, rtol=0)


def small_model(**overrides) -> VitsModel:
    config = VitsConfig(
        n_vocab=20, hidden_channels=16, inter_channels=8, filter_channels=32, n_layers=2,
        dp_filter_channels=16, upsample_rates=(4, 2), upsample_kernel_sizes=(8, 4),
        upsample_initial_channel=16, resblock="2", resblock_kernel_sizes=(3,),
        resblock_dilation_sizes=((1, 2),), flow_n_flows=2, flow_n_layers=2, **overrides,
    )  # fmt: skip
    torch.manual_seed(4)
    model = VitsModel(config).eval()
    with torch.no_grad():
        for p in model.parameters():  # the embedding starts uninitialised
            p.copy_(0.3 * torch.randn_like(p))
    return model


@needs_packing
@pytest.mark.parametrize("use_sdp", [True, False])
def test_prepared_model_matches_the_plain_one(use_sdp, monkeypatch):
    # every conv with 8 channels or more takes a fast path, even in this small model
    monkeypatch.setattr(layers, "MATMUL_MIN_CHANNELS", 8)
    model = small_model(use_sdp=use_sdp)
    ids = torch.randint(1, 20, (2, 11))
    lengths = torch.tensor([11, 7])
    kwargs = dict(noise_scale=0.0, noise_w=0.0, length_scale=3.0)
    with torch.inference_mode():
        expected = model(ids, lengths, **kwargs)
        model.prepare_()
        convs = [m for m in model.modules() if isinstance(m, layers.Conv1d)]
        assert sum(c.packed is not None for c in convs) > len(convs) // 2
        got = model(ids, lengths, **kwargs)
    torch.testing.assert_close(got.lengths, expected.lengths, atol=0, rtol=0)
    torch.testing.assert_close(got.audio, expected.audio, atol=1e-5, rtol=1e-4)
