"""`load_dataset`: a builder name, a local folder or file, or a hub dataset id -> datasets.

Non-streaming loads write each split once to an Arrow file in the cache (named by a hash of the
source files' paths, sizes and modification times and the arguments) and memory-map it, so a
dataset larger than RAM works and the second load is instant. Streaming loads read the source
files lazily every pass.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..errors import DatasetError, DatasetNotFoundError, MissingDependencyError
from . import fingerprint as fp
from .arrow import Dataset, read_arrow
from .builders.files import SplitSource, is_audio, resolve_data_files
from .builders.folder import audiofolder_sources
from .builders.tables import manifest_source, parquet_source
from .dict import DatasetDict
from .iterable import IterableDataset

logger = logging.getLogger(__name__)

BUILDERS = ("audiofolder", "csv", "json", "parquet")
_TABLE_KINDS = {".csv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
HUB_PATTERNS = [
    "*.parquet",
    "*.csv",
    "*.json",
    "*.jsonl",
    "*.md",
    *(f"*{e}" for e in (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac")),
]


def default_cache_dir() -> Path:
    """``$SOUNDFORMERS_CACHE/datasets``, else ``$XDG_CACHE_HOME/soundformers/datasets``, else
    ``~/.cache/soundformers/datasets``."""
    root = os.environ.get("SOUNDFORMERS_CACHE")
    if root:
        return Path(root) / "datasets"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "soundformers" / "datasets"


def load_dataset(
    path: str | os.PathLike,
    name: str | None = None,
    data_dir: str | os.PathLike | None = None,
    data_files: Any = None,
    split: str | None = None,
    streaming: bool = False,
    *,
    cache_dir: str | os.PathLike | None = None,
    audio_column: str | None = None,
    drop_labels: bool | None = None,
    local_files_only: bool = False,
) -> Dataset | DatasetDict | IterableDataset:
    """Load a dataset of audio (and anything else) from files, a folder or the hub.

    Args:
        path: a builder, "audiofolder", "csv", "json" or "parquet" (then `data_dir` or
            `data_files` say where); a local folder (its format detected: audio files make
            an audio folder, else its parquet, csv or json files); a local data file; or a
            Hugging Face hub dataset id ("user/name"), downloaded with huggingface_hub when
            online and read from its cache when not.
        name: a configuration: the subfolder of that name, where there is one.
        data_dir: the folder holding the data (for a builder name; a subfolder for a path).
        data_files: a file or glob pattern, a list of them, or a dict split -> those.
        split: one split to return ("train", "test", ...); None returns all in a DatasetDict.
        streaming: return an `IterableDataset` that reads the files lazily.
        cache_dir: where the Arrow cache goes (default: `default_cache_dir()`).
        audio_column: for csv/json manifests, the column holding audio paths.
        drop_labels: audio folders without metadata: True never adds the folder-name labels,
            False always does; None (default) adds them when the files are in several
            folders at one depth.
        local_files_only: for hub ids, use only the local huggingface_hub cache.

    Returns:
        A `Dataset` (or `IterableDataset` when streaming) for `split`, else a `DatasetDict`
        of them.

    Raises:
        DatasetNotFoundError: nothing to load: no such file or folder, a folder with no audio,
            a metadata file naming missing files, or a hub id not downloadable nor cached.
        DatasetError: a bad split name, or files that cannot be read.
    """
    builder, base = _resolve(path, name, data_dir, data_files, local_files_only)
    if base is None and data_files is None:  # path is one data file
        data_files = os.fspath(path)
    splits = resolve_data_files(base, data_files)
    where = str(base if base is not None else data_files)
    if not splits:
        raise DatasetNotFoundError(f"{where}: no data files found")
    if split is not None:
        _check_split(split, list(splits), where)
    if builder is None:
        builder = _detect(splits, where)
    if builder == "audiofolder":
        sources = audiofolder_sources(splits, where, drop_labels)
    elif builder == "parquet":
        sources = {s: parquet_source(files) for s, files in splits.items()}
    else:
        sources = {s: manifest_source(files, audio_column) for s, files in splits.items()}
    if split is not None:
        _check_split(split, list(sources), where)
        sources = {split: sources[split]}
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    out = {
        s: (
            IterableDataset(src.features, src.batches)
            if streaming
            else _materialize(
                src, builder, s, root, (name, str(data_files), audio_column, drop_labels)
            )
        )
        for s, src in sources.items()
    }
    return out[split] if split is not None else DatasetDict(out)


def _check_split(split: str, available: list[str], where: str) -> None:
    if split not in available:
        raise DatasetError(
            f"{where}: no split {split!r}; the splits are {available}. Pass one "
            "of those, or split=None for all of them"
        )


def _resolve(
    path: Any, name: str | None, data_dir: Any, data_files: Any, local_files_only: bool
) -> tuple[str | None, Path | None]:
    """(builder or None to detect, base folder or None)."""
    text = os.fspath(path)
    if text in BUILDERS:
        if data_dir is None and data_files is None:
            raise DatasetNotFoundError(
                f"load_dataset({text!r}) needs data_dir=<folder> or data_files=<file(s)>"
            )
        base = Path(data_dir) if data_dir is not None else None
        if base is not None and not base.is_dir():
            raise DatasetNotFoundError(f"data_dir {str(base)!r} is not a folder")
        return text, _config_dir(base, name)
    local = Path(text).expanduser()
    if local.is_file():
        kind = _TABLE_KINDS.get(local.suffix.lower())
        if kind is None and not is_audio(local):
            raise DatasetError(
                f"{local}: not a data file (expected {sorted(_TABLE_KINDS)} or audio)"
            )
        if data_files is not None:
            raise DatasetError("pass either a data file as path or data_files, not both")
        return _file_builder(local), None
    if local.is_dir() or text.startswith((".", "/", "~")) or os.sep in text and text.count("/") > 1:
        if not local.is_dir():
            raise DatasetNotFoundError(f"{text!r}: no such file or folder")
        base = local / data_dir if data_dir is not None else local
        return None, _config_dir(base, name)
    folder = _download(text, local_files_only)
    base = folder / data_dir if data_dir is not None else folder
    return None, _config_dir(base, name)


def _file_builder(path: Path) -> str:
    return _TABLE_KINDS.get(path.suffix.lower(), "audiofolder")


def _config_dir(base: Path | None, name: str | None) -> Path | None:
    if name is None or base is None:
        return base
    if (base / name).is_dir():
        return base / name
    raise DatasetError(
        f"{base}: no configuration {name!r} (expected a subfolder of that name; "
        f"found {sorted(p.name for p in base.iterdir() if p.is_dir())})"
    )


def _detect(splits: dict[str, list[Path]], where: str) -> str:
    files = [f for fs in splits.values() for f in fs]
    if any(is_audio(f) for f in files):
        return "audiofolder"
    kinds = [_TABLE_KINDS[f.suffix.lower()] for f in files if f.suffix.lower() in _TABLE_KINDS]
    if not kinds:
        raise DatasetNotFoundError(
            f"{where}: no audio files and no parquet/csv/json files found; "
            "point at the folder holding the data"
        )
    return max(("parquet", "csv", "json"), key=kinds.count)


def _materialize(src: SplitSource, builder: str, split: str, root: Path, args: tuple) -> Dataset:
    stamps = []
    for f in src.files:
        st = f.stat()
        stamps.append((str(f.resolve()), st.st_size, st.st_mtime_ns))
    key = fp.combine(builder, split, stamps, args, src.features.to_json())
    folder = root / f"{builder}-{key}"
    target = folder / f"{split}.arrow"
    if not target.exists():
        try:
            folder.mkdir(parents=True, exist_ok=True)
            _write_batches(src, target)
        except OSError as e:  # read-only cache: keep the rows in memory
            logger.warning(
                "cannot write the dataset cache at %s (%s); keeping it in memory", folder, e
            )
            table = pa.Table.from_batches(list(src.batches()), schema=src.features.arrow_schema)
            return Dataset(table, src.features, fingerprint=key)
    return Dataset(read_arrow(target), src.features, fingerprint=key, cache_dir=folder / "cache")


def _write_batches(src: SplitSource, target: Path) -> None:
    tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    schema = src.features.arrow_schema
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
        for batch in src.batches():
            writer.write_batch(batch)
    tmp.replace(target)


def _download(repo_id: str, local_files_only: bool) -> Path:
    parts = repo_id.split("/")
    if not (1 <= len(parts) <= 2 and all(parts)):
        raise DatasetNotFoundError(
            f"{repo_id!r}: no such file or folder, and not a hub dataset id ('user/name')"
        )
    try:
        from huggingface_hub import snapshot_download
    except ImportError as e:
        raise MissingDependencyError(
            f"loading the hub dataset {repo_id!r} needs huggingface_hub: "
            "`pip install huggingface_hub`"
        ) from e
    error: Exception | None = None
    for offline in (True,) if local_files_only else (False, True):
        try:
            return Path(
                snapshot_download(
                    repo_id,
                    repo_type="dataset",
                    allow_patterns=HUB_PATTERNS,
                    local_files_only=offline,
                )
            )
        except Exception as e:  # offline, unknown repo, gated, HTTP errors: all say the same
            logger.debug("hub lookup of dataset %s (offline=%s) failed: %s", repo_id, offline, e)
            error = e
    raise DatasetNotFoundError(
        f"dataset {repo_id!r} is neither a local file or folder nor downloadable from the Hugging "
        f"Face hub (offline, or unknown repo) nor in the local hub cache ({type(error).__name__}: "
        f"{error}). Download it once while online, or pass the local folder holding its files"
    ) from error
