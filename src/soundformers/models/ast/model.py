"""Audio Spectrogram Transformer (Gong et al., 2021): a ViT over Kaldi fbank patches.

Input (B, frames, mel) -> 16x16 patches (overlapping: stride 10) -> [CLS, DIST, patches] +
learned positions -> pre-norm transformer -> mean of the CLS and DIST outputs -> head.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import PER_HEAD_MIN_QUERIES, Linear, float32_attention, linear
from ..wav2vec2.model import activation
from .config import ASTConfig

__all__ = ["AST", "ASTForAudioClassification"]


class Attention(nn.Module):
    """Multi-head self-attention with the checkpoint's query/key/value fused into one `qkv`
    Linear (weight (3D, D): rows query, key, value; see convert.py). Its core: for all
    tokens in float32 on CPU, oneDNN products per head (`layers.float32_attention`; the
    patches of a 10 s clip are always 1214 tokens, so one oneDNN primitive), else SDPA."""

    def __init__(self, dim: int, n_heads: int, bias: bool) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.qkv = Linear(dim, 3 * dim, bias=bias)  # oneDNN for float32 (`layers.linear`)
        self.out = Linear(dim, dim)

    def forward(self, x: torch.Tensor, n_queries: int | None = None) -> torch.Tensor:
        """x: (B, N, D) -> (B, N, D); with `n_queries`, only the first n_queries tokens attend
        (over all N keys) -> (B, n_queries, D)."""
        B, N, D = x.shape
        split = (B, N, self.n_heads, D // self.n_heads)
        if n_queries is None:
            qkv = self.qkv(x).view(B, N, 3, *split[2:])
            q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, heads, N, head_dim)
        else:
            w, b = self.qkv.weight, self.qkv.bias
            kv = linear(x, w[D:], None if b is None else b[D:]).view(B, N, 2, *split[2:])
            k, v = kv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, heads, N, head_dim)
            q = F.linear(x[:, :n_queries], w[:D], None if b is None else b[:D])
            q = q.view(B, n_queries, *split[2:]).transpose(1, 2)  # (B, heads, n_queries, hd)
        y = float32_attention(q, k, v) if q.shape[2] >= PER_HEAD_MIN_QUERIES else None
        if y is None:
            y = F.scaled_dot_product_attention(q, k, v)  # (B, heads, queries, head_dim)
        return self.out(y.transpose(1, 2).reshape(B, q.shape[2], D))


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, dim: int, n_heads: int, hidden: int, act: str, eps: float,
                 qkv_bias: bool) -> None:  # fmt: skip
        super().__init__()
        self.layernorm_before = nn.LayerNorm(dim, eps=eps)
        self.attention = Attention(dim, n_heads, qkv_bias)
        self.layernorm_after = nn.LayerNorm(dim, eps=eps)
        self.mlp = nn.Sequential(Linear(dim, hidden), activation(act), Linear(hidden, dim))

    def forward(self, x: torch.Tensor, n_queries: int | None = None) -> torch.Tensor:
        """x: (B, N, D) -> (B, N, D), or the first `n_queries` tokens only (B, n_queries, D):
        they still attend to all N tokens, and nothing else is computed for the others."""
        h = self.attention(self.layernorm_before(x), n_queries)
        x = h.add_(x if n_queries is None else x[:, :n_queries])  # residual, in place
        return self.mlp(self.layernorm_after(x)).add_(x)


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

    def forward(
        self, features: torch.Tensor, all_tokens: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """features (B, max_length, num_mel_bins) -> (pooled (B, D), tokens).

        tokens: the final states (B, 2 + N, D) of [CLS, DIST, patches], or with
        `all_tokens=False` only of CLS and DIST (B, 2, D): then the last block computes those
        two tokens alone (exactly, they attend to every token), which is all that pooling
        needs (a twelfth less work for AST-base).
        """
        B = features.shape[0]
        x = self.patch(features.transpose(1, 2)[:, None])  # (B, D, freq patches, time patches)
        x = x.flatten(2).transpose(1, 2)  # (B, N, D), frequency-major
        x = torch.cat([self.cls_token.expand(B, -1, -1), self.distillation_token.expand(B, -1, -1), x],
                      dim=1)  # fmt: skip
        x = x + self.position_embeddings
        for i, layer in enumerate(self.layers):
            last = i == len(self.layers) - 1
            x = layer(x, None if all_tokens or not last else 2)
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
        pooled, _ = self.backbone(features, all_tokens=False)
        return self.head(pooled)
