"""The Whisper encoder-decoder (Radford et al. 2022), read top to bottom.

Module names follow openai/whisper, so an OpenAI state dict loads as is; the other checkpoint
layouts are renamed in `convert.py`. Decoding (prompts, search, timestamp rules) lives in
`generate.py`: this model only exposes `encode(mel)`, `cross_kv(encoder_out)` and
`decode_step(tokens, cross_kv, cache, input_pos)`.

Shapes: B batch, T tokens, S encoder positions (1500), D model width, H heads, Dh = D / H.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ...checkpoints import release_file_pages
from ...generation.cache import StaticKVCache, StepBuffers
from .. import layers
from ..layers import (
    PER_HEAD_MIN_QUERIES,
    VARYING_ROWS,
    Linear,
    embedding,
    float32_attention,
    linear,
    onednn_product,
    pack_linear_weight,
)
from .config import WhisperConfig

__all__ = ["CrossKV", "Whisper", "attention", "cross_attention", "inference_layout", "sinusoids"]

LAYER_NORM_EPS = 1e-5

# Per decoder layer: cross-attention keys and values, each (A, H, S, Dh). Computed once per
# audio window by `Whisper.cross_kv`; a decode step's B rows may be groups of B / A rows per
# window (beams, best-of samples), which then share them (`cross_attention`).
CrossKV = list[tuple[torch.Tensor, torch.Tensor]]


def sinusoids(length: int, channels: int, max_timescale: float = 10000.0) -> torch.Tensor:
    """The encoder's fixed positional table: sin on the first half of channels, cos on the rest.

    Always computed on the CPU, even inside a `torch.device("meta")` block: a meta `arange`
    would import torch's decomposition tables, a second of start-up for a table that the
    checkpoint replaces anyway.

    Returns:
        (length, channels) float32, on the CPU.
    """
    if channels % 2:
        raise ValueError(f"sinusoids need an even channel count, got {channels}")
    log_increment = math.log(max_timescale) / (channels // 2 - 1)
    steps = torch.arange(channels // 2, dtype=torch.float32, device="cpu")
    inv_timescales = torch.exp(-log_increment * steps)
    positions = torch.arange(length, dtype=torch.float32, device="cpu")
    scaled_time = positions[:, None] * inv_timescales[None, :]
    return torch.cat([scaled_time.sin(), scaled_time.cos()], dim=1)


def _version(t: torch.Tensor) -> int:
    """In-place modification counter (inference tensors have none: they cannot be modified
    outside inference mode)."""
    return 0 if t.is_inference() else t._version


def _split_heads(x: torch.Tensor, n_head: int) -> torch.Tensor:
    """(B, T, D) -> (B, H, T, Dh)."""
    b, t, d = x.shape
    return x.view(b, t, n_head, d // n_head).transpose(1, 2)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, H, T, Dh) -> (B, T, D)."""
    b, h, t, dh = x.shape
    return x.transpose(1, 2).reshape(b, t, h * dh)


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    is_causal: bool = False,
    scale: float | None = None,
) -> torch.Tensor:
    """softmax(q k^T * scale) v: q (B, H, T, Dh), k/v (B, H, S, Dh) -> (B, H, T, Dh).

    `mask` is boolean, broadcastable to (B, H, T, S), True where attention is allowed; `scale`
    defaults to 1 / sqrt(Dh). One query row (a decode step) takes the explicit
    matmul-softmax-matmul, which on CPU is as fast as SDPA in float32 and 5x faster in bfloat16
    on an AMD CPU (on CPUs with AMX, SDPA is the faster in bfloat16: `_sdpa_one_query`); its
    softmax runs in float32 whatever the input dtype. Long unmasked queries (the encoder:
    at least `PER_HEAD_MIN_QUERIES`) go one head at a time on CPUs where that is the faster
    (`layers.sdpa_is_faster`): in bfloat16 or float16 through `_low_precision_attention`, in
    float32 through `layers.float32_attention`; the rest take SDPA.
    """
    if q.shape[2] >= PER_HEAD_MIN_QUERIES and mask is None and not is_causal:
        if (
            q.dtype in _LOW_PRECISION
            and q.device.type == "cpu"
            and not layers.sdpa_is_faster(q.dtype)
        ):
            return _low_precision_attention(q, k, v, scale)
        out = float32_attention(q, k, v, scale)
        if out is not None:
            return out
    if q.shape[2] > 1 or is_causal or _sdpa_one_query(q):
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=is_causal, scale=scale
        )
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    scores = _one_query_scores(q, k)  # (B, H, 1, S)
    if scale != 1.0:
        scores = scores * scale
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1, dtype=torch.float32).to(v.dtype) @ v


def _sdpa_one_query(q: torch.Tensor) -> bool:
    """Whether a decode step's bfloat16/float16 queries take SDPA: on CPUs that multiply
    them in AMX tiles (`layers.sdpa_is_faster`). On an Intel Xeon with AMX, tiny.en's one
    query over 96 cached keys took 16 against 73 us, over the 1500 cross-attention keys 56
    against 141 us (batch 1) and 564 against 676 us (batch 8); elsewhere the explicit
    products are the faster (5x in bfloat16 on an AMD CPU)."""
    return q.dtype in _LOW_PRECISION and q.device.type == "cpu" and layers.sdpa_is_faster(q.dtype)


