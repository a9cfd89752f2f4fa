"""Wav2Vec2 and HuBERT: convolutional feature encoder, transformer, CTC and classification heads.

Module names follow the transformers checkpoints (`feature_extractor.conv_layers.0.conv`,
`encoder.layers.3.attention.q_proj`, ...), so loading is a prefix change plus folding the
weight norm of the positional convolution (see convert.py).

Shapes: B batch, S samples, T frames (S / 320 for the released models), D hidden size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import VARYING_ROWS, Linear
from .config import Wav2Vec2Config

__all__ = [
    "Wav2Vec2Backbone",
    "Wav2Vec2ForCTC",
    "Wav2Vec2ForSequenceClassification",
    "activation",
]

# frames per clip vary: the float32 products pad their rows, so that oneDNN compiles a few
# shapes, not one per clip length (`layers.linear`)
ROW_BUCKET = VARYING_ROWS

_ACTIVATIONS = {
    "gelu": nn.GELU,
    "gelu_new": lambda: nn.GELU(approximate="tanh"),
    "relu": nn.ReLU,
    "silu": nn.SiLU,
    "swish": nn.SiLU,
}


def activation(name: str) -> nn.Module:
    """The activation module for a transformers `hidden_act` name."""
    if name not in _ACTIVATIONS:
        raise ValueError(f"unsupported activation {name!r}; known: {sorted(_ACTIVATIONS)}")
    return _ACTIVATIONS[name]()


def frame_mask(lengths: torch.Tensor, n_frames: int) -> torch.Tensor:
    """(B,) valid lengths -> (B, n_frames) bool mask, True on valid frames."""
    return torch.arange(n_frames, device=lengths.device)[None, :] < lengths[:, None]


class ConvLayer(nn.Module):
    """One feature-encoder convolution, optionally normalised ("group": per-channel GroupNorm
    over time; "layer": LayerNorm over channels per frame), then the activation.

    Works time-major, (B, T, C): the convolution runs as a 2-D one on a channels-last view (no
    transposed copies in or out), and the LayerNorm of the "layer" variant normalises the last
    dim directly. On a 2-core CPU the whole wav2vec2-base encoder measured as fast as the
    channels-first one at batch 1 and about 13% faster at batch 8.
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, bias: bool, norm: str | None,
                 act: str) -> None:  # fmt: skip
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, kernel, stride=stride, bias=bias)
        self.norm_kind = norm
        if norm == "group":
            self.layer_norm: nn.Module = nn.GroupNorm(c_out, c_out, affine=True)
        elif norm == "layer":
            self.layer_norm = nn.LayerNorm(c_out)
        self.activation = activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, T, C_in) -> (B, T_out, C_out) in the weights' dtype (x may be float32)."""
        conv = self.conv
        if self.norm_kind == "group":  # one channel per group: normalise each over time
            # in float32 whatever the weights' dtype (the first layer: one input channel, so
            # cheap), statistics in two passes: torch.var_mean over the frames (a strided
            # dim) is 4x slower, and in bfloat16 its mean is off by ~1e-2
            bias = None if conv.bias is None else conv.bias.float()
            y = _conv_time_major(x.float(), conv.weight.float(), bias, conv.stride[0])
            if torch.is_grad_enabled():
                return self.activation(self._group_norm(y).to(conv.weight.dtype))
            # in place: a 5 s clip's (T, C) is 33 MB, past glibc's largest mmap threshold,
            # so each new tensor of that size is a fresh map, page-faulted as it is written
            y = self._group_norm_(y).to(conv.weight.dtype)
            if isinstance(self.activation, nn.GELU) and self.activation.approximate == "none":
                return torch.ops.aten.gelu_(y)
            return self.activation(y)
        y = _conv_time_major(x.to(conv.weight.dtype), conv.weight, conv.bias, conv.stride[0])
        if self.norm_kind == "layer":
            y = self.layer_norm(y)
        return self.activation(y)

    def _group_norm(self, y: torch.Tensor) -> torch.Tensor:
        """Per-channel normalisation over time of y (B, T, C) float32, out of place."""
        norm = self.layer_norm
        centered = y - y.mean(dim=1, keepdim=True)
        var = centered.square().mean(dim=1, keepdim=True)  # (B, 1, C)
        return centered * (norm.weight.float() * torch.rsqrt(var + norm.eps)) + norm.bias.float()

    def _group_norm_(self, y: torch.Tensor) -> torch.Tensor:
        """`_group_norm` in place, its squares summed 1024 frames at a time (2 MB temporaries
        at 512 channels, reused from the heap)."""
        norm = self.layer_norm
        y -= y.mean(dim=1, keepdim=True)
        squares = sum(block.square().sum(dim=1, keepdim=True) for block in y.split(1024, dim=1))
        scale = norm.weight.float() * torch.rsqrt(squares / y.shape[1] + norm.eps)
        return y.mul_(scale).add_(norm.bias.float())


