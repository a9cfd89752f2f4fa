"""Rows that share an audio window (beams, best-of samples) share its cross-attention keys and
values: `cross_attention` over A windows for A * G rows (the prompt that runs once per window
and is copied to its rows: `tests/test_cache.py`)."""

from __future__ import annotations

import pytest
import torch

from soundformers.models.whisper.load import load_model
from soundformers.models.whisper.model import attention, cross_attention

from .test_parity import _mel


@pytest.mark.parametrize("t", [1, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_grouped_cross_attention_equals_each_row_on_its_window(onednn_cpu, t, dtype):
    """The explicit products' route (SDPA's, on CPUs with AMX: `test_step_formats`)."""
    g = torch.Generator().manual_seed(0)
    a, group, h, s, dh = 3, 4, 2, 50, 8
    k = torch.randn(a, h, s, dh, generator=g).to(dtype)
    v = torch.randn(a, h, s, dh, generator=g).to(dtype)
    # queries as the decoder makes them: heads split from (B, T, D), a strided view
    q = torch.randn(a * group, t, h * dh, generator=g).to(dtype)
    q = q.view(a * group, t, h, dh).transpose(1, 2)
    out = cross_attention(q, k, v)
    assert out.shape == (a * group, h, t, dh) and out.dtype == dtype
    for row in range(a * group):  # row r attends to window r // group, and to no other
        window = row // group
        q_row, k_row, v_row = q[row : row + 1], k[window : window + 1], v[window : window + 1]
        # the one-query form (`attention`'s for T = 1): float32 softmax, weights in v's dtype
        expected = (q_row @ k_row.transpose(-1, -2)).softmax(-1, dtype=torch.float32)
        expected = expected.to(dtype) @ v_row
        if t == 1:
            assert torch.equal(expected, attention(q_row, k_row, v_row, scale=1.0))
        tolerance = {"atol": 1e-6, "rtol": 1e-5} if dtype == torch.float32 else {}
        torch.testing.assert_close(out[row : row + 1], expected, **tolerance)


def test_cross_attention_with_a_row_per_window_is_attention():
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(2, 2, 1, 8, generator=g) for _ in range(3))
    assert torch.equal(cross_attention(q, k, v), attention(q, k, v, scale=1.0))


def test_rows_that_do_not_group_over_the_windows_are_refused():
    q, k = torch.zeros(5, 2, 1, 8), torch.zeros(2, 2, 10, 8)
    with pytest.raises(ValueError, match="groups"):
        cross_attention(q, k, k)


def test_a_step_over_shared_windows_equals_a_step_over_a_copy_per_row(tiny_english):
    """A decode step of 6 rows over 2 windows' keys and values gives the logits of the same
    step over a copy per row (the encoder output repeated: the path before rows shared)."""
    model = load_model(tiny_english.folder).model
    with torch.inference_mode():
        encoder_out = model.encode(_mel(2, seed=5))
        shared = model.cross_kv(encoder_out)
        per_row = model.cross_kv(encoder_out.repeat_interleave(3, 0))
        prompt = torch.tensor([[50257, 50362, 440, 1000]]).expand(6, -1)
        cache = model.new_cache(6, 16)
        model.decode_step(prompt, per_row, cache, torch.arange(4))
        tokens = torch.tensor([[11], [12], [13], [14], [15], [16]])
        pos = torch.tensor([4])
        ours = model.decode_step(tokens, shared, cache, pos)
        theirs = model.decode_step(tokens, per_row, cache, pos)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(ours[0], ours[3], atol=1e-3)  # the two windows differ
