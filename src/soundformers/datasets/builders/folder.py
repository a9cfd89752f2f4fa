"""The "audiofolder" builder: a folder of audio files, with or without metadata.

- With ``metadata.csv`` / ``metadata.jsonl`` / ``metadata.parquet`` beside the audio: one row
  per metadata row, in file order; its ``file_name`` column (a path relative to the metadata
  file) becomes the ``audio`` column, in the same position; the other columns are kept.
  A metadata file naming a file that does not exist is an error naming both.
- Without metadata: one row per audio file (sorted by path). When the files sit in more than
  one folder, all at the same depth, a ``label`` column (`ClassLabel`, names sorted) says
  which folder (as in the datasets library).

Audio files are recognised by extension, every format the loader reads (m4a and aac too).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from ...errors import DatasetError, DatasetNotFoundError
from ..features import Audio, ClassLabel, Features
from .files import AUDIO_EXTENSIONS, METADATA_NAMES, SplitSource, is_audio
from .tables import BATCH_ROWS, audio_struct, read_table

logger = logging.getLogger(__name__)


def audiofolder_sources(
    splits: dict[str, list[Path]], where: str, drop_labels: bool | None = None
) -> dict[str, SplitSource]:
    """Split name -> source for audio files (and metadata files) grouped by split."""
    audio = {s: [f for f in files if is_audio(f)] for s, files in splits.items()}
    metadata = {s: [f for f in files if f.name in METADATA_NAMES] for s, files in splits.items()}
    if not any(audio.values()) and not any(metadata.values()):
        raise DatasetNotFoundError(
            f"{where}: no audio files found (looked for {', '.join(sorted(AUDIO_EXTENSIONS))}) "
            f"and no {' / '.join(METADATA_NAMES)}; point data_dir at the folder holding the audio"
        )
    if any(metadata.values()):
        return {
            s: _metadata_source(metadata[s], audio[s], s) for s in splits if metadata[s] or audio[s]
        }
    labels = {f.parent.name for files in audio.values() for f in files}
    depths = {len(f.parts) for files in audio.values() for f in files}
    add_labels = (len(labels) > 1 and len(depths) == 1) if drop_labels is None else not drop_labels
    names = sorted(labels)
    return {
        s: _files_source(files, names if add_labels else None)
        for s, files in audio.items()
        if files
    }


def _files_source(files: list[Path], labels: list[str] | None) -> SplitSource:
    features = Features({"audio": Audio()})
    if labels is not None:
        features["label"] = ClassLabel(names=tuple(labels))
    schema = features.arrow_schema

    def batches() -> Iterator[pa.RecordBatch]:
        for start in range(0, len(files), BATCH_ROWS):
            chunk = files[start : start + BATCH_ROWS]
            arrays = [audio_struct([str(f) for f in chunk], Path("."))]
            if labels is not None:
                arrays.append(pa.array([labels.index(f.parent.name) for f in chunk], pa.int64()))
            yield pa.RecordBatch.from_arrays(arrays, schema=schema)

    return SplitSource(features, batches, list(files))


def _metadata_source(metadata: list[Path], audio: list[Path], split: str) -> SplitSource:
    if not metadata:
        raise DatasetError(
            f"split {split!r}: the audio files {[str(a) for a in audio[:3]]} have no metadata file "
            "beside them, while other splits do; add one, or load the splits separately"
        )
    kinds = {m.suffix for m in metadata}
    if len(kinds) > 1:
        raise DatasetError(
            f"metadata files of different kinds {sorted(kinds)}: {metadata}; use one kind"
        )
    tables = [_metadata_table(m) for m in metadata]
    for m, t in zip(metadata[1:], tables[1:]):
        if t.column_names != tables[0].column_names:
            raise DatasetError(
                f"{m} has columns {t.column_names}, but {metadata[0]} has {tables[0].column_names}"
            )
    listed = {v["path"] for t in tables for v in t.column("audio").to_pylist() if v}
    unlisted = [a for a in audio if str(a) not in listed]
    if unlisted:
        logger.debug(
            "split %s: %d audio files not named in the metadata are left out: %s",
            split,
            len(unlisted),
            unlisted[:5],
        )
    features = Features.from_arrow_schema(tables[0].schema)
    schema = features.arrow_schema

    def batches() -> Iterator[pa.RecordBatch]:
        for t in tables:
            yield from t.cast(schema).to_batches(BATCH_ROWS)

    return SplitSource(features, batches, [*metadata, *audio])


def _metadata_table(path: Path) -> pa.Table:
    table = read_table(path)
    names = table.column_names
    if "file_name" not in names:
        raise DatasetError(
            f"{path}: the metadata has no 'file_name' column (columns: {names}); "
            "it must name each audio file, relative to the metadata file"
        )
    rel = table.column("file_name").to_pylist()
    for name in rel:
        if (
            name is None
            or "://" in str(name)
            or Path(str(name)).is_absolute()
            or ".." in Path(str(name)).parts
        ):
            raise DatasetError(
                f"{path}: file_name {name!r} must be a relative path inside {path.parent}"
            )
    missing = [n for n in rel if not (path.parent / str(n)).is_file()]
    if missing:
        raise DatasetNotFoundError(
            f"{path} names {len(missing)} file(s) that do not exist in {path.parent}: "
            f"{missing[:5]}{' ...' if len(missing) > 5 else ''}; fix the file_name column or add the files"
        )
    array = audio_struct([str(n) for n in rel], path.parent)
    table = table.set_column(names.index("file_name"), "audio", array)
    meta = table.schema.metadata or {}
    import json

    meta = {
        **meta,
        b"huggingface": json.dumps({"info": {"features": {"audio": {"_type": "Audio"}}}}).encode(),
    }
    return table.replace_schema_metadata(meta)