def _conv_time_major(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int
) -> torch.Tensor:
    """A 1-D convolution on time-major tensors: x (B, T, C_in), weight (C_out, C_in, k) ->
    (B, T_out, C_out), run as a 2-D one on channels-last views (no transposed copies)."""
    y = F.conv2d(
        x.transpose(1, 2)[:, :, None],  # (B, C_in, 1, T), channels-last memory
        weight[:, :, None],  # (C_out, C_in, 1, k)
        bias,
        stride=(1, stride),
    )  # (B, C_out, 1, T_out), channels-last memory
    return y[:, :, 0].transpose(1, 2)  # a view when channels-last


class FeatureEncoder(nn.Module):
    """Raw audio (B, S) -> conv features (B, T, C), time-major."""

    def __init__(self, config: Wav2Vec2Config) -> None:
        super().__init__()
        layers = []
        for i, (dim, kernel, stride) in enumerate(
            zip(config.conv_dim, config.conv_kernel, config.conv_stride)
        ):
            if config.feat_extract_norm == "layer":
                norm = "layer"
            else:
                norm = "group" if i == 0 else None
            c_in = config.conv_dim[i - 1] if i else 1
            layers.append(
                ConvLayer(c_in, dim, kernel, stride, config.conv_bias, norm,
                          config.feat_extract_activation)
            )  # fmt: skip
        self.conv_layers = nn.ModuleList(layers)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        x = audio[:, :, None]  # (B, S, 1)
        for layer in self.conv_layers:
            x = layer(x)
        return x


class FeatureProjection(nn.Module):
    """Conv features (B, T, C) -> (B, T, D), with an optional LayerNorm first."""

    def __init__(self, c_in: int, dim: int, layer_norm: bool, eps: float) -> None:
        super().__init__()
        self.layer_norm = nn.LayerNorm(c_in, eps=eps) if layer_norm else nn.Identity()
        self.projection = Linear(c_in, dim, row_bucket=ROW_BUCKET)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection(self.layer_norm(x))


