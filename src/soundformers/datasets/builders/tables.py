"""Tabular sources: csv and json(l) manifests, Parquet (the Hugging Face hub layout included).

Parquet keeps its columns and types; an ``audio`` column typed by the ``huggingface`` schema
metadata, or any struct ``{bytes: binary, path: string}``, is an `Audio` column. In a csv/json
manifest, a path column (`file_name`, renamed ``audio`` as in an audio folder, or ``audio``,
``audio_filepath``, ``audio_path``, ``path``, or the one named by `audio_column`) becomes an
`Audio` column, its paths taken relative to the manifest's folder.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from ...errors import DatasetError, DatasetNotFoundError
from ..features import AUDIO_STORAGE, Audio, Features
from .files import SplitSource

PATH_COLUMNS = ("file_name", "audio", "audio_filepath", "audio_path", "path")
BATCH_ROWS = 1000


def read_table(path: Path) -> pa.Table:
    """A csv, json(l) or parquet file as one Arrow table."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            import pyarrow.csv as pacsv

            return pacsv.read_csv(str(path))
        if suffix in (".jsonl", ".json"):
            return _read_json(path)
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            return pq.read_table(str(path))
    except (pa.ArrowInvalid, OSError) as e:
        raise DatasetError(f"{path}: cannot be read as {suffix[1:]}: {e}") from e
    raise DatasetError(
        f"{path}: unknown table format {suffix!r}; expected .csv, .json(l) or .parquet"
    )


def _read_json(path: Path) -> pa.Table:
    import pyarrow.json as pajson

    text = path.read_text(encoding="utf-8").lstrip()
    if text.startswith("["):  # one JSON array of rows
        return pa.Table.from_pylist(json.loads(text))
    if text.startswith("{") and "\n{" not in text.strip():
        data = json.loads(text)
        if isinstance(data, dict) and "data" in data and isinstance(data["data"], list):
            return pa.Table.from_pylist(data["data"])
    return pajson.read_json(str(path))


def manifest_source(files: list[Path], audio_column: str | None = None) -> SplitSource:
    """csv/json manifests of one split, concatenated in order."""
    tables = [_with_audio(read_table(f), f, audio_column) for f in files]
    if not tables:
        raise DatasetNotFoundError("no manifest files for this split")
    features = Features.from_arrow_schema(tables[0].schema)
    schema = features.arrow_schema
    for f, t in zip(files, tables):
        if t.column_names != tables[0].column_names:
            raise DatasetError(
                f"{f} has columns {t.column_names}, but {files[0]} has "
                f"{tables[0].column_names}; every file of a split needs the same columns"
            )

    def batches() -> Iterator[pa.RecordBatch]:
        for t in tables:
            yield from t.cast(schema).to_batches(BATCH_ROWS)

    return SplitSource(features, batches, list(files))


def audio_struct(paths: list[str | None], base: Path) -> pa.Array:
    values = [None if p is None else {"bytes": None, "path": _resolve(p, base)} for p in paths]
    return pa.array(values, type=AUDIO_STORAGE)


def _resolve(path: str, base: Path) -> str:
    if "://" in path:
        return path
    p = Path(path)
    return str(p if p.is_absolute() else (base / p))


def _with_audio(table: pa.Table, file: Path, audio_column: str | None) -> pa.Table:
    names = table.column_names
    column = audio_column or next((c for c in PATH_COLUMNS if c in names), None)
    if column is None:
        return table
    if column not in names:
        raise DatasetError(f"{file}: no column {column!r} (audio_column); the columns are {names}")
    if not pa.types.is_string(table.schema.field(column).type) and not pa.types.is_large_string(
        table.schema.field(column).type
    ):
        return table
    new_name = "audio" if column == "file_name" else column
    array = audio_struct(table.column(column).to_pylist(), file.parent)
    table = table.set_column(names.index(column), new_name, array)
    meta = {"huggingface": json.dumps({"info": {"features": {new_name: {"_type": "Audio"}}}})}
    return table.replace_schema_metadata(meta)


def parquet_source(files: list[Path]) -> SplitSource:
    """Parquet files of one split, read a row group at a time."""
    import pyarrow.parquet as pq

    if not files:
        raise DatasetNotFoundError("no parquet files for this split")
    schemas = []
    for f in files:
        try:
            schemas.append(pq.read_schema(str(f)))
        except (pa.ArrowInvalid, OSError) as e:
            raise DatasetError(f"{f}: not a readable Parquet file: {e}") from e
    features = Features.from_arrow_schema(schemas[0])
    for f, s in zip(files[1:], schemas[1:]):
        if s.names != schemas[0].names:
            raise DatasetError(f"{f} has columns {s.names}, but {files[0]} has {schemas[0].names}")
    schema = features.arrow_schema

    def batches() -> Iterator[pa.RecordBatch]:
        for f in files:
            with pq.ParquetFile(str(f)) as reader:
                for batch in reader.iter_batches(batch_size=BATCH_ROWS):
                    yield pa.Table.from_batches([batch]).cast(schema).to_batches()[0]

    return SplitSource(features, batches, list(files))


def has_audio(features: Features) -> bool:
    return any(isinstance(f, Audio) for f in features.values())
