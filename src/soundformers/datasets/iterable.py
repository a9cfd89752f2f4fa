"""`IterableDataset`: a stream of rows read lazily from files, decoded on a thread pool.

Transforms are recorded, not run: each returns a new IterableDataset with one more step, and
every iteration replays the steps over a fresh read of the source. Steps that do not look at
audio (`shuffle`, `skip`, `take`, renames, removals, casts) run on the stored rows, so skipped
or shuffled rows are never decoded; audio is decoded, a batch ahead on a thread pool, just
before the first step that reads it (`map`, `filter`, `batch`) or the output. Only a bounded
number of rows is held at any time (shuffle buffer + read-ahead), so memory stays flat however
long the stream.

Inside a torch DataLoader with workers, worker k of n reads the stream and decodes only the
rows whose position is k modulo n, so every row is yielded once.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from itertools import islice
from typing import Any

import numpy as np
import pyarrow as pa

from ..errors import DatasetError
from .decoding import (
    SkippedRow,
    check_format,
    format_column,
    format_row,
    iter_decoded,
    warn_skipped,
)
from .features import Features

DECODE_BATCH = 32
_DECODED_STEPS = ("map", "filter", "batch")


class IterableDataset:
    """A lazily read stream of rows (from ``load_dataset(..., streaming=True)``).

    Args:
        features: the columns' features.
        source: a callable returning a fresh iterator of Arrow record batches of stored rows.

    Attributes:
        skipped: rows whose audio failed under ``Audio(on_error="skip" | "null")`` in the last
            iterations, as `SkippedRow` records (index = position in the stream).
    """

    def __init__(
        self,
        features: Features,
        source: Callable[[], Iterator[pa.RecordBatch]],
        *,
        steps: tuple = (),
        format: str | None = None,
        root: Features | None = None,
    ):
        self._features = Features(features) if features is not None else None
        self._root = Features(root if root is not None else features)
        self._source = source
        self._steps = steps
        self._format = check_format(format)
        self.skipped: list[SkippedRow] = []
        if self._format == "torch":
            from torch.utils.data import IterableDataset as TorchIterable

            TorchIterable.register(IterableDataset)

    def _with(
        self, step: tuple | None = None, *, features: Any = ..., format: Any = ...
    ) -> IterableDataset:
        return IterableDataset(
            self._features if features is ... else features,
            self._source,
            steps=self._steps + ((step,) if step else ()),
            format=self._format if format is ... else format,
            root=self._root,
        )

    @property
    def features(self) -> Features | None:
        """The columns' features; None after a `map` whose output was not declared."""
        return None if self._features is None else Features(self._features)

    @property
    def column_names(self) -> list[str] | None:
        return None if self._features is None else list(self._features)

    def __repr__(self) -> str:
        return f"IterableDataset(features={dict(self._features or {})!r}, steps={len(self._steps)})"

    # -- transforms ----------------------------------------------------------------------------

    def map(
        self,
        function: Callable[..., Any] | None = None,
        *,
        batched: bool = False,
        batch_size: int = 1000,
        with_indices: bool = False,
        input_columns: str | list[str] | None = None,
        remove_columns: str | list[str] | None = None,
        fn_kwargs: dict | None = None,
        features: dict | None = None,
    ) -> IterableDataset:
        """Apply `function` lazily, as `Dataset.map` does (the output row is the input row
        updated with what it returns, minus `remove_columns`)."""
        remove = [remove_columns] if isinstance(remove_columns, str) else list(remove_columns or [])
        cols = [input_columns] if isinstance(input_columns, str) else input_columns
        step = ("map", function, batched, batch_size, with_indices, cols, remove, fn_kwargs or {})
        new = None
        if self._features is not None and features is not None:
            new = Features({k: v for k, v in self._features.items() if k not in remove})
            new.update(features)
        elif self._features is not None and function is None:
            new = Features({k: v for k, v in self._features.items() if k not in remove})
        return self._with(step, features=new)

    def filter(
        self,
        function: Callable[..., Any],
        *,
        batched: bool = False,
        batch_size: int = 1000,
        with_indices: bool = False,
        input_columns: str | list[str] | None = None,
        fn_kwargs: dict | None = None,
    ) -> IterableDataset:
        cols = [input_columns] if isinstance(input_columns, str) else input_columns
        return self._with(
            ("filter", function, batched, batch_size, with_indices, cols, fn_kwargs or {})
        )

    def shuffle(self, seed: int | None = None, buffer_size: int = 1000) -> IterableDataset:
        """Rows in a random order drawn through a buffer of `buffer_size` rows (deterministic
        for a seed); memory grows with the buffer, not the stream."""
        if buffer_size < 1:
            raise DatasetError(f"buffer_size must be >= 1, got {buffer_size}")
        return self._with(("shuffle", seed, buffer_size))

    def take(self, n: int) -> IterableDataset:
        return self._with(("take", int(n)))

    def skip(self, n: int) -> IterableDataset:
        return self._with(("skip", int(n)))

    def batch(self, batch_size: int, drop_last_batch: bool = False) -> IterableDataset:
        """Yield dicts of column lists (formatted) of `batch_size` rows instead of rows."""
        return self._with(("batch", int(batch_size), drop_last_batch))

    def rename_column(self, old: str, new: str) -> IterableDataset:
        return self.rename_columns({old: new})

    def rename_columns(self, mapping: dict[str, str]) -> IterableDataset:
        self._check_columns(list(mapping))
        feats = (
            None
            if self._features is None
            else Features({mapping.get(k, k): v for k, v in self._features.items()})
        )
        return self._with(("rename", dict(mapping)), features=feats)

    def remove_columns(self, columns: str | list[str]) -> IterableDataset:
        columns = [columns] if isinstance(columns, str) else list(columns)
        self._check_columns(columns)
        feats = (
            None
            if self._features is None
            else Features({k: v for k, v in self._features.items() if k not in columns})
        )
        return self._with(("remove", columns), features=feats)

    def cast_column(self, column: str, feature: Any) -> IterableDataset:
        """Change a column's feature (e.g. ``Audio(sampling_rate=16000)``); must come before
        any map, filter or batch step."""
        self._check_columns([column])
        if any(s[0] in _DECODED_STEPS for s in self._steps):
            raise DatasetError(
                "cast_column must come before map/filter/batch on a streaming dataset"
            )
        feats = Features({k: (feature if k == column else v) for k, v in self._features.items()})
        return self._with(("cast", column, feature), features=feats)

    def with_format(self, type: str | None = None) -> IterableDataset:
        """Rows as Python objects (None), numpy arrays or torch tensors. "torch" also makes this
        class count as a `torch.utils.data.IterableDataset` (a virtual subclass), so a
        DataLoader streams it instead of indexing it."""
        return self._with(None, format=check_format(type))

    def _check_columns(self, columns: list[str]) -> None:
        if self._features is not None:
            for c in columns:
                if c not in self._features:
                    raise DatasetError(f"no column {c!r}; the columns are {list(self._features)}")

    # -- iteration -----------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Any]:
        found: list[SkippedRow] = []
        stream: Iterator[tuple[int, dict]] = self._stored_rows()
        features = self._root
        decoded = False
        try:
            for step in self._steps:
                kind = step[0]
                if kind in _DECODED_STEPS and not decoded:
                    stream, decoded = self._decode(stream, features, found), True
                if kind == "cast":
                    features = Features(
                        {k: (step[2] if k == step[1] else v) for k, v in features.items()}
                    )
                elif kind == "rename":
                    features = Features({step[1].get(k, k): v for k, v in features.items()})
                elif kind == "remove":
                    features = Features({k: v for k, v in features.items() if k not in step[1]})
                stream = _apply(step, stream, self._format, features)
            if not decoded:
                stream = self._decode(stream, features, found)
            final = self._features if self._features is not None else Features()
            for _, item in stream:
                if isinstance(item, _Batch):
                    yield item.data
                else:
                    yield format_row(item, final, self._format)
        finally:
            self.skipped.extend(found)
            warn_skipped(found, "streaming iteration")

    def _stored_features(self) -> Features:
        feats = self._features
        # the features at the source: undo the recorded column steps
        for step in reversed(self._steps):
            if step[0] == "cast" and feats is not None:
                pass
        return self._source_features()

    def _source_features(self) -> Features:
        return self._root_features

    def _stored_rows(self) -> Iterator[tuple[int, dict]]:
        index = 0
        for batch in self._source():
            for row in batch.to_pylist():
                yield index, row
                index += 1

    def _decode(
        self, stream: Iterator[tuple[int, dict]], features: Features, found: list[SkippedRow]
    ) -> Iterator[tuple[int, dict]]:
        stream = _worker_shard(stream)

        def chunks() -> Iterator[tuple[list[int], list[dict]]]:
            while chunk := list(islice(stream, DECODE_BATCH)):
                yield [i for i, _ in chunk], [r for _, r in chunk]

        for indices, rows in iter_decoded(chunks(), features, skipped=found):
            yield from zip(indices, rows)


