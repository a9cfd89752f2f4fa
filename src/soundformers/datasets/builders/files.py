"""Data files: listing a folder, expanding patterns, and telling splits from paths.

A file belongs to a split when a folder on its path, or the start of its name, is a split
keyword: "train"/"training"; "validation"/"valid"/"val"/"dev"; "test"/"testing"/"eval"/
"evaluation" (``train/x.wav``, ``data/train-00000-of-00001.parquet``, ``test.csv``). With no
keyword anywhere, every file is in "train".
"""

from __future__ import annotations

import glob
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from ...errors import DatasetNotFoundError
from ..features import Features

SPLIT_KEYWORDS = {
    "train": ("train", "training"),
    "validation": ("validation", "valid", "val", "dev"),
    "test": ("test", "testing", "eval", "evaluation"),
}
AUDIO_EXTENSIONS = frozenset(
    ".wav .wave .flac .mp3 .ogg .oga .opus .m4a .aac .mp4 .aif .aiff .aifc .au .snd .caf .w64 "
    ".rf64 .sph .voc .wv .wma .webm .mka .amr .3gp .ac3 .ape .mpc .spx .tta".split()
)
METADATA_NAMES = ("metadata.csv", "metadata.jsonl", "metadata.parquet")


@dataclass
class SplitSource:
    """Where one split's rows come from.

    Attributes:
        features: the columns' features.
        batches: a callable returning an iterator of Arrow record batches with
            `features.arrow_schema` (called once per pass, so a stream can be re-read).
        files: the files read, for the fingerprint.
    """

    features: Features
    batches: Callable[[], Iterator[pa.RecordBatch]]
    files: list[Path] = field(default_factory=list)


def is_audio(path: Path) -> bool:
    return path.suffix.lower() in AUDIO_EXTENSIONS


def list_files(folder: Path) -> list[Path]:
    """Every file under `folder`, sorted, skipping hidden files and folders."""
    out = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).parts
        if path.is_file() and not any(p.startswith((".", "__")) for p in rel):
            out.append(path)
    return out


def split_of(rel: Path) -> str | None:
    """The split named by a relative path, or None."""
    for part in rel.parts[:-1]:
        for split, words in SPLIT_KEYWORDS.items():
            if part.lower() in words:
                return split
    stem = rel.name.lower()
    for split, words in SPLIT_KEYWORDS.items():
        for word in words:
            if re.match(rf"{word}(?:[-._ 0-9]|$)", stem):
                return split
    return None


def group_by_split(folder: Path, files: list[Path]) -> dict[str, list[Path]]:
    """Files grouped by the split their path names (all in "train" when none does)."""
    named: dict[str, list[Path]] = {}
    for path in files:
        split = split_of(path.relative_to(folder))
        if split is not None:
            named.setdefault(split, []).append(path)
    if not named:
        return {"train": list(files)} if files else {}
    order = [s for s in ("train", "validation", "test") if s in named]
    return {s: named[s] for s in order}


def expand(pattern: str | Path, base: Path | None) -> list[Path]:
    """Files matching a path or glob pattern, relative to `base` when not absolute."""
    path = Path(pattern)
    if base is not None and not path.is_absolute():
        path = base / path
    if path.is_dir():
        return list_files(path)
    matches = sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
    if not matches:
        raise DatasetNotFoundError(f"data file {str(pattern)!r} not found (looked for {path})")
    return matches


def resolve_data_files(data_dir: Path | None, data_files: Any) -> dict[str, list[Path]]:
    """Split name -> files, from `data_files` (a path/pattern, a list, or a dict split ->
    those) or, when it is None, from every file under `data_dir`."""
    if data_files is None:
        if data_dir is None:
            raise DatasetNotFoundError("pass data_dir=<folder> or data_files=<file(s)>")
        if not data_dir.is_dir():
            raise DatasetNotFoundError(f"data_dir {str(data_dir)!r} is not a folder")
        return group_by_split(data_dir, list_files(data_dir))
    if isinstance(data_files, dict):
        return {str(split): _expand_all(files, data_dir) for split, files in data_files.items()}
    return {"train": _expand_all(data_files, data_dir)}


def _expand_all(files: Any, base: Path | None) -> list[Path]:
    items = [files] if isinstance(files, (str, Path)) else list(files)
    out: list[Path] = []
    for item in items:
        out.extend(expand(item, base))
    return out
