"""load_dataset: audio folders, manifests, Parquet, detection, hub ids, and its errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from soundformers.datasets import (
    Audio,
    ClassLabel,
    Dataset,
    DatasetDict,
    IterableDataset,
    load_dataset,
)
from soundformers.errors import DatasetError, DatasetNotFoundError

from ..conftest import fixture_path
from .conftest import write_tone


def test_speech_folder_with_metadata():
    ds = load_dataset("audiofolder", data_dir=fixture_path("speech"))
    assert isinstance(ds, DatasetDict) and list(ds) == ["train"]
    train = ds["train"]
    assert len(train) == 30
    assert train.column_names == ["audio", "transcription", "speaker", "sampling_rate"]
    assert isinstance(train.features["audio"], Audio)
    row = train[24]  # 25_m4a-44k.m4a: needs the FFmpeg backend
    assert (
        row["audio"]["path"].endswith("25_m4a-44k.m4a") and row["audio"]["sampling_rate"] == 44100
    )


def test_split_folders_and_split_argument():
    ds = load_dataset(fixture_path("speech_split"))
    assert ds.num_rows == {"train": 24, "test": 6}
    test = load_dataset(fixture_path("speech_split"), split="test")
    assert isinstance(test, Dataset) and len(test) == 6
    with pytest.raises(
        DatasetError, match=r"no split 'validation'; the splits are \['train', 'test'\]"
    ):
        load_dataset(fixture_path("speech_split"), split="validation")


def test_labels_from_folder_names(tmp_path):
    for label in ("dog", "cat", "m4a"):
        write_tone(tmp_path / "train" / label / "a.wav")
        write_tone(tmp_path / "test" / label / "b.flac")
    ds = load_dataset("audiofolder", data_dir=tmp_path)
    assert ds["train"].features["label"] == ClassLabel(names=("cat", "dog", "m4a"))
    assert ds["train"]["label"].to_list() == [0, 1, 2]
    assert ds["test"]["label"].to_list() == [0, 1, 2]
    assert load_dataset("audiofolder", data_dir=tmp_path, drop_labels=True)[
        "train"
    ].column_names == ["audio"]


def test_m4a_and_aac_files_are_audio(tmp_path):
    import av

    path = tmp_path / "clip.m4a"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 16000), np.float32), format="fltp", layout="mono"
        )
        frame.sample_rate = 16000
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    (tmp_path / "clip.aac").write_bytes(path.read_bytes())
    ds = load_dataset(tmp_path, split="train")
    names = [a["path"].rsplit("/", 1)[1] for a in ds.data.column("audio").to_pylist()]
    assert names == ["clip.aac", "clip.m4a"]
    assert ds[1]["audio"]["sampling_rate"] == 16000


def test_commands_metadata_per_split():
    ds = load_dataset(fixture_path("commands"))
    assert ds.num_rows == {"train": 60, "test": 30}
    assert ds["train"].column_names == ["audio", "label", "speaker"]
    assert set(ds["test"]["label"]) == {
        "yes",
        "no",
        "up",
        "down",
        "left",
        "right",
        "on",
        "off",
        "stop",
        "go",
    }


def test_parquet_hub_layout_and_struct_detection():
    full = load_dataset(
        "parquet", data_files=str(fixture_path("parquet", "speech.parquet")), split="train"
    )
    assert len(full) == 30 and full.column_names == ["audio", "transcription", "speaker"]
    assert isinstance(full.features["audio"], Audio)
    bare = load_dataset(fixture_path("parquet", "speech_no_hf_metadata.parquet"), split="train")
    assert isinstance(bare.features["audio"], Audio) and len(bare) == 6
    rows = list(bare.cast_column("audio", Audio(sampling_rate=16000)))
    assert all(r["audio"]["sampling_rate"] == 16000 for r in rows)


def test_parquet_hub_folder_layout(tmp_path):
    import shutil

    (tmp_path / "data").mkdir()
    src = fixture_path("parquet", "speech_no_hf_metadata.parquet")
    shutil.copy(src, tmp_path / "data" / "train-00000-of-00001.parquet")
    shutil.copy(src, tmp_path / "data" / "test-00000-of-00001.parquet")
    ds = load_dataset(str(tmp_path))
    assert ds.num_rows == {"train": 6, "test": 6}


def test_csv_and_json_manifests(tmp_path):
    for i in range(3):
        write_tone(tmp_path / "clips" / f"{i}.wav", 300 + 100 * i)
    (tmp_path / "train.csv").write_text(
        "path,text\n" + "".join(f"clips/{i}.wav,t{i}\n" for i in range(3))
    )
    (tmp_path / "test.jsonl").write_text(
        "".join(
            json.dumps({"audio_filepath": f"clips/{i}.wav", "text": f"t{i}"}) + "\n"
            for i in range(2)
        )
    )
    csv = load_dataset("csv", data_files=str(tmp_path / "train.csv"), split="train")
    assert csv.column_names == ["path", "text"] and isinstance(csv.features["path"], Audio)
    assert csv[2]["path"]["array"].shape == (4000,)
    js = load_dataset("json", data_files={"test": str(tmp_path / "test.jsonl")}, split="test")
    assert isinstance(js.features["audio_filepath"], Audio) and js["text"].to_list() == ["t0", "t1"]


def test_streaming_returns_iterable_datasets():
    ds = load_dataset(fixture_path("speech_split"), streaming=True)
    assert isinstance(ds["train"], IterableDataset)
    assert sum(1 for _ in ds["test"]) == 6


def test_second_load_uses_the_arrow_cache(tmp_path):
    write_tone(tmp_path / "d" / "a.wav")
    first = load_dataset(tmp_path / "d", split="train", cache_dir=tmp_path / "c")
    second = load_dataset(tmp_path / "d", split="train", cache_dir=tmp_path / "c")
    assert first.fingerprint == second.fingerprint
    assert len(list((tmp_path / "c").rglob("*.arrow"))) == 1


def test_errors_name_the_problem(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("hi")
    with pytest.raises(DatasetNotFoundError, match="no audio files found"):
        load_dataset("audiofolder", data_dir=tmp_path / "empty")
    write_tone(tmp_path / "meta" / "a.wav")
    (tmp_path / "meta" / "metadata.csv").write_text("file_name,text\na.wav,x\ngone.wav,y\n")
    with pytest.raises(DatasetNotFoundError, match=r"metadata.csv names 1 file\(s\).*gone.wav"):
        load_dataset("audiofolder", data_dir=tmp_path / "meta")
    with pytest.raises(DatasetNotFoundError, match="no such file or folder"):
        load_dataset(str(tmp_path / "missing") + "/")
    with pytest.raises(DatasetNotFoundError, match="needs data_dir"):
        load_dataset("audiofolder")


def test_hub_id_offline_gives_a_clear_error():
    with pytest.raises(
        DatasetNotFoundError, match="not in the local hub cache|nor in the local hub cache"
    ):
        load_dataset("nobody-here/no-such-dataset-xyz", local_files_only=True)
