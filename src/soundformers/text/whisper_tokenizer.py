"""Whisper's byte-level BPE tokenizer and special tokens, through the `tokenizers` library.

Reads a Hugging Face `tokenizer.json`. The CTranslate2 packages ship an old one whose added
tokens stop at `<|notimestamps|>`: the 1501 timestamp tokens `<|0.00|>` ... `<|30.00|>` are
appended here, and checked against the package's `vocabulary.txt` when present.

Special ids are looked up by name, never assumed: English-only and multilingual vocabularies
differ by one (`<|endoftext|>` is 50256 in tiny.en, 50257 in base).
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from ..errors import CheckpointError

__all__ = ["TIME_PRECISION", "TimedText", "WhisperTokenizer"]

TIME_PRECISION = 0.02  # seconds per timestamp token step
# languages written without spaces between words: split at character boundaries instead
_NO_SPACE_LANGUAGES = frozenset({"zh", "ja", "th", "lo", "my", "yue"})
N_TIMESTAMPS = 1501  # <|0.00|> ... <|30.00|>

# punctuation and symbols openai-whisper suppresses with suppress_tokens="-1"
_NON_SPEECH_SYMBOLS = list('"#()*+/:;<=>@[\\]^_`{|}~「」『』') + (
    "<< >> <<< >>> -- --- -( -[ (' (\" (( )) ((( ))) [[ ]] {{ }} ♪♪ ♪♪♪".split()
)
_MUSIC_SYMBOLS = list("♩♪♫♬♭♮♯")  # suppressed even when they take several tokens


@dataclass(frozen=True)
class TimedText:
    """A run of text between two timestamp tokens.

    Attributes:
        start, end: seconds (window-relative unless an offset was given); `end` is None when
            the tokens stop without a closing timestamp.
        text: decoded text.
        tokens: its text token ids.
    """

    start: float
    end: float | None
    text: str
    tokens: tuple[int, ...]


class WhisperTokenizer:
    """Text <-> token ids, plus Whisper's special tokens.

    Args:
        tokenizer: a `tokenizers.Tokenizer` holding Whisper's BPE and special tokens.
        vocabulary: optional list of every token by id (CTranslate2's `vocabulary.txt`), used
            to check the ids of added timestamp tokens.
    """

    def __init__(self, tokenizer: object, vocabulary: Sequence[str] | None = None) -> None:
        self._tok = tokenizer
        for name in ("<|endoftext|>", "<|startoftranscript|>", "<|notimestamps|>"):
            if self._tok.token_to_id(name) is None:
                raise CheckpointError(f"the tokenizer lacks {name}: is it a Whisper tokenizer?")
        if self._tok.token_to_id("<|0.00|>") is None:
            self._add_timestamp_tokens()
        self.timestamp_begin = self._id("<|0.00|>")
        if self.timestamp_begin != self.no_timestamps + 1:
            raise CheckpointError(
                f"<|0.00|> has id {self.timestamp_begin}, expected {self.no_timestamps + 1} "
                "(right after <|notimestamps|>)"
            )
        if vocabulary is not None:
            self._check_vocabulary(vocabulary)

    @classmethod
    def from_file(
        cls, tokenizer_json: str | Path, vocabulary_txt: str | Path | None = None
    ) -> WhisperTokenizer:
        """Load `tokenizer.json` (and, if given, check ids against `vocabulary.txt`)."""
        from tokenizers import Tokenizer

        try:
            tok = Tokenizer.from_file(str(tokenizer_json))
        except Exception as e:  # tokenizers raises plain Exception subclasses
            raise CheckpointError(f"cannot read tokenizer {tokenizer_json}: {e}") from e
        tok.no_padding()
        tok.no_truncation()
        vocabulary = None
        if vocabulary_txt is not None:
            lines = Path(vocabulary_txt).read_text(encoding="utf-8").split("\n")
            vocabulary = lines[:-1] if lines and lines[-1] == "" else lines
        return cls(tok, vocabulary)

    @classmethod
    def from_folder(cls, folder: str | Path) -> WhisperTokenizer:
        """Load from a model folder holding `tokenizer.json` (and maybe `vocabulary.txt`)."""
        folder = Path(folder)
        path = folder / "tokenizer.json"
        if not path.is_file():
            raise CheckpointError(
                f"no tokenizer.json in {folder}; Whisper needs its tokenizer files beside the "
                "weights (copy them from the matching openai/whisper-* hub repo)"
            )
        vocab = folder / "vocabulary.txt"
        return cls.from_file(path, vocab if vocab.is_file() else None)

    def _add_timestamp_tokens(self) -> None:
        from tokenizers import AddedToken

        expected = self._id("<|notimestamps|>") + 1
        if self._tok.get_vocab_size(with_added_tokens=True) != expected:
            raise CheckpointError(
                "the tokenizer has no timestamp tokens and <|notimestamps|> is not its last "
                "token, so their ids cannot be placed; use a newer tokenizer.json"
            )
        names = [f"<|{i * TIME_PRECISION:.2f}|>" for i in range(N_TIMESTAMPS)]
        self._tok.add_special_tokens([AddedToken(n, special=True, normalized=False) for n in names])

    def _check_vocabulary(self, vocabulary: Sequence[str]) -> None:
        size = self._tok.get_vocab_size(with_added_tokens=True)
        if len(vocabulary) != size:
            raise CheckpointError(
                f"vocabulary.txt lists {len(vocabulary)} tokens, the tokenizer has {size}"
            )
        for i in range(self.eot, size):  # the special region, where old files disagree
            if self._tok.id_to_token(i) != vocabulary[i] and not (
                {self._tok.id_to_token(i), vocabulary[i]} == {"<|nocaptions|>", "<|nospeech|>"}
            ):
                raise CheckpointError(
                    f"token {i} is {self._tok.id_to_token(i)!r} in tokenizer.json but "
                    f"{vocabulary[i]!r} in vocabulary.txt"
                )

    def to_json(self, pretty: bool = False) -> str:
        """The whole tokenizer as `tokenizer.json` text (the `tokenizers` library's format),
        timestamp tokens included: what `save_pretrained` writes."""
        return self._tok.to_str(pretty=pretty)

    def _id(self, token: str) -> int:
        i = self._tok.token_to_id(token)
        if i is None:
            raise KeyError(f"token {token!r} is not in the Whisper vocabulary")
        return i

    # ---- special tokens -------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        """Number of ids, timestamps included (51864 English-only, 51865 multilingual v1/v2)."""
        return self._tok.get_vocab_size(with_added_tokens=True)

    @cached_property
    def eot(self) -> int:
        return self._id("<|endoftext|>")

    @cached_property
    def sot(self) -> int:
        return self._id("<|startoftranscript|>")

    @cached_property
    def translate(self) -> int:
        return self._id("<|translate|>")

    @cached_property
    def transcribe(self) -> int:
        return self._id("<|transcribe|>")

    @cached_property
    def sot_lm(self) -> int:
        return self._id("<|startoflm|>")

    @cached_property
    def sot_prev(self) -> int:
        return self._id("<|startofprev|>")

    @cached_property
    def no_speech(self) -> int:
        """`<|nospeech|>` (called `<|nocaptions|>` in older vocabularies)."""
        i = self._tok.token_to_id("<|nospeech|>")
        return self._id("<|nocaptions|>") if i is None else i

    @cached_property
    def no_timestamps(self) -> int:
        return self._id("<|notimestamps|>")

    @property
    def multilingual(self) -> bool:
        """English-only vocabularies put `<|endoftext|>` at 50256, multilingual at 50257."""
        return self.eot != 50256

    @cached_property
    def language_codes(self) -> tuple[str, ...]:
        """Language codes in id order ("en", "zh", "de", ...), from the vocabulary itself."""
        codes = []
        for i in range(self.sot + 1, self.translate):
            token = self._tok.id_to_token(i)
            codes.append(token[2:-2])
        return tuple(codes)

    @cached_property
    def language_ids(self) -> tuple[int, ...]:
        return tuple(range(self.sot + 1, self.sot + 1 + len(self.language_codes)))

    def language_id(self, code: str) -> int:
        """Id of `<|code|>`; ValueError listing the known codes otherwise."""
        if code not in self.language_codes:
            raise ValueError(
                f"unknown language {code!r}; expected one of {', '.join(self.language_codes)}"
            )
        return self.sot + 1 + self.language_codes.index(code)

    def sot_sequence(
        self, language: str | None = None, task: str = "transcribe", timestamps: bool = True
    ) -> tuple[int, ...]:
        """The decoder's start: `<|sot|>[<|lang|><|task|>][<|notimestamps|>]`.

        English-only models take `<|sot|>` alone (plus `<|notimestamps|>`). Multilingual models
        need a language (detect it first) and a task ("transcribe" or "translate").
        """
        if task not in ("transcribe", "translate"):
            raise ValueError(f"task must be 'transcribe' or 'translate', got {task!r}")
        seq = [self.sot]
        if self.multilingual:
            if language is None:
                raise ValueError(
                    "a multilingual model needs a language code (detect it with the model first)"
                )
            seq += [
                self.language_id(language),
                self.transcribe if task == "transcribe" else self.translate,
            ]
        elif language not in (None, "en") or task != "transcribe":
            raise ValueError(
                f"this English-only tokenizer transcribes English only (got language={language!r}, "
                f"task={task!r})"
            )
        if not timestamps:
            seq.append(self.no_timestamps)
        return tuple(seq)

    def timestamp_id(self, seconds: float) -> int:
        """The token for a time in [0, 30] s, rounded to 0.02 s."""
        step = round(seconds / TIME_PRECISION)
        if not 0 <= step < N_TIMESTAMPS:
            raise ValueError(f"timestamp {seconds} s is outside 0..30 s")
        return self.timestamp_begin + step

    @cached_property
    def non_speech_tokens(self) -> tuple[int, ...]:
        """Ids of symbols and speaker tags openai-whisper suppresses by default, sorted.

        A symbol counts when it (or it after a space) is one token; music notes count even
        when split. " -" and " '" are included.
        """
        result = {self.encode(" -")[0], self.encode(" '")[0]}
        for symbol in _NON_SPEECH_SYMBOLS + _MUSIC_SYMBOLS:
            for ids in (self.encode(symbol), self.encode(" " + symbol)):
                if len(ids) == 1 or symbol in _MUSIC_SYMBOLS:
                    result.add(ids[0])
        return tuple(sorted(result))

    # ---- text -----------------------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        """Plain text -> BPE ids, no special tokens added (a leading space is significant)."""
        return self._tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Iterable[int]) -> str:
        """Ids -> text, dropping every special and timestamp token."""
        return self._tok.decode([i for i in ids if i < self.eot], skip_special_tokens=False)

    def decode_with_timestamps(self, ids: Iterable[int]) -> str:
        """Ids -> text, timestamps written as `<|1.08|>`; other special tokens dropped."""
        out: list[str] = []
        run: list[int] = []
        for i in ids:
            if i >= self.timestamp_begin:
                out.append(self._tok.decode(run, skip_special_tokens=False))
                out.append(f"<|{(i - self.timestamp_begin) * TIME_PRECISION:.2f}|>")
                run = []
            elif i < self.eot:
                run.append(i)
        out.append(self._tok.decode(run, skip_special_tokens=False))
        return "".join(out)

    def split_timestamps(self, ids: Iterable[int], time_offset: float = 0.0) -> list[TimedText]:
        """Cut timestamped output into runs of text, each with its opening and closing time.

        `<|0.00|> Hello<|1.20|><|1.20|> world<|2.00|>` gives (0.0, 1.2, " Hello") and
        (1.2, 2.0, " world"). Text before any timestamp starts at `time_offset`; a trailing
        run without a closing timestamp gets `end=None`. Special tokens are dropped.
        """
        spans: list[TimedText] = []
        start = time_offset
        run: list[int] = []
        for i in ids:
            if i >= self.timestamp_begin:
                t = time_offset + (i - self.timestamp_begin) * TIME_PRECISION
                if run:
                    spans.append(TimedText(start, t, self.decode(run), tuple(run)))
                    run = []
                start = t
            elif i < self.eot:
                run.append(i)
        if run:
            spans.append(TimedText(start, None, self.decode(run), tuple(run)))
        return spans

    # ---- words (for word timestamps) ------------------------------------------------------

    def split_to_word_tokens(
        self, ids: Sequence[int], language: str | None = None
    ) -> tuple[list[str], list[list[int]]]:
        """Group token ids into words: (words, the ids of each word), in order.

        A new word starts at a token that begins with a space, at punctuation and at special
        tokens (openai-whisper's rule); languages written without spaces (zh, ja, th, lo, my,
        yue) are split at every complete character instead. The words concatenate to the
        decoded text, special tokens written as `<|name|>`.
        """
        pieces, groups = self._split_on_characters(ids)
        if language in _NO_SPACE_LANGUAGES:
            return pieces, groups
        words: list[str] = []
        word_ids: list[list[int]] = []
        for piece, group in zip(pieces, groups):
            starts_word = (
                not words
                or group[0] >= self.eot
                or piece.startswith(" ")
                or piece.strip() in string.punctuation
            )
            if starts_word:
                words.append(piece)
                word_ids.append(list(group))
            else:
                words[-1] += piece
                word_ids[-1].extend(group)
        return words, word_ids

    def _split_on_characters(self, ids: Sequence[int]) -> tuple[list[str], list[list[int]]]:
        """Cut ids into the shortest runs that decode to whole characters (a byte-level BPE
        token can hold part of a multi-byte character, decoded as U+FFFD until completed)."""
        full = self._tok.decode(list(ids), skip_special_tokens=False)
        pieces: list[str] = []
        groups: list[list[int]] = []
        run: list[int] = []
        offset = 0
        for i in ids:
            run.append(i)
            text = self._tok.decode(run, skip_special_tokens=False)
            bad = text.find("\ufffd")
            # complete, or the replacement character is really in the text
            if bad < 0 or (offset + bad < len(full) and full[offset + bad] == "\ufffd"):
                pieces.append(text)
                groups.append(run)
                run = []
                offset += len(text)
        return pieces, groups