class PositionalConvEmbedding(nn.Module):
    """Relative positions from a grouped convolution over time ("same" padding, GELU).

    Checkpoints store the weight normalised (`weight_g`, `weight_v`); convert.py folds it into
    the plain `weight` this module holds.
    """

    def __init__(self, dim: int, kernel: int, groups: int, act: str) -> None:
        super().__init__()
        self.conv = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=groups)
        self.remove = 1 if kernel % 2 == 0 else 0  # an even kernel makes one frame too many
        self.activation = activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x.transpose(1, 2))  # (B, D, T + remove)
        if self.remove:
            y = y[:, :, : -self.remove]
        return self.activation(y).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention, SDPA core. The checkpoint's q/k/v projections are fused into
    one `qkv` Linear (weight (3D, D): rows q, k, v) by convert.py: one GEMM instead of three."""

    def __init__(self, dim: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.qkv = Linear(dim, 3 * dim, row_bucket=ROW_BUCKET)
        self.out_proj = Linear(dim, dim, row_bucket=ROW_BUCKET)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        B, T, D = x.shape
        qkv = self.qkv(x).view(B, T, 3, self.n_heads, D // self.n_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, heads, T, head_dim)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out_proj(y.transpose(1, 2).reshape(B, T, D))


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int, act: str) -> None:
        super().__init__()
        self.intermediate_dense = Linear(dim, hidden, row_bucket=ROW_BUCKET)
        self.activation = activation(act)
        self.output_dense = Linear(hidden, dim, row_bucket=ROW_BUCKET)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_dense(self.activation(self.intermediate_dense(x)))


class EncoderLayer(nn.Module):
    """A transformer block: post-norm (base) or pre-norm ("stable layer norm", large-lv60)."""

    def __init__(self, dim: int, n_heads: int, hidden: int, act: str, eps: float,
                 pre_norm: bool) -> None:  # fmt: skip
        super().__init__()
        self.pre_norm = pre_norm
        self.attention = Attention(dim, n_heads)
        self.layer_norm = nn.LayerNorm(dim, eps=eps)
        self.feed_forward = FeedForward(dim, hidden, act)
        self.final_layer_norm = nn.LayerNorm(dim, eps=eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        # residuals are added in place into the fresh sublayer outputs (no extra tensor)
        if self.pre_norm:
            x = self.attention(self.layer_norm(x), mask).add_(x)
            return self.feed_forward(self.final_layer_norm(x)).add_(x)
        x = self.layer_norm(self.attention(x, mask).add_(x))
        return self.final_layer_norm(self.feed_forward(x).add_(x))


class Encoder(nn.Module):
    """Positional convolution + transformer blocks; returns every layer's hidden states."""

    def __init__(self, config: Wav2Vec2Config) -> None:
        super().__init__()
        d = config.hidden_size
        self.pre_norm = config.do_stable_layer_norm
        self.pos_conv_embed = PositionalConvEmbedding(
            d, config.num_conv_pos_embeddings, config.num_conv_pos_embedding_groups,
            config.feat_extract_activation,
        )  # fmt: skip
        self.layer_norm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.layers = nn.ModuleList(
            EncoderLayer(d, config.num_attention_heads, config.intermediate_size,
                         config.hidden_act, config.layer_norm_eps, self.pre_norm)
            for _ in range(config.num_hidden_layers)
        )  # fmt: skip

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Args: x (B, T, D); valid (B, T) bool or None. Returns num_layers + 1 tensors (B, T, D):
        the input of the first block, then each block's output (the last one after the final
        LayerNorm in both variants)."""
        mask = None
        if valid is not None:
            x = x * valid[..., None]  # padded frames enter as zeros
            mask = valid[:, None, None, :]  # (B, 1, 1, T): keys to attend to
        x = x + self.pos_conv_embed(x)
        if not self.pre_norm:
            x = self.layer_norm(x)
        states = [x]
        for layer in self.layers:
            x = layer(x, mask)
            states.append(x)
        if self.pre_norm:
            states[-1] = self.layer_norm(x)
        return states


class Wav2Vec2Backbone(nn.Module):
    """Wav2Vec2Model / HubertModel: audio (B, S) -> hidden states (B, T, D)."""

    def __init__(self, config: Wav2Vec2Config) -> None:
        super().__init__()
        self.config = config
        self.feature_extractor = FeatureEncoder(config)
        self.feature_projection = FeatureProjection(
            config.conv_dim[-1], config.hidden_size, config.feat_proj_layer_norm,
            config.layer_norm_eps,
        )  # fmt: skip
        self.encoder = Encoder(config)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """(B,) sample counts -> (B,) frame counts."""
        for kernel, stride in zip(self.config.conv_kernel, self.config.conv_stride):
            lengths = torch.div(lengths - kernel, stride, rounding_mode="floor") + 1
        return lengths.clamp(min=0)

    def forward(
        self, audio: torch.Tensor, lengths: torch.Tensor | None = None
    ) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        """Args:
            audio: (B, S) normalised samples, zero-padded after each item's length.
            lengths: (B,) valid samples per item, or None when nothing is padded.

        Returns:
            (hidden states of every layer, each (B, T, D); valid frames (B, T) bool or None).
        """
        features = self.feature_extractor(audio)  # (B, T, C)
        valid = None
        if lengths is not None:
            valid = frame_mask(self.output_lengths(lengths), features.shape[1])
        return self.encoder(self.feature_projection(features), valid), valid


class Wav2Vec2ForCTC(nn.Module):
    """Backbone + linear layer over the vocabulary: audio (B, S) -> logits (B, T, vocab)."""

    def __init__(self, config: Wav2Vec2Config) -> None:
        super().__init__()
        if config.vocab_size is None:
            raise ValueError("a CTC head needs config.vocab_size")
        self.config = config
        self.backbone = Wav2Vec2Backbone(config)
        self.lm_head = Linear(config.hidden_size, config.vocab_size, row_bucket=ROW_BUCKET)

    def forward(self, audio: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        states, _ = self.backbone(audio, lengths)
        return self.lm_head(states[-1])


class Wav2Vec2ForSequenceClassification(nn.Module):
    """Backbone + projector + mean over valid frames + classifier: (B, S) -> (B, num_labels).

    With `use_weighted_layer_sum` the pooled states are a softmax(layer_weights)-weighted sum of
    all num_layers + 1 hidden states (the SUPERB recipe), else the last layer's.
    """

    def __init__(self, config: Wav2Vec2Config) -> None:
        super().__init__()
        self.config = config
        self.backbone = Wav2Vec2Backbone(config)
        if config.use_weighted_layer_sum:
            n = config.num_hidden_layers + 1
            self.layer_weights = nn.Parameter(torch.full((n,), 1.0 / n))
        self.projector = Linear(
            config.hidden_size, config.classifier_proj_size, row_bucket=ROW_BUCKET
        )
        self.classifier = nn.Linear(config.classifier_proj_size, config.num_labels)

    def forward(self, audio: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        states, valid = self.backbone(audio, lengths)
        if not self.config.use_weighted_layer_sum:
            states = states[-1:]
            weights = torch.ones(1, device=audio.device)
        else:
            weights = self.layer_weights.float().softmax(-1)
        # The projector is affine and the weights sum to one, so projecting the weighted sum of
        # each layer's mean over valid frames equals transformers' mean of the projected
        # weighted sum, without stacking (B, layers, T, D).
        pooled = sum(w * _masked_mean(s.float(), valid) for w, s in zip(weights, states))
        dtype = self.projector.weight.dtype
        return self.classifier(self.projector(pooled.to(dtype)))  # (B, num_labels)


def _masked_mean(x: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """Mean over time of x (B, T, D), valid frames only if `valid` (B, T) is given -> (B, D)."""
    if valid is None:
        return x.mean(1)
    return (x * valid[..., None]).sum(1) / valid.sum(1, keepdim=True)