def _one_query_scores(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """q (B, H, 1, Dh) k^T -> (B, H, 1, S), any strides.

    Below float32 on CPU the product is posed as k q^T, S rows each against one column,
    and transposed back (free: the query dimension is 1): torch's bfloat16 one-row
    q k^T read tiny.en's batch-8 cross-attention keys at ~10 GB/s in a decode step (900 us
    a layer), k q^T at twice that (480 us; 54 against 75 us at batch 1). In float32 the
    plain form is the faster one (70 against 106 us at batch 1).
    """
    if q.dtype in _LOW_PRECISION and q.device.type == "cpu":
        return (k @ q.transpose(-1, -2)).transpose(-1, -2)
    return q @ k.transpose(-1, -2)


def cross_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Decoder queries q (B, H, T, Dh), pre-scaled, over the keys and values (A, H, S, Dh) of
    A audio windows -> (B, H, T, Dh), where B = A * G: rows a*G .. a*G + G-1 (a window's
    beams or best-of samples) all attend to window a.

    With G > 1 a group's queries are the rows of one product over its window's keys and
    values, read once: beam search of 5 reads the 18 MB of float32 tiny.en's cross-attention
    keys and values once a token instead of five times (and holds one copy, not five). The
    same explicit matmul-softmax-matmul as one query (`attention`), softmax in float32.
    """
    b, h, t, dh = q.shape
    a = k.shape[0]
    if a == b:
        return attention(q, k, v, scale=1.0)
    if b % a:
        raise ValueError(f"{b} decoder rows cannot be split into groups over {a} windows")
    g = b // a
    rows = q.reshape(a, g, h, t, dh).transpose(1, 2).reshape(a, h, g * t, dh)
    if _sdpa_one_query(q):
        out = F.scaled_dot_product_attention(rows, k, v, scale=1.0)
    else:
        scores = rows @ k.transpose(-1, -2)  # (A, H, G*T, S)
        out = scores.softmax(dim=-1, dtype=torch.float32).to(v.dtype) @ v
    return out.view(a, h, g, t, dh).transpose(1, 2).reshape(b, h, t, dh)


_LOW_PRECISION = (torch.bfloat16, torch.float16)


def _low_precision_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float | None
) -> torch.Tensor:
    """Unmasked attention in bfloat16/float16, one (batch, head) slice at a time.

    On CPU, SDPA's flash kernel computes a bfloat16 encoder's attention at float32 speed;
    two low-precision matrix products around a softmax run about twice as fast. In bfloat16
    the softmax pass itself goes too: the first product gives the weights, the second their
    sums (`_ExpAttention`; a slice it cannot do takes the softmax loop). One slice's
    scores (T, S) stay small (4.5 MB for Whisper's 1500 x 1500) in one buffer reused by every
    slice, so memory does not grow with the batch. The slices are strided views of the
    projections, read and written in place: no per-head copies (24 of a batch-8 bfloat16
    encoder's 725 ms in a profile, though a timed A/B moved within noise). The
    probabilities are rounded to the input dtype before the second product (SDPA keeps them
    in float32): ~3e-3 max-abs difference on unit-scale inputs.

    (oneDNN's bfloat16 softmax is not used: its kernel is twice as fast as torch's, but
    within the encoder, its layout conversions counted, a batch-8 encode was no faster; and
    its probabilities, one rounding apart in 0.002 % of them, moved the short set's WER from
    29.55 to 30.17 %, 3 transcripts of 60.)

    Args:
        q: (B, H, T, Dh); k, v: (B, H, S, Dh), same dtype; any strides (typically views of
            (B, T, D) projections).
        scale: score scale, default 1 / sqrt(Dh).

    Returns:
        (B, H, T, Dh), q's dtype: a view of a (B, T, H, Dh) tensor.
    """
    b, h, t, dh = q.shape
    scale = dh**-0.5 if scale is None else scale
    out = q.new_empty(b, t, h, dh)
    scores = q.new_empty(t, k.shape[2])  # one buffer for every slice, softmax in place
    exp = _ExpAttention.build(q, k, v, scale)
    for i in range(b):
        for j in range(h):
            if exp is not None and exp(i, j, out[i, :, j]):
                continue
            torch.addmm(scores, q[i, j], k[i, j].t(), beta=0, alpha=scale, out=scores)
            torch.ops.aten._softmax.out(scores, -1, False, out=scores)
            torch.mm(scores, v[i, j], out=out[i, :, j])
    return out.transpose(1, 2)


class _ExpAttention:
    """bfloat16 attention slices without a softmax pass (for `_low_precision_attention`):
    each slice's weights come out of the first product, their sums out of the second.

    oneDNN's product q k^T has no exponential post-op, but a sigmoid one, and for y <= -16
    sigmoid(y) = e^y / (1 + e^y) is e^y within 1.2e-7 relative. So the product, biased by
    -c (c = the slice's Cauchy-Schwarz bound max|q| max|k| scale, plus 16), gives
    e^(s - c), from its float32 accumulator (the softmax path rounds the scores to bfloat16
    first: ~0.1 in the exponent at |s| ~ 40). Values with a column of ones then give each
    row's weighted sum and its sum of weights in one product; their quotient is the
    attention. Whisper tiny.en's batch-8 encode of the fixture speech: attention 269 -> 233
    ms, the encode 538 -> 511 ms. Inference only (the op has no derivative).

    A row whose largest term underflows (its best score below c - 87: never in Whisper's
    encoder on speech; in the first layer on random features) loses its weights: that slice
    reports failure and the caller runs the softmax on it.
    """

    def __init__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> None:
        self.q, self.k, self.v, self.scale = q, k, v, scale
        dh = q.shape[-1]
        # per-slice bounds on |score|: (B, H)
        q_norm = torch.linalg.vector_norm(q, dim=-1, dtype=torch.float32).amax(-1)
        k_norm = torch.linalg.vector_norm(k, dim=-1, dtype=torch.float32).amax(-1)
        self.shifts = (q_norm * k_norm * scale + _EXP_MARGIN).ceil_().tolist()
        self.values = v.new_zeros(k.shape[2], -(-(dh + 1) // 16) * 16)  # (S, Dh | 1 | 0...)
        self.values[:, dh] = 1
        self.acc = q.new_empty(q.shape[2], self.values.shape[1])
        self.bias = q.new_empty(k.shape[2])

    @classmethod
    def build(cls, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
              scale: float) -> _ExpAttention | None:  # fmt: skip
        """For bfloat16 CPU slices without autograd; else None."""
        usable = _EXP_ATTENTION and q.device.type == "cpu"
        usable = usable and not any(t.requires_grad for t in (q, k, v))
        if not (usable and q.dtype == k.dtype == v.dtype == torch.bfloat16):
            return None
        return cls(q, k, v, scale)

    def __call__(self, i: int, j: int, out: torch.Tensor) -> bool:
        """Write slice (i, j)'s attention (T, Dh) into out; False if it cannot (see above)."""
        dh = self.q.shape[-1]
        self.bias.fill_(-self.shifts[i][j])
        weights = onednn_product((self.q[i, j] * self.scale).contiguous(),
                                 self.k[i, j].contiguous(), self.bias, "sigmoid")  # fmt: skip
        if weights is None:  # this torch lacks the op or the post-op
            return False
        self.values[:, :dh] = self.v[i, j]
        torch.mm(weights, self.values, out=self.acc)
        sums = self.acc[:, dh : dh + 1]
        if float(sums.amin()) < _EXP_MIN_SUM:
            return False
        torch.div(self.acc[:, :dh], sums, out=out)
        return True


_EXP_ATTENTION = True
_EXP_MARGIN = 16.0  # sigmoid(y) = e^y (1 - e^y + ...): at y <= -16, within 1.2e-7
# a row's sum of weights below this: its largest term underflowed (float32's smallest normal)
_EXP_MIN_SUM = 2.0**-126


class LayerNorm(nn.LayerNorm):
    """LayerNorm computed in float32, returned in the weights' dtype.

    With bfloat16 weights the residual stream stays float32 (linear outputs are added to it)
    and each norm hands the next matrix product a bfloat16 input; in float32 both casts are
    no-ops.
    """

    _float: tuple[tuple[int, int, int, int], torch.Tensor, torch.Tensor] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.float32 and self.weight.dtype == torch.float32:  # no casts
            return torch.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        weight, bias = self._float_parameters()
        out = F.layer_norm(x.float(), self.normalized_shape, weight, bias, self.eps)
        return out.to(self.weight.dtype)

    def _float_parameters(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The weight and bias in float32; without autograd, kept until either changes (a
        decode step norms 13 times: 26 casts were ~8 % of its operations)."""
        if torch.is_grad_enabled() and self.weight.requires_grad:
            return self.weight.float(), self.bias.float()
        w, b = self.weight, self.bias
        key = (w.data_ptr(), _version(w), b.data_ptr(), _version(b))
        if self._float is None or self._float[0] != key:
            self._float = (key, w.detach().float(), b.detach().float())
        return self._float[1], self._float[2]


class MultiHeadAttention(nn.Module):
    """Scaled dot-product attention with Whisper's projections (no bias on `key`).

    `row_bucket` / `kv_row_bucket` (see `layers.linear`): the decoder's passes have any
    number of tokens, so its projections pad their rows; the encoder's 1500 do not vary.
    """

    def __init__(self, n_state: int, n_head: int, row_bucket: int = 1,
                 kv_row_bucket: int = 1) -> None:  # fmt: skip
        super().__init__()
        self.n_head = n_head
        self.query = Linear(n_state, n_state, row_bucket=row_bucket)
        self.key = Linear(n_state, n_state, bias=False, row_bucket=kv_row_bucket)
        self.value = Linear(n_state, n_state, row_bucket=kv_row_bucket)
        self.out = Linear(n_state, n_state, row_bucket=row_bucket)

    def project_kv(self, source: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of `source` (B, S, D), split into heads: (B, H, S, Dh) each."""
        return _split_heads(self.key(source), self.n_head), _split_heads(
            self.value(source), self.n_head
        )

    def attend(
        self,
        x: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        mask: torch.Tensor | None = None,
        is_causal: bool = False,
    ) -> torch.Tensor:
        """Queries from `x` (B, T, D) against given keys/values (B, H, S, Dh) -> (B, T, D).

        `mask` is boolean, broadcastable to (B, H, T, S), True where attention is allowed.
        """
        q = _split_heads(self.query(x), self.n_head)  # (B, H, T, Dh)
        return self.out(_merge_heads(attention(q, k, v, mask, is_causal)))

    def forward(self, x: torch.Tensor, is_causal: bool = False) -> torch.Tensor:
        """Self-attention over all of `x` (B, T, D), causal or not, without a cache."""
        k, v = self.project_kv(x)
        return self.attend(x, k, v, is_causal=is_causal)


class ResidualAttentionBlock(nn.Module):
    """Pre-norm transformer block: self-attention, [cross-attention], MLP (4x, exact GELU)."""

    def __init__(self, n_state: int, n_head: int, cross_attention: bool = False) -> None:
        super().__init__()
        bucket = VARYING_ROWS if cross_attention else 1  # the decoder's T varies
        self.attn = MultiHeadAttention(n_state, n_head, bucket, bucket)
        self.attn_ln = LayerNorm(n_state, eps=LAYER_NORM_EPS)
        # cross-attention keys and values: the encoder's 1500 positions, a fixed shape
        self.cross_attn = MultiHeadAttention(n_state, n_head, bucket) if cross_attention else None
        self.cross_attn_ln = LayerNorm(n_state, eps=LAYER_NORM_EPS) if cross_attention else None
        self.mlp = nn.Sequential(
            Linear(n_state, 4 * n_state, row_bucket=bucket),
            nn.GELU(),
            Linear(4 * n_state, n_state, row_bucket=bucket),
        )
        self.mlp_ln = LayerNorm(n_state, eps=LAYER_NORM_EPS)

    def forward(
        self,
        x: torch.Tensor,
        cross_kv: tuple[torch.Tensor, torch.Tensor] | None = None,
        is_causal: bool = False,
    ) -> torch.Tensor:
        """Full-sequence pass (encoder, or teacher-forced decoder): x (B, T, D) -> (B, T, D).

        Without autograd the residual stream is updated in place (so `x` itself is: callers
        pass a stream of their own) and the MLP runs `_MLP_ROWS` positions at a time: its
        4x-wide hidden layer of a batch of eight 30 s windows would otherwise take 74 MB
        (twice, with the GELU), the largest part of the encoder's peak memory. A new 18 MB
        stream per residual add (float32, batch 8) was fresh memory to fault in each time.
        """
        cross = self.cross_attn, self.cross_attn_ln
        if torch.is_grad_enabled():
            x = x + self.attn(self.attn_ln(x), is_causal=is_causal)
            if cross[0] is not None and cross[1] is not None and cross_kv is not None:
                x = x + cross[0].attend(cross[1](x), *cross_kv)
            return x + self.mlp(self.mlp_ln(x))
        x += self.attn(self.attn_ln(x), is_causal=is_causal)
        if cross[0] is not None and cross[1] is not None and cross_kv is not None:
            x += cross[0].attend(cross[1](x), *cross_kv)
        for rows in x.view(-1, x.shape[-1]).split(_MLP_ROWS):
            rows += self.mlp(self.mlp_ln(rows))
        return x


_MLP_ROWS = 2048


def _strided_conv_as_linear(x: torch.Tensor, conv: nn.Conv1d) -> torch.Tensor:
    """`conv(x)` for a strided Conv1d, as one matrix product over unfolded windows.

    On CPU the direct float32 convolution with stride 2 runs about 4x slower than this
    (unfold + GEMM); the result is the same up to float rounding, and comes out time-major.

    Args:
        x: (B, C_in, T).

    Returns:
        (B, T_out, C_out).
    """
    (k,), (stride,), (pad,) = conv.kernel_size, conv.stride, conv.padding
    windows = F.pad(x, (pad, pad)).unfold(2, k, stride)  # (B, C_in, T_out, k)
    windows = windows.permute(0, 2, 1, 3).flatten(2)  # (B, T_out, C_in * k)
    return linear(windows, conv.weight.flatten(1), conv.bias)


def window_by_window(
    run: Callable[[torch.Tensor], Sequence[torch.Tensor]], x: torch.Tensor
) -> list[torch.Tensor] | None:
    """`run` on each window `x[i : i + 1]` of a batch, its outputs (1, ...) gathered into
    contiguous (B, ...) tensors; None where the batch should run whole (a single window,
    another device than the CPU, or autograd on).

    A batch's temporaries (18-55 MB each for eight 30 s windows in float32) were fresh memory
    at every call, which glibc maps and returns around each: 120 000 page faults (~1.2 us
    each here) per float32 batch-8 encode. One window's are reused from call to call; the
    results are the batch pass's bit for bit.
    """
    if len(x) == 1 or x.device.type != "cpu" or torch.is_grad_enabled():
        return None
    outs: list[torch.Tensor] = []
    for i in range(len(x)):
        parts = run(x[i : i + 1])
        if not outs:
            outs = [part.new_empty(len(x), *part.shape[1:]) for part in parts]
        for out, part in zip(outs, parts):
            out[i] = part[0]
    return outs


class AudioEncoder(nn.Module):
    """Log-mel (B, n_mels, 2 * n_ctx) -> two convolutions (the second halves time) -> blocks."""

    def __init__(self, n_mels: int, n_ctx: int, n_state: int, n_head: int, n_layer: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(n_mels, n_state, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(n_state, n_state, kernel_size=3, stride=2, padding=1)
        self.register_buffer("positional_embedding", sinusoids(n_ctx, n_state))
        self.blocks = nn.ModuleList(ResidualAttentionBlock(n_state, n_head) for _ in range(n_layer))
        self.ln_post = LayerNorm(n_state, eps=LAYER_NORM_EPS)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """mel: (B, n_mels, 2 * n_ctx) -> (B, n_ctx, D); without autograd on CPU one window at
        a time (`window_by_window`): batch 8 float32 1218-1286 -> 1125-1142 ms, bfloat16
        574-600 -> 560-572 ms, and a lower peak."""
        outs = window_by_window(lambda window: [self.encode_windows(window)], mel)
        return self.encode_windows(mel) if outs is None else outs[0]

    def encode_windows(self, mel: torch.Tensor) -> torch.Tensor:
        """The encoder on a whole batch at once: mel (B, n_mels, 2 * n_ctx) -> (B, n_ctx, D)."""
        x = F.gelu(self.conv1(mel))  # (B, D, 2 * n_ctx)
        x = F.gelu(_strided_conv_as_linear(x, self.conv2))  # (B, n_ctx, D)
        x = x.float() + self.positional_embedding  # float32 residual stream
        for block in self.blocks:
            x = block(x)
        return self.ln_post(x)


class StepLinear(NamedTuple):
    """One linear map of the cached decode step, `x W^T + b`, in the model's dtype or int8.

    Attributes:
        weight: (out, in): the model's dtype, or int8 rows when `scales` is given; None when
            `packed` holds the only copy (`StepLinear.plain(..., derived=True)`).
        bias: (out,) or None.
        scales: (out,) bfloat16 per-row scales of an int8 `weight` (row i is
            `weight[i] * scales[i]`), else None.
        packed: a bfloat16 `weight` in oneDNN's blocked layout (`StepLinear.plain`), else
            None.
        dense: for an int8 map, the bfloat16 parameter it was rounded from (the parameter
            itself, no copy), which products of `_INT8_DENSE_FROM_ROWS` rows or more multiply
            instead; else None.
    """

    weight: torch.Tensor | None
    bias: torch.Tensor | None = None
    scales: torch.Tensor | None = None
    packed: torch.Tensor | None = None
    dense: torch.Tensor | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, in) -> (B, T, out), in x's dtype. int8 weights multiply bfloat16
        activations; float32 weights go through oneDNN (`_float_step_product`).

        A prompt (T > 1) takes `layers.linear` (oneDNN from 64 float32 rows: a 150-token
        prompt's products 2.4x faster than MKL's), its rows padded to a multiple of
        `_PROMPT_ROW_BUCKET`: each new row count is a new oneDNN primitive (~0.7 ms to build,
        ~0.6 MB kept in its cache of 1024), and prompts take any length up to 224 tokens.
        """
        if self.packed is not None:
            y = _packed_product(x, self.packed, self.bias)
            if y is not None:
                return y
        weight = self.weight
        if weight is None:  # only the packed copy is kept, and its product failed
            assert self.packed is not None
            weight = self.packed.to_dense()
        if self.scales is None:
            if x.shape[1] > 1:
                return linear(x, weight, self.bias, row_bucket=_PROMPT_ROW_BUCKET)
            return _float_step_product(x, weight, self.bias)
        rows = x.reshape(-1, x.shape[-1]).to(torch.bfloat16)
        if self.dense is not None and len(rows) >= _INT8_DENSE_FROM_ROWS:
            # (W x^T)^T: the dense weight is the product's first operand, which oneDNN reads
            # in place (as the second it would be reordered at every call)
            y = torch.empty(len(rows), len(self.dense), dtype=torch.bfloat16, device=x.device)
            product = torch.mm(self.dense, rows.t()).t()
            y = y.copy_(product) if self.bias is None else torch.add(product, self.bias, out=y)
            return y.view(*x.shape[:-1], -1).to(x.dtype)
        y = torch._weight_int8pack_mm(rows, weight, self.scales)
        y = y.view(*x.shape[:-1], -1).to(x.dtype)
        return y if self.bias is None else y + self.bias

    @classmethod
    def plain(cls, weight: torch.Tensor, bias: torch.Tensor | None = None, *,
              derived: bool = False) -> StepLinear:  # fmt: skip
        """The map in the model's dtype; a bfloat16 weight also packed for oneDNN.

        oneDNN multiplies a dense bfloat16 weight by first reordering it into its blocked
        layout, at every call: a decode step's product of one row then costs 3x what it
        would on the packed weight (tiny.en's 40 MB projection: 1.50 against 0.48 ms; the
        layer maps 1.7x), with the same result. The packed copy costs the weight's size again.

        `derived`: `weight` is a copy made for the step (the fused query/key/value, the
        pre-scaled query), which no parameter shares: once packed it is not kept too (a
        product that ever needs it dense gets it back from the packed copy). For tiny.en in
        bfloat16 that is 4.7 MB; for a 32-layer 1280-wide decoder (large-v3) ~400 MB.
        """
        packed = pack_linear_weight(weight) if weight.dtype == torch.bfloat16 else None
        return cls(None if derived and packed is not None else weight, bias, None, packed)

    @classmethod
    def int8(cls, weight: torch.Tensor, bias: torch.Tensor | None = None, *,
             dense: bool = False) -> StepLinear:  # fmt: skip
        """Round `weight` (out, in) to int8 per row (symmetric, scale = max|row| / 127).

        `dense`: `weight` is a parameter, kept (not copied) for products of many rows when
        it is bfloat16: torch's int8 product grows with the rows (tiny.en's projection 0.65
        ms at one row, 2.46 at five or eight), the bfloat16 one does not (0.95-1.0 ms).

        The scales are rounded to bfloat16 before the weights are divided by them, so the
        stored pair reproduces each row within half an int8 step. Rows are converted a block
        at a time: the float32 temporaries of a 51864-row vocabulary would otherwise add
        240 MB to the process's peak memory.
        """
        q = torch.empty(weight.shape, dtype=torch.int8, device=weight.device)
        scales = torch.empty(weight.shape[0], dtype=torch.bfloat16, device=weight.device)
        for begin in range(0, weight.shape[0], _INT8_BLOCK_ROWS):
            rows = slice(begin, begin + _INT8_BLOCK_ROWS)
            w = weight[rows].detach().float()
            scales[rows] = (w.abs().amax(dim=1) / 127).clamp(min=1e-12)
            q[rows] = (w / scales[rows].float()[:, None]).round_().clamp_(-127, 127)
        kept = weight if dense and weight.dtype == torch.bfloat16 else None
        return cls(q, bias, scales, None, kept)


class StepWeights(NamedTuple):
    """The decoder's weights rearranged once for the cached step (derived, never loaded).

    Attributes:
        signature: what these were derived from (parameter storages, versions, dtype, weight
            format); the decoder rebuilds them when it changes (weights loaded or moved after
            the first step, or a new format asked for).
        qkv: per layer, self-attention query/key/value fused into one map (3D, D) with bias
            (3D,) (zero for the key), the query part pre-multiplied by 1 / sqrt(Dh).
        out, cross_query, cross_out, fc1, fc2: per layer, the other maps of the block (the
            cross-attention query pre-scaled alike).
        projection: the tied output projection as an int8 map or a packed bfloat16 one, or
            None to use the token embedding itself (`TextDecoder.logits`).
        projection_error: with an int8 `projection`, (V,) float32 |w_i - w~_i|, each row's
            distance to its int8 reconstruction (rounded up), for `refine_logits`; else None.
    """

    signature: tuple
    qkv: list[StepLinear]
    out: list[StepLinear]
    cross_query: list[StepLinear]
    cross_out: list[StepLinear]
    fc1: list[StepLinear]
    fc2: list[StepLinear]
    projection: StepLinear | None
    projection_error: torch.Tensor | None


WEIGHT_FORMATS = ("float", "int8")
_DERIVED_MAPS = ("qkv", "cross_query")  # step maps whose weight is a copy, not a parameter
_INT8_DENSE_FROM_ROWS = 4  # from this many rows, int8 maps multiply their bfloat16 parameter
_INT8_BLOCK_ROWS = 1024  # a first step's peak: 4096 rows' float64 temporaries held ~45 MB more


class TextDecoder(nn.Module):
    """Token + learned position embeddings -> causal blocks with cross-attention -> tied logits."""

    def __init__(self, n_vocab: int, n_ctx: int, n_state: int, n_head: int, n_layer: int) -> None:
        super().__init__()
        self.n_head = n_head
        self.token_embedding = embedding(n_vocab, n_state)
        self.positional_embedding = nn.Parameter(torch.empty(n_ctx, n_state))
        self.blocks = nn.ModuleList(
            ResidualAttentionBlock(n_state, n_head, cross_attention=True) for _ in range(n_layer)
        )
        self.ln = LayerNorm(n_state, eps=LAYER_NORM_EPS)
        self.step_format = "float"  # or "int8": see `Whisper.set_step_format`
        self._step_weights: StepWeights | None = None
        self._exact_rows: tuple[tuple, torch.Tensor] | None = None  # see `_float_rows`

    def __getstate__(self) -> dict:
        """Copies and pickles leave out the step's derived weights (rebuilt on the next step):
        they are copies of the parameters, and packed bfloat16 ones are opaque oneDNN tensors
        that can be neither copied nor pickled."""
        state = super().__getstate__()
        state["_step_weights"] = state["_exact_rows"] = None
        return state

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Final norm, then the output projection tied to the token embedding: (B, T, V) float32."""
        return F.linear(self.ln(x), self.token_embedding.weight).float()

    def forward(self, tokens: torch.Tensor, cross_kv: CrossKV) -> torch.Tensor:
        """Teacher-forced pass over whole sequences, no cache: tokens (B, T) -> (B, T, V)."""
        x = self.token_embedding(tokens).float() + self.positional_embedding[: tokens.shape[1]]
        for block, kv in zip(self.blocks, cross_kv):
            x = block(x, kv, is_causal=True)
        return self.logits(x)

    def alignment_scores(
        self, tokens: torch.Tensor, cross_kv: CrossKV, heads: list[tuple[int, int]]
    ) -> torch.Tensor:
        """Teacher-forced pass that keeps the cross-attention of a few heads only.

        Runs the blocks up to the last layer named in `heads` (no cache, no logits) and, in
        each layer that has selected heads, computes those heads' query-key products
        alongside the usual attention. Nothing else of the attention is kept, so memory is
        (B, len(heads), T, S) whatever the model size.

        Args:
            tokens: (B, T) token ids (right padding is harmless: attention is causal).
            cross_kv: from `Whisper.cross_kv`, at least up to the last selected layer.
            heads: (layer, head) pairs.

        Returns:
            (B, len(heads), T, S) float32 scaled scores q.k / sqrt(Dh), before the softmax,
            in the order of `heads`.
        """
        last = max(layer for layer, _ in heads)
        per_layer: dict[int, list[int]] = {}
        for layer, head in heads:
            per_layer.setdefault(layer, []).append(head)
        found: dict[tuple[int, int], torch.Tensor] = {}
        x = self.token_embedding(tokens).float() + self.positional_embedding[: tokens.shape[1]]
        for layer, block in enumerate(self.blocks[: last + 1]):
            assert block.cross_attn is not None and block.cross_attn_ln is not None
            x = x + block.attn(block.attn_ln(x), is_causal=True)
            h = block.cross_attn_ln(x)
            k, v = cross_kv[layer]  # (B, H, S, Dh)
            if layer in per_layer:
                index = torch.tensor(per_layer[layer], device=tokens.device)
                q = _split_heads(block.cross_attn.query(h), self.n_head)  # (B, H, T, Dh)
                q, k_sel = q.index_select(1, index), k.index_select(1, index)
                scores = (q @ k_sel.transpose(-1, -2)).float() * q.shape[-1] ** -0.5
                for i, head in enumerate(per_layer[layer]):
                    found[layer, head] = scores[:, i]  # (B, T, S)
            x = x + block.cross_attn.attend(h, k, v)
            if layer < last:
                x = x + block.mlp(block.mlp_ln(x))
        return torch.stack([found[pair] for pair in heads], dim=1)

    def step_weights(self) -> StepWeights:
        """The fused weights of the cached step, derived on first use and whenever the
        parameters were replaced or modified in place, or `step_format` changed, since."""
        params = list(self.parameters())
        signature = (
            params[0].dtype,
            self.step_format,
            *((p.data_ptr(), _version(p)) for p in params),
        )
        if self._step_weights is None or self._step_weights.signature != signature:
            with torch.inference_mode(False), torch.no_grad():
                self._step_weights = self._derive_step_weights(signature)
        return self._step_weights

    def _derive_step_weights(self, signature: tuple) -> StepWeights:
        scale = (self.token_embedding.weight.shape[1] // self.n_head) ** -0.5
        maps: dict[str, list[StepLinear]] = {
            "qkv": [], "out": [], "cross_query": [], "cross_out": [], "fc1": [], "fc2": []
        }  # fmt: skip
        for block in self.blocks:
            a, c = block.attn, block.cross_attn
            assert c is not None
            weight = torch.cat([a.query.weight * scale, a.key.weight, a.value.weight])
            bias = torch.cat([a.query.bias * scale, torch.zeros_like(a.query.bias), a.value.bias])
            pairs = {
                "qkv": (weight, bias),
                "out": (a.out.weight, a.out.bias),
                "cross_query": (c.query.weight * scale, c.query.bias * scale),
                "cross_out": (c.out.weight, c.out.bias),
                "fc1": (block.mlp[0].weight, block.mlp[0].bias),
                "fc2": (block.mlp[2].weight, block.mlp[2].bias),
            }
            for key, (w, b) in pairs.items():
                if self.step_format == "int8":
                    maps[key].append(StepLinear.int8(w, b, dense=key not in _DERIVED_MAPS))
                else:  # the fused and pre-scaled maps are copies: no parameter shares them
                    maps[key].append(StepLinear.plain(w, b, derived=key in _DERIVED_MAPS))
        projection = error = None
        if self.step_format == "int8":
            projection = StepLinear.int8(self.token_embedding.weight, dense=True)
            error = _row_errors(self.token_embedding.weight, projection)
        elif self.token_embedding.weight.dtype == torch.bfloat16:  # packed (`StepLinear.plain`)
            projection = StepLinear.plain(self.token_embedding.weight)
            projection = projection if projection.packed is not None else None
        return StepWeights(signature, **maps, projection=projection, projection_error=error)

    def step(
        self,
        tokens: torch.Tensor,
        cross_kv: CrossKV,
        cache: StaticKVCache,
        input_pos: torch.Tensor,
        start: torch.Tensor | None = None,
        logits_at: torch.Tensor | None = None,
        exact_from: int | None = None,
        buffers: StepBuffers | None = None,
    ) -> torch.Tensor:
        """New tokens (B, T) at cache slots `input_pos` (T,) -> logits (B, T, V), cache updated.

        The same arithmetic as `forward`, with the fused weights of `step_weights()` (checked
        against the parameters once per decoding, by `Whisper.cross_kv`, not per token). A single
        new token (T = 1, the hot path) attends to the cache up to its own slot, sliced, with
        no mask; several tokens (a prompt) use a causal mask over the whole cache. Below
        float32 the slice is rounded up to a multiple of `_KEY_BUCKET` slots, the extra ones
        masked: each new key length would be a new oneDNN primitive (~0.4 ms to build; the
        448 lengths held 540 MB in its cache), and so would each new prompt length in the
        linear maps (`StepLinear`).

        `start` (B,) left-pads rows of different lengths: row b's sequence begins at slot
        `start[b]`; slots before it are padding that no real token attends to, and the token
        in slot j takes position j - start[b]. A padding slot attends to itself only (so it
        stays finite); its output is meaningless.

        `logits_at` (B, K) picks, per row, the indices among the T new tokens whose logits are
        returned: (B, K, V). A prompt needs two of its rows, and the vocabulary projection of
        the others would cost more than the rest of the pass.

        Below float32 (bfloat16 weights, or the int8 projection), the logits are refined
        (`refine_logits`): float32 wherever they can decide an argmax, and from `exact_from`
        on (Whisper's special and timestamp tokens). There the vocabulary-sized float32
        tensors (the logits, refine's margins) come from `buffers` when given: the logits
        returned are then valid until the next step with the same buffers.
        """
        w = self._step_weights or self.step_weights()  # refreshed by every `Whisper.cross_kv`
        b, t = tokens.shape
        if start is None:
            pos = self.positional_embedding[input_pos]  # (T, D)
        else:
            pos = self.positional_embedding[(input_pos - start[:, None]).clamp(min=0)]  # (B, T, D)
        x = self.token_embedding(tokens).float() + pos  # (B, T, D)
        if t == 1:
            filled = int(input_pos[0]) + 1
            length = filled
            if cache.k.dtype in _LOW_PRECISION:  # a few key lengths: a few oneDNN primitives
                length = min(-(-filled // _KEY_BUCKET) * _KEY_BUCKET, cache.max_len)
            mask = None
            if length > filled or start is not None:  # (B or 1, 1, 1, length)
                slots = torch.arange(length, device=tokens.device)
                visible = (slots < filled)[None]
                if start is not None:  # the row's own slots
                    visible = visible & (slots >= start[:, None])
                mask = visible[:, None, None]
        else:
            length = cache.max_len
            slots = torch.arange(length, device=tokens.device)
            # (T, max_len): slot j is visible to the token in slot input_pos[i] iff j <= it
            mask = slots <= input_pos[:, None]
            if start is not None:  # (B, 1, T, max_len)
                own = (slots >= start[:, None, None]) | (slots == input_pos[:, None])
                mask = (mask & own)[:, None]
        for layer, block in enumerate(self.blocks):
            assert block.cross_attn is not None and block.cross_attn_ln is not None
            # self-attention, keys and values written to the cache
            qkv = w.qkv[layer](block.attn_ln(x))  # (B, T, 3D)
            q, k, v = _split_heads(qkv, 3 * self.n_head).split(self.n_head, dim=1)
            k_all, v_all = cache.update(layer, input_pos, k, v)  # (B, H, max_len, Dh)
            k_all, v_all = k_all[:, :, :length], v_all[:, :, :length]
            x = x + w.out[layer](_merge_heads(attention(q, k_all, v_all, mask, scale=1.0)))
            # cross-attention over the encoder output's keys and values
            q = _split_heads(w.cross_query[layer](block.cross_attn_ln(x)), self.n_head)
            x = x + w.cross_out[layer](_merge_heads(cross_attention(q, *cross_kv[layer])))
            x = x + w.fc2[layer](F.gelu(w.fc1[layer](block.mlp_ln(x))))
        if logits_at is not None:  # (B, K, D): only the positions whose logits are used
            x = x.gather(1, logits_at[:, :, None].expand(-1, -1, x.shape[-1]))
        h, weight = self.ln(x), self.token_embedding.weight
        if w.projection is not None:
            low = w.projection(h)
        elif weight.dtype == torch.float32:
            return _float_step_product(h, weight)
        else:
            low = F.linear(h, weight)
        if buffers is None:
            approx, margins = low.float(), None
        else:
            approx = buffers.get("logits", low.shape, device=low.device).copy_(low)
            margins = buffers.get("margins", (approx[..., 0].numel(), low.shape[-1]),
                                  device=low.device)  # fmt: skip
        states = h.reshape(-1, h.shape[-1])
        rows = None if exact_from is None else self._float_rows(w.signature, exact_from)
        refined = refine_logits(
            states, approx.view(len(states), -1), weight, w.projection_error, exact_from, rows,
            margins,
        )  # fmt: skip
        return refined.view(approx.shape)

    def _float_rows(self, signature: tuple, begin: int) -> torch.Tensor:
        """The token embedding's rows from `begin` on, in float32, kept until the weights
        change (`refine_logits` recomputes those logits at every step); on CPU packed for
        oneDNN (`pack_linear_weight`): dense, oneDNN reorders the 2.5 MB of tiny.en's 1608
        rows at every call (242 against ~60 us a batch-8 step)."""
        kept = self._exact_rows
        # the signature object is new whenever the step weights are rederived: compared by
        # identity, per step, rather than entry by entry
        if kept is None or kept[0][0] is not signature or kept[0][1] != begin:
            rows = self.token_embedding.weight.detach()[begin:].float().contiguous()
            packed = pack_linear_weight(rows) if rows.device.type == "cpu" else None
            self._exact_rows = kept = (signature, begin), rows if packed is None else packed
        return kept[1]


def _float_step_product(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """`F.linear(x, weight, bias)` for a decode step's few rows (x (..., D), weight (V, D)).

    float32 on CPU goes through oneDNN (`layers.onednn_product`), as CTranslate2 does on AMD
    CPUs: MKL's product of one row runs on one thread, oneDNN's streams the weight on all of
    them. Batch-1 tiny.en, the 24 layer products and the 80 MB projection of a step: 2.2
    against 2.9 ms (MKL split over the threads, `_threaded_linear`, which remains the
    fallback: other dtypes and devices, autograd, a torch without the op). One primitive
    per row count and weight shape (a few: the step's rows are the batch). On Intel CPUs
    (`layers.mkl_is_fast`) MKL is the faster (the projection of one row 1.47-1.54 against
    2.08 ms on a Xeon) and the threaded split runs.
    """
    onednn_route = x.device.type == "cpu" and not layers.mkl_is_fast()
    if x.dtype == torch.float32 and onednn_route and not torch.is_grad_enabled():
        rows = x.reshape(-1, x.shape[-1]).contiguous()
        y = onednn_product(rows, weight, bias)
        if y is not None:
            return y.view(*x.shape[:-1], -1)
    return _threaded_linear(x, weight, bias)


def _packed_product(
    x: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor | None:
    """x (B, T, in) bfloat16 times a packed weight (`StepLinear.plain`) -> (B, T, out), or
    None where the op fails. A prompt's rows are padded to a multiple of
    `_PROMPT_ROW_BUCKET` (a oneDNN primitive per row count, as in `StepLinear.__call__`)."""
    rows = x.reshape(-1, x.shape[-1])
    n = len(rows)
    if x.shape[1] > 1:
        rows = F.pad(rows, (0, 0, 0, -(-n // _PROMPT_ROW_BUCKET) * _PROMPT_ROW_BUCKET - n))
    y = onednn_product(rows.contiguous(), packed, bias)
    return None if y is None else y[:n].view(*x.shape[:-1], -1)


def _row_errors(weight: torch.Tensor, quantized: StepLinear) -> torch.Tensor:
    """(V,) float32 |w_i - w~_i| per row of `weight` (V, D) against its int8 `quantized`
    reconstruction, rounded up; a block of rows at a time (float64 temporaries)."""
    assert quantized.scales is not None
    out = torch.empty(weight.shape[0], dtype=torch.float32, device=weight.device)
    for begin in range(0, weight.shape[0], _INT8_BLOCK_ROWS):
        rows = slice(begin, begin + _INT8_BLOCK_ROWS)
        rebuilt = quantized.weight[rows].double() * quantized.scales[rows].double()[:, None]
        out[rows] = (weight[rows].detach().double() - rebuilt).norm(dim=1).float()
    return out.mul_(1 + 1e-5)


def refine_logits(
    states: torch.Tensor,
    approx: torch.Tensor,
    weight: torch.Tensor,
    row_error: torch.Tensor | None = None,
    exact_from: int | None = None,
    exact_rows: torch.Tensor | None = None,
    margins: torch.Tensor | None = None,
) -> torch.Tensor:
    """Logits of a reduced-precision projection, recomputed in float32 where they matter.

    A bfloat16 product rounds each logit to 8 significant bits: 0.125 apart at |logit| ~ 20,
    so near-ties between the best tokens are decided by rounding (it cost bfloat16 decoding
    0.6 WER point on the fixture speech). Each approximate logit a is within a known bound of
    the exact one: |a| 2^-8 for that rounding, plus |h| |w_i - w~_i| for an int8 row
    (Cauchy-Schwarz). The best approximate logit less its bound is a floor under the exact best;
    every token whose upper bound reaches that floor could be the argmax. Those, and all
    tokens from `exact_from` on, are recomputed as float32 products of the states and the
    rows; the rest keep their approximations (none of them is the best token; the softmax
    normaliser moves by far less than the bound).

    Args:
        states: (N, D) final-norm decoder states (the rows' dtype or float32; with int8
            rows, their bfloat16 rounding is what the int8 product multiplies).
        approx: (N, V) float32 approximate logits, refined in place.
        weight: (V, D) the model's output projection (its token embedding).
        row_error: (V,) |w_i - w~_i| when `approx` came from int8 rows w~, else None.
        exact_from: recompute every logit from this token on (None: none).
        exact_rows: `weight[exact_from:]` in float32 (or packed for oneDNN,
            `layers.pack_linear_weight`), if the caller keeps it.
        margins: (N, V) float32 working space (`StepBuffers`), else a new tensor.

    Returns:
        `approx`, refined: (N, V) float32.
    """
    # int8 rows multiply bfloat16 states: the refined logits are those of the rounded states
    exact_states = (states.to(torch.bfloat16) if row_error is not None else states).float()
    # margin >= 0 where a token reaches its row's floor (x - y >= 0 exactly when x >= y)
    if row_error is None:
        best = approx.amax(dim=1)
        # the floor is the best less its bound; a token's own upper bound a + |a| 2^-8 + slack
        # is monotonic in a, so "reaches the floor" is a threshold on a
        reach = best - best.abs() * _ROUNDING - 2 * _SLACK
        threshold = torch.where(reach >= 0, reach / (1 + _ROUNDING), reach / (1 - _ROUNDING))
        margin = torch.sub(approx, threshold[:, None], out=margins)
    else:  # per-row bounds: |a| 2^-8 + slack + |h| |w_i - w~_i|
        norms = exact_states.norm(dim=1, keepdim=True)
        bound = torch.abs(approx, out=margins).mul_(_ROUNDING).add_(_SLACK)
        bound.addmm_(norms, row_error[None])
        floor = (approx - bound).amax(dim=1, keepdim=True)
        margin = bound.add_(approx).sub_(floor)
    if exact_from is not None:
        margin = margin[:, :exact_from]  # the rest is recomputed below in any case
    # a token any row needs: the column maximum of the margins (a bool `any` over the rows of
    # a (8, 51 864) mask took 75 us, this 50 with the subtraction)
    candidates = ((margin[0] if len(approx) == 1 else margin.amax(dim=0)) >= 0).nonzero()
    candidates = candidates.squeeze(1)
    if exact_from is not None:
        if exact_rows is None:
            exact_rows = weight[exact_from:].float()
        # oneDNN's product (MKL's of a few rows took 112 against 62 us at 8 rows)
        product = onednn_product(exact_states, exact_rows) if exact_states.is_cpu else None
        if product is None:  # a packed weight is oneDNN's only
            dense = exact_rows if exact_rows.layout == torch.strided else None
            product = exact_states @ (weight[exact_from:].float() if dense is None else dense).T
        approx[:, exact_from:] = product
    approx[:, candidates] = exact_states @ weight.index_select(0, candidates).float().T
    return approx


_ROUNDING = 2**-8  # relative rounding bound of a bfloat16 product's output
# absolute slack of `refine_logits`' bound: float32 accumulation over D products
_SLACK = 1e-3


def _threaded_linear(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """`F.linear(x, weight, bias)` for a decode step's few rows, split over torch's threads.

    On CPU, MKL multiplies a few rows by a float32 matrix on one thread whatever
    `torch.get_num_threads()` says. The same product as a batch of blocks of output features
    (`bmm`) uses them all, with the same result: the vocabulary projection of tiny takes 1.8
    against 2.9 ms on 2 threads, a whole float32 step 4.1 against 5.0 ms. The blocks are
    views, in either memory layout of `weight` (`inference_layout` stores the token
    embedding column-major). Other dtypes (bfloat16 products use every thread already),
    more than `_THREADED_MAX_ROWS` rows and single-thread runs take `F.linear`.

    Args:
        x: (..., D).
        weight: (V, D).
        bias: (V,) or None.

    Returns:
        (..., V), x's dtype.
    """
    n = torch.get_num_threads()
    v, d = weight.shape
    rows = x.reshape(-1, d)
    if (
        n == 1
        or weight.dtype != torch.float32
        or weight.device.type != "cpu"
        or len(rows) > _THREADED_MAX_ROWS
        or v < 2 * n
    ):
        return F.linear(x, weight, bias)
    width = v // n
    blocks = weight[: n * width].view(n, width, d).transpose(1, 2)  # (n, D, width) views
    out = torch.bmm(rows.expand(n, -1, -1), blocks).transpose(0, 1).reshape(len(rows), -1)
    if n * width < v:
        out = torch.cat([out, F.linear(rows, weight[n * width :])], dim=1)
    if bias is not None:
        out += bias
    return out.view(*x.shape[:-1], v)


_THREADED_MAX_ROWS = 16


# below float32, a prompt's rows are padded to a multiple of this (`layers.linear`)
_PROMPT_ROW_BUCKET = 32
# a low-precision decode step attends over the cache up to the next multiple of this, masked
_KEY_BUCKET = 32


def inference_layout(
    state_dict: dict[str, torch.Tensor], dtype: torch.dtype
) -> dict[str, torch.Tensor]:
    """Our-named tensors with the memory layout each one is fastest in, converted to `dtype`.

    Only the token embedding moves: in float32 it is stored column-major, a (V, D) view of a
    contiguous (D, V) tensor. It doubles as the output projection `x @ W^T`, which at batch 1
    BLAS streams at memory speed from that layout and at half speed from a row-major (V, D)
    (2.8 ms against 5.7 ms per token for tiny, one thread); the few rows an embedding lookup
    reads per step do not mind the stride. In bfloat16/float16 the row-major layout is the
    faster one and stays. The conversion writes into the new layout 1024 rows at a time: no
    second copy of the whole table.

    Args:
        state_dict: tensors named as our modules (e.g. from `convert_state_dict`).
        dtype: the model's parameter dtype.

    Returns:
        A new dict; tensors other than the embedding are the same objects.
    """
    name = "decoder.token_embedding.weight"
    weight = state_dict.get(name)
    if dtype != torch.float32 or weight is None or weight.ndim != 2:
        return dict(state_dict)
    column_major = torch.empty(weight.shape[::-1], dtype=dtype, device=weight.device)
    for start in range(0, len(weight), _LAYOUT_ROWS):  # a float16 file: 84 -> 34 ms for tiny
        rows = weight[start : start + _LAYOUT_ROWS]
        column_major[:, start : start + len(rows)].copy_(rows.to(dtype).t())
    release_file_pages([weight])
    return {**state_dict, name: column_major.t()}


_LAYOUT_ROWS = 1024  # rows converted, then transposed, at a time (a strided cast is slower)


class Whisper(nn.Module):
    """Whisper: `encode` a log-mel window once, then `decode_step` tokens against it."""

    def __init__(self, config: WhisperConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.encoder = AudioEncoder(
            c.n_mels, c.n_audio_ctx, c.n_audio_state, c.n_audio_head, c.n_audio_layer
        )
        self.decoder = TextDecoder(
            c.n_vocab, c.n_text_ctx, c.n_text_state, c.n_text_head, c.n_text_layer
        )

    @property
    def dtype(self) -> torch.dtype:
        return self.decoder.token_embedding.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.decoder.token_embedding.weight.device

    def encode(self, mel: torch.Tensor) -> torch.Tensor:
        """Encode 30 s log-mel windows.

        Args:
            mel: (B, n_mels, 3000) log-mel features (any float dtype; cast to the model's).

        Returns:
            (B, 1500, D) encoder output.
        """
        c = self.config
        if mel.ndim != 3 or mel.shape[1] != c.n_mels or mel.shape[2] != c.n_frames:
            raise ValueError(
                f"Whisper expects log-mel features of shape (batch, {c.n_mels}, {c.n_frames}) "
                f"(30 s windows), got {tuple(mel.shape)}; pad or trim each window to 30 s"
            )
        return self.encoder(mel.to(self.dtype))

    def cross_kv(self, encoder_out: torch.Tensor, n_layers: int | None = None) -> CrossKV:
        """Cross-attention keys/values of the decoder layers, computed once per window.

        Args:
            encoder_out: (B, 1500, D) from `encode`.
            n_layers: only the first `n_layers` layers (default all).

        Returns:
            Per layer, (k, v), each (B, H, 1500, Dh), contiguous per head: every decode step
            reads them whole, in this layout.

        Without autograd on CPU the windows are projected one at a time into the batch's
        tensors (`window_by_window`; batch 8: float32 105-142 -> 87-104 ms, bfloat16 64-66
        -> 47-50 ms).
        """
        self.decoder.step_weights()  # a new decoding starts: follow any change to the weights
        kv = []
        for block in self.decoder.blocks[:n_layers]:
            # layer by layer: the batch's tensors of all layers at once faulted in 40 % more
            pair = window_by_window(block.cross_attn.project_kv, encoder_out)
            if pair is None:
                pair = [t.contiguous() for t in block.cross_attn.project_kv(encoder_out)]
            kv.append((pair[0], pair[1]))
        return kv

    def set_step_format(self, weight_format: str) -> Whisper:
        """Choose the weights of the cached decode step: "float" (the model's dtype, exact)
        or "int8" (weight-only int8 per row with bfloat16 activations, as faster-whisper's
        int8 compute types: a quarter of float32's memory traffic per decoded token, where
        batch-1 decoding spends its time). The encoder and the teacher-forced passes (word
        alignment) keep the model's weights. Returns self."""
        if weight_format not in WEIGHT_FORMATS:
            raise ValueError(
                f"weight format must be one of {WEIGHT_FORMATS}, got {weight_format!r}"
            )
        self.decoder.step_format = weight_format
        return self

    def new_cache(self, batch_size: int, max_len: int | None = None) -> StaticKVCache:
        """A zeroed self-attention cache for `batch_size` sequences of up to `max_len` tokens."""
        c = self.config
        max_len = c.n_text_ctx if max_len is None else max_len
        if max_len > c.n_text_ctx:
            raise ValueError(f"max_len {max_len} exceeds the decoder's {c.n_text_ctx} positions")
        return StaticKVCache(
            c.n_text_layer,
            batch_size,
            c.n_text_head,
            max_len,
            c.n_text_state // c.n_text_head,
            dtype=self.dtype,
            device=self.device,
        )

    def decode_step(
        self,
        tokens: torch.Tensor,
        cross_kv: CrossKV,
        cache: StaticKVCache,
        input_pos: torch.Tensor,
        start: torch.Tensor | None = None,
        logits_at: torch.Tensor | None = None,
        exact_from: int | None = None,
        buffers: StepBuffers | None = None,
    ) -> torch.Tensor:
        """Run the decoder on new tokens, reading and extending the self-attention cache.

        Args:
            tokens: (B, T) token ids, placed at cache slots `input_pos`.
            cross_kv: from `cross_kv(encoder_out)`, batch B, or batch A where B = A * G and
                each window's G rows are consecutive (`cross_attention`).
            cache: from `new_cache(B)`; slots before `input_pos` must hold earlier tokens.
            input_pos: (T,) int64 slots, e.g. `arange(n)` for a prompt, then `[n]`, `[n+1]`.
            start: (B,) int64 first slot of each row (left padding for prompts of different
                lengths; positions count from there); None: every row starts at slot 0.
            logits_at: (B, K) int64 indices into the T new tokens: return only their logits.
            exact_from: below float32, logits from this id on (`<|endoftext|>`: specials and
                timestamps) are computed in float32 too (`refine_logits`).
            buffers: a decoding loop's kept tensors (`StepBuffers`): below float32 the logits
                are written into one of them, valid until the next step with these buffers.

        Returns:
            (B, T, n_vocab) float32 logits; (B, K, n_vocab) with `logits_at`.
        """
        return self.decoder.step(
            tokens, cross_kv, cache, input_pos, start, logits_at, exact_from, buffers
        )

    def decode_with_alignment(
        self, tokens: torch.Tensor, cross_kv: CrossKV, heads: list[tuple[int, int]]
    ) -> torch.Tensor:
        """Cross-attention scores of the `heads` (layer, head) for teacher-forced `tokens`.

        Args:
            tokens: (B, T) whole sequences (start sequence, text, `<|endoftext|>`).
            cross_kv: from `cross_kv(encoder_out)`, batch B.
            heads: (layer, head) pairs, e.g. the checkpoint's alignment heads.

        Returns:
            (B, len(heads), T, 1500) float32 scores before the softmax over encoder frames.
        """
        for layer, head in heads:
            if not (0 <= layer < self.config.n_text_layer and 0 <= head < self.config.n_text_head):
                raise ValueError(
                    f"alignment head ({layer}, {head}) is outside this decoder's "
                    f"{self.config.n_text_layer} layers x {self.config.n_text_head} heads"
                )
        if not heads:
            raise ValueError("decode_with_alignment needs at least one (layer, head) pair")
        return self.decoder.alignment_scores(tokens, cross_kv, heads)

    def forward(self, mel: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits: mel (B, n_mels, 3000), tokens (B, T) -> (B, T, n_vocab)."""
        return self.decoder(tokens, self.cross_kv(self.encode(mel)))
