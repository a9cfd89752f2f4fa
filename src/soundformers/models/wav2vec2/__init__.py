"""Wav2Vec2 and HuBERT, natively: backbone, CTC and sequence-classification heads, loading.

>>> from soundformers.models.wav2vec2 import from_pretrained_ctc
>>> model = from_pretrained_ctc("path/to/wav2vec2-base-960h")
>>> logits = model.logits([audio_16k])[0]          # (frames, vocab)
"""

from __future__ import annotations

from .config import Wav2Vec2Config
from .load import (
    Wav2Vec2Classifier,
    Wav2Vec2CTC,
    from_pretrained_classifier,
    from_pretrained_ctc,
    load_module,
)
from .model import Wav2Vec2Backbone, Wav2Vec2ForCTC, Wav2Vec2ForSequenceClassification

__all__ = [
    "Wav2Vec2Backbone",
    "Wav2Vec2CTC",
    "Wav2Vec2Classifier",
    "Wav2Vec2Config",
    "Wav2Vec2ForCTC",
    "Wav2Vec2ForSequenceClassification",
    "from_pretrained_classifier",
    "from_pretrained_ctc",
    "load_module",
]
