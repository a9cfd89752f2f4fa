"""Column types of a dataset: `Value`, `ClassLabel`, `Sequence`, `Audio`, and `Features`.

A feature says how a column is stored in Arrow and how a stored value becomes what the user sees.
`Audio` is the one that matters here: Arrow holds the encoded file as ``{bytes, path}`` (bytes may
be null when the file is on disk); reading a row decodes it with `soundformers.load_audio` and
resamples it to the feature's `sampling_rate`, giving ``{"path", "array", "sampling_rate"}``.

Features round-trip through the ``huggingface`` key of an Arrow schema's metadata, in the JSON
layout the datasets library and the Hub use, so Parquet written by either library reads back
with its column types.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Any, Literal

import pyarrow as pa

from ..errors import AudioDecodeError, DatasetError

OnError = Literal["raise", "skip", "null"]
AUDIO_STORAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])

_DTYPES: dict[str, pa.DataType] = {
    "bool": pa.bool_(),
    "int8": pa.int8(),
    "int16": pa.int16(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "uint8": pa.uint8(),
    "uint16": pa.uint16(),
    "uint32": pa.uint32(),
    "uint64": pa.uint64(),
    "float16": pa.float16(),
    "float32": pa.float32(),
    "float64": pa.float64(),
    "string": pa.string(),
    "large_string": pa.large_string(),
    "binary": pa.binary(),
    "large_binary": pa.large_binary(),
    "null": pa.null(),
}
_ALIASES = {"float": "float32", "double": "float64", "int": "int64", "str": "string"}


@dataclass(frozen=True)
class Value:
    """A scalar column: `dtype` is one of "bool", "int8".."int64", "uint8".."uint64",
    "float16", "float32", "float64", "string", "large_string", "binary", "large_binary", "null",
    or another Arrow type's name (kept as given, e.g. "timestamp[s]")."""

    dtype: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "dtype", _ALIASES.get(self.dtype, self.dtype))

    @property
    def pa_type(self) -> pa.DataType:
        if self.dtype in _DTYPES:
            return _DTYPES[self.dtype]
        try:
            return pa.type_for_alias(self.dtype)
        except (ValueError, KeyError) as e:
            raise DatasetError(
                f"Value({self.dtype!r}): unknown dtype; expected one of {sorted(_DTYPES)}"
            ) from e


@dataclass(frozen=True)
class ClassLabel:
    """Integer class ids with names; stored as int64, shown as ints (`int2str` gives names).

    Args:
        names: the class names, id i being names[i].
        num_classes: alternatively the number of classes, named "0".."n-1".
    """

    names: tuple[str, ...] = ()
    num_classes: int | None = None

    def __post_init__(self) -> None:
        names = tuple(str(n) for n in self.names)
        if not names and self.num_classes is not None:
            names = tuple(str(i) for i in range(self.num_classes))
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "num_classes", len(names))

    pa_type = pa.int64()

    def str2int(self, name: str | int) -> int:
        if isinstance(name, int) and not isinstance(name, bool):
            if not -1 <= name < len(self.names):
                raise DatasetError(f"class id {name} out of range for {len(self.names)} classes")
            return name
        try:
            return self.names.index(str(name))
        except ValueError:
            raise DatasetError(
                f"unknown class name {name!r}; expected one of {list(self.names)}"
            ) from None

    def int2str(self, index: int) -> str:
        return self.names[int(index)]


@dataclass(frozen=True)
class Sequence:
    """A list column whose items are `feature` (a Value, ClassLabel, Sequence or dict)."""

    feature: Any

    @property
    def pa_type(self) -> pa.DataType:
        return pa.list_(to_arrow_type(self.feature))


class DecodedAudio(dict):
    """A decoded audio value: a plain dict ``{"path", "array", "sampling_rate"}`` that a notebook
    shows as an audio player (`_repr_html_`: an HTML5 ``<audio>`` element holding the samples as
    16-bit WAV)."""

    def _repr_html_(self) -> str:
        import base64
        import html
        import io

        import numpy as np
        import soundfile

        array = np.asarray(self["array"], dtype=np.float32)
        buffer = io.BytesIO()
        frames = array.T if array.ndim == 2 else array  # soundfile wants (time, channels)
        soundfile.write(buffer, np.clip(frames, -1, 1), int(self["sampling_rate"]), format="WAV",
                        subtype="PCM_16")  # fmt: skip
        data = base64.b64encode(buffer.getvalue()).decode("ascii")
        title = html.escape(str(self.get("path") or "audio"))
        seconds = array.shape[-1] / int(self["sampling_rate"])
        return (
            f'<div title="{title}">{title} ({seconds:.2f} s, {self["sampling_rate"]} Hz)<br>'
            f'<audio controls src="data:audio/wav;base64,{data}"></audio></div>'
        )


