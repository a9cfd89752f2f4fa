"""Small modules shared by the VITS parts: convolutions with oneDNN fast paths, channel
LayerNorm, sequence masks, the channel flip of the flows. Tensors are (batch, channels, time).

Once prepared (`VitsModel.prepare_`), the convolutions return channels-last tensors: (B, C, T)
with the channels fastest in memory, i.e. a transposed (B, T, C) array, which is what their
oneDNN matrix products read and write; elementwise ops keep that layout, so activations are
not reordered between layers.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import onednn_product, pack_linear_weight

__all__ = ["Conv1d", "Flip", "LayerNorm", "PackedLinear", "sequence_mask"]

logger = logging.getLogger(__name__)

# prepared Conv1d's are matrix products from this many input and output channels up; below, as
# for the duration flows' 1 -> 192 and 192 -> 29 convs, oneDNN's is no faster than PyTorch's
MATMUL_MIN_CHANNELS = 64


class PackedLinear:
    """`rows @ weight.T + bias` for float32 CPU rows, with the weight packed in oneDNN's
    blocked layout (`models.layers.pack_linear_weight`): no call reorders it, and one packing
    suits every length.

    Inference only (no autograd); `PackedLinear.build` returns None where torch cannot pack.
    The packed weight cannot be copied or pickled: its owner rebuilds it instead
    (`Conv1d.__getstate__`), so that no second dense copy of the weight is kept for it.
    """

    def __init__(self, packed: torch.Tensor, bias: torch.Tensor | None) -> None:
        """packed: from `pack_linear_weight`; bias: (out,) or None."""
        self.weight = packed
        self.bias = None if bias is None else bias.detach()

    @classmethod
    def build(cls, weight: torch.Tensor, bias: torch.Tensor | None) -> PackedLinear | None:
        """A `PackedLinear` of weight (out, in), or None (with a warning) where this PyTorch
        cannot make one."""
        if weight.dtype != torch.float32 or weight.device.type != "cpu":
            return None
        packed = pack_linear_weight(weight)
        if packed is None:
            logger.warning("plain products: cannot pack a %s weight", tuple(weight.shape))
            return None
        return cls(packed, bias)

    def __call__(self, rows: torch.Tensor) -> torch.Tensor | None:
        """rows: (M, in) float32 -> (M, out); None where the op fails."""
        return onednn_product(rows, self.weight, self.bias)


class Conv1d(nn.Conv1d):
    """nn.Conv1d with oneDNN fast paths for float32 CPU inference; same weights, same result
    (float rounding aside).

    Prepared (`prepare_`), a convolution runs on a channels-last view of its input and returns
    a channels-last (B, C_out, T'):

    - with at least `MATMUL_MIN_CHANNELS` input and output channels (and no groups), as one
      matrix product of the input's windows (B T', k C_in) by the weight (C_out, k C_in),
      pre-packed (`PackedLinear`): at two threads 1.2-2.4x faster than oneDNN's convolution on
      (B, C, T), which reorders the input, output and weight on every call. (A convolution on
      a pre-packed weight is as fast, but the packed layout it wants changes with the input
      length, and a mismatch costs a reorder slower than the convolution itself.)
    - depthwise, as a convolution on channels-last tensors (1.2-2x).

    Otherwise, for large enough inputs, oneDNN on (B, C, T): for batch sizes under 16 on one
    thread PyTorch runs many of VITS's convolutions through its im2col fallback, up to twice as
    slow. Small convolutions stay on the default path, where oneDNN's setup cost would dominate.
    """

    packed: PackedLinear | None = None
    depthwise_nwc: bool = False

    @torch.no_grad()
    def prepare_(self) -> None:
        """Take the fast path from now on where it applies (float32 CPU weights, stride 1, zero
        padding), packing the current weights. Call again after changing the weights."""
        self.packed, self.depthwise_nwc = None, False
        w = self.weight
        if not (
            _ONEDNN
            and w.dtype == torch.float32
            and w.device.type == "cpu"
            and self.stride[0] == 1
            and self.padding_mode == "zeros"
            and not isinstance(self.padding, str)
        ):
            return
        if self.groups > 1:
            self.depthwise_nwc = self.groups == self.in_channels == self.out_channels
        elif min(self.in_channels, self.out_channels) >= MATMUL_MIN_CHANNELS:
            taps = w.transpose(1, 2).reshape(self.out_channels, -1)  # (C_out, k C_in)
            self.packed = PackedLinear.build(taps, self.bias)

    def __getstate__(self) -> dict:
        """Copies and pickles leave the packed weight out and pack their own (`__setstate__`)."""
        state = self.__dict__.copy()
        state["_repack"] = state.pop("packed", None) is not None
        return state

    def __setstate__(self, state: dict) -> None:
        repack = state.pop("_repack", False)
        super().__setstate__(state)
        if repack:
            self.prepare_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C_in, T) -> (B, C_out, T')."""
        inference = not (torch.is_grad_enabled() and self.weight.requires_grad)
        if not (x.dtype == torch.float32 and x.device.type == "cpu" and inference):
            return super().forward(x)
        if self.packed is not None:
            y = self.forward_rows(x, self.packed)
            if y is not None:
                return y
        if self.depthwise_nwc:
            return self.forward_depthwise(x)
        if (
            _ONEDNN
            and self.padding_mode == "zeros"
            and x.shape[-1] * self.weight.numel() >= 1 << 20
        ):
            return torch.mkldnn_convolution(x, self.weight, self.bias, self.padding, self.stride,
                                            self.dilation, self.groups)  # fmt: skip
        return super().forward(x)

    def forward_depthwise(self, x: torch.Tensor) -> torch.Tensor:
        """A depthwise convolution on a channels-last view: (B, C, T) -> channels-last."""
        x = x.unsqueeze(2).contiguous(memory_format=torch.channels_last)  # (B, C, 1, T)
        y = F.conv2d(x, self.weight.unsqueeze(2), self.bias, 1, (0, self.padding[0]),
                     (1, self.dilation[0]), self.groups)  # fmt: skip
        return y.squeeze(2)

    def forward_rows(self, x: torch.Tensor, product: PackedLinear) -> torch.Tensor | None:
        """The convolution as one matrix product of time windows.
        x: (B, C_in, T) -> channels-last (B, C_out, T'); None where the product fails."""
        b, c, _ = x.shape
        k, d, p = self.kernel_size[0], self.dilation[0], self.padding[0]
        rows = x.transpose(1, 2)  # (B, T, C_in)
        if p > 0:
            rows = F.pad(rows, (0, 0, p, p))  # (B, T + 2p, C_in)
        rows = rows.contiguous()
        t_out = rows.shape[1] - d * (k - 1)
        if k > 1:  # window i: rows i, i + d, ..., i + (k - 1) d
            rows = rows.as_strided((b, t_out, k, c), (rows.stride(0), c, d * c, 1),
                                   rows.storage_offset())  # fmt: skip
        y = product(rows.reshape(b * t_out, k * c))  # (B T', C_out)
        return None if y is None else y.view(b, t_out, -1).transpose(1, 2)


_ONEDNN = torch.backends.mkldnn.is_available() and hasattr(torch, "mkldnn_convolution")


def sequence_mask(lengths: torch.Tensor, max_length: int) -> torch.Tensor:
    """(batch,) lengths -> (batch, max_length) bool, True inside each sequence."""
    return torch.arange(max_length, device=lengths.device) < lengths.unsqueeze(1)


class LayerNorm(nn.Module):
    """LayerNorm over the channel axis of (batch, channels, time)."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, T) -> (B, C, T), channels-last if x is (then without a copy)."""
        x = F.layer_norm(x.transpose(1, -1), self.gamma.shape, self.gamma, self.beta, self.eps)
        return x.transpose(1, -1)


class Flip(nn.Module):
    """Reverse the channel order (no weights)."""

    def reverse(
        self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor | None
    ) -> torch.Tensor:
        return torch.flip(x, [1])
