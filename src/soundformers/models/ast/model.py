"""Audio Spectrogram Transformer (Gong et al., 2021): a ViT over Kaldi fbank patches.

Input (B, frames, mel) -> 16x16 patches (overlapping: stride 10) -> [CLS, DIST, patches] +
learned positions -> pre-norm transformer -> mean of the CLS and DIST outputs -> head.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..wav2vec2.model import activation
from .config import ASTConfig

__all__ = ["AST", "ASTForAudioClassification"]


class Attention(nn.Module):
    def __init__(self, dim: int, n_heads: int, bias: bool) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.query = nn.Linear(dim, dim, bias=bias)
        self.key = nn.Linear(dim, dim, bias=bias)
        self.value = nn.Linear(dim, dim, bias=bias)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, D = x.shape
        q, k, v = (
            proj(x).view(B, N, self.n_heads, -1).transpose(1, 2)  # (B, heads, N, head_dim)
            for proj in (self.query, self.key, self.value)
        )
        return self.out(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, N, D))


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, dim: int, n_heads: int, hidden: int, act: str, eps: float,
                 qkv_bias: bool) -> None:  # fmt: skip
        super().__init__()
        self.layernorm_before = nn.LayerNorm(dim, eps=eps)
        self.attention = Attention(dim, n_heads, qkv_bias)
        self.layernorm_after = nn.LayerNorm(dim, eps=eps)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), activation(act), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.layernorm_before(x))
        return x + self.mlp(self.layernorm_after(x))


class AST(nn.Module):
    """Features (B, max_length, num_mel_bins) -> pooled (B, D) and all tokens (B, 2 + N, D)."""

    def __init__(self, config: ASTConfig) -> None:
        super().__init__()
        d = config.hidden_size
        self.config = config
        self.patch = nn.Conv2d(1, d, config.patch_size,
                               stride=(config.frequency_stride, config.time_stride))  # fmt: skip
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.distillation_token = nn.Parameter(torch.zeros(1, 1, d))
        self.position_embeddings = nn.Parameter(torch.zeros(1, config.num_patches + 2, d))
        self.layers = nn.ModuleList(
            Block(d, config.num_attention_heads, config.intermediate_size, config.hidden_act,
                  config.layer_norm_eps, config.qkv_bias)
            for _ in range(config.num_hidden_layers)
        )  # fmt: skip
        self.layernorm = nn.LayerNorm(d, eps=config.layer_norm_eps)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B = features.shape[0]
        x = self.patch(features.transpose(1, 2)[:, None])  # (B, D, freq patches, time patches)
        x = x.flatten(2).transpose(1, 2)  # (B, N, D), frequency-major
        x = torch.cat([self.cls_token.expand(B, -1, -1), self.distillation_token.expand(B, -1, -1), x],
                      dim=1)  # fmt: skip
        x = x + self.position_embeddings
        for layer in self.layers:
            x = layer(x)
        x = self.layernorm(x)
        return (x[:, 0] + x[:, 1]) / 2, x


class ASTForAudioClassification(nn.Module):
    """AST + LayerNorm + linear head: features (B, frames, mel) -> logits (B, num_labels)."""

    def __init__(self, config: ASTConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = AST(config)
        self.head = nn.Sequential(
            nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps),
            nn.Linear(config.hidden_size, config.num_labels),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        pooled, _ = self.backbone(features)
        return self.head(pooled)
