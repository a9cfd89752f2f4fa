"""CLAP (Wu et al., 2023): an HTSAT audio encoder and a RoBERTa text encoder, each projected
into one space where a dot product scores how well a text describes a sound.

Audio: dB mel (B, C, frames, mels) -> per-mel BatchNorm -> the spectrogram folded into a square
"image" (4 time slices stacked along frequency) -> patch embedding (plus, in fused checkpoints,
the three local crops fused in by attentional feature fusion) -> Swin stages (windowed
attention with shifted windows, patch merging between stages) -> mean over tokens.
Text: RoBERTa -> tanh pooler on the first token. Both: linear -> ReLU -> linear, L2-normalised.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import VARYING_ROWS, Linear, embedding
from ..wav2vec2.model import activation
from .config import ClapAudioConfig, ClapConfig, ClapTextConfig

__all__ = ["HTSAT", "ClapModel", "ClapOutput", "TextEncoder"]


class Projection(nn.Module):
    """linear -> activation -> linear, into the shared space."""

    def __init__(self, dim: int, out: int, act: str) -> None:
        super().__init__()
        self.linear1 = Linear(dim, out)
        self.activation = activation(act)
        self.linear2 = Linear(out, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.activation(self.linear1(x)))


# --------------------------------------------------------------------------- text: RoBERTa

# texts have any number of tokens: float32 products pad their rows (`layers.linear`: oneDNN
# compiles a few shapes, not one per length); audio shapes are fixed
TEXT_ROW_BUCKET = VARYING_ROWS


class TextAttention(nn.Module):
    def __init__(self, dim: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.query = Linear(dim, dim, row_bucket=TEXT_ROW_BUCKET)
        self.key = Linear(dim, dim, row_bucket=TEXT_ROW_BUCKET)
        self.value = Linear(dim, dim, row_bucket=TEXT_ROW_BUCKET)
        self.out = Linear(dim, dim, row_bucket=TEXT_ROW_BUCKET)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        B, N, D = x.shape
        q, k, v = (
            proj(x).view(B, N, self.n_heads, -1).transpose(1, 2)  # (B, heads, N, head_dim)
            for proj in (self.query, self.key, self.value)
        )
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out(y.transpose(1, 2).reshape(B, N, D))


class TextLayer(nn.Module):
    """Post-norm transformer block (BERT/RoBERTa)."""

    def __init__(self, dim: int, n_heads: int, hidden: int, act: str, eps: float) -> None:
        super().__init__()
        self.attention = TextAttention(dim, n_heads)
        self.attention_norm = nn.LayerNorm(dim, eps=eps)
        self.mlp = nn.Sequential(
            Linear(dim, hidden, row_bucket=TEXT_ROW_BUCKET),
            activation(act),
            Linear(hidden, dim, row_bucket=TEXT_ROW_BUCKET),
        )
        self.mlp_norm = nn.LayerNorm(dim, eps=eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        x = self.attention_norm(x + self.attention(x, mask))
        return self.mlp_norm(x + self.mlp(x))


class TextEncoder(nn.Module):
    """Token ids (B, N) -> pooled (B, D): tanh(dense(first token))."""

    def __init__(self, config: ClapTextConfig) -> None:
        super().__init__()
        d = config.hidden_size
        self.pad_token_id = config.pad_token_id
        self.word_embeddings = embedding(config.vocab_size, d)
        self.position_embeddings = embedding(config.max_position_embeddings, d)
        self.token_type_embeddings = embedding(config.type_vocab_size, d)
        self.embedding_norm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.layers = nn.ModuleList(
            TextLayer(d, config.num_attention_heads, config.intermediate_size, config.hidden_act,
                      config.layer_norm_eps)
            for _ in range(config.num_hidden_layers)
        )  # fmt: skip
        self.pooler = Linear(d, d)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
                ) -> torch.Tensor:  # fmt: skip
        # RoBERTa numbers real tokens from pad + 1 and gives pads the pad position
        real = (input_ids != self.pad_token_id).long()
        positions = torch.cumsum(real, dim=1) * real + self.pad_token_id  # (B, N)
        x = self.word_embeddings(input_ids) + self.position_embeddings(positions)
        x = self.embedding_norm(x + self.token_type_embeddings.weight[0])
        mask = None
        if attention_mask is not None and not bool(attention_mask.all()):
            keep = attention_mask[:, None, None, :].bool()  # (B, 1, 1, N)
            mask = torch.zeros(keep.shape, dtype=x.dtype, device=x.device)
            mask = mask.masked_fill(~keep, torch.finfo(x.dtype).min)
        for layer in self.layers:
            x = layer(x, mask)
        return torch.tanh(self.pooler(x[:, 0]))


# --------------------------------------------------------------------------- audio: HTSAT


def window_partition(x: torch.Tensor, w: int) -> torch.Tensor:
    """(B, H, W, C) -> (B, windows, w * w, C), windows in row-major order."""
    B, H, W, C = x.shape
    x = x.view(B, H // w, w, W // w, w, C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(B, (H // w) * (W // w), w * w, C)


def window_reverse(x: torch.Tensor, w: int, H: int, W: int) -> torch.Tensor:
    """(B, windows, w * w, C) -> (B, H, W, C)."""
    B, C = x.shape[0], x.shape[-1]
    x = x.view(B, H // w, W // w, w, w, C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(B, H, W, C)


@functools.lru_cache(maxsize=16)
def relative_position_index(w: int) -> torch.Tensor:
    """(w * w, w * w) index into a ((2w - 1) ** 2)-row table of relative-position biases."""
    coords = torch.stack(torch.meshgrid(torch.arange(w), torch.arange(w), indexing="ij")).flatten(1)
    rel = coords[:, :, None] - coords[:, None, :] + (w - 1)  # (2, w*w, w*w), each in [0, 2w-2]
    return rel[0] * (2 * w - 1) + rel[1]


@functools.lru_cache(maxsize=32)
def shift_mask(H: int, W: int, w: int, shift: int, device: torch.device) -> torch.Tensor:
    """(windows, w * w, w * w) additive mask: after the cyclic shift, a window may hold tokens
    from up to 4 regions that were not neighbours; they must not attend to each other (-100)."""

    def regions(n: int) -> torch.Tensor:
        i = torch.arange(n, device=device)
        return (i >= n - w).long() + (i >= n - shift).long()

    region = (regions(H)[:, None] * 3 + regions(W)[None, :]).float()  # (H, W)
    windows = window_partition(region[None, :, :, None], w)[0, :, :, 0]  # (windows, w*w)
    differs = windows[:, None, :] != windows[:, :, None]
    return torch.zeros(differs.shape, device=device).masked_fill(differs, -100.0)


class WindowAttention(nn.Module):
    """Multi-head attention inside w x w windows, with a learned relative-position bias."""

    def __init__(self, dim: int, n_heads: int, window: int, qkv_bias: bool) -> None:
        super().__init__()
        self.n_heads, self.window = n_heads, window
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window - 1) ** 2, n_heads)
        )
        self.query = Linear(dim, dim, bias=qkv_bias)
        self.key = Linear(dim, dim, bias=qkv_bias)
        self.value = Linear(dim, dim, bias=qkv_bias)
        self.out = Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """x: (B, windows, N = w * w, C); mask: (windows, N, N) or None."""
        B, nW, N, C = x.shape
        q, k, v = (
            proj(x).view(B, nW, N, self.n_heads, -1).transpose(2, 3)  # (B, nW, heads, N, hd)
            for proj in (self.query, self.key, self.value)
        )
        index = relative_position_index(self.window).to(x.device)
        bias = self.relative_position_bias_table[index].permute(2, 0, 1)  # (heads, N, N)
        bias = bias if mask is None else bias + mask[:, None].to(bias.dtype)  # (nW, heads, N, N)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.out(y.transpose(2, 3).reshape(B, nW, N, C))


class SwinBlock(nn.Module):
    """Pre-norm block over (shifted) windows of a (H, W) token grid."""

    def __init__(self, dim: int, n_heads: int, window: int, shift: int, mlp_ratio: float,
                 act: str, eps: float, qkv_bias: bool) -> None:  # fmt: skip
        super().__init__()
        self.window, self.shift = window, shift
        self.layernorm_before = nn.LayerNorm(dim, eps=eps)
        self.attention = WindowAttention(dim, n_heads, window, qkv_bias)
        self.layernorm_after = nn.LayerNorm(dim, eps=eps)
        hidden = int(mlp_ratio * dim)
        self.mlp = nn.Sequential(Linear(dim, hidden), activation(act), Linear(hidden, dim))

    def forward(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:
        B, _, C = x.shape
        w, s = self.window, self.shift
        y = self.layernorm_before(x).view(B, H, W, C)
        Hp, Wp = -(-H // w) * w, -(-W // w) * w
        y = F.pad(y, (0, 0, 0, Wp - W, 0, Hp - H))  # (B, Hp, Wp, C)
        if s:
            y = torch.roll(y, shifts=(-s, -s), dims=(1, 2))
        mask = shift_mask(Hp, Wp, w, s, x.device) if s else None
        y = window_reverse(self.attention(window_partition(y, w), mask), w, Hp, Wp)
        if s:
            y = torch.roll(y, shifts=(s, s), dims=(1, 2))
        x = x + y[:, :H, :W].reshape(B, H * W, C)
        return x + self.mlp(self.layernorm_after(x))


class PatchMerging(nn.Module):
    """(B, H * W, C) -> (B, H/2 * W/2, 2C): each 2x2 neighbourhood concatenated and projected."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:
        B, _, C = x.shape
        x = F.pad(x.view(B, H, W, C), (0, 0, 0, W % 2, 0, H % 2))
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        return self.reduction(self.norm(x.reshape(B, -1, 4 * C)))


