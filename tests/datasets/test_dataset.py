"""Dataset: indexing, columns, iteration, selections, splits, formats, disk."""

from __future__ import annotations

import numpy as np
import pytest

from soundformers.datasets import (
    Audio,
    ClassLabel,
    Column,
    Dataset,
    DatasetDict,
    concatenate_datasets,
    load_from_disk,
)
from soundformers.errors import DatasetError

from .conftest import flac_bytes


def make(n: int = 10) -> Dataset:
    return Dataset.from_dict(
        {
            "audio": [flac_bytes(200 + 50 * i) for i in range(n)],
            "label": [["a", "b"][i % 2] for i in range(n)],
            "n": list(range(n)),
            "text": [f"row {i}" for i in range(n)],
        },
        features={"audio": Audio(), "label": ClassLabel(names=("a", "b"))},
    )


def test_indexing_forms():
    ds = make()
    assert len(ds) == 10 and ds.num_rows == 10
    assert ds.column_names == ["audio", "label", "n", "text"]
    row = ds[3]
    assert row["n"] == 3 and row["label"] == 1 and row["audio"]["array"].shape == (4000,)
    assert ds[-1]["n"] == 9
    assert ds[2:5]["n"] == [2, 3, 4]
    assert ds[[7, 1]]["text"] == ["row 7", "row 1"]
    assert len(ds[1:3]["audio"]) == 2
    with pytest.raises(IndexError):
        ds[10]
    with pytest.raises(KeyError, match="no column 'nope'"):
        ds["nope"]


def test_column_is_a_lazy_sequence():
    ds = make()
    column = ds["n"]
    assert isinstance(column, Column) and len(column) == 10
    assert column == list(range(10))
    assert column[4] == 4 and column[1:3] == [1, 2]
    audio = list(ds["audio"])
    assert all(set(a) == {"path", "array", "sampling_rate"} for a in audio)
    assert np.asarray(ds["n"]).sum() == 45


def test_iteration_yields_decoded_rows_in_order():
    rows = list(make())
    assert [r["n"] for r in rows] == list(range(10))
    assert all(r["audio"]["sampling_rate"] == 16000 for r in rows)


def test_select_shuffle_deterministic():
    ds = make()
    assert ds.select([5, 2])["n"].to_list() == [5, 2]
    a, b = ds.shuffle(seed=3), ds.shuffle(seed=3)
    assert a["n"].to_list() == b["n"].to_list() != list(range(10))
    assert sorted(a["n"].to_list()) == list(range(10))
    assert a.select([0])[0]["n"] == a[0]["n"]  # selections compose


def test_train_test_split_and_stratify():
    ds = make(20)
    split = ds.train_test_split(test_size=0.25, seed=1)
    assert isinstance(split, DatasetDict)
    assert len(split["train"]) == 15 and len(split["test"]) == 5
    again = ds.train_test_split(test_size=0.25, seed=1)
    assert split["test"]["n"].to_list() == again["test"]["n"].to_list()
    assert set(split["train"]["n"]) | set(split["test"]["n"]) == set(range(20))
    strat = ds.train_test_split(test_size=4, seed=0, stratify_by_column="label")
    assert sorted(strat["test"]["label"]) == [0, 0, 1, 1]
    with pytest.raises(DatasetError, match="empty split"):
        ds.train_test_split(test_size=20)


def test_rename_remove_select_columns_and_cast():
    ds = make()
    renamed = ds.rename_column("text", "sentence")
    assert renamed.column_names == ["audio", "label", "n", "sentence"]
    assert renamed[0]["sentence"] == "row 0"
    assert ds.remove_columns(["text", "n"]).column_names == ["audio", "label"]
    as_names = ds.cast_column("label", ClassLabel(names=("a", "b", "c")))
    assert as_names["label"][:3] == [0, 1, 0]
    with pytest.raises(DatasetError, match="no column 'x'"):
        ds.rename_column("x", "y")


def test_formats():
    ds = make()
    np_row = ds.with_format("numpy")[0]
    assert isinstance(np_row["n"], np.integer) and isinstance(np_row["text"], str)
    assert isinstance(ds.with_format("numpy")[0:3]["n"], np.ndarray)
    torch = pytest.importorskip("torch")
    t_row = ds.with_format("torch")[1]
    assert isinstance(t_row["audio"]["array"], torch.Tensor) and t_row["n"].item() == 1
    assert ds.with_format("torch")[0:4]["n"].tolist() == [0, 1, 2, 3]
    assert ds.format is None  # with_format returns a new dataset
    with pytest.raises(DatasetError, match="unknown format"):
        ds.with_format("jax")


def test_save_and_load_from_disk(tmp_path):
    ds = make().shuffle(seed=0).cast_column("audio", Audio(sampling_rate=8000))
    ds.save_to_disk(tmp_path / "one")
    back = load_from_disk(tmp_path / "one")
    assert back.features == ds.features and back["n"].to_list() == ds["n"].to_list()
    np.testing.assert_array_equal(back[0]["audio"]["array"], ds[0]["audio"]["array"])
    DatasetDict(a=ds, b=ds.select([1])).save_to_disk(tmp_path / "two")
    both = load_from_disk(tmp_path / "two")
    assert list(both) == ["a", "b"] and len(both["b"]) == 1
    with pytest.raises(DatasetError, match="not a saved dataset"):
        load_from_disk(tmp_path)


def test_from_list_pandas_and_concatenate():
    rows = [{"x": 1, "y": "a"}, {"x": 2, "y": "b"}]
    ds = Dataset.from_list(rows)
    assert ds.to_list() == rows
    both = concatenate_datasets([ds, ds.select([1])])
    assert both["x"].to_list() == [1, 2, 2]
    with pytest.raises(DatasetError, match="features"):
        concatenate_datasets([ds, ds.rename_column("x", "z")])
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"x": [1, 2], "y": ["a", "b"]})
    assert Dataset.from_pandas(frame).to_list() == rows
    assert Dataset.from_pandas(frame).to_pandas()["y"].tolist() == ["a", "b"]


def test_datasetdict_applies_to_each_split():
    dd = DatasetDict(train=make(4), test=make(2))
    cast = dd.cast_column("audio", Audio(sampling_rate=8000))
    assert cast["test"][0]["audio"]["sampling_rate"] == 8000
    assert cast.num_rows == {"train": 4, "test": 2}
    with pytest.raises(KeyError, match="the splits are"):
        dd["validation"]
