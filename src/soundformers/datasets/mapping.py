"""`Dataset.map` and `Dataset.filter`: user code over decoded rows, in one or several processes,
with results cached by fingerprint.

A function receives rows (or batches) decoded and formatted like the dataset's own reads and
returns a dict. Columns it returns are stored (new audio values, ``{"array",
"sampling_rate"}``, are encoded as float32 wav); columns it does not return, or returns
unchanged (the very same object it was given), are taken from the stored table as they are:
audio is never decoded and re-encoded for nothing.

With ``num_proc=N`` the rows are cut into N contiguous shards, each mapped in its own process
(forked where the platform allows, so the function need not be picklable); the shards are
written as Arrow files and joined in order, so the result equals ``num_proc=1``.

When the dataset has a cache folder (it was loaded from files or from disk), the result is
written there under hash(dataset fingerprint, function, arguments) and read back, memory-mapped,
by the next identical call.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ..errors import DatasetError
from . import fingerprint as fp
from .arrow import READ_BATCH, Dataset, read_arrow, write_arrow
from .decoding import SkippedRow, format_column, format_row, warn_skipped
from .features import Audio, Features, encode_column, infer_feature, python_values


def map_dataset(
    ds: Dataset,
    function: Callable[..., Any] | None = None,
    *,
    batched: bool = False,
    batch_size: int = 1000,
    with_indices: bool = False,
    input_columns: str | list[str] | None = None,
    remove_columns: str | list[str] | None = None,
    fn_kwargs: dict[str, Any] | None = None,
    features: dict[str, Any] | None = None,
    num_proc: int | None = None,
    load_from_cache_file: bool = True,
) -> Dataset:
    """Apply `function` to every row (or batch) of `ds`.

    Args:
        ds: the dataset.
        function: ``f(row) -> dict | None`` or with ``batched=True``
            ``f(batch: dict[str, list]) -> dict[str, list]`` (a batch may come back with a
            different number of rows when every input column is removed). With `input_columns`
            it receives those columns' values as positional arguments instead; with
            `with_indices` the row index (or list of indices) follows. None keeps the rows
            (useful with `remove_columns`).
        batched: call `function` on batches of `batch_size` rows.
        batch_size: rows per batch when batched.
        with_indices: pass the row index (or indices) as the last positional argument.
        input_columns: the column(s) given to `function`.
        remove_columns: columns dropped from the output (after `function` has seen them).
        fn_kwargs: keyword arguments for `function`.
        features: features of output columns, instead of inferring them.
        num_proc: number of processes (default 1).
        load_from_cache_file: reuse a cached result of the same call when there is one.

    Returns:
        A new dataset. Rows whose audio failed under ``Audio(on_error="skip")`` are left out and
        recorded in the result's (and `ds`'s) `skipped` list.
    """
    spec = _Spec(
        ds,
        function,
        batched,
        batch_size,
        with_indices,
        input_columns,
        remove_columns,
        fn_kwargs or {},
        features or {},
    )
    key = _cache_key(ds, "map", function, spec.args(), num_proc)
    cached = _cache_file(ds, key, "map", ".arrow")
    if cached is not None and cached.exists() and load_from_cache_file:
        return _load_cached_map(ds, cached, key)
    results = _run(ds, spec, _map_shard, num_proc)
    tables = [read_arrow(Path(path)) if isinstance(path, str) else path for path, _, _ in results]
    out_features = Features.from_json(results[0][1])
    table = pa.concat_tables([t.cast(out_features.arrow_schema) for t in tables])
    skipped = [SkippedRow(*s) for _, _, found in results for s in found]
    if cached is not None:
        write_arrow(table, cached)
        cached.with_suffix(".json").write_text(json.dumps([list(s) for s in skipped]))
        table = read_arrow(cached)
    _remove_shard_files(results)
    out = Dataset(
        table,
        out_features,
        fingerprint=key or fp.random_fingerprint(),
        cache_dir=ds._cache_dir,
        format=ds._format,
    )
    ds._record_skipped(skipped, "map")
    out.skipped = list(skipped)
    return out


def _remove_shard_files(results: list[Any]) -> None:
    """Unlink the shard files of a multi-process run (a memory map keeps their data readable)."""
    for path, *_ in results:
        if isinstance(path, str):
            os.unlink(path)
            try:
                os.rmdir(os.path.dirname(path))
            except OSError:  # other shards still there
                pass


def filter_dataset(
    ds: Dataset,
    function: Callable[..., Any],
    *,
    batched: bool = False,
    batch_size: int = 1000,
    with_indices: bool = False,
    input_columns: str | list[str] | None = None,
    fn_kwargs: dict[str, Any] | None = None,
    num_proc: int | None = None,
    load_from_cache_file: bool = True,
) -> Dataset:
    """Keep the rows for which `function` returns true.

    Args: as for `map_dataset`; `function` returns a bool per row (or a list of bools per
    batch). Rows whose audio failed under ``Audio(on_error="skip")`` are dropped and recorded
    in `ds.skipped`.

    Returns:
        A dataset selecting the kept rows of `ds` (no data is copied).
    """
    spec = _Spec(
        ds, function, batched, batch_size, with_indices, input_columns, None, fn_kwargs or {}, {}
    )
    key = _cache_key(ds, "filter", function, spec.args(), num_proc)
    cached = _cache_file(ds, key, "filter", ".npy")
    if cached is not None and cached.exists() and load_from_cache_file:
        positions = np.load(cached)
    else:
        results = _run(ds, spec, _filter_shard, num_proc)
        positions = np.concatenate([np.asarray(p, dtype=np.int64) for p, _ in results])
        skipped = [SkippedRow(*s) for _, found in results for s in found]
        ds._record_skipped(skipped, "filter")
        if cached is not None:
            np.save(cached, positions)
    out = ds.select(positions)
    if key:
        out._fingerprint = key
    return out


# ---------------------------------------------------------------------------------------------


class _Spec:
    """The arguments of one map/filter call, checked once."""

    def __init__(
        self,
        ds: Dataset,
        function: Callable[..., Any] | None,
        batched: bool,
        batch_size: int,
        with_indices: bool,
        input_columns: Any,
        remove_columns: Any,
        fn_kwargs: dict[str, Any],
        features: dict[str, Any],
    ):
        self.function = function
        self.batched = batched
        if not isinstance(batch_size, int) or batch_size < 1:
            raise DatasetError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.batch_size = batch_size
        self.with_indices = with_indices
        self.input_columns = [input_columns] if isinstance(input_columns, str) else input_columns
        self.remove_columns = (
            [remove_columns] if isinstance(remove_columns, str) else list(remove_columns or [])
        )
        for c in (self.input_columns or []) + self.remove_columns:
            if c not in ds._features:
                raise DatasetError(f"no column {c!r}; the columns are {ds.column_names}")
        self.fn_kwargs = fn_kwargs
        self.features = features

    def args(self) -> tuple:
        return (
            self.batched,
            self.batch_size,
            self.with_indices,
            self.input_columns,
            self.remove_columns,
            fp.hash_value(self.fn_kwargs),
            repr(self.features),
        )

    def call(self, value: Any, index: Any) -> Any:
        if self.function is None:
            return None
        args = [value[c] for c in self.input_columns] if self.input_columns else [value]
        if self.with_indices:
            args.append(index)
        return self.function(*args, **self.fn_kwargs)

    def read_columns(self, ds: Dataset) -> list[str] | None:
        return self.input_columns if self.input_columns and self.function is not None else None


def _cache_key(
    ds: Dataset, op: str, function: Any, args: tuple, num_proc: int | None
) -> str | None:
    fn_hash = hash_function_or_none(function)
    if fn_hash is None or args[5] is None:
        return None
    return fp.combine(ds._fingerprint, op, fn_hash, args)


def hash_function_or_none(function: Any) -> str | None:
    return "identity" if function is None else fp.hash_function(function)


def _cache_file(ds: Dataset, key: str | None, op: str, suffix: str) -> Path | None:
    if key is None or ds._cache_dir is None:
        return None
    try:
        ds._cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError:  # a read-only location: run without caching
        return None
    return ds._cache_dir / f"{op}-{key}{suffix}"


def _load_cached_map(ds: Dataset, path: Path, key: str) -> Dataset:
    table = read_arrow(path)
    out = Dataset(
        table,
        Features.from_arrow_schema(table.schema),
        fingerprint=key,
        cache_dir=ds._cache_dir,
        format=ds._format,
    )
    found = path.with_suffix(".json")
    if found.exists():
        out.skipped = [SkippedRow(*s) for s in json.loads(found.read_text())]
        warn_skipped(out.skipped, "map (cached result)")
    return out


# ---------------------------------------------------------------------------------------------
# Shards: one per process; each returns something picklable.

_JOBS: dict[int, tuple[Dataset, _Spec, Callable[..., Any], list[tuple[int, int]], str]] = {}


def _run(ds: Dataset, spec: _Spec, shard_fn: Callable[..., Any], num_proc: int | None) -> list[Any]:
    n = len(ds)
    procs = max(1, min(int(num_proc or 1), n))
    bounds = [(n * k // procs, n * (k + 1) // procs) for k in range(procs)]
    if procs == 1:
        return [shard_fn(ds, spec, 0, n, None)]
    tmp = tempfile.mkdtemp(
        prefix="soundformers-map-",
        dir=ds._cache_dir if ds._cache_dir and ds._cache_dir.exists() else None,
    )
    if "fork" in multiprocessing.get_all_start_methods():
        token = id(spec)
        _JOBS[token] = (ds, spec, shard_fn, bounds, tmp)
        try:
            with multiprocessing.get_context("fork").Pool(procs) as pool:
                return pool.map(_forked_shard, [(token, k) for k in range(procs)])
        finally:
            del _JOBS[token]
    with multiprocessing.get_context("spawn").Pool(procs) as pool:
        return pool.starmap(
            shard_fn,
            [
                (ds, spec, a, b, os.path.join(tmp, f"shard-{k}.arrow"))
                for k, (a, b) in enumerate(bounds)
            ],
        )


def _forked_shard(job: tuple[int, int]) -> Any:
    ds, spec, shard_fn, bounds, tmp = _JOBS[job[0]]
    start, stop = bounds[job[1]]
    return shard_fn(ds, spec, start, stop, os.path.join(tmp, f"shard-{job[1]}.arrow"))


def _inputs(ds: Dataset, spec: _Spec, start: int, stop: int, found: list[SkippedRow]):
    """(indices, formatted value) per call of the function: a row, or a batch dict."""
    size = spec.batch_size if spec.batched else READ_BATCH
    if spec.function is None:  # nothing reads the rows: do not decode them
        for begin in range(start, stop, size):
            indices = list(range(begin, min(begin + size, stop)))
            if spec.batched:
                yield indices, {}
            else:
                yield from ((i, {}) for i in indices)
        return
    columns = spec.read_columns(ds)
    feats = ds._features
    for indices, rows in ds._decoded(size, columns, start, stop, skipped=found):
        if spec.batched:
            names = columns or ds.column_names
            batch = {c: format_column([r[c] for r in rows], feats[c], ds._format) for c in names}
            yield indices, batch
        else:
            for index, row in zip(indices, rows):
                yield index, format_row(row, feats, ds._format)


def _map_shard(ds: Dataset, spec: _Spec, start: int, stop: int, out_path: str | None):
    found: list[SkippedRow] = []
    kept_rows: list[int] = []  # positions of the output rows in ds (when 1:1 with inputs)
    new: dict[str, list[Any]] = {}
    unchanged: set[str] | None = None
    row_count_changed = False
    for index, value in _inputs(ds, spec, start, stop, found):
        result = spec.call(value, index)
        if result is None:
            result = {}
        if not isinstance(result, dict):
            raise DatasetError(
                f"the map function must return a dict or None, got {type(result).__name__}"
            )
        given = value if isinstance(value, dict) and not spec.input_columns else {}
        same = {c for c, v in result.items() if c in given and v is given[c]}
        unchanged = same if unchanged is None else unchanged & same
        if spec.batched:
            lengths = {len(v) for v in result.values()}
            if len(lengths) > 1:
                raise DatasetError(
                    f"the batched map function returned columns of different lengths: { {c: len(v) for c, v in result.items()} }"
                )
            n_out = lengths.pop() if lengths else len(index)
            row_count_changed = row_count_changed or n_out != len(index)
            kept_rows.extend(index)
            for c, v in result.items():
                new.setdefault(c, []).extend(v)
        else:
            kept_rows.append(index)
            for c, v in result.items():
                new.setdefault(c, []).append(v)
    unchanged = unchanged or set()
    for c in unchanged:
        new.pop(c, None)
    keep = [c for c in ds.column_names if c not in spec.remove_columns and c not in new]
    if row_count_changed and keep:
        raise DatasetError(
            f"the batched map function changed the number of rows, so the input columns {keep} "
            "cannot be kept beside its output: pass remove_columns=" + repr(keep)
        )
    lengths = {len(v) for v in new.values()}
    if len(lengths) > 1:
        raise DatasetError(
            f"the map function did not return every column for every row: { {c: len(v) for c, v in new.items()} }"
        )
    features = Features()
    arrays = []
    if keep:
        kept = ds._rows(np.asarray(kept_rows, dtype=np.int64), keep)
        for c in keep:
            features[c] = ds._features[c]
            arrays.append(kept.column(c))
    for c, values in new.items():
        features[c] = _output_feature(c, values, ds._features.get(c), spec.features.get(c))
        arrays.append(
            encode_column(
                features[c], values if isinstance(features[c], Audio) else python_values(values)
            )
        )
    n_rows = len(kept_rows) if not new else len(next(iter(new.values())))
    table = (
        pa.Table.from_arrays(arrays, schema=features.arrow_schema)
        if arrays
        else pa.table({"_": pa.nulls(n_rows)}).drop(["_"])
    )
    skipped = [tuple(s) for s in found]
    if out_path is None:
        return table, features.to_json(), skipped
    write_arrow(table, Path(out_path))
    return out_path, features.to_json(), skipped


def _output_feature(name: str, values: list[Any], old: Any, declared: Any) -> Any:
    if declared is not None:
        return declared
    if isinstance(old, Audio):
        return old if any(isinstance(v, dict) for v in values) else infer_feature(values)
    inferred = infer_feature(values)
    if old is not None and type(old) is type(inferred) and not isinstance(old, dict):
        try:
            encode_column(old, python_values(values[:1]))
            return old
        except (DatasetError, pa.ArrowInvalid, pa.ArrowTypeError):
            return inferred
    return inferred


def _filter_shard(ds: Dataset, spec: _Spec, start: int, stop: int, out_path: str | None):
    found: list[SkippedRow] = []
    keep: list[int] = []
    for index, value in _inputs(ds, spec, start, stop, found):
        result = spec.call(value, index)
        if spec.batched:
            flags = list(result)
            if len(flags) != len(index):
                raise DatasetError(
                    f"the batched filter function returned {len(flags)} flags for {len(index)} rows"
                )
            keep.extend(i for i, f in zip(index, flags) if f)
        elif result:
            keep.append(index)
    return keep, [tuple(s) for s in found]
