"""Interop: torch DataLoader workers, the pipelines' iterable input, the datasets library."""

from __future__ import annotations

import numpy as np
import pytest

from soundformers.audio.io import Waveform
from soundformers.datasets import Audio, Dataset, load_dataset

from ..conftest import fixture_path
from .conftest import flac_bytes


def make(n: int = 9) -> Dataset:
    return Dataset.from_dict(
        {"audio": [flac_bytes(300 + 10 * i) for i in range(n)], "n": list(range(n))},
        features={"audio": Audio(sampling_rate=8000)},
    )


@pytest.mark.parametrize("streaming", [False, True])
def test_dataloader_two_workers_yields_every_row_once(streaming):
    torch = pytest.importorskip("torch")
    ds = make().with_format("torch")
    data = ds.to_iterable_dataset() if streaming else ds
    loader = torch.utils.data.DataLoader(data, batch_size=None, num_workers=2)
    seen = sorted(int(row["n"]) for row in loader)
    assert seen == list(range(9))
    first = next(iter(torch.utils.data.DataLoader(ds, batch_size=None, num_workers=0)))
    assert isinstance(first["audio"]["array"], torch.Tensor)


def test_pipeline_accepts_a_dataset_column():
    from soundformers.pipelines.base import Pipeline

    class Lengths(Pipeline):
        def _forward(self, waves: list[Waveform]) -> list[int]:
            return [len(w.samples) for w in waves]

    pipe = Lengths(16000, batch_size=4)
    out = list(pipe(make()["audio"]))
    assert out == [4000] * 9  # 8 kHz rows resampled again to the pipeline's 16 kHz


def test_to_hf_and_back():
    hf = pytest.importorskip("datasets")
    ds = load_dataset(fixture_path("speech"), split="train").cast_column(
        "audio", Audio(sampling_rate=16000)
    )
    theirs = ds.to_hf()
    assert isinstance(theirs, hf.Dataset) and len(theirs) == 30
    assert theirs.features["audio"].sampling_rate == 16000
    back = Dataset.from_hf(theirs.select([3, 1]))
    assert back.features == ds.features
    assert back["transcription"].to_list() == [ds[3]["transcription"], ds[1]["transcription"]]
    np.testing.assert_array_equal(back[0]["audio"]["array"], ds[3]["audio"]["array"])