@dataclass(frozen=True)
class Audio:
    """Encoded audio, decoded on access.

    Stored as the Arrow struct ``{bytes: binary, path: string}``. Casting a column to another
    `Audio` changes only this description: no stored data is rewritten.

    Args:
        sampling_rate: rate of the decoded array in Hz (resampled with soxr); None keeps the
            file's own rate.
        mono: average channels into shape (time,); with False the array is (channels, time).
        decode: False returns the stored ``{"bytes", "path"}`` instead of decoding.
        on_error: a row whose audio cannot be decoded: "raise" (AudioDecodeError naming the row
            and path), "skip" (iteration and `map`/`filter` leave the row out) or "null" (the
            value is None). Skipped and nulled rows are recorded in the dataset's `skipped`
            list and named in a `DecodeErrorsWarning`; random access (`ds[i]`) with "skip"
            raises, as there is no row to give.
    """

    sampling_rate: int | None = None
    mono: bool = True
    decode: bool = True
    on_error: OnError = "raise"
    id: str | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.on_error not in ("raise", "skip", "null"):
            raise DatasetError(
                f"Audio(on_error={self.on_error!r}): expected 'raise', 'skip' or 'null'"
            )
        if self.sampling_rate is not None:
            if int(self.sampling_rate) <= 0:
                raise DatasetError(f"Audio(sampling_rate={self.sampling_rate!r}) must be > 0")
            object.__setattr__(self, "sampling_rate", int(self.sampling_rate))

    pa_type = AUDIO_STORAGE

    def encode_example(self, value: Any) -> dict[str, Any] | None:
        """A user's value as the stored ``{"bytes", "path"}``.

        Args:
            value: a path, encoded bytes, a ``{"path", "bytes"}`` dict, or a decoded
                ``{"array", "sampling_rate"}`` dict (written as a float32 wav, so exact).
        """
        if value is None:
            return None
        if isinstance(value, str):
            return {"bytes": None, "path": value}
        if isinstance(value, (bytes, bytearray)):
            return {"bytes": bytes(value), "path": None}
        if hasattr(value, "__fspath__"):
            return {"bytes": None, "path": str(value)}
        if isinstance(value, dict):
            if value.get("array") is not None:
                return {"bytes": _wav_bytes(value), "path": value.get("path")}
            if "bytes" in value or "path" in value:
                data = value.get("bytes")
                return {
                    "bytes": bytes(data) if data is not None else None,
                    "path": value.get("path"),
                }
        raise DatasetError(
            f"cannot store a {type(value).__name__} in an Audio column: expected a path, bytes, "
            "{'path', 'bytes'} or {'array', 'sampling_rate'}"
        )

    def decode_example(self, value: dict[str, Any] | None) -> dict[str, Any] | None:
        """Decode a stored ``{"bytes", "path"}``.

        Returns:
            ``{"path": str | None, "array": float32 ndarray (time,) or (channels, time),
            "sampling_rate": int}``; the stored dict itself when `decode` is False; None for None.

        Raises:
            AudioDecodeError: the audio cannot be decoded (the message names the path).
        """
        if value is None or not self.decode:
            return value
        from ..audio.io import load_audio

        source: Any = value
        if value.get("bytes") is None:
            if value.get("path") is None:
                raise AudioDecodeError("an audio value with neither bytes nor path")
            source = value["path"]
        wave = load_audio(source, self.sampling_rate, self.mono)
        return DecodedAudio(
            path=value.get("path"), array=wave.samples, sampling_rate=wave.sampling_rate
        )


def _wav_bytes(value: dict[str, Any]) -> bytes:
    import numpy as np
    import soundfile

    if value.get("sampling_rate") is None:
        raise DatasetError("an {'array'} audio value needs its 'sampling_rate' to be stored")
    array = np.asarray(value["array"], dtype=np.float32)
    buffer = io.BytesIO()
    soundfile.write(
        buffer,
        array.T if array.ndim == 2 else array,
        int(value["sampling_rate"]),
        format="WAV",
        subtype="FLOAT",
    )
    return buffer.getvalue()


FeatureType = Value | ClassLabel | Sequence | Audio | dict


def to_arrow_type(feature: Any) -> pa.DataType:
    """The Arrow storage type of a feature (a dict is a struct of its items)."""
    if isinstance(feature, dict):
        return pa.struct([(k, to_arrow_type(v)) for k, v in feature.items()])
    if isinstance(feature, list) and len(feature) == 1:
        return pa.list_(to_arrow_type(feature[0]))
    return feature.pa_type


def from_arrow_type(pa_type: pa.DataType) -> Any:
    """The feature for a bare Arrow type; a {bytes: binary, path: string} struct is `Audio`."""
    if pa.types.is_struct(pa_type):
        names = {pa_type.field(i).name: pa_type.field(i).type for i in range(pa_type.num_fields)}
        if set(names) == {"bytes", "path"} and pa.types.is_binary(
            names["bytes"]
        ) | pa.types.is_large_binary(names["bytes"]):
            return Audio()
        return {k: from_arrow_type(t) for k, t in names.items()}
    if pa.types.is_list(pa_type) or pa.types.is_large_list(pa_type):
        return Sequence(from_arrow_type(pa_type.value_type))
    if pa.types.is_dictionary(pa_type):
        return from_arrow_type(pa_type.value_type)
    return Value(str(pa_type))


