"""VITS text-to-speech, natively: Piper `.onnx` voices and transformers (MMS-TTS) checkpoints.

>>> from soundformers.models.vits import load_piper
>>> voice = load_piper("en_US-joe-medium.onnx")
>>> [audio] = voice.synthesize(voice.split("Hello world."))   # float32 (samples,) at 22050 Hz
"""

from __future__ import annotations

from .config import SynthesisOptions, VitsConfig
from .load import VitsVoice, from_pretrained, load_piper
from .model import VitsModel, VitsOutput

__all__ = [
    "SynthesisOptions",
    "VitsConfig",
    "VitsModel",
    "VitsOutput",
    "VitsVoice",
    "from_pretrained",
    "load_piper",
]
