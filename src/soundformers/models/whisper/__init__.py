"""Whisper, natively: model, checkpoint conversion and decoding.

>>> from soundformers.models.whisper import from_pretrained, DecodingOptions
>>> whisper = from_pretrained("whisper-tiny.en")          # bundled, CTranslate2 weights
>>> results = whisper.generate(mel, DecodingOptions())    # mel: (B, 80, 3000) log-mel
>>> results[0].text, results[0].tokens
"""

from __future__ import annotations

from .classification import (
    WhisperClassifier,
    WhisperForAudioClassification,
    from_pretrained_classifier,
)
from .config import WhisperConfig
from .convert import convert, save_pretrained
from .generate import (
    DecodingOptions,
    DecodingResult,
    FallbackOptions,
    WhisperForConditionalGeneration,
    WhisperGenerationConfig,
    decode,
    detect_language,
)
from .load import from_pretrained, load_model
from .model import Whisper

__all__ = [
    "DecodingOptions",
    "DecodingResult",
    "FallbackOptions",
    "Whisper",
    "WhisperClassifier",
    "WhisperConfig",
    "WhisperForAudioClassification",
    "WhisperForConditionalGeneration",
    "WhisperGenerationConfig",
    "convert",
    "decode",
    "detect_language",
    "from_pretrained",
    "from_pretrained_classifier",
    "load_model",
    "save_pretrained",
]
