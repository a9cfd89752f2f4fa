"""Audio datasets: Arrow-backed `Dataset`, streaming `IterableDataset`, the `Audio` feature
(stored encoded, decoded and resampled on access) and `load_dataset` for audio folders,
csv/json manifests, Parquet (Hugging Face hub layout included) and hub dataset ids."""

from __future__ import annotations

from .arrow import Column, Dataset, concatenate_datasets, load_from_disk
from .decoding import DecodeErrorsWarning, SkippedRow
from .dict import DatasetDict
from .features import Audio, ClassLabel, Features, Sequence, Value
from .iterable import IterableDataset
from .load import load_dataset

__all__ = [
    "Audio",
    "ClassLabel",
    "Column",
    "Dataset",
    "DatasetDict",
    "DecodeErrorsWarning",
    "Features",
    "IterableDataset",
    "Sequence",
    "SkippedRow",
    "Value",
    "concatenate_datasets",
    "load_dataset",
    "load_from_disk",
]
