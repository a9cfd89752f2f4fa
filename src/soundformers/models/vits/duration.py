"""Duration predictors: the stochastic one (a spline flow run backwards from noise) and the
deterministic one. Both return log-durations per symbol."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import VitsConfig
from .layers import Conv1d, Flip, LayerNorm

__all__ = ["DurationPredictor", "StochasticDurationPredictor"]


class DDSConv(nn.Module):
    """Dilated depth-separable convolutions with residual connections."""

    def __init__(self, channels: int, kernel_size: int, n_layers: int, eps: float) -> None:
        super().__init__()
        self.convs_sep = nn.ModuleList(
            Conv1d(
                channels,
                channels,
                kernel_size,
                groups=channels,
                dilation=kernel_size**i,
                padding=(kernel_size**i * (kernel_size - 1)) // 2,
            )  # fmt: skip
            for i in range(n_layers)
        )
        self.convs_1x1 = nn.ModuleList(Conv1d(channels, channels, 1) for _ in range(n_layers))
        self.norms_1 = nn.ModuleList(LayerNorm(channels, eps) for _ in range(n_layers))
        self.norms_2 = nn.ModuleList(LayerNorm(channels, eps) for _ in range(n_layers))

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor | None = None):
        if g is not None:
            x = x + g
        for sep, norm_1, conv, norm_2 in zip(self.convs_sep, self.norms_1, self.convs_1x1,
                                             self.norms_2):  # fmt: skip
            y = F.gelu(norm_1(sep(x * x_mask)))
            x = x + F.gelu(norm_2(conv(y)))
        return x * x_mask


def spline_inverse(
    x: torch.Tensor,
    widths: torch.Tensor,
    heights: torch.Tensor,
    derivatives: torch.Tensor,
    tail_bound: float,
    min_size: float = 1e-3,
) -> torch.Tensor:
    """Invert a monotone rational-quadratic spline on [-B, B], identity outside (linear tails).

    Args:
        x: (...) values to invert.
        widths, heights: (..., K) unnormalized bin widths and heights.
        derivatives: (..., K - 1) unnormalized inner-knot derivatives.
        tail_bound: B.
        min_size: minimum bin width, height and derivative.
    """
    k = widths.shape[-1]
    edge = math.log(math.exp(1 - min_size) - 1)  # softplus^-1(1 - min): slope 1 at the ends
    derivatives = min_size + F.softplus(F.pad(derivatives, (1, 1), value=edge))  # (..., K+1)

    def knots(unnormalized: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sizes = min_size + (1 - min_size * k) * torch.softmax(unnormalized, dim=-1)
        inner = (2 * tail_bound * torch.cumsum(sizes, -1) - tail_bound)[..., :-1]
        ends = torch.full_like(inner[..., :1], tail_bound)
        cum = torch.cat([-ends, inner, ends], dim=-1)  # (..., K+1)
        return cum, cum[..., 1:] - cum[..., :-1]

    cumwidths, widths = knots(widths)
    cumheights, heights = knots(heights)
    inside = (x >= -tail_bound) & (x <= tail_bound)
    y = x.clamp(-tail_bound, tail_bound)
    locations = torch.cat([cumheights[..., :-1], cumheights[..., -1:] + 1e-6], dim=-1)
    bin_idx = ((y.unsqueeze(-1) >= locations).sum(-1, keepdim=True) - 1).clamp(0, k - 1)

    def pick(t: torch.Tensor) -> torch.Tensor:
        return t.gather(-1, bin_idx).squeeze(-1)

    x_k, w_k, y_k, h_k = pick(cumwidths), pick(widths), pick(cumheights), pick(heights)
    delta = h_k / w_k
    d_k, d_k1 = pick(derivatives[..., :-1]), pick(derivatives[..., 1:])
    dy = y - y_k
    a = dy * (d_k + d_k1 - 2 * delta) + h_k * (delta - d_k)
    b = h_k * d_k - dy * (d_k + d_k1 - 2 * delta)
    c = -delta * dy
    root = (2 * c) / (-b - torch.sqrt(b.pow(2) - 4 * a * c))
    return torch.where(inside, root * w_k + x_k, x)


class ElementwiseAffine(nn.Module):
    """x -> m + exp(logs) * x per channel (run here in reverse)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.m = nn.Parameter(torch.zeros(channels, 1))
        self.logs = nn.Parameter(torch.zeros(channels, 1))

    def reverse(self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return (x - self.m) * torch.exp(-self.logs) * x_mask


class ConvFlow(nn.Module):
    """Spline coupling: the second channel is transformed by a spline the first conditions."""

    def __init__(self, filter_channels: int, kernel_size: int, n_layers: int, num_bins: int,
                 tail_bound: float, eps: float) -> None:  # fmt: skip
        super().__init__()
        self.filter_channels, self.num_bins, self.tail_bound = filter_channels, num_bins, tail_bound
        self.pre = Conv1d(1, filter_channels, 1)
        self.convs = DDSConv(filter_channels, kernel_size, n_layers, eps)
        self.proj = Conv1d(filter_channels, 3 * num_bins - 1, 1)

    def reverse(self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        x0, x1 = x.split(1, dim=1)  # (B, 1, T) each
        h = self.proj(self.convs(self.pre(x0), x_mask, g)) * x_mask  # (B, 3K-1, T)
        h = h.unsqueeze(1).transpose(2, 3)  # (B, 1, T, 3K-1)
        n, scale = self.num_bins, math.sqrt(self.filter_channels)
        x1 = spline_inverse(x1, h[..., :n] / scale, h[..., n : 2 * n] / scale, h[..., 2 * n :],
                            self.tail_bound)  # fmt: skip
        return torch.cat([x0, x1], dim=1) * x_mask


class StochasticDurationPredictor(nn.Module):
    """Log-durations by running a normalizing flow backwards from noise."""

    def __init__(self, cfg: VitsConfig) -> None:
        super().__init__()
        fc = cfg.dp_filter_channels
        self.pre = Conv1d(cfg.hidden_channels, fc, 1)
        self.convs = DDSConv(fc, cfg.dp_kernel_size, cfg.dp_n_layers, cfg.layer_norm_eps)
        self.proj = Conv1d(fc, fc, 1)
        if cfg.gin_channels:
            self.cond = Conv1d(cfg.gin_channels, fc, 1)
        # original layout [affine, flow, flip, flow, flip, ...]: the first spline flow is
        # never used at inference (VITS drops it), so it has no weights here
        flows: list[nn.Module] = [ElementwiseAffine(2)]
        for i in range(cfg.dp_n_flows):
            flow = ConvFlow(fc, cfg.dp_kernel_size, cfg.dp_n_layers, cfg.dp_num_bins,
                            cfg.dp_tail_bound, cfg.layer_norm_eps)  # fmt: skip
            flows += [nn.Identity() if i == 0 else flow, Flip()]
        self.flows = nn.ModuleList(flows)

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor | None,
                noise: torch.Tensor) -> torch.Tensor:  # fmt: skip
        """x: (B, C, T); noise: (B, 2, T) scaled noise. Returns log-durations (B, 1, T)."""
        x = self.pre(x)
        if g is not None:
            x = x + self.cond(g)
        x = self.proj(self.convs(x, x_mask)) * x_mask
        z = noise
        for flow in [*reversed(self.flows[2:]), self.flows[0]]:
            z = flow.reverse(z, x_mask, x)
        return z[:, :1]


class DurationPredictor(nn.Module):
    """Deterministic log-durations: two conv + ReLU + LayerNorm layers and a projection."""

    def __init__(self, cfg: VitsConfig) -> None:
        super().__init__()
        fc, k, eps = cfg.dp_filter_channels, cfg.dp_kernel_size, cfg.layer_norm_eps
        self.conv_1 = Conv1d(cfg.hidden_channels, fc, k, padding=k // 2)
        self.norm_1 = LayerNorm(fc, eps)
        self.conv_2 = Conv1d(fc, fc, k, padding=k // 2)
        self.norm_2 = LayerNorm(fc, eps)
        self.proj = Conv1d(fc, 1, 1)
        if cfg.gin_channels:
            self.cond = Conv1d(cfg.gin_channels, cfg.hidden_channels, 1)

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor | None,
                noise: torch.Tensor) -> torch.Tensor:  # fmt: skip
        if g is not None:
            x = x + self.cond(g)
        x = self.norm_1(torch.relu(self.conv_1(x * x_mask)))
        x = self.norm_2(torch.relu(self.conv_2(x * x_mask)))
        return self.proj(x * x_mask) * x_mask
