"""Text processing: normalizers for scoring transcripts (`normalizers`) and tokenizers.

>>> from soundformers.text import EnglishTextNormalizer
>>> EnglishTextNormalizer()("I won't pay twenty five dollars!")
'i will not pay $25'
"""

from __future__ import annotations

from .normalizers import (
    BasicTextNormalizer,
    EnglishNumberNormalizer,
    EnglishSpellingNormalizer,
    EnglishTextNormalizer,
)

__all__ = [
    "BasicTextNormalizer",
    "EnglishNumberNormalizer",
    "EnglishSpellingNormalizer",
    "EnglishTextNormalizer",
]
