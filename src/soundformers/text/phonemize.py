"""Text front ends for text-to-speech: espeak-ng phonemes (Piper voices) and characters (MMS).

espeak-ng comes from the `espeakng-loader` package, which carries libespeak-ng and its data, so
nothing needs installing system-wide. The library is process-global C state: it is initialised
on first use (never at import) and every call holds one lock.

Piper's conventions (`PiperFrontEnd`): espeak IPA per clause, language-switch flags `(en)`
removed, the clause's punctuation kept (`,` `:` `;` followed by a space), Unicode NFD so that
combining marks are their own phonemes; each sentence becomes
`^ _ p1 _ p2 _ ... pn _ $` through the voice's `phoneme_id_map`.
"""

from __future__ import annotations

import ctypes
import json
import logging
import re
import threading
import unicodedata
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..errors import MissingDependencyError, TextToSpeechError

__all__ = ["CharacterFrontEnd", "PiperFrontEnd", "espeak_phonemes", "split_sentences"]

logger = logging.getLogger(__name__)

_LOCK = threading.Lock()
_LIB: ctypes.CDLL | None = None
_VOICE: str | None = None
_CHARS_UTF8 = 1
_PHONEMES_IPA = 0x02
_AUDIO_OUTPUT_SYNCHRONOUS = 0x02
_TERMINATORS = ".,?!:;"
_SENTENCE_END = ".?!"
_CLOSING = " \t\r\n\"')]}\u201d\u2019\u00bb"
_LANGUAGE_FLAG = re.compile(r"\([^)]+\)")


def _espeak() -> ctypes.CDLL:
    """Load and initialise libespeak-ng from espeakng-loader (once)."""
    global _LIB
    if _LIB is not None:
        return _LIB
    try:
        import espeakng_loader
    except ImportError as e:
        raise MissingDependencyError(
            "phonemizing text for a Piper voice needs espeak-ng: `pip install espeakng-loader` "
            '(or `pip install "soundformers[tts]"`)'
        ) from e
    lib = ctypes.CDLL(espeakng_loader.get_library_path())
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
    lib.espeak_TextToPhonemes.argtypes = [
        ctypes.POINTER(ctypes.c_void_p),
        ctypes.c_int,
        ctypes.c_int,
    ]
    data = espeakng_loader.get_data_path().encode()
    if lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data, 0) < 0:
        raise MissingDependencyError(f"espeak-ng failed to initialise with its data at {data!r}")
    _LIB = lib
    return lib


def espeak_phonemes(text: str, voice: str = "en-us") -> list[tuple[str, str]]:
    """Phonemize text clause by clause with espeak-ng.

    Args:
        text: any text.
        voice: espeak voice name ("en-us", "de", ...).

    Returns:
        (IPA phonemes, terminator) per clause; the terminator is one of `.,?!:;` or "".

    Raises:
        TextToSpeechError: espeak does not know the voice.
    """
    global _VOICE
    with _LOCK:
        lib = _espeak()
        if voice != _VOICE:
            if lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise TextToSpeechError(f"espeak-ng has no voice {voice!r} (e.g. 'en-us', 'de')")
            _VOICE = voice
        raw = text.encode("utf-8")
        buffer = ctypes.create_string_buffer(raw)
        start = ctypes.addressof(buffer)
        pointer = ctypes.c_void_p(start)
        clauses = []
        consumed = 0
        while pointer.value is not None and pointer.value - start < len(raw):
            phonemes = lib.espeak_TextToPhonemes(ctypes.byref(pointer), _CHARS_UTF8, _PHONEMES_IPA)
            if pointer.value is None:
                clause, consumed = raw[consumed:].decode("utf-8", errors="ignore"), len(raw)
            else:  # espeak has read one character past the clause: leave it to the next one
                end = pointer.value - start
                clause = raw[consumed:end].decode("utf-8", errors="ignore")[:-1]
                consumed = end - len(
                    raw[consumed:end].decode("utf-8", errors="ignore")[-1:].encode()
                )
            tail = clause.rstrip(_CLOSING)
            terminator = tail[-1:] if tail[-1:] in tuple(_TERMINATORS) else ""
            clauses.append(((phonemes or b"").decode("utf-8"), terminator))
    return clauses


