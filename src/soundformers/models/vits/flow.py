"""The prior flow: WaveNet-conditioned affine couplings, run backwards from the prior sample
to the decoder's latent."""

from __future__ import annotations

import torch
from torch import nn

from .config import VitsConfig
from .layers import Conv1d, Flip

__all__ = ["ResidualCouplingBlock"]


class WN(nn.Module):
    """Non-causal WaveNet: gated dilated convolutions with residual and skip outputs."""

    def __init__(self, channels: int, kernel_size: int, dilation_rate: int, n_layers: int,
                 gin_channels: int) -> None:  # fmt: skip
        super().__init__()
        self.channels = channels
        if gin_channels:
            self.cond_layer = Conv1d(gin_channels, 2 * channels * n_layers, 1)
        self.in_layers = nn.ModuleList(
            Conv1d(
                channels,
                2 * channels,
                kernel_size,
                dilation=dilation_rate**i,
                padding=(dilation_rate**i * (kernel_size - 1)) // 2,
            )  # fmt: skip
            for i in range(n_layers)
        )
        self.res_skip_layers = nn.ModuleList(
            Conv1d(channels, 2 * channels if i < n_layers - 1 else channels, 1)
            for i in range(n_layers)
        )

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor | None):
        c = self.channels
        output = torch.zeros_like(x)
        g_all = self.cond_layer(g) if g is not None else None
        last = len(self.in_layers) - 1
        for i, (conv, res_skip) in enumerate(zip(self.in_layers, self.res_skip_layers)):
            h = conv(x)  # (B, 2C, T)
            if g_all is not None:
                h = h + g_all[:, 2 * c * i : 2 * c * (i + 1)]
            # tanh(a) * sigmoid(b), with tanh(a) = 2 sigmoid(2a) - 1 (sigmoid is much faster)
            acts = torch.sigmoid(2 * h[:, :c]).mul_(2).sub_(1).mul_(torch.sigmoid(h[:, c:]))
            rs = res_skip(acts)
            if i < last:
                x = (x + rs[:, :c]) * x_mask
                output = output + rs[:, c:]
            else:
                output = output + rs
        return output * x_mask


class ResidualCouplingLayer(nn.Module):
    """Mean-only affine coupling: the second half is shifted by a WaveNet of the first."""

    def __init__(self, cfg: VitsConfig) -> None:
        super().__init__()
        half = cfg.inter_channels // 2
        self.pre = Conv1d(half, cfg.hidden_channels, 1)
        self.enc = WN(cfg.hidden_channels, cfg.flow_kernel_size, cfg.flow_dilation_rate,
                      cfg.flow_n_layers, cfg.gin_channels)  # fmt: skip
        self.post = Conv1d(cfg.hidden_channels, half, 1)

    def reverse(self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor | None):
        x0, x1 = x.chunk(2, dim=1)
        h = self.enc(self.pre(x0) * x_mask, x_mask, g)
        x1 = (x1 - self.post(h) * x_mask) * x_mask
        return torch.cat([x0, x1], dim=1)


class ResidualCouplingBlock(nn.Module):
    """[coupling, flip] * n_flows, run backwards: prior sample -> decoder latent."""

    def __init__(self, cfg: VitsConfig) -> None:
        super().__init__()
        flows: list[nn.Module] = []
        for _ in range(cfg.flow_n_flows):
            flows += [ResidualCouplingLayer(cfg), Flip()]
        self.flows = nn.ModuleList(flows)

    def forward(self, z: torch.Tensor, y_mask: torch.Tensor, g: torch.Tensor | None):
        for flow in reversed(self.flows):
            z = flow.reverse(z, y_mask, g)
        return z
