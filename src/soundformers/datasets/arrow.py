"""`Dataset`: rows in a pyarrow Table, audio decoded on access.

The table holds stored values (audio as ``{bytes, path}``); `features` says how to show them.
Selections (`select`, `filter`, `shuffle`, splits) record an indices array instead of copying
rows, so they are instant even on a memory-mapped table larger than RAM. Every dataset carries a
fingerprint naming its content and history; `map` results are cached under it (see mapping.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from ..errors import DatasetError
from . import fingerprint as fp
from .column import Column
from .decoding import (
    SkippedRow,
    check_format,
    format_column,
    format_row,
    iter_decoded,
    warn_skipped,
)
from .features import Audio, Features, encode_column, infer_feature, python_values
from .storage import _cast_storage, _stratified_test, read_arrow, write_arrow

if TYPE_CHECKING:
    from .dict import DatasetDict

READ_BATCH = 64  # rows decoded together while iterating


class Dataset:
    """Rows of named columns, stored in Arrow, decoded on access.

    Build one with `from_dict`, `from_list`, `from_pandas`, `load_dataset` or `load_from_disk`.

    Indexing: ``ds[i]`` is a row (dict); ``ds[i:j]`` and ``ds[[i, j]]`` are a batch (dict of
    column lists); ``ds["column"]`` is a `Column`, a lazy sequence that decodes as it is read
    (``pipe(ds["audio"])`` streams through it). Iterating yields rows.

    Attributes:
        skipped: rows whose audio failed to decode under ``Audio(on_error="skip" | "null")``,
            as `SkippedRow` records (index, column, path, error), added as they are met.
    """

    def __init__(
        self,
        table: pa.Table,
        features: Features | Mapping[str, Any] | None = None,
        *,
        indices: np.ndarray | None = None,
        fingerprint: str | None = None,
        cache_dir: str | Path | None = None,
        format: str | None = None,
    ):
        self._table = table
        self._features = (
            Features(features) if features is not None else Features.from_arrow_schema(table.schema)
        )
        missing = [c for c in table.column_names if c not in self._features]
        if missing:
            raise DatasetError(f"features do not describe the column(s) {missing}")
        self._indices = None if indices is None else np.asarray(indices, dtype=np.int64)
        self._fingerprint = fingerprint or fp.random_fingerprint()
        self._cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._format = check_format(format)
        self.skipped: list[SkippedRow] = []

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def from_dict(
        cls, mapping: Mapping[str, list[Any]], features: Mapping[str, Any] | None = None
    ) -> Dataset:
        """A dataset from ``{column: values}``.

        Args:
            mapping: column name -> list of values (all the same length).
            features: column name -> feature for some or all columns; the rest are inferred.
                An `Audio` column accepts paths, bytes, ``{"path", "bytes"}`` or
                ``{"array", "sampling_rate"}``; a `ClassLabel` column accepts names or ids.
        """
        lengths = {len(v) for v in mapping.values()}
        if len(lengths) > 1:
            raise DatasetError(
                f"columns have different lengths: { {k: len(v) for k, v in mapping.items()} }"
            )
        declared = dict(features or {})
        out = Features()
        arrays = []
        for name, values in mapping.items():
            values = list(values)
            feature = declared.get(name) or infer_feature(values)
            if not isinstance(feature, Audio):
                values = python_values(values)
            out[name] = feature
            arrays.append(encode_column(feature, values))
        table = pa.Table.from_arrays(arrays, schema=out.arrow_schema) if arrays else pa.table({})
        return cls(table, out)

    @classmethod
    def from_list(
        cls, rows: list[Mapping[str, Any]], features: Mapping[str, Any] | None = None
    ) -> Dataset:
        """A dataset from a list of row dicts (columns: the union of their keys, in order met)."""
        names: dict[str, None] = {}
        for row in rows:
            names.update(dict.fromkeys(row))
        return cls.from_dict({n: [row.get(n) for row in rows] for n in names}, features)

    @classmethod
    def from_pandas(cls, df: Any, features: Mapping[str, Any] | None = None) -> Dataset:
        """A dataset from a pandas DataFrame (its index is dropped)."""
        return cls.from_dict({str(c): df[c].tolist() for c in df.columns}, features)

    @classmethod
    def from_hf(cls, hf_dataset: Any) -> Dataset:
        """A dataset from a `datasets.Dataset` of the datasets library (its Arrow data is shared,
        its Audio features become ours). See interop.py."""
        from .interop import from_hf

        return from_hf(hf_dataset)

    def to_hf(self) -> Any:
        """This dataset as a `datasets.Dataset` (needs the datasets library). See interop.py."""
        from .interop import to_hf

        return to_hf(self)

    def _derive(
        self,
        *,
        table: pa.Table | None = None,
        features: Features | None = None,
        indices: Any = ...,
        fingerprint: str,
        format: Any = ...,
    ) -> Dataset:
        out = Dataset(
            self._table if table is None else table,
            self._features if features is None else features,
            indices=self._indices if indices is ... else indices,
            fingerprint=fingerprint,
            cache_dir=self._cache_dir,
            format=self._format if format is ... else format,
        )
        return out

    # -- description -------------------------------------------------------------------------

    @property
    def features(self) -> Features:
        return Features(self._features)

    @property
    def column_names(self) -> list[str]:
        return list(self._features)

    @property
    def num_rows(self) -> int:
        return len(self)

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    @property
    def format(self) -> str | None:
        return self._format

    @property
    def data(self) -> pa.Table:
        """The rows as stored (selections applied), as a pyarrow Table."""
        return self._table if self._indices is None else self._table.take(self._indices)

    def __len__(self) -> int:
        return self._table.num_rows if self._indices is None else len(self._indices)

    def __repr__(self) -> str:
        return f"Dataset(num_rows={len(self)}, features={dict(self._features)!r})"

    # -- reading -----------------------------------------------------------------------------

    def _rows(self, positions: np.ndarray | slice, columns: list[str] | None = None) -> pa.Table:
        table = self._table if columns is None else self._table.select(columns)
        if isinstance(positions, slice) and self._indices is None:
            start, stop, _ = positions.indices(len(self))
            return table.slice(start, max(0, stop - start))
        if isinstance(positions, slice):
            positions = np.arange(*positions.indices(len(self)))
        rows = positions if self._indices is None else self._indices[positions]
        return table.take(pa.array(rows, type=pa.int64()))

    def _position(self, key: int) -> int:
        n = len(self)
        if not -n <= key < n:
            raise IndexError(f"row {key} out of range for a dataset of {n} rows")
        return key % n

    def _stored_batches(
        self,
        batch_size: int,
        columns: list[str] | None = None,
        start: int = 0,
        stop: int | None = None,
    ) -> Iterator[tuple[list[int], list[dict]]]:
        stop = len(self) if stop is None else stop
        for begin in range(start, stop, batch_size):
            end = min(begin + batch_size, stop)
            yield list(range(begin, end)), self._rows(slice(begin, end), columns).to_pylist()

    def _decoded(
        self,
        batch_size: int = READ_BATCH,
        columns: list[str] | None = None,
        start: int = 0,
        stop: int | None = None,
        skipped: list[SkippedRow] | None = None,
    ) -> Iterator[tuple[list[int], list[dict]]]:
        features = (
            self._features if columns is None else Features({c: self._features[c] for c in columns})
        )
        return iter_decoded(
            self._stored_batches(batch_size, columns, start, stop), features, skipped=skipped
        )

    def _record_skipped(self, found: list[SkippedRow], where: str) -> None:
        known = {(s.index, s.column) for s in self.skipped}
        self.skipped.extend(s for s in found if (s.index, s.column) not in known)
        warn_skipped(found, where)

    def _decode_one(self, position: int) -> dict[str, Any]:
        found: list[SkippedRow] = []
        batch = self._stored_batches(1, None, position, position + 1)
        indices, rows = next(iter_decoded(batch, self._features, num_workers=1, skipped=found))
        self._record_skipped(found, f"row {position}")
        if not rows:
            raise DatasetError(
                f"row {position} has undecodable audio and its Audio feature says "
                f"on_error='skip': {found[0].error}"
            )
        return rows[0]

    def __getitem__(self, key: int | slice | str | list[int] | np.ndarray) -> Any:
        if isinstance(key, str):
            if key not in self._features:
                raise KeyError(f"no column {key!r}; the columns are {self.column_names}")
            return Column(self, key)
        if isinstance(key, (int, np.integer)):
            return format_row(
                self._decode_one(self._position(int(key))), self._features, self._format
            )
        if isinstance(key, slice):
            positions = np.arange(*key.indices(len(self)))
        else:
            positions = np.asarray(key)
            if positions.dtype == bool:
                positions = np.flatnonzero(positions)
            positions = np.array([self._position(int(p)) for p in positions], dtype=np.int64)
        return self._batch(positions)

    def _batch(self, positions: np.ndarray, columns: list[str] | None = None) -> dict[str, Any]:
        names = columns or self.column_names
        stored = self._rows(positions, names).to_pylist()
        features = Features({c: self._features[c] for c in names})
        found: list[SkippedRow] = []
        rows = []
        for _, decoded in iter_decoded([(positions.tolist(), stored)], features, skipped=found):
            rows.extend(decoded)
        self._record_skipped(found, "batch")
        return {
            c: format_column([r[c] for r in rows], self._features[c], self._format) for c in names
        }

    def __iter__(self) -> Iterator[dict[str, Any]]:
        found: list[SkippedRow] = []
        try:
            for _, rows in self._decoded(skipped=found):
                for row in rows:
                    yield format_row(row, self._features, self._format)
        finally:
            self._record_skipped(found, "iteration")

    def iter(self, batch_size: int) -> Iterator[dict[str, Any]]:
        """Batches (dicts of column lists, formatted) of `batch_size` rows."""
        found: list[SkippedRow] = []
        try:
            for _, rows in self._decoded(batch_size, skipped=found):
                yield {
                    c: format_column([r[c] for r in rows], f, self._format)
                    for c, f in self._features.items()
                }
        finally:
            self._record_skipped(found, "iteration")

    def to_dict(self) -> dict[str, list[Any]]:
        """Every row decoded, as ``{column: list}`` (Python objects)."""
        out: dict[str, list[Any]] = {c: [] for c in self._features}
        for row in self.with_format(None):
            for c in out:
                out[c].append(row[c])
        return out

    def to_list(self) -> list[dict[str, Any]]:
        return list(self.with_format(None))

    def to_pandas(self) -> Any:
        """The stored rows as a pandas DataFrame (audio stays ``{bytes, path}``); needs pandas."""
        try:
            import pandas  # noqa: F401
        except ImportError as e:
            from ..errors import MissingDependencyError

            raise MissingDependencyError("to_pandas needs pandas: `pip install pandas`") from e
        return self.data.to_pandas()

    # -- transforms that record metadata only ------------------------------------------------

    def select(self, indices: Any) -> Dataset:
        """The rows at `indices` (ints, in the order given), without copying data."""
        positions = np.asarray(
            list(indices) if not hasattr(indices, "__array__") else indices, dtype=np.int64
        )
        if positions.size and (positions.min() < -len(self) or positions.max() >= len(self)):
            raise IndexError(f"select: indices out of range for a dataset of {len(self)} rows")
        positions = positions % max(len(self), 1)
        base = positions if self._indices is None else self._indices[positions]
        return self._derive(
            indices=base, fingerprint=fp.combine(self._fingerprint, "select", base.tobytes())
        )

    def shuffle(self, seed: int | None = None) -> Dataset:
        """The rows in a random order, deterministic for a given `seed`."""
        order = np.random.default_rng(seed).permutation(len(self))
        return self.select(order)

    def train_test_split(
        self,
        test_size: float | int = 0.25,
        *,
        seed: int | None = None,
        shuffle: bool = True,
        stratify_by_column: str | None = None,
    ) -> DatasetDict:
        """Split into {"train", "test"}.

        Args:
            test_size: a fraction in (0, 1) or a number of rows.
            seed: seed of the shuffle (and of the stratified draw).
            shuffle: shuffle before splitting (always True when stratifying).
            stratify_by_column: a `ClassLabel` (or any discrete) column whose proportions both
                splits keep.
        """
        from .dict import DatasetDict

        n = len(self)
        n_test = int(np.ceil(test_size * n)) if isinstance(test_size, float) else int(test_size)
        if not 0 < n_test < n:
            raise DatasetError(f"test_size={test_size!r} leaves an empty split for {n} rows")
        rng = np.random.default_rng(seed)
        if stratify_by_column is not None:
            if stratify_by_column not in self._features:
                raise DatasetError(
                    f"no column {stratify_by_column!r} to stratify by; the columns are {self.column_names}"
                )
            labels = np.asarray(
                self._rows(slice(0, n), [stratify_by_column]).column(0).to_pylist(), dtype=object
            )
            test_idx = _stratified_test(labels, n_test, rng)
            train_idx = np.setdiff1d(np.arange(n), test_idx)
            rng.shuffle(train_idx)
            rng.shuffle(test_idx)
        else:
            order = rng.permutation(n) if shuffle else np.arange(n)
            train_idx, test_idx = order[: n - n_test], order[n - n_test :]
        return DatasetDict(train=self.select(train_idx), test=self.select(test_idx))

    def rename_column(self, old: str, new: str) -> Dataset:
        return self.rename_columns({old: new})

    def rename_columns(self, mapping: Mapping[str, str]) -> Dataset:
        for old in mapping:
            if old not in self._features:
                raise DatasetError(
                    f"no column {old!r} to rename; the columns are {self.column_names}"
                )
        names = [mapping.get(c, c) for c in self._table.column_names]
        if len(set(names)) != len(names):
            raise DatasetError(f"renaming {dict(mapping)} gives duplicate column names {names}")
        features = Features({mapping.get(c, c): f for c, f in self._features.items()})
        table = self._table.rename_columns(names).replace_schema_metadata(
            features.arrow_schema.metadata
        )
        return self._derive(
            table=table,
            features=features,
            fingerprint=fp.combine(self._fingerprint, "rename", sorted(mapping.items())),
        )

    def remove_columns(self, columns: str | list[str]) -> Dataset:
        columns = [columns] if isinstance(columns, str) else list(columns)
        for c in columns:
            if c not in self._features:
                raise DatasetError(
                    f"no column {c!r} to remove; the columns are {self.column_names}"
                )
        keep = [c for c in self.column_names if c not in columns]
        return self.select_columns(keep)

    def select_columns(self, columns: list[str]) -> Dataset:
        features = Features({c: self._features[c] for c in columns})
        table = self._table.select(columns).replace_schema_metadata(features.arrow_schema.metadata)
        return self._derive(
            table=table,
            features=features,
            fingerprint=fp.combine(self._fingerprint, "columns", columns),
        )

    def cast_column(self, column: str, feature: Any) -> Dataset:
        """Change one column's feature. Audio -> Audio (new rate, mono, decode, on_error)
        rewrites nothing and is instant; other casts convert the stored values."""
        if column not in self._features:
            raise DatasetError(f"no column {column!r} to cast; the columns are {self.column_names}")
        old = self._features[column]
        features = Features({c: (feature if c == column else f) for c, f in self._features.items()})
        table = self._table
        if type(old) is not type(feature) or not isinstance(feature, Audio):
            index = table.column_names.index(column)
            table = table.set_column(
                index, column, _cast_storage(table.column(column), old, feature)
            )
        table = table.replace_schema_metadata(features.arrow_schema.metadata)
        return self._derive(
            table=table,
            features=features,
            fingerprint=fp.combine(self._fingerprint, "cast", column, repr(feature)),
        )

    def with_format(self, type: str | None = None) -> Dataset:
        """The same rows, read as Python objects (None), numpy arrays or torch tensors."""
        return self._derive(fingerprint=self._fingerprint, format=check_format(type))

    def set_format(self, type: str | None = None) -> None:
        self._format = check_format(type)

    def reset_format(self) -> None:
        self._format = None

    def flatten_indices(self) -> Dataset:
        """The same rows with the selection applied to the table (a copy, contiguous)."""
        return Dataset(
            self.data,
            self._features,
            fingerprint=self._fingerprint,
            cache_dir=self._cache_dir,
            format=self._format,
        )

    # -- transforms that run user code (mapping.py) ------------------------------------------

    def map(self, function: Callable[..., Any] | None = None, **kwargs: Any) -> Dataset:
        """Apply `function` to every row or batch and keep what it returns. See
        `soundformers.datasets.mapping.map_dataset` for the arguments."""
        from .mapping import map_dataset

        return map_dataset(self, function, **kwargs)

    def filter(self, function: Callable[..., Any], **kwargs: Any) -> Dataset:
        """Keep the rows for which `function` is true. See
        `soundformers.datasets.mapping.filter_dataset` for the arguments."""
        from .mapping import filter_dataset

        return filter_dataset(self, function, **kwargs)

    def to_iterable_dataset(self) -> Any:
        """This dataset as a stream (`IterableDataset`) over its stored rows."""
        from .iterable import IterableDataset

        def batches() -> Iterator[pa.RecordBatch]:
            for start in range(0, len(self), 1000):
                yield from self._rows(slice(start, start + 1000)).to_batches()

        return IterableDataset(self._features, batches, format=self._format)

    # -- disk --------------------------------------------------------------------------------

    def save_to_disk(self, path: str | Path) -> None:
        """Write the rows (selections applied) as an Arrow IPC file plus the features.

        The folder holds ``data.arrow`` and ``dataset_info.json``; `load_from_disk` maps it
        back into memory without reading it.
        """
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        write_arrow(
            self.data.replace_schema_metadata(self._features.arrow_schema.metadata),
            folder / "data.arrow",
        )
        info = {
            "features": self._features.to_json(),
            "fingerprint": self._fingerprint,
            "format": self._format,
        }
        (folder / "dataset_info.json").write_text(json.dumps(info, indent=2))

    @staticmethod
    def load_from_disk(path: str | Path) -> Dataset:
        return load_from_disk(path)


def load_from_disk(path: str | Path) -> Dataset | DatasetDict:
    """A dataset (or DatasetDict) written by `save_to_disk`, memory-mapped."""
    folder = Path(path)
    if (folder / "dataset_dict.json").exists():
        from .dict import DatasetDict

        splits = json.loads((folder / "dataset_dict.json").read_text())["splits"]
        return DatasetDict({s: load_from_disk(folder / s) for s in splits})
    if not (folder / "data.arrow").exists():
        raise DatasetError(
            f"{folder}: not a saved dataset (no data.arrow or dataset_dict.json); "
            "write one with save_to_disk"
        )
    info = json.loads((folder / "dataset_info.json").read_text())
    table = read_arrow(folder / "data.arrow")
    return Dataset(
        table,
        Features.from_json(info["features"]),
        fingerprint=info.get("fingerprint"),
        cache_dir=folder / "cache",
        format=info.get("format"),
    )


def concatenate_datasets(datasets: list[Dataset]) -> Dataset:
    """The rows of several datasets with the same features, one after the other."""
    if not datasets:
        raise DatasetError("concatenate_datasets needs at least one dataset")
    first = datasets[0]
    for i, ds in enumerate(datasets[1:], 1):
        if ds._features != first._features:
            raise DatasetError(
                f"dataset {i} has features {dict(ds._features)}, but dataset 0 has "
                f"{dict(first._features)}; cast them to the same features first"
            )
    schema = first._features.arrow_schema
    tables = [ds.data.select(first.column_names).cast(schema) for ds in datasets]
    return Dataset(
        pa.concat_tables(tables),
        first._features,
        fingerprint=fp.combine("concat", [d._fingerprint for d in datasets]),
        cache_dir=first._cache_dir,
        format=first._format,
    )
