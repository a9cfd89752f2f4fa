"""Moving datasets to and from the datasets library (when it is installed).

Both libraries keep rows in Arrow with the same storage for audio (``{bytes, path}``), so
conversion shares the table and translates the features: the datasets library's `Audio`
becomes ours (same sampling_rate and decode) and back.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import DatasetError, MissingDependencyError
from .arrow import Dataset
from .features import Audio, Features, from_json, to_json


def _hf() -> Any:
    try:
        import datasets
    except ImportError as e:
        raise MissingDependencyError(
            "converting to or from the datasets library needs it: `pip install datasets`"
        ) from e
    return datasets


def from_hf(hf_dataset: Any) -> Dataset:
    """A `Dataset` holding the rows of a `datasets.Dataset` (its selection applied)."""
    _hf()
    if not hasattr(hf_dataset, "features") or not hasattr(hf_dataset, "data"):
        raise DatasetError(f"from_hf expects a datasets.Dataset, got {type(hf_dataset).__name__}")
    table = hf_dataset.with_format("arrow")[:]
    described = hf_dataset.features.to_dict()
    features = Features({name: from_json(_plain(described[name])) for name in table.column_names})
    return Dataset(table.replace_schema_metadata(features.arrow_schema.metadata), features)


def _plain(data: Any) -> Any:
    """The datasets library's JSON for a feature, with the keys we do not use dropped."""
    if isinstance(data, dict):
        if data.get("_type") == "Audio":
            return {
                "_type": "Audio",
                "sampling_rate": data.get("sampling_rate"),
                "decode": data.get("decode", True),
                **({"mono": data["mono"]} if isinstance(data.get("mono"), bool) else {}),
            }
        return {k: _plain(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_plain(v) for v in data]
    return data


def to_hf(ds: Dataset) -> Any:
    """A `datasets.Dataset` of the rows of `ds` (Audio columns keep sampling_rate and decode)."""
    datasets = _hf()
    described = {}
    for name, feature in ds.features.items():
        if isinstance(feature, Audio):
            described[name] = {
                "_type": "Audio",
                "sampling_rate": feature.sampling_rate,
                "decode": feature.decode,
            }
        else:
            described[name] = to_json(feature)
    hf_features = datasets.Features.from_dict(described)
    table = ds.data.replace_schema_metadata(
        {"huggingface": json.dumps({"info": {"features": described}})}
    )
    return datasets.Dataset(
        datasets.table.InMemoryTable(table), info=datasets.DatasetInfo(features=hf_features)
    )