class Stage(nn.Module):
    def __init__(self, dim: int, depth: int, n_heads: int, resolution: tuple[int, int],
                 config: ClapAudioConfig, downsample: bool) -> None:  # fmt: skip
        super().__init__()
        w = config.window_size
        # a grid no larger than one window is attended whole, never shifted
        shift = 0 if min(resolution) <= w else w // 2
        self.blocks = nn.ModuleList(
            SwinBlock(dim, n_heads, w, shift if i % 2 else 0, config.mlp_ratio, config.hidden_act,
                      config.layer_norm_eps, config.qkv_bias)
            for i in range(depth)
        )  # fmt: skip
        self.downsample = PatchMerging(dim) if downsample else None

    def forward(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, H, W)
        return x if self.downsample is None else self.downsample(x, H, W)


class AttentionalFeatureFusion(nn.Module):
    """Mixes local-crop features into the global ones with a learned per-position gate."""

    def __init__(self, channels: int, r: int) -> None:
        super().__init__()
        inner = channels // r

        def gate() -> list[nn.Module]:
            return [nn.Conv2d(channels, inner, 1), nn.BatchNorm2d(inner), nn.ReLU(),
                    nn.Conv2d(inner, channels, 1), nn.BatchNorm2d(channels)]  # fmt: skip

        self.local_att = nn.Sequential(*gate())
        self.global_att = nn.Sequential(nn.AdaptiveAvgPool2d(1), *gate())

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        both = x + residual
        weight = torch.sigmoid(self.local_att(both) + self.global_att(both))
        return 2 * x * weight + 2 * residual * (1 - weight)


