"""Small building blocks shared by the model files."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache

import torch
import torch.nn.functional as F
from torch import nn


def embedding(
    num_embeddings: int, embedding_dim: int, padding_idx: int | None = None
) -> nn.Embedding:
    """An `nn.Embedding` without random initialisation: the checkpoint's weights replace it.

    Models are built on the meta device and then filled from the checkpoint. `nn.Embedding`'s
    own `normal_` initialisation has no native meta kernel, so the first one in a process
    imports torch's Python decompositions (torch._dynamo: about 1.3 s of start-up).

    Returns:
        An embedding whose weight, shape (num_embeddings, embedding_dim), is uninitialised.
    """
    weight = torch.empty(num_embeddings, embedding_dim)
    return nn.Embedding(num_embeddings, embedding_dim, padding_idx=padding_idx, _weight=weight)


def linear(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, row_bucket: int = 1
) -> torch.Tensor:
    """`F.linear(x, weight, bias)`, run by oneDNN for float32 products of many rows on CPU.

    torch sends a float32 matrix product to MKL, which on this AMD CPU runs its AVX2 code at
    ~190 GFLOP/s; oneDNN runs AVX-512. Through torch's oneDNN linear op
    (`torch.ops.mkldnn._linear_pointwise`, the one its compiler fuses into) the same product
    takes 2.0-2.6x less time from 64 rows up (Whisper's encoder, AST, wav2vec2); where that
    op is missing, or for autograd, it is posed as a 1x1 convolution over a channels-last
    view (public API, 1.5-2.2x; at one thread torch itself sends that convolution to
    im2col + MKL). float32 rounding either way (~5e-6 apart on unit data).
    Fewer float32 rows, other devices and Intel CPUs (`mkl_is_fast`: MKL's AVX-512 code, 3-8 %
    faster than oneDNN on Whisper's encoder products) take `F.linear`; so do bfloat16 and
    float16, which torch already sends to oneDNN. (Whisper's decode step, whose weights arrive cold from
    memory at every token, calls `onednn_product` itself at any row count: there oneDNN
    streams them on every thread where MKL uses one.)

    oneDNN keeps a compiled primitive per shape (~0.6-1.5 MB each, up to 1024 of them), so
    callers whose row counts vary from call to call (audio of any length) give a
    `row_bucket`: the rows are zero-padded up to a multiple of it and the padding's outputs
    dropped, bounding the number of shapes at the cost of at most `row_bucket - 1` rows. In
    bfloat16/float16 on CPU the padding applies at any row count.

    Args:
        x: (..., in_features).
        weight: (out_features, in_features).
        bias: (out_features,) or None.
        row_bucket: pad the rows (the product of x's leading dims) to a multiple of this.

    Returns:
        (..., out_features), x's dtype.
    """
    size = x.shape[-1]
    rows = x.numel() // size if size else 0
    cpu = x.device.type == "cpu"
    fp32 = x.dtype == torch.float32 and weight.dtype == torch.float32
    if fp32:
        if (
            mkl_is_fast()
            or rows < _ONEDNN_MIN_ROWS
            or rows * size <= _ONEDNN_MIN_INPUT  # torch would not pick oneDNN either
            or not cpu
            or not torch.backends.mkldnn.is_available()
        ):
            return F.linear(x, weight, bias)
    elif not cpu or row_bucket == 1:
        return F.linear(x, weight, bias)
    flat = x.reshape(rows, size)
    padded = -(-rows // row_bucket) * row_bucket
    if padded != rows:
        flat = F.pad(flat, (0, 0, 0, padded - rows))
    if not fp32:  # bfloat16/float16: torch's own product is oneDNN's already
        return F.linear(flat, weight, bias)[:rows].reshape(*x.shape[:-1], weight.shape[0])
    tracked = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (x, weight, bias)
    )
    # no derivative is registered for the oneDNN op
    y = None if tracked else onednn_product(flat.contiguous(), weight.contiguous(), bias)
    if y is None:
        # (1, in, 1, M) channels-last view -> (1, out, 1, M) channels-last = (M, out) in memory
        y = F.conv2d(flat.t()[None, :, None], weight[:, :, None, None], bias)[0, :, 0].t()
    return y[:rows].reshape(*x.shape[:-1], weight.shape[0])


def onednn_product(
    rows: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    post_op: str = "none",
) -> torch.Tensor | None:
    """rows (M, in) @ weight (out, in)^T + bias, float32 (or bfloat16 with a packed weight)
    on CPU, through torch's oneDNN linear op (no autograd); None where this torch lacks the
    op. `weight` may be packed (`pack_linear_weight`) or a column-major view: for Whisper's
    tied output projection (51864 x 384, 80 MB) at 2-40 rows it takes 2.1-5.7 ms against
    MKL's 4.2-14 ms, at one row 1.0 against 1.4 ms (MKL split over two threads by hand;
    2.8 ms on its own one). `post_op`: an elementwise function oneDNN applies to the float32
    result before it is stored (one of the op's: "sigmoid", "relu", "tanh", ...); a post-op
    this torch rejects gives None without turning the plain product off."""
    global _POINTWISE
    if not _POINTWISE:
        return None
    try:
        return torch.ops.mkldnn._linear_pointwise(rows, weight, bias, post_op, [], "")
    except (RuntimeError, TypeError):  # another torch's signature: callers fall back
        if post_op == "none":
            _POINTWISE = False
        return None


_POINTWISE = hasattr(torch.ops.mkldnn, "_linear_pointwise")


@cache
def mkl_is_fast() -> bool:
    """Whether torch's float32 products (MKL) run MKL's AVX-512 code on this CPU: on Intel
    CPUs that have it. Elsewhere MKL runs AVX2 code, and oneDNN's products
    (`onednn_product`), per-slice attention (`float32_attention`) and the threaded split of a
    few rows (Whisper's `_threaded_linear`) are the faster; on an Intel Xeon they cost 0-10 %
    more than torch's own (and the 80 MB float32 projection of one row 35 % more).
    """
    capabilities = _cpu_capabilities()
    intel = str(capabilities.get("cpu_name", "")).startswith("Intel")
    return intel and bool(capabilities.get("avx512_f", False))


@cache
def sdpa_is_faster(dtype: torch.dtype) -> bool:
    """Whether SDPA's flash kernel beats the per-slice attention loops (`float32_attention`,
    Whisper's low-precision one) for long unmasked sequences of `dtype` on this CPU.

    The kernel's products are torch's CPU BLAS: MKL in float32 (`mkl_is_fast`), and
    oneDNN's batch-reduce kernels in bfloat16/float16, fast where the CPU multiplies those in
    AMX tiles. Measured on Whisper tiny.en's encoder attention (1500 x 1500, 6 heads of 64, a
    layer at batch 8): on an AMD AVX-512 CPU the loops take half SDPA's time in either dtype;
    on an Intel Xeon with AMX, SDPA 135 against 164 ms in float32 and 50 against 88 ms in
    bfloat16.
    """
    if dtype == torch.float32:
        return mkl_is_fast()
    amx = {torch.bfloat16: "amx_bf16", torch.float16: "amx_fp16"}.get(dtype)
    return bool(amx and _cpu_capabilities().get(amx, False))


def _cpu_capabilities() -> Mapping[str, object]:
    """torch's reading of this CPU (name, instruction sets); empty on a torch without it."""
    return getattr(torch.cpu, "get_capabilities", dict)()


# below this many queries (a decoder prompt, a short clip), per-slice attention loops
# (`float32_attention`, Whisper's low-precision one) cost more than they save
PER_HEAD_MIN_QUERIES = 128


def float32_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float | None = None
) -> torch.Tensor | None:
    """softmax(q k^T * scale) v for unmasked float32 attention on CPU without autograd, one
    (batch, head) slice at a time, its two products run by oneDNN; None where that does not
    apply (another dtype or device, autograd, a torch without the op, or a CPU where SDPA is
    the faster: `sdpa_is_faster`): the caller takes SDPA. Worth it from
    `PER_HEAD_MIN_QUERIES` queries.

    torch sends float32 products to MKL, which runs its AVX2 code on this AMD CPU; SDPA's
    flash kernel computes Whisper's 1500 x 1500 encoder attention at ~170 GFLOP/s. oneDNN's
    products of a slice (q k^T, then p v, on contiguous copies of the T x Dh operands) take
    half the time: a tiny.en encoder layer's attention 23 -> 16-18 ms; AST's 1214 tokens
    1.7x at batch 8. For long sequences only: at a few hundred tokens (wav2vec2's 5 s clips)
    the per-slice calls cost what they save. One slice's scores (T x S float32) at a time;
    float32 rounding (~3e-7 from SDPA on unit-scale inputs). oneDNN builds a primitive per
    (T, S): callers whose lengths vary with the input should keep to SDPA.

    Args:
        q: (B, H, T, Dh); k, v: (B, H, S, Dh); float32, any strides.
        scale: score scale, default 1 / sqrt(Dh).

    Returns:
        (B, H, T, Dh): a view of a (B, T, H, Dh) tensor; or None.
    """
    if (
        q.dtype != torch.float32
        or q.device.type != "cpu"
        or torch.is_grad_enabled()
        or not (k.dtype == v.dtype == torch.float32)
        or sdpa_is_faster(torch.float32)
    ):
        return None
    b, h, t, dh = q.shape
    scale = dh**-0.5 if scale is None else scale
    out = q.new_empty(b, t, h, dh)
    for i in range(b):
        for j in range(h):
            # the scale on the queries (T x Dh), not on the scores (T x S)
            scores = onednn_product(q[i, j] * scale, k[i, j].contiguous())
            if scores is None:
                return None
            torch.ops.aten._softmax.out(scores, -1, False, out=scores)
            values = onednn_product(scores, v[i, j].t().contiguous())  # (T, Dh)
            if values is None:
                return None
            out[i, :, j] = values
    return out.transpose(1, 2)


def pack_linear_weight(weight: torch.Tensor) -> torch.Tensor | None:
    """`weight` (out, in), float32 or bfloat16 on the CPU, in oneDNN's blocked layout, for
    `onednn_product`; None where this torch cannot pack it.

    On a dense weight oneDNN reorders into that layout at every call: for few rows this is
    most of the cost (Whisper tiny.en's 40 MB bfloat16 projection of one row: 1.50 against
    0.48 ms packed; VITS's float32 convolutions as products 1.2-2.4x). The products are the
    same. A product's packed layout does not depend on the number of rows (a convolution's
    does). The result is an opaque oneDNN tensor, which can be neither copied nor pickled:
    its owner leaves it out of copies and packs again.
    """
    if not (
        _POINTWISE
        and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")
        and weight.device.type == "cpu"
        and weight.dtype in (torch.float32, torch.bfloat16)
    ):
        return None
    try:
        return torch.ops.mkldnn._reorder_linear_weight(weight.detach().contiguous())
    except RuntimeError:  # another torch's signature: callers keep the dense weight
        return None


_ONEDNN_MIN_ROWS = 64  # below, MKL's product is as fast (measured at 1-32 rows)
# torch runs a batch-1 1x1 convolution through oneDNN only above this many input elements
# (below, im2col and MKL: no gain)
_ONEDNN_MIN_INPUT = 20480


# the `row_bucket` of models whose lengths vary from call to call (wav2vec2's frames, CLAP's
# text tokens, Whisper's decoder passes): at most 63 padding rows, a few dozen shapes
VARYING_ROWS = 64


class Linear(nn.Linear):
    """`nn.Linear` whose forward is `linear` (oneDNN for many float32 rows); same parameters,
    same checkpoint names.

    Args:
        in_features, out_features, bias: as `nn.Linear`.
        row_bucket: see `linear` (1: no padding, for inputs of a fixed shape).
    """

    def __init__(
        self, in_features: int, out_features: int, bias: bool = True, row_bucket: int = 1,
        **kwargs: object,
    ) -> None:  # fmt: skip
        super().__init__(in_features, out_features, bias, **kwargs)  # type: ignore[arg-type]
        self.row_bucket = row_bucket

    def reset_parameters(self) -> None:
        """`nn.Linear`'s random initialisation, skipped on the meta device: models are built
        there and filled from a checkpoint, and the init runs through torch's Python
        decompositions there (~0.1 ms a layer: 8 ms of loading tiny.en)."""
        if not self.weight.is_meta:
            super().reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias, self.row_bucket)
