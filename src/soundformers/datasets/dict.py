"""`DatasetDict`: named splits ("train", "test", ...), each a `Dataset`, with the dataset
methods applied to every split."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import DatasetError
from .arrow import Dataset


class DatasetDict(dict):
    """Split name -> `Dataset`. Transforms (`map`, `filter`, `cast_column`, `with_format`, ...)
    return a new DatasetDict with the transform applied to each split."""

    def __getitem__(self, key: str) -> Any:
        try:
            return super().__getitem__(key)
        except KeyError:
            raise KeyError(f"no split {key!r}; the splits are {list(self)}") from None

    def _apply(self, method: str, *args: Any, **kwargs: Any) -> DatasetDict:
        return DatasetDict(
            {name: getattr(ds, method)(*args, **kwargs) for name, ds in self.items()}
        )

    @property
    def num_rows(self) -> dict[str, int]:
        return {name: len(ds) for name, ds in self.items()}

    @property
    def column_names(self) -> dict[str, list[str]]:
        return {name: ds.column_names for name, ds in self.items()}

    @property
    def features(self) -> Any:
        return next(iter(self.values())).features if self else None

    def map(self, function: Any = None, **kwargs: Any) -> DatasetDict:
        return self._apply("map", function, **kwargs)

    def filter(self, function: Any, **kwargs: Any) -> DatasetDict:
        return self._apply("filter", function, **kwargs)

    def select_columns(self, columns: list[str]) -> DatasetDict:
        return self._apply("select_columns", columns)

    def cast_column(self, column: str, feature: Any) -> DatasetDict:
        return self._apply("cast_column", column, feature)

    def rename_column(self, old: str, new: str) -> DatasetDict:
        return self._apply("rename_column", old, new)

    def rename_columns(self, mapping: dict[str, str]) -> DatasetDict:
        return self._apply("rename_columns", mapping)

    def remove_columns(self, columns: str | list[str]) -> DatasetDict:
        return self._apply("remove_columns", columns)

    def with_format(self, type: str | None = None) -> DatasetDict:
        return self._apply("with_format", type)

    def shuffle(self, seed: int | None = None) -> DatasetDict:
        return self._apply("shuffle", seed)

    def save_to_disk(self, path: str | Path) -> None:
        """One folder per split plus ``dataset_dict.json``; read back with `load_from_disk`."""
        folder = Path(path)
        for name, ds in self.items():
            if not isinstance(ds, Dataset):
                raise DatasetError(
                    f"split {name!r} is a {type(ds).__name__}, which cannot be saved"
                )
            ds.save_to_disk(folder / name)
        (folder / "dataset_dict.json").write_text(json.dumps({"splits": list(self)}))

    def __repr__(self) -> str:
        inner = ",\n".join(f"    {name}: {ds!r}" for name, ds in self.items())
        return f"DatasetDict({{\n{inner}\n}})"
