"""The Audio feature (every stored form, decode options, instant casts) and feature JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soxr

from soundformers.audio.io import load_audio
from soundformers.datasets import Audio, ClassLabel, Dataset, Features, Sequence, Value
from soundformers.errors import DatasetError

from .conftest import flac_bytes, tone, write_tone


def _forms(tmp_path):
    path = write_tone(tmp_path / "a.wav")
    return {
        "path": str(path),
        "pathlike": path,
        "bytes": flac_bytes(),
        "dict-path": {"path": str(path), "bytes": None},
        "dict-bytes": {"path": "x.flac", "bytes": flac_bytes()},
        "dict-array": {"array": tone(), "sampling_rate": 16000},
    }


@pytest.mark.parametrize(
    "form", ["path", "pathlike", "bytes", "dict-path", "dict-bytes", "dict-array"]
)
@pytest.mark.parametrize("rate", [None, 8000, 22050])
def test_every_input_form_decodes(tmp_path, form, rate):
    value = _forms(tmp_path)[form]
    ds = Dataset.from_dict({"audio": [value]}, features={"audio": Audio(sampling_rate=rate)})
    row = ds[0]["audio"]
    expected = tone() if rate is None else soxr.resample(tone(), 16000, rate, quality="HQ")
    assert row["sampling_rate"] == (rate or 16000)
    assert row["array"].dtype == np.float32
    np.testing.assert_allclose(row["array"], expected, atol=1e-4)


def test_stereo_kept_with_mono_false():
    value = {"array": tone(channels=2), "sampling_rate": 16000}
    ds = Dataset.from_dict({"audio": [value]}, features={"audio": Audio(mono=False)})
    assert ds[0]["audio"]["array"].shape == (2, 4000)
    mono = ds.cast_column("audio", Audio())[0]["audio"]["array"]
    np.testing.assert_allclose(mono, tone() * 0.75, atol=1e-6)  # the mean of 0.5x and 1x


def test_decode_false_returns_stored_value(tmp_path):
    ds = Dataset.from_dict(
        {"audio": [str(write_tone(tmp_path / "a.wav"))]}, features={"audio": Audio(decode=False)}
    )
    assert ds[0]["audio"] == {"bytes": None, "path": str(tmp_path / "a.wav")}


def test_cast_to_audio_rewrites_nothing(tmp_path):
    ds = Dataset.from_dict({"audio": [flac_bytes()] * 3}, features={"audio": Audio()})
    cast = ds.cast_column("audio", Audio(sampling_rate=8000))
    before = ds._table.column("audio").chunk(0).buffers()
    after = cast._table.column("audio").chunk(0).buffers()
    assert [b.address for b in before if b] == [b.address for b in after if b]
    assert cast.features["audio"] == Audio(sampling_rate=8000)
    assert cast[0]["audio"]["array"].shape == (2000,)


def test_features_json_round_trip_and_hf_layout():
    features = Features(
        {
            "audio": Audio(sampling_rate=16000),
            "label": ClassLabel(names=("cat", "dog")),
            "text": Value("string"),
            "values": Sequence(Value("float32")),
        }
    )
    assert Features.from_arrow_schema(features.arrow_schema) == features
    meta = json.loads(features.arrow_schema.metadata[b"huggingface"])
    assert meta["info"]["features"]["audio"] == {"sampling_rate": 16000, "_type": "Audio"}
    assert meta["info"]["features"]["label"] == {"names": ["cat", "dog"], "_type": "ClassLabel"}


def test_class_label_accepts_names_and_ids():
    label = ClassLabel(names=("cat", "dog"))
    ds = Dataset.from_dict({"label": ["dog", 0, "cat"]}, features={"label": label})
    assert ds["label"].to_list() == [1, 0, 0]
    assert label.int2str(1) == "dog"
    with pytest.raises(DatasetError, match="unknown class name 'cow'"):
        label.str2int("cow")


def test_bad_on_error_is_refused():
    with pytest.raises(DatasetError, match="on_error"):
        Audio(on_error="ignore")


def test_row_decodes_like_load_audio(tmp_path):
    path = write_tone(tmp_path / "b.wav", sr=44100)
    ds = Dataset.from_dict({"audio": [str(path)]}, features={"audio": Audio(sampling_rate=16000)})
    np.testing.assert_array_equal(ds[0]["audio"]["array"], load_audio(path, 16000).samples)


def test_decoded_row_is_a_dict_with_an_audio_player_in_notebooks():
    import base64
    import io
    import re

    import soundfile

    from soundformers.datasets import Audio, Dataset

    tone = (0.5 * np.sin(np.arange(1600) / 16000 * 2 * np.pi * 440)).astype(np.float32)
    ds = Dataset.from_dict({"audio": [{"array": tone, "sampling_rate": 16000}]})
    row = ds.cast_column("audio", Audio())[0]["audio"]
    assert isinstance(row, dict) and set(row) == {"path", "array", "sampling_rate"}
    html = row._repr_html_()
    assert "<audio controls" in html and "0.10 s, 16000 Hz" in html
    encoded = re.search(r"base64,([A-Za-z0-9+/=]+)", html).group(1)
    played, rate = soundfile.read(io.BytesIO(base64.b64decode(encoded)), dtype="float32")
    assert rate == 16000
    np.testing.assert_allclose(played, tone, atol=1 / 32768)