def to_json(feature: Any) -> Any:
    """A feature in the datasets library's JSON layout (as in the ``huggingface`` metadata)."""
    if isinstance(feature, dict):
        return {k: to_json(v) for k, v in feature.items()}
    if isinstance(feature, Value):
        return {"dtype": feature.dtype, "_type": "Value"}
    if isinstance(feature, ClassLabel):
        return {"names": list(feature.names), "_type": "ClassLabel"}
    if isinstance(feature, Sequence):
        return {"feature": to_json(feature.feature), "_type": "List"}
    if isinstance(feature, Audio):
        out: dict[str, Any] = {"sampling_rate": feature.sampling_rate, "_type": "Audio"}
        if not feature.decode:
            out["decode"] = False
        if not feature.mono:
            out["mono"] = False
        if feature.on_error != "raise":
            out["on_error"] = feature.on_error
        return out
    raise DatasetError(f"not a feature: {feature!r}")


def from_json(data: Any) -> Any:
    """Inverse of `to_json`; also reads the datasets library's "Sequence" and "List" forms."""
    if isinstance(data, list) and len(data) == 1:
        return Sequence(from_json(data[0]))
    if not isinstance(data, dict):
        raise DatasetError(f"not a feature description: {data!r}")
    kind = data.get("_type")
    if kind is None:
        return {k: from_json(v) for k, v in data.items()}
    if kind == "Value":
        return Value(data["dtype"])
    if kind == "ClassLabel":
        return ClassLabel(names=tuple(data.get("names") or ()), num_classes=data.get("num_classes"))
    if kind in ("Sequence", "List", "LargeList"):
        return Sequence(from_json(data["feature"]))
    if kind == "Audio":
        return Audio(
            sampling_rate=data.get("sampling_rate"),
            mono=data.get("mono", True),
            decode=data.get("decode", True),
            on_error=data.get("on_error", "raise"),
        )
    raise DatasetError(f"unsupported feature type {kind!r} in {data!r}")


class Features(dict):
    """Column name -> feature, in column order."""

    @property
    def arrow_schema(self) -> pa.Schema:
        """The Arrow schema, with these features in its ``huggingface`` metadata."""
        meta = {"huggingface": json.dumps({"info": {"features": to_json(dict(self))}})}
        return pa.schema([(k, to_arrow_type(v)) for k, v in self.items()], metadata=meta)

    @classmethod
    def from_arrow_schema(cls, schema: pa.Schema) -> Features:
        """Features of a schema: its ``huggingface`` metadata where present, else inferred from
        the Arrow types (a struct {bytes, path} is taken for `Audio`)."""
        declared: dict[str, Any] = {}
        raw = (schema.metadata or {}).get(b"huggingface")
        if raw:
            try:
                declared = json.loads(raw).get("info", {}).get("features", {}) or {}
            except (ValueError, AttributeError):
                declared = {}
        out = cls()
        for name, pa_type in zip(schema.names, schema.types):
            out[name] = from_json(declared[name]) if name in declared else from_arrow_type(pa_type)
        return out

    def to_json(self) -> dict[str, Any]:
        return to_json(dict(self))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Features:
        return cls({k: from_json(v) for k, v in data.items()})

    def audio_columns(self) -> list[str]:
        return [k for k, v in self.items() if isinstance(v, Audio) and v.decode]


def encode_column(feature: Any, values: list[Any]) -> pa.Array:
    """Python values of one column as an Arrow array of the feature's storage type."""
    if isinstance(feature, Audio):
        values = [feature.encode_example(v) for v in values]
    elif isinstance(feature, ClassLabel):
        values = [None if v is None else feature.str2int(_as_py_scalar(v)) for v in values]
    elif isinstance(feature, Value) and feature.dtype in ("string", "large_string"):
        values = [None if v is None else str(v) for v in values]
    return pa.array(values, type=to_arrow_type(feature), from_pandas=True)


def _as_py_scalar(v: Any) -> Any:
    return v.item() if hasattr(v, "item") and getattr(v, "ndim", 1) == 0 else v


def infer_feature(values: list[Any]) -> Any:
    """The feature for new Python values: decoded audio dicts become `Audio`, arrays become
    lists, everything else is Arrow's own inference."""
    first = next((v for v in values if v is not None), None)
    if isinstance(first, dict) and "array" in first and "sampling_rate" in first:
        return Audio()
    return from_arrow_type(pa.array([_to_arrow_friendly(v) for v in values]).type)


def _to_arrow_friendly(v: Any) -> Any:
    if hasattr(v, "tolist") and hasattr(v, "dtype"):  # numpy array / scalar or torch tensor
        return v.tolist()
    if isinstance(v, (list, tuple)):
        return [_to_arrow_friendly(x) for x in v]
    return v


def python_values(values: list[Any]) -> list[Any]:
    """Values with arrays and tensors turned into lists, ready for `pa.array`."""
    return [_to_arrow_friendly(v) for v in values]