class _Batch:
    __slots__ = ("data",)

    def __init__(self, data: dict[str, Any]):
        self.data = data


def _worker_shard(stream: Iterator[tuple[int, dict]]) -> Iterator[tuple[int, dict]]:
    """In a torch DataLoader worker, only this worker's share of the rows."""
    if "torch" not in sys.modules:
        return stream
    from torch.utils.data import get_worker_info

    info = get_worker_info()
    if info is None or info.num_workers <= 1:
        return stream
    return (item for position, item in enumerate(stream) if position % info.num_workers == info.id)


def _apply(
    step: tuple, stream: Iterator[tuple[int, dict]], fmt: str | None, features: Features
) -> Iterator[tuple[int, Any]]:
    kind = step[0]
    if kind == "take":
        return islice(stream, step[1])
    if kind == "skip":
        return islice(stream, step[1], None)
    if kind == "shuffle":
        return _shuffle(stream, step[1], step[2])
    if kind == "rename":
        return ((i, {step[1].get(k, k): v for k, v in row.items()}) for i, row in stream)
    if kind == "remove":
        return ((i, {k: v for k, v in row.items() if k not in step[1]}) for i, row in stream)
    if kind == "cast":
        return stream
    if kind == "map":
        return _map(stream, *step[1:], fmt=fmt, features=features)
    if kind == "filter":
        return _filter(stream, *step[1:], fmt=fmt, features=features)
    if kind == "batch":
        return _batches(stream, step[1], step[2], fmt, features)
    raise DatasetError(f"unknown step {kind!r}")