class PiperFrontEnd:
    """Text -> sentences of phoneme ids, as Piper does for espeak voices.

    Args:
        phoneme_id_map: the voice json's map, phoneme -> ids.
        voice: espeak voice name.
        source: the voice file, for messages.
    """

    def __init__(
        self, phoneme_id_map: Mapping[str, Sequence[int]], voice: str, source: object = ""
    ):
        self.id_map = {str(k): list(v) for k, v in phoneme_id_map.items()}
        self.voice = voice
        self.source = source
        for symbol in ("^", "$", "_"):
            if symbol not in self.id_map:
                raise TextToSpeechError(f"{source}: the phoneme_id_map lacks {symbol!r}")

    def phonemes(self, text: str) -> list[list[str]]:
        """Text -> phonemes (single code points) per sentence."""
        sentences: list[list[str]] = []
        current: list[str] = []
        for phonemes, terminator in espeak_phonemes(text, self.voice):
            clause = _LANGUAGE_FLAG.sub("", phonemes) + terminator
            if terminator in ",:;":
                clause += " "
            current.extend(unicodedata.normalize("NFD", clause))
            if terminator in _SENTENCE_END and terminator:
                sentences.append(current)
                current = []
        if current:
            sentences.append(current)
        return [s for s in sentences if s]

    def ids(self, phonemes: Sequence[str]) -> list[int]:
        """`^ _ p1 _ ... pn _ $` as ids; phonemes missing from the map are skipped."""
        pad = self.id_map["_"]
        ids = [*self.id_map["^"], *pad]
        for p in phonemes:
            if p not in self.id_map:
                logger.debug("%s: phoneme %r is not in the voice's map; skipped", self.source, p)
                continue
            ids += [*self.id_map[p], *pad]
        return ids + self.id_map["$"]

    def __call__(self, text: str) -> list[list[int]]:
        """Text -> one id list per sentence.

        Raises:
            TextToSpeechError: empty text, or nothing pronounceable in it.
        """
        if not isinstance(text, str):
            raise TextToSpeechError(f"text must be a str, got {type(text).__name__}")
        if not text.strip():
            raise TextToSpeechError("the text is empty: nothing to say")
        sentences = [p for p in self.phonemes(text) if any(c.isalpha() for c in p)]
        if not sentences:
            raise TextToSpeechError(
                f"the text {text[:60]!r} has no pronounceable characters for espeak voice "
                f"{self.voice!r}: pass words in the voice's language"
            )
        return [self.ids(p) for p in sentences]


def split_sentences(text: str) -> list[str]:
    """Split on sentence-final punctuation followed by whitespace, and on blank lines."""
    parts = re.split(r"(?<=[.!?。！？])\s+|\n\s*\n", text.strip())
    return [p.strip() for p in parts if p.strip()]


class CharacterFrontEnd:
    """Characters -> ids, as transformers' VitsTokenizer does for MMS-TTS (no phonemizer).

    Args:
        vocab: character -> id (vocab.json).
        lowercase: lowercase the text first (tokenizer_config's `normalize`).
        add_blank: put id 0 between and around the characters.
    """

    def __init__(self, vocab: Mapping[str, int], *, lowercase: bool = True, add_blank: bool = True):
        self.vocab = dict(vocab)
        self.lowercase = lowercase
        self.add_blank = add_blank

    @classmethod
    def from_folder(cls, folder: Path) -> CharacterFrontEnd:
        """Read vocab.json and tokenizer_config.json from a transformers VITS folder."""
        vocab_path = Path(folder) / "vocab.json"
        if not vocab_path.is_file():
            raise TextToSpeechError(f"{folder}: an MMS-TTS voice needs its vocab.json")
        vocab = json.loads(vocab_path.read_text(encoding="utf-8"))
        config_path = Path(folder) / "tokenizer_config.json"
        config = (
            json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
        )
        if config.get("phonemize"):
            raise TextToSpeechError(
                f"{folder}: this checkpoint's tokenizer phonemizes its input (phonemize=true), "
                "which is not supported; MMS-TTS checkpoints use characters"
            )
        if config.get("is_uroman"):
            raise MissingDependencyError(
                f"{folder}: this voice expects romanized (uroman) text; romanize it first "
                "(`pip install uroman`) and pass Latin-script text"
            )
        return cls(vocab, lowercase=bool(config.get("normalize", True)),
                   add_blank=bool(config.get("add_blank", True)))  # fmt: skip

    def __call__(self, text: str) -> list[list[int]]:
        """Text -> one id list per sentence.

        Raises:
            TextToSpeechError: empty text, or no character of it is in the vocabulary.
        """
        if not isinstance(text, str):
            raise TextToSpeechError(f"text must be a str, got {type(text).__name__}")
        if not text.strip():
            raise TextToSpeechError("the text is empty: nothing to say")
        out = []
        for sentence in split_sentences(text):
            sentence = sentence.lower() if self.lowercase else sentence
            ids = [self.vocab[c] for c in sentence if c in self.vocab]
            if not any(c.isalpha() for c in sentence if c in self.vocab):
                continue
            if self.add_blank:
                ids = [i for c in ids for i in (0, c)] + [0]
            out.append(ids)
        if not out:
            raise TextToSpeechError(
                f"the text {text[:60]!r} has no character this voice knows: pass text in its "
                "language and script"
            )
        return out
