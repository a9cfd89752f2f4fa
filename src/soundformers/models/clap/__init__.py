"""CLAP (contrastive language-audio pretraining), natively: HTSAT + RoBERTa, conversion, loading.

>>> from soundformers.models.clap import from_pretrained
>>> clap = from_pretrained("path/to/clap-htsat-unfused")
>>> audio = clap.audio_embeddings([wave_48k])         # (1, 512), unit norm
>>> text = clap.text_embeddings(["a dog barking"])    # (1, 512)
>>> clap.logit_scale * audio @ text.T                  # logits_per_audio
"""

from __future__ import annotations

from .config import ClapAudioConfig, ClapConfig, ClapTextConfig
from .load import Clap, from_pretrained
from .model import HTSAT, ClapModel, ClapOutput, TextEncoder

__all__ = [
    "HTSAT",
    "Clap",
    "ClapAudioConfig",
    "ClapConfig",
    "ClapModel",
    "ClapOutput",
    "ClapTextConfig",
    "TextEncoder",
    "from_pretrained",
]
