"""Audio in: decoding any input to float32 samples, resampling, and feature extraction.

Names are resolved lazily so that `import soundformers.audio` stays cheap; the feature
extractors (which need torch) load only when used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY: dict[str, str] = {
    "load_audio": ".io",
    "load_audios": ".io",
    "Waveform": ".io",
    "resample": ".resampling",
    "resampled_length": ".resampling",
    "whisper_log_mel": ".features",
    "kaldi_fbank": ".features",
    "ast_features": ".features",
    "mel_filter_bank": ".filters",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'soundformers.audio' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:
    from .features import ast_features, kaldi_fbank, whisper_log_mel
    from .filters import mel_filter_bank
    from .io import Waveform, load_audio, load_audios
    from .resampling import resample, resampled_length
