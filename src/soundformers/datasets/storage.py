"""Arrow files (written atomically, read memory-mapped) and storage-level helpers of `Dataset`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ..errors import DatasetError
from .features import Audio, ClassLabel, encode_column, to_arrow_type


def write_arrow(table: pa.Table, path: Path) -> None:
    """Write `table` to `path` as an Arrow IPC file, atomically (via a temporary name)."""
    tmp = path.with_name(path.name + ".tmp")
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=1000)
    tmp.replace(path)


def read_arrow(path: Path) -> pa.Table:
    """An Arrow IPC file, memory-mapped (no data is read until it is used)."""
    source = pa.memory_map(str(path), "r")
    return pa.ipc.open_file(source).read_all()


def _cast_storage(column: pa.ChunkedArray, old: Any, new: Any) -> pa.ChunkedArray:
    if isinstance(new, ClassLabel) and not isinstance(old, ClassLabel):
        values = [None if v is None else new.str2int(v) for v in column.to_pylist()]
        return pa.chunked_array([pa.array(values, pa.int64())])
    if isinstance(old, ClassLabel) and not isinstance(new, ClassLabel):
        names = [None if v is None else old.int2str(v) for v in column.to_pylist()]
        return pa.chunked_array([pa.array(names)]).cast(new.pa_type)
    if isinstance(new, Audio):
        return pa.chunked_array([encode_column(new, column.to_pylist())])
    try:
        return column.cast(to_arrow_type(new))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise DatasetError(f"cannot cast values of {old!r} to {new!r}: {e}") from e


def _stratified_test(labels: np.ndarray, n_test: int, rng: np.random.Generator) -> np.ndarray:
    """Test rows drawn per class in proportion to its size (largest remainders get the rest)."""
    classes, inverse = np.unique(labels.astype(str), return_inverse=True)
    counts = np.bincount(inverse)
    if counts.min() < 2:
        small = classes[counts < 2].tolist()
        raise DatasetError(
            f"cannot stratify: class(es) {small} have a single row; each class needs at least 2"
        )
    exact = counts * n_test / len(labels)
    take = np.floor(exact).astype(int)
    for c in np.argsort(-(exact - take), kind="stable")[: n_test - take.sum()]:
        take[c] += 1
    chosen = [rng.permutation(np.flatnonzero(inverse == c))[: take[c]] for c in range(len(classes))]
    return np.sort(np.concatenate(chosen)).astype(np.int64)
