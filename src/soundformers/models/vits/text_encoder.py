"""The text encoder: symbol embeddings, a transformer with relative-position attention, and
the projection to the prior's per-symbol mean and log-scale."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import embedding
from .config import VitsConfig
from .layers import Conv1d, LayerNorm, sequence_mask

__all__ = ["TextEncoder"]


class MultiHeadAttention(nn.Module):
    """Self-attention with relative position embeddings for offsets -window..window."""

    def __init__(self, channels: int, n_heads: int, window_size: int) -> None:
        super().__init__()
        self.n_heads, self.window = n_heads, window_size
        self.head_dim = channels // n_heads
        self.conv_q = Conv1d(channels, channels, 1)
        self.conv_k = Conv1d(channels, channels, 1)
        self.conv_v = Conv1d(channels, channels, 1)
        self.conv_o = Conv1d(channels, channels, 1)
        self.emb_rel_k = nn.Parameter(torch.zeros(1, 2 * window_size + 1, self.head_dim))
        self.emb_rel_v = nn.Parameter(torch.zeros(1, 2 * window_size + 1, self.head_dim))

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        """x: (B, C, T); attn_mask: (B, 1, T, T), 1 where attending is allowed."""
        b, c, t = x.shape
        # (B, C, T) -> (B, T, H, D) -> (B, H, T, D); no copy for a channels-last conv output
        q, k, v = (
            conv(x).transpose(1, 2).reshape(b, t, self.n_heads, self.head_dim).transpose(1, 2)
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
        return self.conv_o(out.transpose(1, 2).reshape(b, t, c).transpose(1, 2))


class FFN(nn.Module):
    """Two "same"-padded convolutions with a ReLU between, masked."""

    def __init__(self, channels: int, filter_channels: int, kernel_size: int) -> None:
        super().__init__()
        # odd kernels pad inside the convolutions; even ones one more on the right, by F.pad
        odd = kernel_size % 2 == 1
        self.pad = () if odd else ((kernel_size - 1) // 2, kernel_size // 2)
        padding = kernel_size // 2 if odd else 0
        self.conv_1 = Conv1d(channels, filter_channels, kernel_size, padding=padding)
        self.conv_2 = Conv1d(filter_channels, channels, kernel_size, padding=padding)

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv_1(self.padded(x * x_mask)))
        return self.conv_2(self.padded(x * x_mask)) * x_mask

    def padded(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, self.pad) if self.pad else x


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
        self.proj = Conv1d(cfg.hidden_channels, 2 * cfg.inter_channels, 1)

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
