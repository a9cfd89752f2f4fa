"""The HiFi-GAN decoder: latent frames -> waveform.

The decoder runs on (B, C, 1, T) tensors in channels-last memory, i.e. (B, T, C) in memory:
oneDNN convolves that layout directly, where a (B, C, T) tensor is reordered to a blocked
layout and back around every convolution. The residual blocks run over time chunks (with a
halo as wide as their receptive field, so the result is the same) that stay in cache.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .config import VitsConfig

__all__ = ["Generator"]


CHUNK_ELEMENTS = 1 << 18  # batch * channels * samples per chunk and thread (1 MiB float32)
MIN_CHUNK_PER_HALO = 64  # but chunks at least this many halos long (recomputed work <= 3%)


def conv_nwc(x: torch.Tensor, conv: nn.Conv1d) -> torch.Tensor:
    """Apply a Conv1d to a channels-last (B, C_in, 1, T) tensor -> (B, C_out, 1, T')."""
    return F.conv2d(x, conv.weight.unsqueeze(2), conv.bias, (1, conv.stride[0]),
                    (0, conv.padding[0]), (1, conv.dilation[0]), conv.groups)  # fmt: skip


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


def _radius(conv: nn.Conv1d) -> int:
    return conv.dilation[0] * (conv.kernel_size[0] - 1) // 2


class ResBlock1(nn.Module):
    """Pairs of (dilated conv, conv) with leaky ReLUs and a residual connection each."""

    def __init__(self, channels: int, kernel_size: int, dilations: tuple[int, ...], slope: float):
        super().__init__()
        self.slope = slope
        self.convs1 = nn.ModuleList(
            nn.Conv1d(
                channels, channels, kernel_size, dilation=d, padding=d * (kernel_size - 1) // 2
            )
            for d in dilations
        )
        self.convs2 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, padding=(kernel_size - 1) // 2)
            for _ in dilations
        )

    @property
    def radius(self) -> int:
        """Samples on each side that one output sample depends on."""
        return sum(_radius(c) for c in [*self.convs1, *self.convs2])

    def forward(self, x: torch.Tensor, x_act: torch.Tensor) -> torch.Tensor:
        """x: (B, C, 1, T) channels-last; x_act: leaky_relu(x) (shared by parallel blocks)."""
        for c1, c2 in zip(self.convs1, self.convs2):
            h = F.leaky_relu(conv_nwc(x_act, c1), self.slope)
            x = conv_nwc(h, c2).add_(x)
            x_act = F.leaky_relu(x, self.slope)
        return x


class ResBlock2(nn.Module):
    """Dilated convs with leaky ReLUs and a residual connection each."""

    def __init__(self, channels: int, kernel_size: int, dilations: tuple[int, ...], slope: float):
        super().__init__()
        self.slope = slope
        self.convs = nn.ModuleList(
            nn.Conv1d(
                channels, channels, kernel_size, dilation=d, padding=d * (kernel_size - 1) // 2
            )
            for d in dilations
        )

    @property
    def radius(self) -> int:
        """Samples on each side that one output sample depends on."""
        return sum(_radius(c) for c in self.convs)

    def forward(self, x: torch.Tensor, x_act: torch.Tensor) -> torch.Tensor:
        """x: (B, C, 1, T) channels-last; x_act: leaky_relu(x) (shared by parallel blocks)."""
        last = len(self.convs) - 1
        for i, conv in enumerate(self.convs):
            x = conv_nwc(x_act, conv).add_(x)
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
        copy per convolution. Call once the weights are loaded. Returns self."""
        for module in self.modules():
            if isinstance(module, (nn.Conv1d, nn.ConvTranspose1d)):
                w = module.weight
                w.data = w.data.transpose(1, 2).contiguous().transpose(1, 2)
        return self

    def forward(self, x: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, inter, T) latent frames; g: (B, gin, 1) speaker embedding or None.
        Returns (B, 1, T * hop) in [-1, 1]."""
        x = conv_nwc(x.unsqueeze(2).contiguous(memory_format=torch.channels_last), self.conv_pre)
        if g is not None:
            x = x + self.cond(g).unsqueeze(2)
        x = F.leaky_relu(x, self.slope)
        last = len(self.ups) - 1
        for i, up in enumerate(self.ups):
            x = conv_transpose_nwc(x, up)  # (B, C, 1, T * rate)
            blocks = self.resblocks[i * self.n_kernels : (i + 1) * self.n_kernels]
            # the next layer sees leaky_relu(mean of the blocks); the last one with slope 0.01
            x = self.resblocks_mean(x, blocks, 0.01 if i == last else self.slope)
        return torch.tanh(conv_post_nwc(x, self.conv_post))

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
        if t <= step + 2 * halo:
            return F.leaky_relu(self._blocks_sum(x, blocks).div_(n), slope)
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

    def _blocks_sum(self, x: torch.Tensor, blocks: Sequence[nn.Module]) -> torch.Tensor:
        x_act = F.leaky_relu(x, self.slope)
        total = blocks[0](x, x_act)
        for block in blocks[1:]:
            total = total.add_(block(x, x_act))
        return total
