"""VITS for inference: text encoder, duration predictor, prior flow, HiFi-GAN decoder.

Module names are those of the original VITS code, which Piper voices keep (`enc_p`, `dp`,
`flow`, `dec`, `emb_g`); transformers' names are mapped in `convert.py`. Tensors are
channels-first: `(batch, channels, time)`; masks are `(batch, 1, time)` floats.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import embedding
from .config import VitsConfig

__all__ = ["VitsModel", "VitsOutput"]


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
        x = F.layer_norm(x.transpose(1, -1), self.gamma.shape, self.gamma, self.beta, self.eps)
        return x.transpose(1, -1)


# --------------------------------------------------------------------------------------------
# text encoder


class MultiHeadAttention(nn.Module):
    """Self-attention with relative position embeddings for offsets -window..window."""

    def __init__(self, channels: int, n_heads: int, window_size: int) -> None:
        super().__init__()
        self.n_heads, self.window = n_heads, window_size
        self.head_dim = channels // n_heads
        self.conv_q = nn.Conv1d(channels, channels, 1)
        self.conv_k = nn.Conv1d(channels, channels, 1)
        self.conv_v = nn.Conv1d(channels, channels, 1)
        self.conv_o = nn.Conv1d(channels, channels, 1)
        self.emb_rel_k = nn.Parameter(torch.zeros(1, 2 * window_size + 1, self.head_dim))
        self.emb_rel_v = nn.Parameter(torch.zeros(1, 2 * window_size + 1, self.head_dim))

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        """x: (B, C, T); attn_mask: (B, 1, T, T), 1 where attending is allowed."""
        b, c, t = x.shape
        q, k, v = (
            conv(x).view(b, self.n_heads, self.head_dim, t).transpose(2, 3)  # (B, H, T, D)
            for conv in (self.conv_q, self.conv_k, self.conv_v)
        )
        q = q / math.sqrt(self.head_dim)
        scores = q @ k.transpose(-2, -1)  # (B, H, T, T)
        # band[i, r] = i + r: column of offset r - window in a key axis padded by `window`
        band = torch.arange(t, device=x.device)[:, None] + torch.arange(
            2 * self.window + 1, device=x.device
        )
        band = band.expand(b, self.n_heads, t, -1)
        rel_logits = q @ self.emb_rel_k.transpose(-2, -1)  # (B, H, T, 2w+1)
        local = x.new_zeros(b, self.n_heads, t, t + 2 * self.window).scatter_(-1, band, rel_logits)
        scores = scores + local[..., self.window : self.window + t]
        scores = scores.masked_fill(attn_mask == 0, -1e4)
        p = torch.softmax(scores, dim=-1)
        out = p @ v  # (B, H, T, D)
        rel_weights = F.pad(p, (self.window, self.window)).gather(-1, band)  # (B, H, T, 2w+1)
        out = out + rel_weights @ self.emb_rel_v
        return self.conv_o(out.transpose(2, 3).reshape(b, c, t))


class FFN(nn.Module):
    """Two "same"-padded convolutions with a ReLU between, masked."""

    def __init__(self, channels: int, filter_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.pad = ((kernel_size - 1) // 2, kernel_size // 2)
        self.conv_1 = nn.Conv1d(channels, filter_channels, kernel_size)
        self.conv_2 = nn.Conv1d(filter_channels, channels, kernel_size)

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv_1(F.pad(x * x_mask, self.pad)))
        return self.conv_2(F.pad(x * x_mask, self.pad)) * x_mask


class Encoder(nn.Module):
    """Post-norm transformer blocks (attention, FFN) over (B, C, T)."""

    def __init__(self, cfg: VitsConfig) -> None:
        super().__init__()
        c, n = cfg.hidden_channels, cfg.n_layers
        self.attn_layers = nn.ModuleList(
            MultiHeadAttention(c, cfg.n_heads, cfg.window_size) for _ in range(n)
        )
        self.norm_layers_1 = nn.ModuleList(LayerNorm(c, cfg.layer_norm_eps) for _ in range(n))
        self.ffn_layers = nn.ModuleList(
            FFN(c, cfg.filter_channels, cfg.kernel_size) for _ in range(n)
        )
        self.norm_layers_2 = nn.ModuleList(LayerNorm(c, cfg.layer_norm_eps) for _ in range(n))

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor) -> torch.Tensor:
        attn_mask = x_mask.unsqueeze(2) * x_mask.unsqueeze(-1)  # (B, 1, T, T)
        x = x * x_mask
        for attn, norm_1, ffn, norm_2 in zip(
            self.attn_layers, self.norm_layers_1, self.ffn_layers, self.norm_layers_2
        ):
            x = norm_1(x + attn(x, attn_mask))
            x = norm_2(x + ffn(x, x_mask))
        return x * x_mask


class TextEncoder(nn.Module):
    """Symbol ids -> hidden states and the prior's mean and log-scale per symbol."""

    def __init__(self, cfg: VitsConfig) -> None:
        super().__init__()
        self.inter_channels = cfg.inter_channels
        self.emb = embedding(cfg.n_vocab, cfg.hidden_channels)
        self.encoder = Encoder(cfg)
        self.proj = nn.Conv1d(cfg.hidden_channels, 2 * cfg.inter_channels, 1)

    def forward(
        self, ids: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """ids: (B, T) long; lengths: (B,). Returns x (B, C, T), m and logs (B, inter, T),
        x_mask (B, 1, T)."""
        x = self.emb(ids) * math.sqrt(self.emb.embedding_dim)  # (B, T, C)
        x_mask = sequence_mask(lengths, ids.shape[1]).unsqueeze(1).to(x.dtype)
        x = self.encoder(x.transpose(1, 2), x_mask)
        stats = self.proj(x) * x_mask
        m, logs = stats.split(self.inter_channels, dim=1)
        return x, m, logs, x_mask


# --------------------------------------------------------------------------------------------
# duration predictors


class DDSConv(nn.Module):
    """Dilated depth-separable convolutions with residual connections."""

    def __init__(self, channels: int, kernel_size: int, n_layers: int, eps: float) -> None:
        super().__init__()
        self.convs_sep = nn.ModuleList(
            nn.Conv1d(
                channels,
                channels,
                kernel_size,
                groups=channels,
                dilation=kernel_size**i,
                padding=(kernel_size**i * (kernel_size - 1)) // 2,
            )  # fmt: skip
            for i in range(n_layers)
        )
        self.convs_1x1 = nn.ModuleList(nn.Conv1d(channels, channels, 1) for _ in range(n_layers))
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
        self.pre = nn.Conv1d(1, filter_channels, 1)
        self.convs = DDSConv(filter_channels, kernel_size, n_layers, eps)
        self.proj = nn.Conv1d(filter_channels, 3 * num_bins - 1, 1)

    def reverse(self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        x0, x1 = x.split(1, dim=1)  # (B, 1, T) each
        h = self.proj(self.convs(self.pre(x0), x_mask, g)) * x_mask  # (B, 3K-1, T)
        h = h.unsqueeze(1).transpose(2, 3)  # (B, 1, T, 3K-1)
        n, scale = self.num_bins, math.sqrt(self.filter_channels)
        x1 = spline_inverse(x1, h[..., :n] / scale, h[..., n : 2 * n] / scale, h[..., 2 * n :],
                            self.tail_bound)  # fmt: skip
        return torch.cat([x0, x1], dim=1) * x_mask


class Flip(nn.Module):
    """Reverse the channel order (no weights)."""

    def reverse(
        self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor | None
    ) -> torch.Tensor:
        return torch.flip(x, [1])


class StochasticDurationPredictor(nn.Module):
    """Log-durations by running a normalizing flow backwards from noise."""

    def __init__(self, cfg: VitsConfig) -> None:
        super().__init__()
        fc = cfg.dp_filter_channels
        self.pre = nn.Conv1d(cfg.hidden_channels, fc, 1)
        self.convs = DDSConv(fc, cfg.dp_kernel_size, cfg.dp_n_layers, cfg.layer_norm_eps)
        self.proj = nn.Conv1d(fc, fc, 1)
        if cfg.gin_channels:
            self.cond = nn.Conv1d(cfg.gin_channels, fc, 1)
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
        self.conv_1 = nn.Conv1d(cfg.hidden_channels, fc, k, padding=k // 2)
        self.norm_1 = LayerNorm(fc, eps)
        self.conv_2 = nn.Conv1d(fc, fc, k, padding=k // 2)
        self.norm_2 = LayerNorm(fc, eps)
        self.proj = nn.Conv1d(fc, 1, 1)
        if cfg.gin_channels:
            self.cond = nn.Conv1d(cfg.gin_channels, cfg.hidden_channels, 1)

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor | None,
                noise: torch.Tensor) -> torch.Tensor:  # fmt: skip
        if g is not None:
            x = x + self.cond(g)
        x = self.norm_1(torch.relu(self.conv_1(x * x_mask)))
        x = self.norm_2(torch.relu(self.conv_2(x * x_mask)))
        return self.proj(x * x_mask) * x_mask


# --------------------------------------------------------------------------------------------
# prior flow


class WN(nn.Module):
    """Non-causal WaveNet: gated dilated convolutions with residual and skip outputs."""

    def __init__(self, channels: int, kernel_size: int, dilation_rate: int, n_layers: int,
                 gin_channels: int) -> None:  # fmt: skip
        super().__init__()
        self.channels = channels
        if gin_channels:
            self.cond_layer = nn.Conv1d(gin_channels, 2 * channels * n_layers, 1)
        self.in_layers = nn.ModuleList(
            nn.Conv1d(
                channels,
                2 * channels,
                kernel_size,
                dilation=dilation_rate**i,
                padding=(dilation_rate**i * (kernel_size - 1)) // 2,
            )  # fmt: skip
            for i in range(n_layers)
        )
        self.res_skip_layers = nn.ModuleList(
            nn.Conv1d(channels, 2 * channels if i < n_layers - 1 else channels, 1)
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
            acts = torch.tanh(h[:, :c]) * torch.sigmoid(h[:, c:])
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
        self.pre = nn.Conv1d(half, cfg.hidden_channels, 1)
        self.enc = WN(cfg.hidden_channels, cfg.flow_kernel_size, cfg.flow_dilation_rate,
                      cfg.flow_n_layers, cfg.gin_channels)  # fmt: skip
        self.post = nn.Conv1d(cfg.hidden_channels, half, 1)

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


# --------------------------------------------------------------------------------------------
# HiFi-GAN decoder


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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2):
            x = x + c2(F.leaky_relu(c1(F.leaky_relu(x, self.slope)), self.slope))
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = x + conv(F.leaky_relu(x, self.slope))
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

    def forward(self, x: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
        x = self.conv_pre(x)
        if g is not None:
            x = x + self.cond(g)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, self.slope))
            blocks = self.resblocks[i * self.n_kernels : (i + 1) * self.n_kernels]
            xs = blocks[0](x)
            for block in blocks[1:]:
                xs = xs + block(x)
            x = xs / self.n_kernels
        return torch.tanh(self.conv_post(F.leaky_relu(x)))


# --------------------------------------------------------------------------------------------
# full model


class VitsOutput(NamedTuple):
    """audio: (B, samples) float, zero past each item's length; lengths: (B,) samples."""

    audio: torch.Tensor
    lengths: torch.Tensor


class VitsModel(nn.Module):
    """Text (symbol ids) to waveform."""

    def __init__(self, config: VitsConfig) -> None:
        super().__init__()
        self.config = config
        self.enc_p = TextEncoder(config)
        self.dp = (
            StochasticDurationPredictor(config) if config.use_sdp else DurationPredictor(config)
        )
        self.flow = ResidualCouplingBlock(config)
        self.dec = Generator(config)
        if config.n_speakers > 1:
            self.emb_g = embedding(config.n_speakers, config.gin_channels)

    def forward(
        self,
        ids: torch.Tensor,
        lengths: torch.Tensor,
        *,
        noise_scale: float = 0.667,
        length_scale: float = 1.0,
        noise_w: float = 0.8,
        speaker: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> VitsOutput:
        """Synthesize a batch.

        Args:
            ids: (B, T) long symbol ids, padded with any id past each length.
            lengths: (B,) number of valid ids per row.
            noise_scale: prior noise scale (0: deterministic latent).
            length_scale: duration multiplier.
            noise_w: duration-noise scale (0: deterministic durations).
            speaker: (B,) speaker ids (multi-speaker models only).
            generator: random generator for the two noise draws.

        Returns:
            `VitsOutput(audio (B, samples), lengths (B,))`.
        """
        x, m_p, logs_p, x_mask = self.enc_p(ids, lengths)
        g = self.emb_g(speaker).unsqueeze(-1) if speaker is not None else None  # (B, gin, 1)
        b, _, t_x = x.shape
        noise = x.new_zeros(b, 2, t_x)
        if noise_w:
            noise = torch.randn(b, 2, t_x, generator=generator, device=x.device, dtype=x.dtype)
            noise = noise * noise_w
        logw = self.dp(x, x_mask, g, noise)  # (B, 1, T_x)
        w_ceil = torch.ceil(torch.exp(logw) * x_mask * length_scale)
        y_lengths = torch.clamp_min(w_ceil.sum((1, 2)), 1).long()
        t_y = int(y_lengths.max())
        y_mask = sequence_mask(y_lengths, t_y).unsqueeze(1).to(x.dtype)  # (B, 1, T_y)
        # frame f belongs to the symbol whose cumulative duration first exceeds f
        ends = torch.cumsum(w_ceil[:, 0], dim=-1)  # (B, T_x)
        frames = torch.arange(t_y, device=x.device, dtype=ends.dtype)
        owner = torch.searchsorted(ends, frames.expand(b, -1).contiguous(), right=True)
        owner = owner.clamp(max=t_x - 1).unsqueeze(1)  # (B, 1, T_y)
        m = m_p.gather(2, owner.expand(-1, m_p.shape[1], -1)) * y_mask
        logs = logs_p.gather(2, owner.expand(-1, logs_p.shape[1], -1)) * y_mask
        z_p = m
        if noise_scale:
            eps = torch.randn(m.shape, generator=generator, device=x.device, dtype=x.dtype)
            z_p = m + eps * torch.exp(logs) * noise_scale
        z = self.flow(z_p, y_mask, g)
        audio = self.dec(z * y_mask, g).squeeze(1)  # (B, T_y * hop)
        hop = self.config.hop_length
        return VitsOutput(audio, y_lengths * hop)
