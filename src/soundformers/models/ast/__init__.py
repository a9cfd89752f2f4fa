"""Audio Spectrogram Transformer, natively: model, checkpoint conversion, classifier.

>>> from soundformers.models.ast import from_pretrained
>>> clf = from_pretrained("path/to/ast-finetuned-audioset-10-10-0.4593")
>>> logits = clf.classify([audio_16k])          # (1, 527)
"""

from __future__ import annotations

from .config import ASTConfig
from .load import ASTClassifier, from_pretrained
from .model import AST, ASTForAudioClassification

__all__ = ["AST", "ASTClassifier", "ASTConfig", "ASTForAudioClassification", "from_pretrained"]
