"""`layers.linear`: float32 products of many rows run by oneDNN (a 1x1 convolution), with
the result of `F.linear` up to float32 rounding, for any input layout, padding and autograd."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from soundformers.models import layers
from soundformers.models.layers import Linear, linear


@pytest.fixture
def two_threads():
    """torch sends a 1x1 convolution to oneDNN only with more than one thread (at one it
    takes im2col + MKL: the fallback's speed-up is then lost, its result the same)."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def _ops(fn) -> set[str]:
    with torch.profiler.profile() as prof:
        fn()
    return {event.key for event in prof.key_averages()}


@pytest.mark.parametrize("rows", [1, 63, 64, 200])
@pytest.mark.parametrize("bucket", [1, 64])
def test_linear_equals_the_plain_product(rows, bucket):
    g = torch.Generator().manual_seed(rows)
    x = torch.randn(1, rows, 400, generator=g)
    weight, bias = torch.randn(80, 400, generator=g), torch.randn(80, generator=g)
    got = linear(x, weight, bias, bucket)
    assert got.shape == (1, rows, 80) and got.is_contiguous()
    torch.testing.assert_close(got, F.linear(x, weight, bias), rtol=1e-5, atol=2e-4)


def _onednn(ops: set[str]) -> bool:
    return "mkldnn::_linear_pointwise" in ops or "aten::mkldnn_convolution" in ops


@pytest.mark.parametrize("pointwise", [True, False])
def test_many_float32_rows_go_to_onednn_and_few_or_bfloat16_do_not(
    monkeypatch, two_threads, onednn_cpu, pointwise
):
    """Through torch's oneDNN linear op, or (where it is missing) a 1x1 convolution."""
    if pointwise and not layers._POINTWISE:
        pytest.skip("this torch has no torch.ops.mkldnn._linear_pointwise")
    monkeypatch.setattr(layers, "_POINTWISE", pointwise)
    x, weight = torch.randn(2, 50, 256), torch.randn(16, 256)
    ops = _ops(lambda: linear(x, weight))  # 100 rows
    expected = "mkldnn::_linear_pointwise" if pointwise else "aten::mkldnn_convolution"
    assert expected in ops
    torch.testing.assert_close(linear(x, weight), F.linear(x, weight), rtol=1e-5, atol=1e-4)
    assert not _onednn(_ops(lambda: linear(x[:1], weight)))  # 50 rows
    half = x.to(torch.bfloat16), weight.to(torch.bfloat16)
    assert "aten::mkldnn_convolution" not in _ops(lambda: linear(*half))
    assert torch.equal(linear(*half), F.linear(*half))


def test_any_layout_and_leading_dims():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 40, 5, 240, generator=g).transpose(1, 2)  # (3, 5, 40, 240), strided
    weight = torch.randn(12, 240, generator=g)
    got = linear(x, weight, None, row_bucket=64)
    assert got.shape == (3, 5, 40, 12)
    torch.testing.assert_close(got, F.linear(x, weight), rtol=1e-5, atol=1e-4)


def test_gradients_match_the_plain_product(two_threads, onednn_cpu):
    g = torch.Generator().manual_seed(2)
    layer = Linear(240, 10, row_bucket=64)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(10, 240, generator=g))
    x = torch.randn(100, 240, generator=g, requires_grad=True)
    ops = _ops(lambda: (layer(x) ** 2).sum().backward())
    assert "aten::mkldnn_convolution" in ops  # with autograd: the convolution
    grads = x.grad.clone(), layer.weight.grad.clone(), layer.bias.grad.clone()
    x.grad = layer.weight.grad = layer.bias.grad = None
    (F.linear(x, layer.weight, layer.bias) ** 2).sum().backward()
    for got, want in zip(grads, (x.grad, layer.weight.grad, layer.bias.grad)):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-5 * float(want.abs().max()))


def test_bfloat16_rows_are_padded_to_the_bucket_and_dropped():
    """bfloat16 goes to oneDNN through torch's own product: only the bucketing applies, at
    any row count (each new row count would be a new compiled primitive)."""
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, 5, 48, generator=g).to(torch.bfloat16)
    weight = torch.randn(16, 48, generator=g).to(torch.bfloat16)
    with torch.profiler.profile(record_shapes=True) as prof:
        got = linear(x, weight, None, row_bucket=32)
    shapes = [e.input_shapes[0] for e in prof.key_averages(group_by_input_shape=True)
              if e.key == "aten::linear"]  # fmt: skip
    assert shapes == [[32, 48]]
    assert got.shape == (2, 5, 16)
    torch.testing.assert_close(got, F.linear(x, weight), atol=0, rtol=2**-7)


@torch.inference_mode()
def test_onednn_product_post_op_and_a_rejected_one():
    if not layers._POINTWISE:
        pytest.skip("this torch has no oneDNN linear op")
    rows, weight, bias = torch.randn(5, 8), torch.randn(6, 8), torch.randn(6)
    plain = F.linear(rows, weight, bias)
    torch.testing.assert_close(layers.onednn_product(rows, weight, bias, "sigmoid"),
                               torch.sigmoid(plain), atol=1e-5, rtol=1e-5)  # fmt: skip
    assert layers.onednn_product(rows, weight, bias, "exp") is None  # not an op's post-op
    torch.testing.assert_close(layers.onednn_product(rows, weight, bias), plain,
                               atol=1e-5, rtol=1e-5)  # fmt: skip


def test_intel_cpus_keep_float32_products_and_attention_on_torch(intel_cpu):
    """Where MKL runs its AVX-512 code, float32 products stay torch's own and long attention
    SDPA's (`layers.mkl_is_fast`, `layers.sdpa_is_faster`)."""
    x, weight = torch.randn(2, 50, 256), torch.randn(16, 256)
    with torch.inference_mode():
        assert not _onednn(_ops(lambda: linear(x, weight)))  # 100 rows
        assert torch.equal(linear(x, weight), F.linear(x, weight))
        q, k, v = (torch.randn(1, 2, 200, 8) for _ in range(3))
        assert layers.float32_attention(q, k, v) is None  # the caller takes SDPA


@pytest.mark.parametrize(
    ("capabilities", "mkl", "bfloat16", "float16"),
    [
        (
            {"cpu_name": "Intel Xeon", "avx512_f": True, "amx_bf16": True, "amx_fp16": True},
            True,
            True,
            True,
        ),
        ({"cpu_name": "Intel Xeon", "avx512_f": True, "avx512_bf16": True}, True, False, False),
        ({"cpu_name": "Intel Core", "avx2": True}, False, False, False),
        ({"cpu_name": "AMD EPYC", "avx512_bf16": True}, False, False, False),
        ({}, False, False, False),
    ],
)
def test_cpu_rules_follow_the_capabilities(monkeypatch, capabilities, mkl, bfloat16, float16):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: capabilities)
    for rule in (layers.mkl_is_fast, layers.sdpa_is_faster):
        rule.cache_clear()
    try:
        assert layers.mkl_is_fast() is mkl
        assert layers.sdpa_is_faster(torch.float32) is mkl
        assert layers.sdpa_is_faster(torch.bfloat16) is bfloat16
        assert layers.sdpa_is_faster(torch.float16) is float16
    finally:
        monkeypatch.undo()
        for rule in (layers.mkl_is_fast, layers.sdpa_is_faster):
            rule.cache_clear()