class PatchEmbed(nn.Module):
    """Spectrogram image (B, C, H, W) -> tokens (B, h * w, D). With fusion, channel 0 is the
    global view; for the `is_longer` items channels 1-3 (the crops) are fused in."""

    def __init__(self, config: ClapAudioConfig) -> None:
        super().__init__()
        (ph, pw), (sh, sw) = config.patch_size, config.patch_stride
        d, c = config.patch_embeds_hidden_size, config.patch_embed_input_channels
        padding = ((ph - sh) // 2, (pw - sw) // 2)
        self.proj = nn.Conv2d(c, d, config.patch_size, config.patch_stride, padding)
        self.norm = nn.LayerNorm(d) if config.enable_patch_layer_norm else nn.Identity()
        self.fusion = config.enable_fusion
        if self.fusion:
            self.mel_conv2d = nn.Conv2d(c, d, (ph, 3 * pw), (sh, 3 * sw), padding)
            self.fusion_model = AttentionalFeatureFusion(d, config.aff_block_r)

    def forward(self, x: torch.Tensor, is_longer: torch.Tensor | None) -> torch.Tensor:
        if not self.fusion:
            return self.norm(self.proj(x).flatten(2).transpose(1, 2))
        out = self.proj(x[:, :1])  # (B, D, h, w)
        longer = (torch.zeros(0, dtype=torch.long) if is_longer is None
                  else torch.nonzero(is_longer.reshape(-1)).flatten()).to(x.device)  # fmt: skip
        if len(longer):
            crops = x[longer, 1:]  # (b, 3, H, W)
            b, n, H, W = crops.shape
            local = self.mel_conv2d(crops.reshape(b * n, 1, H, W))  # (b * 3, D, h, w')
            local = local.view(b, n, *local.shape[1:]).permute(0, 2, 3, 1, 4).flatten(3)
            local = F.pad(local, (0, out.shape[-1] - local.shape[-1]))  # (b, D, h, w)
            out = out.index_copy(0, longer, self.fusion_model(out[longer], local))
        return self.norm(out.flatten(2).transpose(1, 2))


class HTSAT(nn.Module):
    """Mel (B, C, frames, mels) -> pooled (B, num_features)."""

    def __init__(self, config: ClapAudioConfig) -> None:
        super().__init__()
        self.config = config
        self.batch_norm = nn.BatchNorm2d(config.num_mel_bins)
        self.patch_embed = PatchEmbed(config)
        n = len(config.depths)
        self.layers = nn.ModuleList(
            Stage(config.patch_embeds_hidden_size * 2**i, config.depths[i],
                  config.num_attention_heads[i], config.resolutions[i], config, i < n - 1)
            for i in range(n)
        )  # fmt: skip
        self.norm = nn.LayerNorm(config.num_features)

    def to_image(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T, F) -> (B, C, F * r, spec_width / r): the spectrogram resized to
        (spec_size * r, spec_size / r) and cut into r time slices stacked along frequency."""
        cfg = self.config
        r = cfg.freq_ratio
        width, height = cfg.spec_size * r, cfg.spec_size // r
        B, C, T, F_ = x.shape
        if T > width or F_ > height:
            raise ValueError(
                f"CLAP: features of {T} frames x {F_} mels exceed the model's {width} x {height}"
            )
        if T < width:
            x = F.interpolate(x, (width, F_), mode="bicubic", align_corners=True)
        if F_ < height:  # (the reference sizes time back to T here; we do the same)
            x = F.interpolate(x, (T, height), mode="bicubic", align_corners=True)
        B, C, T, F_ = x.shape
        x = x.reshape(B, C * r, T // r, F_).transpose(2, 3)  # (B, C * r, F, T / r)
        return x.reshape(B, C, F_ * r, T // r)

    def forward(self, features: torch.Tensor, is_longer: torch.Tensor | None = None
                ) -> torch.Tensor:  # fmt: skip
        x = self.batch_norm(features.transpose(1, 3)).transpose(1, 3)  # per mel bin
        x = self.patch_embed(self.to_image(x), is_longer)  # (B, h * w, D)
        for stage, (H, W) in zip(self.layers, self.config.resolutions):
            x = stage(x, H, W)
        return self.norm(x).mean(dim=1)


# --------------------------------------------------------------------------- CLAP


class ClapOutput(NamedTuple):
    """Similarity logits and the normalised embeddings they come from."""

    logits_per_audio: torch.Tensor  # (audios, texts)
    logits_per_text: torch.Tensor  # (texts, audios)
    audio_embeds: torch.Tensor  # (audios, projection_dim)
    text_embeds: torch.Tensor  # (texts, projection_dim)


class ClapModel(nn.Module):
    """Both encoders, their projections and the two learned temperatures."""

    def __init__(self, config: ClapConfig) -> None:
        super().__init__()
        self.config = config
        p, act = config.projection_dim, config.projection_hidden_act
        self.text_model = TextEncoder(config.text)
        self.text_projection = Projection(config.text.hidden_size, p, act)
        self.audio_model = HTSAT(config.audio)
        self.audio_projection = Projection(config.audio.num_features, p, act)
        self.logit_scale_a = nn.Parameter(torch.zeros(()))  # log temperature, audio side
        self.logit_scale_t = nn.Parameter(torch.zeros(()))  # log temperature, text side

    def get_audio_features(self, features: torch.Tensor, is_longer: torch.Tensor | None = None
                           ) -> torch.Tensor:  # fmt: skip
        """Args:
            features: (B, C, frames, mels) from `clap_features` (C = 4 for fused models).
            is_longer: (B,) bool, which items to fuse (fused models only).
        Returns: (B, projection_dim) unit-norm audio embeddings."""
        return F.normalize(self.audio_projection(self.audio_model(features, is_longer)), dim=-1)

    def get_text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
                          ) -> torch.Tensor:  # fmt: skip
        """Args: input_ids, attention_mask: (B, N) RoBERTa tokens, 1 on real tokens.
        Returns: (B, projection_dim) unit-norm text embeddings."""
        pooled = self.text_model(input_ids, attention_mask)
        return F.normalize(self.text_projection(pooled), dim=-1)

    def forward(self, input_ids: torch.Tensor, features: torch.Tensor,
                attention_mask: torch.Tensor | None = None,
                is_longer: torch.Tensor | None = None) -> ClapOutput:  # fmt: skip
        audio = self.get_audio_features(features, is_longer)
        text = self.get_text_features(input_ids, attention_mask)
        return ClapOutput(audio @ text.T * self.logit_scale_a.exp(),
                          text @ audio.T * self.logit_scale_t.exp(), audio, text)  # fmt: skip