def _shuffle(
    stream: Iterator[tuple[int, dict]], seed: int | None, size: int
) -> Iterator[tuple[int, dict]]:
    rng = np.random.default_rng(seed)
    buffer: list[tuple[int, dict]] = []
    for item in stream:
        if len(buffer) < size:
            buffer.append(item)
            continue
        k = int(rng.integers(size))
        yield buffer[k]
        buffer[k] = item
    for k in rng.permutation(len(buffer)):
        yield buffer[k]


def _call(
    function: Callable,
    value: Any,
    index: Any,
    with_indices: bool,
    cols: list[str] | None,
    kwargs: dict,
) -> Any:
    args = [value[c] for c in cols] if cols else [value]
    if with_indices:
        args.append(index)
    return function(*args, **kwargs)


def _rows_in_batches(stream: Iterator[tuple[int, dict]], size: int):
    while chunk := list(islice(stream, size)):
        yield [i for i, _ in chunk], [r for _, r in chunk]


def _map(
    stream, function, batched, batch_size, with_indices, cols, remove, kwargs, *, fmt, features
):
    if function is None:
        yield from ((i, {k: v for k, v in r.items() if k not in remove}) for i, r in stream)
        return
    if not batched:
        for index, row in stream:
            result = (
                _call(function, format_row(row, features, fmt), index, with_indices, cols, kwargs)
                or {}
            )
            out = {k: v for k, v in row.items() if k not in remove}
            out.update(result)
            yield index, out
        return
    for indices, rows in _rows_in_batches(stream, batch_size):
        batch = {c: format_column([r.get(c) for r in rows], features.get(c), fmt) for c in rows[0]}
        result = _call(function, batch, indices, with_indices, cols, kwargs) or {}
        lengths = {len(v) for v in result.values()}
        n = lengths.pop() if len(lengths) == 1 else (len(rows) if not lengths else -1)
        if n < 0:
            raise DatasetError(
                f"the batched map function returned columns of different lengths: "
                f"{ {c: len(v) for c, v in result.items()} }"
            )
        keep = [c for c in rows[0] if c not in remove and c not in result]
        if n != len(rows) and keep:
            raise DatasetError(
                f"the batched map function changed the number of rows, so the input "
                f"columns {keep} cannot be kept: pass remove_columns={keep!r}"
            )
        for j in range(n):
            out = {c: rows[j][c] for c in keep}
            out.update({c: v[j] for c, v in result.items()})
            yield (indices[j] if j < len(indices) else indices[-1]), out


def _filter(stream, function, batched, batch_size, with_indices, cols, kwargs, *, fmt, features):
    if not batched:
        for index, row in stream:
            if _call(function, format_row(row, features, fmt), index, with_indices, cols, kwargs):
                yield index, row
        return
    for indices, rows in _rows_in_batches(stream, batch_size):
        batch = {c: format_column([r.get(c) for r in rows], features.get(c), fmt) for c in rows[0]}
        flags = list(_call(function, batch, indices, with_indices, cols, kwargs))
        yield from ((i, r) for i, r, f in zip(indices, rows, flags) if f)


def _batches(stream, size, drop_last, fmt, features):
    for indices, rows in _rows_in_batches(stream, size):
        if drop_last and len(rows) < size:
            return
        data = {c: format_column([r.get(c) for r in rows], features.get(c), fmt) for c in rows[0]}
        yield indices[0], _Batch(data)
