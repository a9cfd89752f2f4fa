"""Decoding rows (audio on a thread pool, with a bounded read-ahead) and formatting them.

Both `Dataset` and `IterableDataset` read through `iter_decoded`: rows come in as batches of
stored values, every audio value of the next batches is submitted to a thread pool while the
current batch is consumed (decoders release the GIL), and rows whose audio fails are raised,
skipped or nulled according to their column's `Audio.on_error`.
"""

from __future__ import annotations

import os
import warnings
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, NamedTuple

from ..errors import AudioDecodeError, DatasetError
from .features import Audio, ClassLabel, Features

FORMATS = (None, "python", "numpy", "torch")


class SkippedRow(NamedTuple):
    """A row whose audio could not be decoded and that was skipped (or given None).

    Attributes:
        index: the row's index in the dataset (or position in the stream) it was read from.
        column: the audio column that failed.
        path: the stored path of that audio, if any.
        error: the decoder's message.
    """

    index: int
    column: str
    path: str | None
    error: str


class DecodeErrorsWarning(UserWarning):
    """Rows were skipped or nulled because their audio could not be decoded (on_error="skip" or
    "null"); the message names them and the dataset's `skipped` list holds the details."""


def default_workers() -> int:
    return min(8, os.cpu_count() or 1)


def _row_error(index: int, column: str, value: dict | None, error: Exception) -> AudioDecodeError:
    path = (value or {}).get("path")
    where = f"row {index}, column {column!r}" + (f", path {path}" if path else "")
    out = AudioDecodeError(f"{where}: {error}")
    out.__cause__ = error
    return out


def iter_decoded(
    batches: Iterable[tuple[list[int], list[dict[str, Any]]]],
    features: Features,
    *,
    num_workers: int | None = None,
    prefetch: int = 2,
    skipped: list[SkippedRow] | None = None,
) -> Iterator[tuple[list[int], list[dict[str, Any]]]]:
    """Decode the audio columns of batches of stored rows.

    Args:
        batches: (row indices, rows) pairs; each row a dict of stored values.
        features: the columns' features; audio columns with decode=True are decoded.
        num_workers: decoding threads (default min(8, CPUs)); 1 decodes in the calling thread.
        prefetch: batches submitted ahead of the one being consumed.
        skipped: a list that receives a `SkippedRow` for each row skipped or nulled.

    Yields:
        (row indices, rows) with audio decoded; rows skipped with on_error="skip" are left out
        of both lists.

    Raises:
        AudioDecodeError: a row's audio failed with on_error="raise"; the message names the
            row index, the column and the path.
    """
    audio = [(name, f) for name, f in features.items() if isinstance(f, Audio) and f.decode]
    if not audio:
        yield from batches
        return
    workers = num_workers or default_workers()
    if workers <= 1:
        for indices, rows in batches:
            jobs = [[_done(f.decode_example, row[name]) for name, f in audio] for row in rows]
            yield _collect(indices, rows, jobs, audio, skipped)
        return
    pending: deque[tuple[list[int], list[dict[str, Any]], list[list[Future]]]] = deque()
    with ThreadPoolExecutor(workers, thread_name_prefix="sf-decode") as pool:
        iterator = iter(batches)
        try:
            while True:
                while len(pending) <= prefetch:
                    item = next(iterator, None)
                    if item is None:
                        break
                    indices, rows = item
                    jobs = [
                        [pool.submit(f.decode_example, row[name]) for name, f in audio]
                        for row in rows
                    ]
                    pending.append((indices, rows, jobs))
                if not pending:
                    return
                indices, rows, jobs = pending.popleft()
                yield _collect(indices, rows, jobs, audio, skipped)
        finally:
            for _, _, jobs in pending:
                for row_jobs in jobs:
                    for job in row_jobs:
                        job.cancel()


def _done(fn: Any, value: Any) -> Future:
    future: Future = Future()
    try:
        future.set_result(fn(value))
    except Exception as e:  # delivered through the future, like a pool's
        future.set_exception(e)
    return future


def _collect(
    indices: list[int],
    rows: list[dict[str, Any]],
    jobs: list[list[Future]],
    audio: list[tuple[str, Audio]],
    skipped: list[SkippedRow] | None,
) -> tuple[list[int], list[dict[str, Any]]]:
    out_indices, out_rows = [], []
    for index, row, row_jobs in zip(indices, rows, jobs):
        keep = True
        decoded = dict(row)
        for (name, feature), job in zip(audio, row_jobs):
            try:
                decoded[name] = job.result()
            except AudioDecodeError as e:
                if feature.on_error == "raise":
                    raise _row_error(index, name, row[name], e) from e
                if skipped is not None:
                    skipped.append(SkippedRow(index, name, (row[name] or {}).get("path"), str(e)))
                decoded[name] = None
                keep = keep and feature.on_error == "null"
        if keep:
            out_indices.append(index)
            out_rows.append(decoded)
    return out_indices, out_rows


def warn_skipped(skipped: list[SkippedRow], where: str) -> None:
    """One warning naming the rows (at most 10) that were skipped or nulled."""
    if not skipped:
        return
    names = ", ".join(f"{s.index} ({s.path or s.column})" for s in skipped[:10])
    more = f" and {len(skipped) - 10} more" if len(skipped) > 10 else ""
    warnings.warn(
        f"{where}: {len(skipped)} row(s) whose audio could not be decoded were skipped or set to "
        f"None: {names}{more}; see the dataset's `skipped` list for the errors",
        DecodeErrorsWarning,
        stacklevel=3,
    )


# ---------------------------------------------------------------------------------------------
# Formatting: python (default), numpy, torch.


def check_format(type: str | None) -> str | None:
    if type not in FORMATS:
        raise DatasetError(f"unknown format {type!r}; expected one of {list(FORMATS)}")
    return None if type == "python" else type


def format_value(value: Any, feature: Any, fmt: str | None) -> Any:
    """One decoded value in the output format. Audio arrays are numpy in every format except
    torch; strings and paths always stay Python strings."""
    if fmt is None or value is None:
        return value
    if isinstance(feature, Audio):
        if fmt == "torch" and isinstance(value, dict) and "array" in value:
            import torch

            return {**value, "array": torch.from_numpy(value["array"])}
        return value
    if isinstance(value, (str, bytes, dict)):
        return value
    import numpy as np

    array = np.asarray(value)
    if array.dtype.kind in "OUS":
        return value
    if fmt == "numpy":
        return array[()] if array.ndim == 0 else array
    import torch

    return torch.from_numpy(np.ascontiguousarray(array)) if array.ndim else torch.tensor(array[()])


def format_row(row: dict[str, Any], features: Features, fmt: str | None) -> dict[str, Any]:
    if fmt is None:
        return row
    return {k: format_value(v, features.get(k), fmt) for k, v in row.items()}


def format_column(values: list[Any], feature: Any, fmt: str | None) -> Any:
    """A column's values (a list) in the output format: numeric columns become one array or
    tensor when their items stack, audio stays a list of dicts."""
    if fmt is None or isinstance(feature, Audio) or not values:
        return values
    import numpy as np

    try:
        array = np.asarray(values)
    except ValueError:  # ragged
        return [format_value(v, feature, fmt) for v in values]
    if array.dtype.kind in "OUS":
        return (
            values if array.dtype.kind != "O" else [format_value(v, feature, fmt) for v in values]
        )
    if fmt == "numpy":
        return array
    import torch

    return torch.from_numpy(np.ascontiguousarray(array))


def label_names(feature: Any) -> list[str] | None:
    return list(feature.names) if isinstance(feature, ClassLabel) else None
