"""map and filter: row and batched, kept columns, num_proc, fingerprint caching."""

from __future__ import annotations

import numpy as np
import pytest

from soundformers.datasets import Audio, Dataset, load_dataset
from soundformers.errors import DatasetError

from .conftest import flac_bytes, tone, write_tone


def make(n: int = 12) -> Dataset:
    return Dataset.from_dict(
        {"audio": [flac_bytes(300 + 20 * i) for i in range(n)], "n": list(range(n))},
        features={"audio": Audio(sampling_rate=8000)},
    )


def test_map_row_keeps_audio_stored():
    ds = make()
    out = ds.map(lambda r: {"length": len(r["audio"]["array"]), "m": r["n"] * 2})
    assert out.column_names == ["audio", "n", "length", "m"]
    assert out["length"].to_list() == [2000] * 12 and out["m"][:3] == [0, 2, 4]
    # the audio column was not re-encoded: same stored values
    assert out.data.column("audio").to_pylist() == ds.data.column("audio").to_pylist()


def test_map_returning_the_row_keeps_unchanged_columns():
    def add(row):
        row["double"] = row["n"] * 2
        return row

    out = make().map(add)
    assert out.features["audio"] == Audio(sampling_rate=8000)
    assert out.data.column("audio").to_pylist() == make().data.column("audio").to_pylist()


def test_map_batched_remove_columns_and_new_audio():
    ds = make()

    def features(batch):
        return {"rms": [float(np.sqrt(np.mean(a["array"] ** 2))) for a in batch["audio"]]}

    out = ds.map(features, batched=True, batch_size=5, remove_columns=["audio"])
    assert out.column_names == ["n", "rms"] and len(out) == 12
    assert out["rms"][0] == pytest.approx(0.5 / np.sqrt(2), rel=1e-2)
    louder = ds.map(
        lambda r: {"audio": {"array": r["audio"]["array"] * 0.5, "sampling_rate": 8000}}
    )
    np.testing.assert_allclose(
        louder[0]["audio"]["array"], ds[0]["audio"]["array"] * 0.5, atol=1e-6
    )


def test_batched_map_may_change_row_count_when_inputs_removed():
    ds = Dataset.from_dict({"n": [1, 2, 3]})
    out = ds.map(
        lambda b: {"m": [x for x in b["n"] for _ in range(2)]}, batched=True, remove_columns=["n"]
    )
    assert out["m"].to_list() == [1, 1, 2, 2, 3, 3]
    with pytest.raises(DatasetError, match="remove_columns"):
        ds.map(lambda b: {"m": b["n"] * 2}, batched=True)


def test_filter_row_batched_indices():
    ds = make()
    assert ds.filter(lambda r: r["n"] % 3 == 0)["n"].to_list() == [0, 3, 6, 9]
    assert ds.filter(lambda b: [x > 8 for x in b["n"]], batched=True)["n"].to_list() == [9, 10, 11]
    assert ds.filter(lambda r, i: i < 2, with_indices=True)["n"].to_list() == [0, 1]
    assert ds.filter(lambda n: n == 4, input_columns="n")["n"].to_list() == [4]


def test_map_num_proc_equals_single_process():
    ds = make(20)

    def f(row):
        return {"peak": float(np.abs(row["audio"]["array"]).max()), "sq": row["n"] ** 2}

    one = ds.map(f)
    two = ds.map(f, num_proc=2)
    assert two.data.to_pylist() == one.data.to_pylist()
    kept = ds.filter(lambda r: r["n"] % 2 == 0, num_proc=2)
    assert kept["n"].to_list() == list(range(0, 20, 2))


def _counted(row, log):
    with open(log, "a") as f:
        f.write("x")
    return {"n1": len(row["audio"]["array"]) + 1}


def test_map_results_cached_by_fingerprint(tmp_path):
    for i in range(4):
        write_tone(tmp_path / "data" / f"{i}.wav", 300 + i * 100)
    ds = load_dataset(
        "audiofolder", data_dir=tmp_path / "data", split="train", cache_dir=tmp_path / "cache"
    )
    log = tmp_path / "calls.txt"
    log.write_text("")
    first = ds.map(_counted, fn_kwargs={"log": str(log)})
    assert len(log.read_text()) == 4
    second = ds.map(_counted, fn_kwargs={"log": str(log)})
    assert len(log.read_text()) == 4  # read from the cache, the function never ran
    assert second["n1"].to_list() == first["n1"].to_list() == [4001] * 4
    assert second.fingerprint == first.fingerprint
    ds.map(_counted, fn_kwargs={"log": str(log)}, load_from_cache_file=False)
    assert len(log.read_text()) == 8
    other = ds.map(lambda r: {"n1": 0})
    assert other["n1"].to_list() == [0] * 4


def test_map_with_torch_format_gives_tensors():
    torch = pytest.importorskip("torch")
    out = (
        make(3)
        .with_format("torch")
        .map(lambda r: {"is_tensor": isinstance(r["audio"]["array"], torch.Tensor)})
    )
    assert out.with_format(None)["is_tensor"].to_list() == [True] * 3


def test_map_output_feature_inference():
    ds = Dataset.from_dict({"x": [1, 2]})
    out = ds.map(
        lambda r: {
            "vec": np.full(3, r["x"], dtype=np.float32),
            "wave": {"array": tone(), "sampling_rate": 16000},
        }
    )
    assert out[1]["vec"] == [2.0, 2.0, 2.0]
    assert isinstance(out.features["wave"], Audio)
    assert out[0]["wave"]["array"].shape == (4000,)
