"""The one place that turns pipeline inputs into `Waveform`s at the model's rate.

Task pipelines never decode audio themselves: they receive `Waveform`s (or an error for the
item) from `decode_items`, which accepts every form `soundformers.load_audio` does and decodes
a batch on a thread pool.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from typing import Any

from ..audio.io import Waveform, load_audio
from ..errors import AudioDecodeError

# Objects that are one input even though they can be iterated.
_SINGLE_TYPES: tuple[type, ...] = (str, bytes, bytearray, memoryview, dict, os.PathLike)


def is_single_input(inputs: Any) -> bool:
    """True for one audio input, False for a list/tuple/iterable of them.

    Arrays and tensors are single inputs (a batch of equal-length arrays is passed as a list), and
    so are paths, URLs, bytes, file objects and dataset rows (dicts).
    """
    if isinstance(inputs, _SINGLE_TYPES) or hasattr(inputs, "read"):
        return True
    if hasattr(inputs, "shape") and hasattr(inputs, "dtype"):  # numpy array or torch tensor
        return True
    return not isinstance(inputs, Iterable)


def batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Consecutive lists of `size` items (the last may be shorter), read lazily."""
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def decode_items(
    items: list[Any],
    sampling_rate: int,
    *,
    start_index: int = 0,
    num_workers: int | None = None,
) -> list[Waveform | AudioDecodeError]:
    """Decode a batch of inputs to mono float32 at `sampling_rate`, on a thread pool.

    Args:
        items: inputs, each anything `load_audio` accepts. A bare array is taken to be at
            `sampling_rate` (it carries no rate of its own); pass a dict
            ``{"array": samples, "sampling_rate": rate}`` to have it resampled.
        sampling_rate: the rate the model expects, in Hz.
        start_index: the index of items[0] in the whole input, used in error messages.
        num_workers: decoding threads; default min(8, CPUs).

    Returns:
        For each item, in order: its Waveform (samples of shape (time,)), or the
        AudioDecodeError it raised, its message prefixed with the item's index.
    """

    def one(position: int) -> Waveform | AudioDecodeError:
        try:
            return load_audio(items[position], sampling_rate=sampling_rate)
        except AudioDecodeError as e:
            error = type(e)(f"input {start_index + position}: {e}")
            error.__cause__ = e
            return error

    workers = min(num_workers or min(8, os.cpu_count() or 1), len(items))
    if workers <= 1:
        return [one(i) for i in range(len(items))]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, range(len(items))))
