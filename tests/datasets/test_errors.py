"""Undecodable rows: on_error raise / skip / null, in iteration, map, filter and streams."""

from __future__ import annotations

import warnings

import pytest

from soundformers.datasets import Audio, DecodeErrorsWarning, load_dataset
from soundformers.errors import AudioDecodeError, DatasetError

from ..conftest import fixture_path

# broken/ sorted: clipped_loud, corrupt_header, empty, flac_named, header_only, nan_samples,
# not_audio, tiny_10ms, truncated; five of them cannot give usable audio.
BAD = {
    1: "corrupt_header.wav",
    2: "empty.wav",
    4: "header_only.wav",
    5: "nan_samples.wav",
    6: "not_audio.mp3",
}


@pytest.fixture
def broken():
    return load_dataset(fixture_path("broken"), split="train")


def _quiet(fn):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn()
    return result, [w for w in caught if issubclass(w.category, DecodeErrorsWarning)]


def test_raise_names_row_and_path(broken):
    assert len(broken) == 9
    with pytest.raises(AudioDecodeError, match=r"row 1, column 'audio', path .*corrupt_header.wav"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            list(broken)


def test_skip_leaves_rows_out_and_reports_them(broken):
    ds = broken.cast_column("audio", Audio(on_error="skip"))
    rows, caught = _quiet(lambda: list(ds))
    assert len(rows) == 4
    assert {s.index: s.path.rsplit("/", 1)[1] for s in ds.skipped} == BAD
    assert len(caught) == 1 and "5 row(s)" in str(caught[0].message)
    with pytest.raises(DatasetError, match="on_error='skip'"):
        _quiet(lambda: ds[2])


def test_null_keeps_rows_with_none(broken):
    ds = broken.cast_column("audio", Audio(on_error="null"))
    rows, caught = _quiet(lambda: list(ds))
    assert len(rows) == 9 and [i for i, r in enumerate(rows) if r["audio"] is None] == sorted(BAD)
    assert len(caught) == 1


def test_map_and_filter_skip(broken):
    ds = broken.cast_column("audio", Audio(on_error="skip"))
    mapped, caught = _quiet(lambda: ds.map(lambda r: {"n": len(r["audio"]["array"])}))
    assert len(mapped) == 4 and sorted(s.index for s in mapped.skipped) == sorted(BAD)
    assert caught
    kept, _ = _quiet(lambda: ds.filter(lambda r: True))
    assert len(kept) == 4


def test_streaming_skip(broken):
    s = load_dataset(fixture_path("broken"), split="train", streaming=True).cast_column(
        "audio", Audio(on_error="skip")
    )
    rows, caught = _quiet(lambda: list(s))
    assert len(rows) == 4 and sorted(x.index for x in s.skipped) == sorted(BAD)
