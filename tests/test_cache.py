"""The decoder's preallocated self-attention cache: rows copied from a cache per window, and
rows reordered by beam search; the buffers a decoding loop reuses from step to step."""

from __future__ import annotations

import pytest
import torch

from soundformers.generation.cache import StaticKVCache, StepBuffers


def _filled(batch: int, value: float | None = None) -> StaticKVCache:
    cache = StaticKVCache(2, batch, 2, 10, 4)
    for buffer in (cache.k, cache.v):
        buffer.normal_() if value is None else buffer.fill_(value)
    return cache


def test_cache_rows_repeated_from_a_cache_per_window():
    source, cache = _filled(3), _filled(6, value=7.0)
    cache.repeat_rows_from(source, 2, length=6)
    for row in range(6):
        for mine, theirs in ((cache.k, source.k), (cache.v, source.v)):
            assert torch.equal(mine[:, row, :, :6], theirs[:, row // 2, :, :6])
            assert bool((mine[:, row, :, 6:] == 7.0).all())  # past `length`: untouched


@pytest.mark.parametrize(
    "index", [[0, 1, 2, 3, 4], [1, 1, 2, 0, 0], [4, 3, 2, 1, 0], [2, 2, 2, 2, 2], [0, 0, 2, 3, 1]]
)
def test_reorder_keeps_each_rows_parent(index):
    cache = _filled(5)
    before = cache.k.clone(), cache.v.clone()
    cache.reorder(torch.tensor(index), length=6)
    for buffer, old in zip((cache.k, cache.v), before):
        for row, parent in enumerate(index):
            assert torch.equal(buffer[:, row, :, :6], old[:, parent, :, :6])
        assert torch.equal(buffer[:, :, :, 6:], old[:, :, :, 6:])  # past `length`: untouched


def test_reorder_from_begin_leaves_the_shared_prompt():
    cache = _filled(3)
    before = cache.k.clone()
    cache.reorder(torch.tensor([2, 2, 0]), length=8, begin=3)
    assert torch.equal(cache.k[:, :, :, :3], before[:, :, :, :3])
    assert torch.equal(cache.k[:, 0, :, 3:8], before[:, 2, :, 3:8])
    assert torch.equal(cache.k[:, 2, :, 3:8], before[:, 0, :, 3:8])


def test_step_buffers_keep_one_storage_per_name():
    buffers = StepBuffers()
    a = buffers.get("logits", (2, 1, 10))
    assert a.shape == (2, 1, 10) and a.dtype == torch.float32 and a.is_contiguous()
    ptr = a.data_ptr()
    assert buffers.get("logits", (2, 2, 5)).data_ptr() == ptr  # same size: same memory
    assert buffers.get("logits", (1, 7)).data_ptr() == ptr  # smaller: a view of it
    assert buffers.get("margins", (2, 10)).data_ptr() != ptr  # another name, its own
    grown = buffers.get("logits", (3, 10))
    assert grown.shape == (3, 10)
    assert buffers.get("logits", (3, 10)).data_ptr() == grown.data_ptr()  # kept grown
    as_int = buffers.get("logits", (3, 10), torch.int64)
    assert as_int.dtype == torch.int64
