"""A preallocated key/value cache for decoder self-attention (gpt-fast style).

Keys and values of every layer live in one tensor each, `(layers, batch, heads, max_len,
head_dim)`, allocated once. A decode step writes its new positions with `update(layer,
input_pos, k, v)` and attends over the whole buffer under a mask: nothing grows, nothing is
concatenated.
"""

from __future__ import annotations

import math

import torch

__all__ = ["StaticKVCache", "StepBuffers"]


class StaticKVCache:
    """Self-attention keys and values for `n_layers` layers, preallocated to `max_len`.

    Attributes:
        k, v: (n_layers, batch, n_heads, max_len, head_dim).
    """

    def __init__(
        self,
        n_layers: int,
        batch_size: int,
        n_heads: int,
        max_len: int,
        head_dim: int,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        shape = (n_layers, batch_size, n_heads, max_len, head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)

    @property
    def batch_size(self) -> int:
        return self.k.shape[1]

    @property
    def max_len(self) -> int:
        return self.k.shape[3]

    def update(
        self, layer: int, input_pos: torch.Tensor, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write keys/values at `input_pos` and return the layer's full buffers.

        Args:
            layer: layer index.
            input_pos: (T,) int64 positions being written.
            k, v: (batch, n_heads, T, head_dim).

        Returns:
            The layer's keys and values, (batch, n_heads, max_len, head_dim) each (views).
        """
        k_all, v_all = self.k[layer], self.v[layer]
        k_all.index_copy_(2, input_pos, k)
        v_all.index_copy_(2, input_pos, v)
        return k_all, v_all

    def repeat_rows_from(self, source: StaticKVCache, repeats: int, length: int) -> None:
        """Fill positions `[0, length)` of every row from `source`, whose row r becomes rows
        r*repeats .. r*repeats + repeats-1 here (a prompt run once per audio window, then
        continued by its beams or samples).

        Args:
            source: a cache of `batch_size // repeats` rows, same layers, heads and dtype.
            repeats: rows per source row.
            length: positions filled in `source`.
        """
        for mine, theirs in ((self.k, source.k), (self.v, source.v)):
            rows = mine[:, :, :, :length].unflatten(1, (source.batch_size, repeats))
            rows.copy_(theirs[:, :, None, :, :length])

    def reorder(self, index: torch.Tensor, length: int | None = None, begin: int = 0) -> None:
        """Keep batch rows `index` (beam search: each surviving beam's parent), in place.

        Args:
            index: (batch,) int64 source row for each row.
            length: only positions `[0, length)` hold data yet; the rest is not copied.
            begin: positions before this are the same in a row and its parent (the prompt
                its beams share): not copied either.
        """
        length = self.max_len if length is None else length
        # only rows that take another row's keys and values are written (beam search of 5
        # moves two thirds of them at a step where any moves), each from a copy of its parent
        # taken before any is written; row by row, as slices: `index_select` and `index_copy_`
        # over the batch dimension of these strided views took 5x as long
        parents = index.tolist()
        moved = [(row, parent) for row, parent in enumerate(parents) if parent != row]
        for buffer in (self.k, self.v):
            filled = buffer[:, :, :, begin:length]
            copies = {parent: filled[:, parent].clone() for _, parent in moved}
            for row, parent in moved:
                filled[:, row].copy_(copies[parent])


class StepBuffers:
    """Tensors a decoding loop reuses from one step to the next, by name.

    A new vocabulary-sized tensor at every step (a batch's logits, or a pass over them: 1.7
    MB in float32 at batch 8 for Whisper's 51 864 tokens) costs its pages again: glibc gives
    such blocks back to the system when they are freed and the next one faults its pages
    in anew. Three of them took ~1.1 ms of a 13 ms bfloat16 batch-8 step (tiny.en, in a
    profile), the same passes over kept buffers a third of that.

    A tensor from `get` stays valid until the next `get` of the same name.
    """

    def __init__(self) -> None:
        self._kept: dict[str, torch.Tensor] = {}

    def get(
        self,
        name: str,
        shape: tuple[int, ...],
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """An uninitialised contiguous tensor of `shape`, on the storage kept for `name` (a
        larger one when it does not fit, or another dtype or device)."""
        numel = math.prod(shape)
        device = torch.device("cpu") if device is None else torch.device(device)
        kept = self._kept.get(name)
        if kept is None or kept.numel() < numel or kept.dtype != dtype or kept.device != device:
            kept = self._kept[name] = torch.empty(numel, dtype=dtype, device=device)
        return kept[:numel].view(shape)
