"""soundformers: the transformer library for sound.

`import soundformers` is cheap: it imports neither numpy nor torch. Each public name below is
resolved on first access from the table `_LAZY` (name -> module), so the cost of a feature is paid
only when it is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import (
    AudioDecodeError,
    AudioFetchError,
    CheckpointError,
    FeatureError,
    MetricInputError,
    MissingDependencyError,
    ModelNotFoundError,
    SoundformersError,
)

__version__ = "0.1.0"

# public name -> module that defines it (relative to this package)
_LAZY: dict[str, str] = {
    "load_audio": ".audio.io",
    "Waveform": ".audio.io",
    "resample": ".audio.resampling",
    "pipeline": ".pipelines.registry",
    "load_dataset": ".datasets.load",
    "Dataset": ".datasets.arrow",
    "DatasetDict": ".datasets.dict",
    "IterableDataset": ".datasets.iterable",
    "Audio": ".datasets.features",
    "Value": ".datasets.features",
    "ClassLabel": ".datasets.features",
    "concatenate_datasets": ".datasets.arrow",
    "save_audio": ".audio.output",
}
# submodules reachable as attributes: soundformers.audio, soundformers.metrics, ...
_SUBMODULES = ("audio", "formats", "metrics", "models", "pipelines", "text")

__all__ = [
    "AudioDecodeError",
    "AudioFetchError",
    "CheckpointError",
    "FeatureError",
    "MetricInputError",
    "MissingDependencyError",
    "ModelNotFoundError",
    "SoundformersError",
    "__version__",
    *_LAZY,
    *_SUBMODULES,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module 'soundformers' has no attribute {name!r}")
    globals()[name] = value  # cache: the next access is a plain attribute lookup
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # for type checkers and IDEs only; never executed
    from . import audio, formats, metrics, models, pipelines, text
    from .audio.io import Waveform, load_audio
    from .audio.output import save_audio
    from .audio.resampling import resample
    from .datasets.arrow import Dataset, concatenate_datasets
    from .datasets.dict import DatasetDict
    from .datasets.features import Audio, ClassLabel, Value
    from .datasets.iterable import IterableDataset
    from .datasets.load import load_dataset
    from .pipelines.registry import pipeline
