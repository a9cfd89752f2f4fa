"""The HiFi-GAN decoder: latent frames -> waveform.

The decoder runs on (B, C, 1, T) tensors in channels-last memory, i.e. (B, T, C) in memory:
oneDNN convolves that layout directly, where a (B, C, T) tensor is reordered to a blocked
layout and back around every convolution. The residual blocks run over time chunks (with a
halo as wide as their receptive field, so the result is the same) that stay in cache.

Once prepared (`Generator.prepare_`), the wide residual-block convolutions use a fast FIR
algorithm (`FastConv`: a real FFT, or Winograd's): the same result with a half to a third of
the multiplications; the other residual-block convolutions keep their weights in oneDNN's own
blocked layout (`PackedConv`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from functools import partial
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .. import layers as shared_layers
from .config import VitsConfig

__all__ = ["Generator"]

logger = logging.getLogger(__name__)


CHUNK_ELEMENTS = 1 << 18  # batch * channels * samples per chunk and thread (1 MiB float32)
MIN_CHUNK_PER_HALO = 64  # but chunks at least this many halos long (recomputed work <= 3%)
MIN_WINDOW_PER_HALO = 8  # inference windows (`Generator.forward_windows`) from this many halos
# window lengths: every multiple of the smallest when that makes at most this many lengths (the
# first, widest levels, where a few windows cover a sentence and rounding its length up to a
# doubling would waste up to half a window), else doublings of the smallest
MAX_WINDOW_MULTIPLES = 8
WINDOW_COST_PER_HALO = 4  # the fixed cost of a window (calls, their setup), in halos of work
FRAME_BUCKET = 16  # and the first conv on a multiple of this many latent frames
# the fast algorithms (`fast_algorithm`): an FFT for float32 convs of this many taps and more
# from this many channels (MMS and Piper: 256 and 128 x 11), of one of these sizes
FFT_MIN_KERNEL = 11
FFT_MIN_CHANNELS = 128
# where its one-tap products are one MKL bmm (`FastConv`, Intel CPUs): from 7 taps and 64
# channels (MMS and Piper: 256, 128 and 64 x 7 and 11)
FFT_MIN_KERNEL_MKL = 7
FFT_MIN_CHANNELS_MKL = 64
FFT_SIZES = (16, 24, 32, 48, 64)
# the cost of the transforms per output sample and channel, in multiply-adds of the products
# (fitted to the fastest sizes measured: 32 for 256 x 11, 24 for 128 x 11 and 256 x 7, ...)
FFT_TRANSFORM_COST = 4.0
# else Winograd with in_channels * kernel_size at least this (MMS: 256 x 3): below, its
# transforms cost about what it saves
WINOGRAD_MIN_WIDTH = 704
WINOGRAD_TILE = 4  # outputs per tile, F(4, 4): 7 convolutions of k/4 taps for 4 of k taps
WINOGRAD_POINTS = (0.0, 1.0, -1.0, 2.0, -2.0, -0.5)  # and infinity: 2 * TILE - 1 in all


def window_sizes(elements: int, halo: int, rate: int) -> list[int]:
    """The window lengths (output samples, halo aside) of one decoder level, longest first:
    the smallest `MIN_WINDOW_PER_HALO` halos (a multiple of `rate`), the longest its largest
    doubling up to the chunk length (`CHUNK_ELEMENTS` per thread over `elements` = batch *
    channels), and between them every multiple of the smallest if there are at most
    `MAX_WINDOW_MULTIPLES`, else the doublings."""
    smallest = -(-max(MIN_WINDOW_PER_HALO * halo, 1) // rate) * rate
    longest = max(CHUNK_ELEMENTS * torch.get_num_threads() // elements, MIN_CHUNK_PER_HALO * halo)
    sizes = [smallest]
    while 2 * sizes[-1] <= longest:
        sizes.append(2 * sizes[-1])
    if sizes[-1] // smallest <= MAX_WINDOW_MULTIPLES:
        sizes = list(range(smallest, sizes[-1] + 1, smallest))
    return sizes[::-1]


def window_cover(length: int, sizes: Sequence[int], halo: int) -> list[tuple[int, int]]:
    """(start, size) windows of `sizes` (longest first) that cover samples 0..length-1 back to
    back: the longest while it fits, then the cheapest cover of the rest, where a window costs
    its samples, its two halos and `WINDOW_COST_PER_HALO` halos of fixed cost."""
    smallest, windows, start = sizes[-1], [], 0
    while length - start >= sizes[0]:
        windows.append((start, sizes[0]))
        start += sizes[0]
    units = -(-(length - start) // smallest)  # the rest, in smallest windows
    # cost[u], pick[u]: cheapest cover of u units, and the size of its first window
    cost, pick = [0.0] * (units + 1), [0] * (units + 1)
    for u in range(1, units + 1):
        cost[u] = float("inf")
        for size in sizes:
            c = size + (2 + WINDOW_COST_PER_HALO) * halo + cost[max(u - size // smallest, 0)]
            if c < cost[u]:
                cost[u], pick[u] = c, size
    while units > 0:
        windows.append((start, pick[units]))
        start, units = start + pick[units], max(units - pick[units] // smallest, 0)
    return windows


def conv_nwc(x: torch.Tensor, conv: nn.Conv1d) -> torch.Tensor:
    """Apply a Conv1d to a channels-last (B, C_in, 1, T) tensor -> (B, C_out, 1, T')."""
    return F.conv2d(x, conv.weight.unsqueeze(2), conv.bias, (1, conv.stride[0]),
                    (0, conv.padding[0]), (1, conv.dilation[0]), conv.groups)  # fmt: skip


class PackedConv:
    """A (1, k) Conv2d on channels-last (B, C_in, 1, T) float32 CPU tensors whose weight is
    stored in oneDNN's blocked layout, so that no call reorders it: at two threads, that
    reorder takes about a quarter of a short, wide convolution (the Winograd products).

    Inference only (no autograd). Uses `torch.ops.mkldnn`, PyTorch's own fused-convolution
    ops; `PackedConv.build` returns None where they are missing.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, padding: int,
                 dilation: int, groups: int = 1) -> None:  # fmt: skip
        """weight: (C_out, C_in / groups, 1, k); bias: (C_out,) or None; padding on each side."""
        self.source = (weight.detach(), None if bias is None else bias.detach(), padding,
                       dilation, groups)  # fmt: skip
        self.args = ([0, padding], [1, 1], [1, dilation], groups)  # as F.conv2d's
        self.weight = torch.ops.mkldnn._reorder_convolution_weight(weight.detach(), *self.args)
        self.bias = self.source[1]

    def __reduce__(self) -> tuple[type[PackedConv], tuple]:
        # oneDNN's opaque tensors cannot be copied or pickled: pack the plain weight again
        return PackedConv, self.source

    @classmethod
    def build(cls, weight: torch.Tensor, bias: torch.Tensor | None, padding: int,
              dilation: int, groups: int = 1) -> PackedConv | None:  # fmt: skip
        """A `PackedConv`, or None (with a warning) where this PyTorch cannot make one."""
        if not (_PACKED_CONV and weight.dtype == torch.float32 and weight.device.type == "cpu"):
            return None
        try:
            return cls(weight, bias, padding, dilation, groups)
        except RuntimeError as e:  # e.g. a build of oneDNN that rejects the shape
            logger.warning("plain convolutions: packing a %s weight failed: %s", weight.shape, e)
            return None

    def __call__(self, x: torch.Tensor, slope: float | None = None,
                 residual: torch.Tensor | None = None,
                 accumulate: bool = False) -> torch.Tensor:  # fmt: skip
        """x: (B, C_in, 1, T) channels-last -> (B, C_out, 1, T') channels-last; plus `residual`
        (B, C_out, 1, T') if given, else leaky_relu(., slope) if `slope` is given: fused into
        the convolution, which spares a pass over the output. With `accumulate`, the sum may
        be written over `residual` (the caller's to give up), which spares a new output."""
        if residual is not None:
            if (accumulate and _PACKED_CONV_INPLACE
                    and residual.is_contiguous(memory_format=torch.channels_last)):  # fmt: skip
                return torch.ops.mkldnn._convolution_pointwise_.binary(
                    residual, x, self.weight, self.bias, *self.args, "add", None, None, [], None
                )
            return torch.ops.mkldnn._convolution_pointwise.binary(
                x, residual, self.weight, self.bias, *self.args, "add", None, None, [], None
            )
        attr, scalars = ("none", []) if slope is None else ("leaky_relu", [slope])
        return torch.ops.mkldnn._convolution_pointwise(x, self.weight, self.bias, *self.args,
                                                       attr, scalars, None)  # fmt: skip


_PACKED_CONV = (
    torch.backends.mkldnn.is_available()
    and hasattr(torch.ops.mkldnn, "_reorder_convolution_weight")
    and hasattr(torch.ops.mkldnn, "_convolution_pointwise")
)
_PACKED_CONV_INPLACE = _PACKED_CONV and hasattr(torch.ops.mkldnn, "_convolution_pointwise_")


class PackedConvTranspose:
    """A (1, k) ConvTranspose2d, stride (1, rate), no padding, on channels-last
    (B, C_in, 1, T) float32 CPU tensors, with its weight in oneDNN's blocked layout (as
    `PackedConv`). Also spares the short windows PyTorch's slow fallback (up to 17x slower)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, rate: int) -> None:
        """weight: (C_in, C_out, 1, k); bias: (C_out,) or None."""
        self.source = (weight.detach(), None if bias is None else bias.detach(), rate)
        self.args = ([0, 0], [0, 0], [1, rate], [1, 1], 1)  # padding, output padding, ...
        self.weight = torch.ops.mkldnn._reorder_convolution_transpose_weight(self.source[0],
                                                                             *self.args)  # fmt: skip
        self.bias = self.source[1]

    def __reduce__(self) -> tuple[type[PackedConvTranspose], tuple]:
        return PackedConvTranspose, self.source

    @classmethod
    def build(cls, weight: torch.Tensor, bias: torch.Tensor | None,
              rate: int) -> PackedConvTranspose | None:  # fmt: skip
        """A `PackedConvTranspose`, or None (with a warning) where this PyTorch cannot."""
        if not (_PACKED_CONV_TRANSPOSE and weight.dtype == torch.float32
                and weight.device.type == "cpu"):  # fmt: skip
            return None
        try:
            return cls(weight, bias, rate)
        except RuntimeError as e:
            logger.warning("plain transposed convolutions: packing %s failed: %s", weight.shape, e)
            return None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C_in, 1, T) channels-last -> (B, C_out, 1, (T - 1) rate + k) channels-last."""
        return torch.ops.mkldnn._convolution_transpose_pointwise(
            x, self.weight, self.bias, *self.args, "none", [], None
        )


_PACKED_CONV_TRANSPOSE = (
    torch.backends.mkldnn.is_available()
    and hasattr(torch.ops.mkldnn, "_reorder_convolution_transpose_weight")
    and hasattr(torch.ops.mkldnn, "_convolution_transpose_pointwise")
)


def conv_transpose_nwc(x: torch.Tensor, conv: nn.ConvTranspose1d) -> torch.Tensor:
    """Apply a ConvTranspose1d to a channels-last (B, C_in, 1, T) tensor -> (B, C_out, 1, T')."""
    return F.conv_transpose2d(x, conv.weight.unsqueeze(2), conv.bias, (1, conv.stride[0]),
                              (0, conv.padding[0]))  # fmt: skip


def conv_post_nwc(x: torch.Tensor, conv: nn.Conv1d) -> torch.Tensor:
    """The decoder's last conv (C -> 1 channel, no bias) on a channels-last (B, C, 1, T) tensor
    -> (B, 1, T), as one matmul and a sum of shifted columns (oneDNN is slow for one output
    channel)."""
    k, pad = conv.kernel_size[0], conv.padding[0]
    # (k, C) @ (B, C, T) -> (B, k, T): every tap's product at every sample
    taps = conv.weight[0].t() @ x.squeeze(2)
    t = taps.shape[-1]
    taps = F.pad(taps, (pad, k - 1 - pad))  # (B, k, T + k - 1)
    out = taps[:, 0, 0:t].clone()
    for j in range(1, k):
        out += taps[:, j, j : j + t]
    return out.unsqueeze(1)


class FirAlgorithm(NamedTuple):
    """A bilinear algorithm for `stride` outputs of a `span`-tap correlation, in Lavin's form
    `Y = AT ((G g) * (BT d))`: `Y[a] = sum_b g[b] d[a + b]` for a < stride, from `n` products
    of a tile d of `stride + span - 1` inputs. float64."""

    bt: torch.Tensor  # (n, stride + span - 1): input transform
    g: torch.Tensor  # (n, span): filter transform
    at: torch.Tensor  # (stride, n): output transform


def winograd_matrices(
    tile: int, points: Sequence[float]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Winograd's minimal filtering F(tile, tile) in Lavin's form `Y = AT ((G g) * (BT d))`:
    `tile` outputs `Y[a] = sum_b g[b] d[a + b]` from `2 tile - 1` products.

    Built as the transpose of Toom-Cook polynomial multiplication: evaluate at `points` and
    infinity, multiply, interpolate.

    Args:
        tile: outputs per tile (and filter taps per tile).
        points: the `2 tile - 2` finite evaluation points.

    Returns:
        float64 `BT (n, n)`, `G (n, tile)`, `AT (tile, n)` with `n = 2 tile - 1`.
    """
    n = 2 * tile - 1
    assert len(points) == n - 1, f"F({tile}, {tile}) needs {n - 1} finite points"

    def evaluate(columns: int) -> torch.Tensor:  # rows: [1, p, p^2, ...], infinity: [0, ..., 1]
        p = torch.tensor(points, dtype=torch.float64).unsqueeze(1)
        finite = p ** torch.arange(columns, dtype=torch.float64)
        infinity = torch.zeros(1, columns, dtype=torch.float64)
        infinity[0, -1] = 1
        return torch.cat([finite, infinity])

    interpolate = torch.linalg.inv(evaluate(n))  # values at the points -> coefficients
    return interpolate.t().contiguous(), evaluate(tile), evaluate(tile).t().contiguous()


def winograd_algorithm(tile: int = WINOGRAD_TILE,
                       points: Sequence[float] = WINOGRAD_POINTS) -> FirAlgorithm:  # fmt: skip
    """Winograd's F(tile, tile) (`winograd_matrices`): with `FastConv`, over polyphase
    components, a k-tap filter takes `2 tile - 1` products of ceil(k / tile) taps."""
    return FirAlgorithm(*winograd_matrices(tile, points))


def fft_algorithm(kernel_size: int, size: int) -> FirAlgorithm:
    """`size - kernel_size + 1` outputs of a `kernel_size`-tap correlation by a real DFT of
    `size` (even) points (overlap-save), each complex bin's product by Gauss's three real ones.

    The correlation of the tile d with the filter g zero-padded to `size` is circular, and
    exact (no wrap-around) for its first `size - kernel_size + 1` outputs: it is the inverse
    DFT of conj(G) D. d and g are real, so bins 0 and size / 2 are real (one product each)
    and bins 1 .. size / 2 - 1 carry the rest. For D = a + ib and conj(G) = c + id,
    `k1 = c (a + b)`, `k2 = a (d - c)`, `k3 = b (c + d)` give Re = k1 - k3 and Im = k1 + k2.
    So `3 size / 2 - 1` products per tile, every coefficient a cosine or a sine: its float32
    rounding error is several times below Winograd F(4, 4)'s.
    """
    assert size % 2 == 0 and size > kernel_size
    out = size - kernel_size + 1
    t = torch.arange(size, dtype=torch.float64)
    a = torch.arange(out, dtype=torch.float64)
    bt, g, at = [], [], []
    for f in (0, size // 2):  # real bins
        cos = torch.cos(2 * torch.pi * f * t / size)
        bt.append(cos)
        g.append(cos[:kernel_size])
        at.append(torch.cos(2 * torch.pi * f * a / size) / size)
    for f in range(1, size // 2):
        cos, sin = torch.cos(2 * torch.pi * f * t / size), torch.sin(2 * torch.pi * f * t / size)
        re, im = cos, -sin  # D = sum d e^(-i theta): a = sum d cos, b = -sum d sin
        c, d = cos[:kernel_size], sin[:kernel_size]  # conj(G) = sum g e^(+i theta)
        bt += [re + im, re, im]
        g += [c, d - c, c + d]
        # output a: 2 / size Re(C e^(i theta_a)) = 2 / size (Re cos - Im sin)
        cos_a = torch.cos(2 * torch.pi * f * a / size) * 2 / size
        sin_a = torch.sin(2 * torch.pi * f * a / size) * 2 / size
        at += [cos_a - sin_a, -sin_a, -cos_a]  # k1, k2, k3
    return FirAlgorithm(torch.stack(bt), torch.stack(g), torch.stack(at, dim=1))


def fast_algorithm(in_channels: int, kernel_size: int) -> FirAlgorithm | None:
    """The fast algorithm for a float32 residual-block conv (odd kernel, stride 1), or None
    where the direct convolution is faster (measured here at 2 threads, MMS's windows).

    - From `FFT_MIN_KERNEL` taps and `FFT_MIN_CHANNELS` channels: `fft_algorithm`, its size
      the cheapest by `FFT_TRANSFORM_COST`. MMS's 256 x 11 convs: 7.1-7.7 -> 5.5-6.0 ms a
      window against Winograd, 128 x 11: 1.9-2.1 -> 1.7; MMS as a whole 1-6 % faster
      (same process, the two alternating sentence by sentence: 1.008-1.032x over six rounds,
      1.018-1.056x over four with the best of 3 runs per sentence).
    - Else, from `WINOGRAD_MIN_WIDTH` (in_channels x taps): Winograd F(4, 4).
    - Below that, the transforms cost about what they save.

    Not the FFT for 7 taps where the products are a grouped oneDNN convolution: alone a
    256 x 7 conv gains 5-10 %, but in the decoder MMS was no faster (0.989-1.015x), and with
    64-channel and 7-tap convs too, 1-6 % slower: the products' weights, read from memory at
    every window, grow (size 32: 47 one-tap products against Winograd's 7 of three taps for
    11, of two for 7: 12 MB for 256 x 11), and each product has size - k + 1 times fewer rows
    than the output (Winograd: 4 times fewer). Where they are one MKL bmm (`mkl_is_fast`:
    on an Intel Xeon that runs them at ~325 GFLOP/s, the grouped convolution at 140-230 in
    the decoder), the FFT takes 7 taps and 64 channels on (`FFT_MIN_KERNEL_MKL`,
    `FFT_MIN_CHANNELS_MKL`): MMS 3.69 against 4.03 s for 8 sentences, where 7 taps from 32
    channels took 3.78 s and from 256 4.28 (same process, alternating, best of 4 rounds).
    """
    min_kernel, min_channels = FFT_MIN_KERNEL, FFT_MIN_CHANNELS
    if shared_layers.mkl_is_fast():
        min_kernel, min_channels = FFT_MIN_KERNEL_MKL, FFT_MIN_CHANNELS_MKL
    if kernel_size >= min_kernel and in_channels >= min_channels:

        def cost(size: int) -> float:  # per output: products (C^2) and transforms (C)
            out = size - kernel_size + 1
            return (1.5 * size - 1) / out * (in_channels + FFT_TRANSFORM_COST * (size + out))

        sizes = [n for n in FFT_SIZES if n - kernel_size + 1 >= 4]
        return fft_algorithm(kernel_size, min(sizes, key=cost)) if sizes else None
    if in_channels * kernel_size >= WINOGRAD_MIN_WIDTH:
        return winograd_algorithm()
    return None


class FastConv:
    """A dilated, "same"-padded Conv1d (odd kernel, stride 1) on channels-last (B, C, 1, T)
    tensors, by a fast FIR algorithm (`FirAlgorithm`) over tiles.

    Tile m is the `stride + span - 1` input samples from `stride m` on; its input transform
    (BT) gives `n` values per channel; `n` products, each a convolution over tiles (one
    grouped oneDNN convolution, whose output is already in the order the output transform
    reads), give the tile's `stride` outputs through the output transform (AT). One-tap
    products are instead one MKL bmm on Intel CPUs (`mkl_is_fast`; see `fast_algorithm`),
    the bias added to the one product that reaches every output alike.

    - With an FFT algorithm (span = the kernel size), each product is a single tap: a matrix
      product over channels.
    - With Winograd's F(P, P) (span = stride = P), over polyphase components: split time and
      the k taps into P phases of L = ceil(k / P) taps each. Output phase a is then
      `sum_b W_b * U_(a+b)`: each product is itself an L-tap convolution at 1/P of the rate,
      and the multiplications drop from k to (2P - 1) L / P per output (11 -> 5.25).
    The transforms are small matmuls per tile. Winograd's float32 rounding error is about
    twice the direct convolution's; the FFT's (its transforms sines and cosines) is below it.

    A dilation d splits time into d independent sequences (samples f, f + d, f + 2d, ...),
    each an undilated convolution. The B d sequences of a batch are laid out one after the
    other with spare tiles each, so that all tiles are the same stride apart: the input
    transform is then one bmm (with batch dimensions that do not flatten into one, PyTorch
    copies the operand first, and a bmm that writes a strided output runs item by item), and
    the products one undilated convolution of B d sequences. One sequence (B = d = 1) needs
    no spare tile: it is transformed from a zero-padded copy. The output transform adds the
    residual connection as it writes (or applies the leaky ReLU in its reordering copy).
    """

    def __init__(self, conv: nn.Conv1d, algorithm: FirAlgorithm) -> None:
        out_channels, _, k = conv.weight.shape
        assert k % 2 == 1 and conv.padding[0] == conv.dilation[0] * (k - 1) // 2
        assert conv.stride[0] == 1 and conv.groups == 1
        bt, g, at = algorithm
        self.stride, span = at.shape[0], g.shape[1]
        self.width = bt.shape[1]  # input samples per tile
        assert self.width == self.stride + span - 1
        self.kernel_size, self.dilation = k, conv.dilation[0]
        self.taps = -(-k // span)  # L: the products' taps, one tile apart
        assert self.taps == 1 or span == self.stride, "a polyphase algorithm: span = stride"
        # spare tiles per sequence, so that a sequence's tiles read only its own samples
        self.spare = -(-(self.width - self.stride) // self.stride)
        self.n_products = bt.shape[0]
        w = conv.weight.detach().double()
        w = F.pad(w, (0, span * self.taps - k)).unflatten(2, (self.taps, span))  # [o, i, l, b]
        leaves = torch.einsum("nb,oilb->noil", g, w)  # (n, O, I, L)
        dtype = conv.weight.dtype
        bias = conv.bias.detach().double() if conv.bias is not None else w.new_zeros(out_channels)
        self.products: Callable[[torch.Tensor], torch.Tensor] | None = None
        self.matrices: torch.Tensor | None = None
        self.bias_product: tuple[int, torch.Tensor] | None = None
        # an output-transform column whose entries are all one value c: a product that
        # reaches every output alike (the DFT's bin 0, Winograd's point 1)
        flat = ((at - at[:1]).abs().amax(dim=0) == 0) & (at[0] != 0)
        if (
            self.taps == 1
            and bool(flat.any())
            and conv.weight.device.type == "cpu"
            and shared_layers.mkl_is_fast()
        ):
            # one-tap products as one batched matrix product (MKL)
            self.matrices = leaves[..., 0].transpose(1, 2).to(dtype).contiguous()  # (n, I, O)
            j = int(flat.nonzero()[0])
            self.bias_product = j, (bias / at[0, j]).to(dtype)  # added to product j alone
        else:
            # product n is group n: n O filters of I channels, in the layout oneDNN reads for
            # channels-last inputs
            weight = leaves.flatten(0, 1).unsqueeze(2).to(dtype)  # (n O, I, 1, L)
            weight = weight.contiguous(memory_format=torch.channels_last)
            # the bias, shared out over the products so that every output gets it exactly once
            share = torch.linalg.pinv(at) @ at.new_ones(self.stride)  # at @ share == 1
            shared = torch.outer(share, bias).flatten().to(dtype)  # (n O,)
            groups = self.n_products
            # undilated: each dilation phase is a sequence of its own (see `__call__`)
            self.products = PackedConv.build(weight, shared, 0, 1, groups) or partial(
                F.conv2d, weight=weight, bias=shared, groups=groups
            )
        self.bt, self.at = bt.to(dtype), at.to(dtype)

    def __call__(self, x: torch.Tensor, residual: torch.Tensor | None = None,
                 slope: float | None = None, accumulate: bool = False) -> torch.Tensor:  # fmt: skip
        """x: (B, C, 1, T) channels-last -> (B, O, 1, T) channels-last, as `conv_nwc(x, conv)`;
        plus `residual` (B, O, 1, T) if given (added as the output transform writes), else
        leaky_relu(., slope) if `slope` is given. With `accumulate`, the sum may be written
        over `residual` (the caller's to give up): no new output, and no copy of the residual
        for the matmul to add to."""
        s, d, n_products = self.stride, self.dilation, self.n_products
        b, c, _, t = x.shape
        n_out = -(-t // (d * s))  # output tiles per sequence
        n = n_out + self.taps - 1  # input tiles the L-tap products read
        rows = x.squeeze(2).transpose(1, 2)  # (B, T, C)
        if b * d == 1:  # one undilated sequence: zero-padded, its tiles `stride` rows apart
            left = (self.kernel_size - 1) // 2
            u = F.pad(rows[0], (0, 0, left, s * (n - 1) + self.width - left - t))
            z, tiles = rows.new_empty(n, n_products, c), n
            self._tiles(u, n, z)
        else:  # spare tiles per sequence, so that all tiles are the same stride apart
            z, tiles = self._input_sequences(rows, n), n + self.spare
        y = self._products(z, b * d, tiles)  # (B d (tiles - L + 1), n, O)
        res = None if residual is None else residual.squeeze(2).transpose(1, 2)  # (B, T, O)
        # into the residual where its rows are contiguous, as the views below need
        into = accumulate and res is not None and res.stride(1) == res.shape[2]
        into = into and res.stride(2) == 1
        if b * d == 1:
            out = self._output_single(y, t, res, into)
            if res is None and slope is not None:
                F.leaky_relu(out, slope, inplace=True)
        else:
            out = self._output_sequences(y, b, t, res, slope, into)
        return out.transpose(1, 2).unsqueeze(2)

    def _products(self, z: torch.Tensor, sequences: int, tiles: int) -> torch.Tensor:
        """The products of the input transform z (sequences * tiles, n, C) ->
        (sequences * (tiles - L + 1), n, O), a view."""
        n, c = self.n_products, z.shape[-1]
        if self.matrices is not None:  # (n, tiles, C) @ (n, C, O), z read in place
            assert self.bias_product is not None
            y = torch.bmm(z.transpose(0, 1), self.matrices)
            j, bias = self.bias_product
            y[j] += bias
            return y.transpose(0, 1)
        assert self.products is not None
        z = z.view(sequences, tiles, n * c).transpose(1, 2).unsqueeze(2)  # channels-last
        y = self.products(z)  # (B d, n O, 1, tiles - L + 1): channels-last
        return y.squeeze(2).transpose(1, 2).reshape(-1, n, y.shape[1] // n)

    def _tiles(self, u: torch.Tensor, count: int, out: torch.Tensor) -> None:
        """out (count, n, C) = the input transform of `count` tiles of u (rows, C) (rows C
        floats apart): tile m reads rows `stride m` .. `stride m + width - 1`."""
        c = u.shape[-1]
        seqs = u.as_strided((count, self.width, c), (self.stride * c, c, 1),
                            u.storage_offset())  # fmt: skip
        torch.bmm(self.bt.expand(count, -1, -1), seqs, out=out)

    def _input_sequences(self, rows: torch.Tensor, n: int) -> torch.Tensor:
        """The input transform of rows (B, T, C) as B d sequences of n + `spare` tiles (the
        spare ones read the next sequence) -> (B d (n + spare), n_products, C), in one bmm.

        One copy lays the sequences out one after the other, zero-padded: sequence (b, f) is
        samples f - left, f - left + d, ... of sequence b (left = d (k - 1) / 2)."""
        s, d = self.stride, self.dilation
        b, t, c = rows.shape
        per_sequence = n + self.spare
        length = s * per_sequence  # rows per sequence: its n tiles read s (n - 1) + width
        # + the rows the last sequence's spare tiles read past it
        flat = rows.new_empty(b * d * length + self.width - s, c)
        u = flat[: b * d * length].view(b, d, length, c)
        lo = (self.kernel_size - 1) // 2  # zeros before sample 0, in each sequence
        full, rest = divmod(t, d)  # samples in every sequence; sequences with one more
        u[:, :, :lo] = 0
        u[:, :, lo : lo + full] = rows[:, : full * d].unflatten(1, (full, d)).transpose(1, 2)
        u[:, :rest, lo + full] = rows[:, full * d :]
        u[:, rest:, lo + full :] = 0  # zeros after each sequence's last sample
        u[:, :rest, lo + full + 1 :] = 0
        flat[b * d * length :] = 0  # (only the spare tiles read them)
        z = rows.new_empty(b * d * per_sequence, self.n_products, c)
        self._tiles(flat, b * d * per_sequence, z)
        return z

    def _output_single(self, y: torch.Tensor, t: int, res: torch.Tensor | None,
                       into: bool = False) -> torch.Tensor:  # fmt: skip
        """The output transform of one undilated sequence's products y (n_out, n, O) ->
        (1, T, O), plus res (1, T, O) if given (written over res if `into`): tile m is samples
        `stride m` .. `stride m + stride - 1`, in order."""
        s, (n_out, _, o) = self.stride, y.shape
        at = self.at.expand(n_out, -1, -1)
        if t != s * n_out:  # the last tile reaches past the end
            out = torch.bmm(at, y).view(1, s * n_out, o)[:, :t]
            return out if res is None else out.add_(res)
        if res is None:
            out = y.new_empty(1, t, o)
            torch.bmm(at, y, out=out.view(n_out, s, o))
            return out
        # the sum as the matmul writes it (beta = 1), rather than one more pass; a new output
        # first gets a copy of the residual
        if into:
            res.view(n_out, s, o).baddbmm_(at, y)
            return res
        out = y.new_empty(1, t, o)
        torch.baddbmm(res.reshape(n_out, s, o), at, y, out=out.view(n_out, s, o))
        return out

    def _output_sequences(self, y: torch.Tensor, b: int, t: int, res: torch.Tensor | None,
                          slope: float | None = None, into: bool = False) -> torch.Tensor:  # fmt: skip
        """The output transform of the products y (B d (n_out + spare), n, O) of
        `_input_sequences` -> (B, T, O), plus res (B, T, O) if given (written over res if
        `into`), else leaky_relu(., slope) if `slope` is given: one pass (a copy, sum or leaky
        ReLU) puts the sequences' tiles back in time order and drops the spare tiles."""
        s, d, o = self.stride, self.dilation, y.shape[-1]
        n_out = y.shape[0] // (b * d) - self.spare
        w = torch.bmm(self.at.expand(y.shape[0], -1, -1), y)  # (B d (n_out + spare), s, O)
        # (B, n_out, s, d, O): sequence f's tile m, output a is sample (s m + a) d + f
        w = w.view(b, d, n_out + self.spare, s, o)[:, :, :n_out].permute(0, 2, 3, 1, 4)
        out = res if into else y.new_empty(b, t, o)

        def write(source: torch.Tensor, dest: torch.Tensor, added: torch.Tensor | None) -> None:
            if added is not None:
                torch.add(source, added, out=dest)
            elif slope is not None:
                torch._C._nn.leaky_relu(source, slope, out=dest)
            else:
                dest.copy_(source)

        full = t // (s * d)  # tiles whose samples are all inside
        head = (b, full, s, d, o)
        write(w[:, :full], out[:, : s * d * full].view(head),
              None if res is None else res[:, : s * d * full].reshape(head))  # fmt: skip
        if full < n_out:  # the samples of the last tile that are inside
            last = out[:, s * d * full :]
            write(w[:, full].reshape(b, s * d, o)[:, : last.shape[1]], last,
                  None if res is None else res[:, s * d * full :])  # fmt: skip
        return out


class ResConv(nn.Conv1d):
    """A residual-block convolution: nn.Conv1d, plus a channels-last forward that, once
    `prepare_` has built them (float32 CPU weights only), uses a `FastConv` for the wide
    convolutions (`fast_algorithm`) and a `PackedConv` for the others."""

    fast: FastConv | None = None
    packed: PackedConv | None = None

    @torch.no_grad()
    def prepare_(self) -> None:
        """Build the fast or packed form of the current weights where it pays off."""
        k, w = self.kernel_size[0], self.weight
        self.fast = self.packed = None
        if w.dtype != torch.float32 or w.device.type != "cpu":
            return
        algorithm = fast_algorithm(self.in_channels, k)
        if (
            algorithm is not None
            and k % 2 == 1
            and self.groups == 1
            and self.stride[0] == 1
            and self.padding[0] == self.dilation[0] * (k - 1) // 2
        ):
            self.fast = FastConv(self, algorithm)
        elif self.groups == 1 and self.stride[0] == 1:
            self.packed = PackedConv.build(w.unsqueeze(2), self.bias, self.padding[0],
                                           self.dilation[0])  # fmt: skip

    def forward_nwc(self, x: torch.Tensor, slope: float | None = None,
                    residual: torch.Tensor | None = None,
                    accumulate: bool = False) -> torch.Tensor:  # fmt: skip
        """x: (B, C, 1, T) channels-last -> (B, C_out, 1, T), plus `residual` (B, C_out, 1, T)
        if given, else leaky_relu(., slope) if `slope` is given. `accumulate`: the sum may be
        written over `residual`, which the caller does not read again (spares a new output).
        With autograd on, always the direct convolution: the prepared weights are a detached
        copy."""
        if x.dtype == torch.float32 and x.device.type == "cpu" and not torch.is_grad_enabled():
            if self.packed is not None:
                return self.packed(x, slope, residual, accumulate)
            if self.fast is not None:
                return self.fast(x, residual, slope, accumulate)
        y = conv_nwc(x, self)
        if residual is not None:
            return y.add_(residual)
        return y if slope is None else F.leaky_relu(y, slope, inplace=True)


class LevelPlan(NamedTuple):
    """How `Generator.level_windows` covers one decoder level; lengths in samples."""

    out_length: int  # output samples in the sequence
    halo: int  # output samples each side of a window that its samples depend on
    taps: int  # input samples each side of a window that its upsampling reads
    windows: list[tuple[int, int]]  # (start, size) of each window's output samples
    left: int  # zeros before the input's first sample
    rows: int  # input samples the windows read, zeros included


def mask_(x: torch.Tensor, valid: tuple[int, int] | None) -> torch.Tensor:
    """Zero x (..., T) outside samples valid = (start, stop), in place; returns x.

    A window that reaches past either end of the sequence is computed on zeros there, and
    every convolution's output is masked so: each layer then sees zeros past the ends, as
    the whole sequence's zero padding gives it, and the window's samples come out the same."""
    if valid is not None:
        x[..., : valid[0]] = 0
        x[..., valid[1] :] = 0
    return x


def _radius(conv: nn.Conv1d) -> int:
    return conv.dilation[0] * (conv.kernel_size[0] - 1) // 2


class ResBlock1(nn.Module):
    """Pairs of (dilated conv, conv) with leaky ReLUs and a residual connection each."""

    def __init__(self, channels: int, kernel_size: int, dilations: tuple[int, ...], slope: float):
        super().__init__()
        self.slope = slope
        self.convs1 = nn.ModuleList(
            ResConv(channels, channels, kernel_size, dilation=d, padding=d * (kernel_size - 1) // 2)
            for d in dilations
        )
        self.convs2 = nn.ModuleList(
            ResConv(channels, channels, kernel_size, padding=(kernel_size - 1) // 2)
            for _ in dilations
        )

    @property
    def radius(self) -> int:
        """Samples on each side that one output sample depends on."""
        return sum(_radius(c) for c in [*self.convs1, *self.convs2])

    def forward(self, x: torch.Tensor, x_act: torch.Tensor,
                valid: tuple[int, int] | None = None) -> torch.Tensor:  # fmt: skip
        """x: (B, C, 1, T) channels-last; x_act: leaky_relu(x) (shared by parallel blocks);
        valid: the samples inside the sequence, if not all (see `mask_`)."""
        # x is zero outside `valid`, so masking after the residual sum is as masking before it
        last = len(self.convs1) - 1
        for i, (c1, c2) in enumerate(zip(self.convs1, self.convs2)):
            h = mask_(c1.forward_nwc(x_act, slope=self.slope), valid)
            # x is the parallel blocks' shared input at first, then this block's own
            x = mask_(c2.forward_nwc(h, residual=x, accumulate=i > 0), valid)
            if i < last:
                x_act = F.leaky_relu(x, self.slope)
        return x


class ResBlock2(nn.Module):
    """Dilated convs with leaky ReLUs and a residual connection each."""

    def __init__(self, channels: int, kernel_size: int, dilations: tuple[int, ...], slope: float):
        super().__init__()
        self.slope = slope
        self.convs = nn.ModuleList(
            ResConv(channels, channels, kernel_size, dilation=d, padding=d * (kernel_size - 1) // 2)
            for d in dilations
        )

    @property
    def radius(self) -> int:
        """Samples on each side that one output sample depends on."""
        return sum(_radius(c) for c in self.convs)

    def forward(self, x: torch.Tensor, x_act: torch.Tensor,
                valid: tuple[int, int] | None = None) -> torch.Tensor:  # fmt: skip
        """x: (B, C, 1, T) channels-last; x_act: leaky_relu(x) (shared by parallel blocks);
        valid: the samples inside the sequence, if not all (see `mask_`)."""
        last = len(self.convs) - 1
        for i, conv in enumerate(self.convs):
            # x: zero outside `valid`; the blocks' shared input at first, then this block's own
            x = mask_(conv.forward_nwc(x_act, residual=x, accumulate=i > 0), valid)
            if i < last:
                x_act = F.leaky_relu(x, self.slope)
        return x


class Generator(nn.Module):
    """HiFi-GAN: latent frames (B, inter, T) -> waveform (B, 1, T * hop)."""

    def __init__(self, cfg: VitsConfig) -> None:
        super().__init__()
        self.slope = cfg.leaky_relu_slope
        ch = cfg.upsample_initial_channel
        self.conv_pre = nn.Conv1d(cfg.inter_channels, ch, 7, padding=3)
        if cfg.gin_channels:
            self.cond = nn.Conv1d(cfg.gin_channels, ch, 1)
        self.ups = nn.ModuleList(
            nn.ConvTranspose1d(ch // 2**i, ch // 2 ** (i + 1), k, u, padding=(k - u) // 2)
            for i, (u, k) in enumerate(zip(cfg.upsample_rates, cfg.upsample_kernel_sizes))
        )
        block = ResBlock1 if cfg.resblock == "1" else ResBlock2
        self.n_kernels = len(cfg.resblock_kernel_sizes)
        self.resblocks = nn.ModuleList(
            block(ch // 2 ** (i + 1), k, tuple(d), self.slope)
            for i in range(len(self.ups))
            for k, d in zip(cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes)
        )
        self.conv_post = nn.Conv1d(ch // 2 ** len(self.ups), 1, 7, padding=3, bias=False)

    @torch.no_grad()
    def prepare_(self) -> Generator:
        """Store every conv weight (out, in, k) as (out, k, in) in memory: same shapes and
        values, but the layout oneDNN reads for channels-last inputs, which spares a weight
        copy per convolution; and build the fast form of the wide residual-block convs.
        Call once the weights are loaded and placed (again after changing them). Returns self."""
        for module in self.modules():
            if isinstance(module, (nn.Conv1d, nn.ConvTranspose1d)):
                w = module.weight
                w.data = w.data.transpose(1, 2).contiguous().transpose(1, 2)
            if isinstance(module, ResConv):
                module.prepare_()
        for up in self.ups:
            up.packed = PackedConvTranspose.build(up.weight.unsqueeze(2), up.bias, up.stride[0])
        return self

    def forward(self, x: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, inter, T) latent frames; g: (B, gin, 1) speaker embedding or None.
        Returns (B, 1, T * hop) in [-1, 1]."""
        if x.device.type == "cpu" and not torch.is_grad_enabled():
            return self.forward_windows(x, g)
        x = conv_nwc(x.unsqueeze(2).contiguous(memory_format=torch.channels_last), self.conv_pre)
        if g is not None:
            x = x + self.cond(g).unsqueeze(2)
        x = F.leaky_relu(x, self.slope)
        last = len(self.ups) - 1
        for i, up in enumerate(self.ups):
            x = conv_transpose_nwc(x, up)  # (B, C, 1, T * rate)
            # the next layer sees leaky_relu(mean of the blocks); the last one with slope 0.01
            x = self.resblocks_mean(x, self.level_blocks(i), 0.01 if i == last else self.slope)
        return torch.tanh(conv_post_nwc(x, self.conv_post))

    def forward_windows(self, x: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
        """`forward` for inference, in windows whose lengths come from a small fixed set.

        oneDNN builds a convolution for each new input shape, which costs about as much as
        running it: a decoder run at a new length took 2.5x as long as one at a known length.
        Here every convolution sees one of a few lengths, whatever the sentence's: the first
        conv a multiple of `FRAME_BUCKET` frames, and each upsampling with its residual blocks
        windows of `window_sizes` (the last window reaching past the end, zero-masked there).
        Each level writes its output straight into the zero-margined input the next one reads.
        """
        b, _, frames = x.shape
        padded = -(-frames // FRAME_BUCKET) * FRAME_BUCKET
        x = F.pad(x, (0, padded - frames)).unsqueeze(2)
        x = conv_nwc(x.contiguous(memory_format=torch.channels_last), self.conv_pre)
        if g is not None:
            x = x + self.cond(g).unsqueeze(2)
        x = F.leaky_relu(x, self.slope)  # past `frames`: not read
        plans, length = [], frames
        for i, up in enumerate(self.ups):
            plans.append(self.level_plan(b, length, up, self.level_blocks(i)))
            length = plans[-1].out_length
        first = plans[0]
        rows = F.pad(x[..., :frames].squeeze(2).transpose(1, 2),
                     (0, 0, first.left, first.rows - first.left - frames))  # fmt: skip
        x, last = rows.transpose(1, 2).unsqueeze(2), len(self.ups) - 1
        for i, (up, plan) in enumerate(zip(self.ups, plans)):
            after = plans[i + 1] if i < last else None
            x = self.level_windows(x, plan, up, self.level_blocks(i),
                                   0.01 if i == last else self.slope, after)  # fmt: skip
        return torch.tanh(conv_post_nwc(x[..., :length], self.conv_post))

    def level_blocks(self, i: int) -> Sequence[nn.Module]:
        """The parallel residual blocks after upsampling `i`."""
        return self.resblocks[i * self.n_kernels : (i + 1) * self.n_kernels]

    @staticmethod
    def level_plan(batch: int, length: int, up: nn.ConvTranspose1d,
                   blocks: Sequence[nn.Module]) -> LevelPlan:  # fmt: skip
        """The windows of one level (`level_windows`) over `length` input samples."""
        rate, k, pad = up.stride[0], up.kernel_size[0], up.padding[0]
        out_length = (length - 1) * rate - 2 * pad + k
        # halo: samples each side an output sample depends on, in whole input samples
        halo = -(-max(block.radius for block in blocks) // rate) * rate
        taps = -(-k // rate)  # input samples each side that a window's upsampling reads
        windows = window_cover(out_length, window_sizes(batch * up.out_channels, halo, rate), halo)
        end = windows[-1][0] + windows[-1][1]
        left = halo // rate + taps  # so that window 0 reads from input sample -left
        return LevelPlan(out_length, halo, taps, windows, left, left + (end + halo) // rate + taps)

    def level_windows(self, x: torch.Tensor, plan: LevelPlan, up: nn.ConvTranspose1d,
                      blocks: Sequence[nn.Module], slope: float,
                      after: LevelPlan | None = None) -> torch.Tensor:  # fmt: skip
        """One upsampling and the leaky_relu(mean of its residual blocks), window by window.

        Args:
            x: (B, C, 1, plan.rows) channels-last: input sample i at `plan.left + i`, zeros
                before and from the sequence's end on.
            plan: the level's windows (`level_plan`).
            up: the transposed convolution.
            blocks: the parallel residual blocks after it.
            slope: of the closing leaky ReLU.
            after: the next level's plan, whose input layout the output takes; None for the
                last level.

        Returns:
            (B, C', 1, T') channels-last: with `after`, `after.rows` samples laid out as that
            level reads them; else T' >= plan.out_length, zeros past it.
        """
        rate, pad, halo, taps = up.stride[0], up.padding[0], plan.halo, plan.taps
        b, c = x.shape[0], up.out_channels
        end = plan.windows[-1][0] + plan.windows[-1][1]
        # output sample i at out[..., offset + i]; the windows write zeros from out_length on
        offset, total = (after.left, max(after.rows, after.left + end)) if after else (0, end)
        out = torch.empty(b, total, 1, c, dtype=x.dtype, device=x.device).permute(0, 3, 2, 1)
        out[..., :offset] = 0
        out[..., offset + end :] = 0
        weight, skip, n = up.weight.unsqueeze(2), taps * rate + pad, len(blocks)
        packed = getattr(up, "packed", None)
        for start, size in plan.windows:
            lo, hi = start - halo, start + size + halo  # output samples of the window
            # the transposed conv of input samples lo / rate - taps .. hi / rate + taps (no
            # padding; x[..., start // rate] is input sample lo / rate - taps), from which
            # output sample lo is sample `skip`
            y = x[..., start // rate : (hi - lo) // rate + start // rate + 2 * taps]
            if packed is not None and y.dtype == torch.float32:
                y = packed(y)
            else:
                y = F.conv_transpose2d(y, weight, up.bias, (1, rate))
            y = y[..., skip : skip + hi - lo]
            valid = None
            if lo < 0 or hi > plan.out_length:
                valid = (max(-lo, 0), min(hi, plan.out_length) - lo)
                mask_(y, valid)
            y = self._blocks_sum(y, blocks, valid)[..., halo : halo + size]
            window = out[..., offset + start : offset + start + size]
            torch._C._nn.leaky_relu(y.div_(n), slope, out=window)
        return out

    def resblocks_mean(
        self, x: torch.Tensor, blocks: Sequence[nn.Module], slope: float
    ) -> torch.Tensor:
        """leaky_relu(mean of parallel residual blocks over x), x: (B, C, 1, T) channels-last.

        Runs in time chunks that overlap by the blocks' receptive radius, so each output sample
        sees the same inputs as without chunks.
        """
        b, c, _, t = x.shape
        n = len(blocks)
        halo = max(block.radius for block in blocks)
        per_chunk = CHUNK_ELEMENTS * torch.get_num_threads()  # about 1 MiB per thread
        step = max(per_chunk // (b * c), MIN_CHUNK_PER_HALO * halo, 1)
        # equal chunks, as many as fit best: no short last chunk that is mostly halo
        n_chunks = max(round(t / step), 1)
        if n_chunks == 1:
            return F.leaky_relu(self._blocks_sum(x, blocks).div_(n), slope)
        step = max(-(-t // n_chunks), halo)
        # x is overwritten in place, one chunk late: a chunk's halo reaches into the chunk
        # before it (step >= halo), never two chunks back
        pending: tuple[int, torch.Tensor] | None = None
        for start in range(0, t, step):
            stop = min(start + step, t)
            lo, hi = max(start - halo, 0), min(stop + halo, t)
            y = self._blocks_sum(x[..., lo:hi], blocks)[..., start - lo : stop - lo]
            F.leaky_relu(y.div_(n), slope, inplace=True)
            if pending is not None:
                x[..., pending[0] : start] = pending[1]
            pending = (start, y)
        if pending is not None:
            x[..., pending[0] :] = pending[1]
        return x

    def _blocks_sum(self, x: torch.Tensor, blocks: Sequence[nn.Module],
                    valid: tuple[int, int] | None = None) -> torch.Tensor:  # fmt: skip
        x_act = F.leaky_relu(x, self.slope)
        total = blocks[0](x, x_act, valid)
        for block in blocks[1:]:
            total = total.add_(block(x, x_act, valid))
        return total
