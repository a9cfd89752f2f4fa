"""IterableDataset: lazy steps, deterministic shuffle, batches, casts, flat memory."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from soundformers.datasets import Audio, Dataset, IterableDataset, load_dataset
from soundformers.errors import DatasetError

from ..conftest import fixture_path
from .conftest import flac_bytes


def stream(n: int = 20) -> IterableDataset:
    ds = Dataset.from_dict(
        {"audio": [flac_bytes(300 + 10 * i) for i in range(n)], "n": list(range(n))},
        features={"audio": Audio()},
    )
    return ds.to_iterable_dataset()


def test_rows_in_order_with_decoded_audio():
    rows = list(stream(5))
    assert [r["n"] for r in rows] == list(range(5))
    assert rows[0]["audio"]["array"].shape == (4000,)


def test_take_skip_shuffle_are_deterministic():
    s = stream()
    assert [r["n"] for r in s.skip(3).take(4)] == [3, 4, 5, 6]
    a = [r["n"] for r in s.shuffle(seed=7, buffer_size=5)]
    b = [r["n"] for r in s.shuffle(seed=7, buffer_size=5)]
    assert a == b != list(range(20)) and sorted(a) == list(range(20))
    assert [r["n"] for r in s.shuffle(seed=8, buffer_size=5)] != a


def test_map_filter_batch_and_cast():
    s = stream(10).cast_column("audio", Audio(sampling_rate=8000))
    out = s.filter(lambda r: r["n"] % 2 == 0).map(
        lambda r: {"len": len(r["audio"]["array"])}, remove_columns=["audio"]
    )
    assert list(out) == [{"n": n, "len": 2000} for n in range(0, 10, 2)]
    batches = list(s.batch(4).with_format("numpy"))
    assert [len(b["n"]) for b in batches] == [4, 4, 2] and isinstance(batches[0]["n"], np.ndarray)
    doubled = s.map(lambda b: {"n2": [x * 2 for x in b["n"]]}, batched=True, batch_size=3)
    assert [r["n2"] for r in doubled] == [2 * i for i in range(10)]
    with pytest.raises(DatasetError, match="before map"):
        out.cast_column("n", Audio())


def test_steps_before_decoding_decode_nothing():
    s = stream(6).cast_column("audio", Audio(decode=False))
    assert all(set(r["audio"]) == {"bytes", "path"} for r in s.take(2))


def test_streaming_folder_equals_dataset():
    path = fixture_path("speech_split")
    streamed = load_dataset(path, split="test", streaming=True).cast_column(
        "audio", Audio(sampling_rate=8000)
    )
    loaded = load_dataset(path, split="test").cast_column("audio", Audio(sampling_rate=8000))
    for a, b in zip(streamed, loaded, strict=True):
        assert a["transcription"] == b["transcription"]
        np.testing.assert_array_equal(a["audio"]["array"], b["audio"]["array"])


def test_memory_stays_flat_over_a_long_stream():
    clip = flac_bytes()

    def batches():
        import pyarrow as pa

        from soundformers.datasets.features import Features

        schema = Features({"audio": Audio()}).arrow_schema
        for _ in range(60):
            yield pa.RecordBatch.from_pylist(
                [{"audio": {"bytes": clip, "path": None}}] * 50, schema=schema
            )

    s = IterableDataset({"audio": Audio()}, batches).map(
        lambda r: {"peak": float(r["audio"]["array"].max())}, remove_columns=["audio"]
    )
    tracemalloc.start()
    peaks = []
    for i, _ in enumerate(s):
        if i in (300, 2999):
            peaks.append(tracemalloc.get_traced_memory()[1])
    tracemalloc.stop()
    assert i == 2999
    assert peaks[1] < peaks[0] * 1.5 + 2_000_000  # 10x the rows, not 10x the memory
