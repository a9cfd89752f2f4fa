"""Same rows, columns and labels as the datasets library; decoded arrays equal load_audio+soxr."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soxr

from soundformers.audio.io import load_audio
from soundformers.datasets import Audio, load_dataset

from ..conftest import fixture_path

hf = pytest.importorskip("datasets")


def _torchcodec_loads() -> bool:
    try:
        import torchcodec.decoders  # noqa: F401  (loads FFmpeg's shared libraries)
    except Exception:  # not installed, or no FFmpeg libraries, or built for another torch
        return False
    return True


# The datasets library builds audiofolders (it encodes audio) through torchcodec.
needs_torchcodec = pytest.mark.skipif(
    not _torchcodec_loads(),
    reason="the datasets library needs torchcodec with FFmpeg's shared libraries for "
    "audiofolder: pip install torchcodec==0.11.1 and apt-get install ffmpeg (.ci/run does both)",
)


def _hf_rows(dataset) -> list[dict]:
    """The datasets library's rows with the audio column undecoded (path base name only)."""
    plain = dataset.cast_column("audio", hf.Audio(decode=False))
    rows = []
    for row in plain:
        row = dict(row)
        row["audio"] = Path(row["audio"]["path"]).name
        rows.append(row)
    return rows


def _our_rows(dataset) -> list[dict]:
    rows = dataset.cast_column("audio", Audio(decode=False)).to_list()
    for row in rows:
        row["audio"] = Path(row["audio"]["path"]).name
    return rows


@needs_torchcodec
@pytest.mark.parametrize("folder", ["speech", "speech_split", "commands", "sounds/animals"])
def test_audiofolder_rows_match(folder, tmp_path):
    path = fixture_path(*folder.split("/"))
    theirs = hf.load_dataset("audiofolder", data_dir=str(path), cache_dir=str(tmp_path))
    ours = load_dataset("audiofolder", data_dir=path)
    assert list(ours) == list(theirs)
    for split in theirs:
        assert ours[split].column_names == theirs[split].column_names
        assert _our_rows(ours[split]) == _hf_rows(theirs[split])


@needs_torchcodec
def test_folder_labels_match(tmp_path):
    import shutil

    src = fixture_path("commands", "train")
    data = tmp_path / "data"
    for word in ("go", "no", "yes"):
        shutil.copytree(src / word, data / word)
    theirs = hf.load_dataset("audiofolder", data_dir=str(data), cache_dir=str(tmp_path / "hf"))[
        "train"
    ]
    ours = load_dataset("audiofolder", data_dir=data)["train"]
    assert ours.features["label"].names == tuple(theirs.features["label"].names)
    assert _our_rows(ours) == _hf_rows(theirs)


@pytest.mark.parametrize("name", ["speech.parquet", "speech_no_hf_metadata.parquet"])
def test_parquet_rows_match(name, tmp_path):
    path = fixture_path("parquet", name)
    theirs = hf.load_dataset("parquet", data_files=str(path), cache_dir=str(tmp_path))["train"]
    ours = load_dataset("parquet", data_files=str(path))["train"]
    assert ours.column_names == theirs.column_names
    stored = theirs.with_format("arrow")[:]
    assert ours.data.column("audio").to_pylist() == stored.column("audio").to_pylist()
    assert ours["transcription"].to_list() == theirs["transcription"]


def test_decoded_16k_equals_load_audio_plus_soxr():
    ds = load_dataset(fixture_path("speech"), split="train").cast_column(
        "audio", Audio(sampling_rate=16000)
    )
    for row in ds:
        path = row["audio"]["path"]
        wave = load_audio(path)
        expected = (
            soxr.resample(wave.samples, wave.sampling_rate, 16000, quality="HQ")
            if wave.sampling_rate != 16000
            else wave.samples
        )
        assert row["audio"]["sampling_rate"] == 16000
        np.testing.assert_array_equal(row["audio"]["array"], expected.astype(np.float32))
