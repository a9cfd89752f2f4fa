"""`Column`: one column of a `Dataset`, a lazy sequence decoded as it is read."""

from __future__ import annotations

from collections.abc import Iterator
from collections.abc import Sequence as SequenceABC
from typing import TYPE_CHECKING, Any

import numpy as np

from .decoding import SkippedRow, format_row

if TYPE_CHECKING:
    from .arrow import Dataset


class Column(SequenceABC):
    """One column of a `Dataset`, read lazily: ``len``, ``col[i]``, ``col[i:j]``, iteration
    (audio decoded on the thread pool, a batch ahead). Compares equal to a list of its values."""

    def __init__(self, dataset: Dataset, name: str):
        self._dataset = dataset
        self.name = name

    @property
    def feature(self) -> Any:
        return self._dataset._features[self.name]

    def __len__(self) -> int:
        return len(self._dataset)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, (int, np.integer)):
            return self._dataset._batch(np.array([self._dataset._position(int(key))]), [self.name])[
                self.name
            ][0]
        return self._dataset._batch(
            np.arange(*key.indices(len(self))) if isinstance(key, slice) else np.asarray(key),
            [self.name],
        )[self.name]

    def __iter__(self) -> Iterator[Any]:
        ds = self._dataset
        found: list[SkippedRow] = []
        try:
            for _, rows in ds._decoded(columns=[self.name], skipped=found):
                for row in rows:
                    yield format_row(row, ds._features, ds._format)[self.name]
        finally:
            ds._record_skipped(found, f"column {self.name!r}")

    def to_list(self) -> list[Any]:
        return list(self)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (Column, list, tuple)):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return np.asarray(self.to_list(), dtype=dtype)

    def __repr__(self) -> str:
        return f"Column({self.name!r}, {len(self)} rows, {self.feature!r})"
