"""Whisper's byte-level BPE tokenizer and special tokens.

Reads a Hugging Face `tokenizer.json`. The CTranslate2 packages ship an old one whose added
tokens stop at `<|notimestamps|>`: the 1501 timestamp tokens `<|0.00|>` ... `<|30.00|>` are
appended here, and checked against the package's `vocabulary.txt` when present.

Ids become text here, from the vocabulary (GPT-2's byte-to-character alphabet reversed); text
becomes ids through the `tokenizers` library. With a complete `vocabulary.txt` beside it
(CTranslate2's folders), `tokenizer.json` is read only when text is first encoded (a prompt,
a prefix): building its 50 000 merges takes 60-75 ms, half of what loading tiny.en takes
besides `import torch`, and plain transcription never encodes.

Special ids are looked up by name, never assumed: English-only and multilingual vocabularies
differ by one (`<|endoftext|>` is 50256 in tiny.en, 50257 in base).
"""

from __future__ import annotations

import string
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property, partial
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


def _byte_of_char() -> dict[str, int]:
    """GPT-2's byte-level alphabet reversed: the character standing for each byte -> the byte.
    Printable Latin-1 bytes stand for themselves; the other 68 take 256, 257, ... in order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    others = [b for b in range(256) if b not in printable]
    return {
        **{chr(b): b for b in printable},
        **{chr(256 + n): b for n, b in enumerate(others)},
    }


_BYTE_OF_CHAR = _byte_of_char()


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
        tokenizer: a `tokenizers.Tokenizer` holding Whisper's BPE and special tokens, or a
            function that loads one, called when text is first encoded (then `vocabulary` is
            required and must hold the special and timestamp tokens: `from_file` checks).
        vocabulary: optional list of every token by id (CTranslate2's `vocabulary.txt`); the
            tokenizer's ids are checked against it.
    """

    def __init__(
        self, tokenizer: object | Callable[[], object], vocabulary: Sequence[str] | None = None
    ) -> None:
        self._load: Callable[[], object] | None = None
        if callable(tokenizer):
            if vocabulary is None:
                raise ValueError("a deferred tokenizer needs the vocabulary")
            self._load = tokenizer
        else:
            self._tok = self._prepare(tokenizer, vocabulary)
            if vocabulary is None:
                by_token = tokenizer.get_vocab(with_added_tokens=True)  # type: ignore[attr-defined]
                vocabulary = [""] * len(by_token)
                for token, i in by_token.items():
                    vocabulary[i] = token
        self._vocabulary = list(vocabulary)
        # special tokens follow the text tokens: index those (a dict of every token took 9 ms)
        first = _first_special(self._vocabulary)
        self._ids = {token: first + i for i, token in enumerate(self._vocabulary[first:])}
        self._bytes: list[bytes | None] = [None] * len(self._vocabulary)  # see `_token_bytes`
        self.timestamp_begin = self._id("<|0.00|>")
        if self.timestamp_begin != self.no_timestamps + 1:
            raise CheckpointError(
                f"<|0.00|> has id {self.timestamp_begin}, expected {self.no_timestamps + 1} "
                "(right after <|notimestamps|>)"
            )

    @classmethod
    def from_file(
        cls, tokenizer_json: str | Path, vocabulary_txt: str | Path | None = None
    ) -> WhisperTokenizer:
        """Load `tokenizer.json` (and, if given, check ids against `vocabulary.txt`).

        A `vocabulary.txt` that holds every special and timestamp token defers reading
        `tokenizer.json` to the first `encode`, where the check against it happens too.
        """
        load = partial(_read_tokenizer, str(tokenizer_json))  # picklable, unlike a closure
        if vocabulary_txt is None:
            return cls(load())
        lines = Path(vocabulary_txt).read_text(encoding="utf-8").split("\n")
        vocabulary = lines[:-1] if lines and lines[-1] == "" else lines
        if _complete(vocabulary):
            return cls(load, vocabulary)
        return cls(load(), vocabulary)

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

    @cached_property
    def _tok(self) -> object:
        """The `tokenizers.Tokenizer`, loaded and checked on first use when it was deferred."""
        assert self._load is not None
        return self._prepare(self._load(), self._vocabulary)

    @staticmethod
    def _prepare(tok: object, vocabulary: Sequence[str] | None) -> object:
        """Check `tok` is Whisper's, add the timestamp tokens it lacks, compare its ids with
        `vocabulary`; returns `tok`."""
        for name in ("<|endoftext|>", "<|startoftranscript|>", "<|notimestamps|>"):
            if tok.token_to_id(name) is None:  # type: ignore[attr-defined]
                raise CheckpointError(f"the tokenizer lacks {name}: is it a Whisper tokenizer?")
        if tok.token_to_id("<|0.00|>") is None:  # type: ignore[attr-defined]
            _add_timestamp_tokens(tok)
        if vocabulary is not None:
            _check_vocabulary(tok, vocabulary)
        return tok

    def to_json(self, pretty: bool = False) -> str:
        """The whole tokenizer as `tokenizer.json` text (the `tokenizers` library's format),
        timestamp tokens included: what `save_pretrained` writes."""
        return self._tok.to_str(pretty=pretty)  # type: ignore[attr-defined]

    def _id(self, token: str) -> int:
        """The id of a special token (`<|...|>`)."""
        i = self._ids.get(token)
        if i is None:
            raise KeyError(f"token {token!r} is not in the Whisper vocabulary")
        return i

    # ---- special tokens -------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        """Number of ids, timestamps included (51864 English-only, 51865 multilingual v1/v2)."""
        return len(self._vocabulary)

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
        i = self._ids.get("<|nospeech|>")
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
            token = self._vocabulary[i]
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
        return self._tok.encode(text, add_special_tokens=False).ids  # type: ignore[attr-defined]

    def decode(self, ids: Iterable[int]) -> str:
        """Ids -> text, dropping every special and timestamp token."""
        return self._decode([i for i in ids if i < self.eot])

    def _decode(self, ids: Iterable[int]) -> str:
        """Ids -> text, special tokens written as their names: the tokens' bytes joined and
        read as UTF-8, an incomplete or invalid sequence as U+FFFD (as `tokenizers` decodes)."""
        return b"".join(map(self._token_bytes, ids)).decode("utf-8", errors="replace")

    def _token_bytes(self, i: int) -> bytes:
        """The bytes token `i` stands for, worked out on first use: its characters mapped back
        through the byte-level alphabet, or, for a token with a character outside it (none in
        Whisper's vocabularies), its own UTF-8 bytes, as `tokenizers`' ByteLevel decoder does."""
        b = self._bytes[i]
        if b is None:
            token = self._vocabulary[i]
            try:
                b = bytes(_BYTE_OF_CHAR[c] for c in token)
            except KeyError:
                b = token.encode("utf-8")
            self._bytes[i] = b
        return b

    def decode_with_timestamps(self, ids: Iterable[int]) -> str:
        """Ids -> text, timestamps written as `<|1.08|>`; other special tokens dropped."""
        out: list[str] = []
        run: list[int] = []
        for i in ids:
            if i >= self.timestamp_begin:
                out.append(self._decode(run))
                out.append(f"<|{(i - self.timestamp_begin) * TIME_PRECISION:.2f}|>")
                run = []
            elif i < self.eot:
                run.append(i)
        out.append(self._decode(run))
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
        full = self._decode(ids)
        pieces: list[str] = []
        groups: list[list[int]] = []
        run: list[int] = []
        offset = 0
        for i in ids:
            run.append(i)
            text = self._decode(run)
            bad = text.find("\ufffd")
            # complete, or the replacement character is really in the text
            if bad < 0 or (offset + bad < len(full) and full[offset + bad] == "\ufffd"):
                pieces.append(text)
                groups.append(run)
                run = []
                offset += len(text)
        return pieces, groups


def _read_tokenizer(path: str) -> object:
    """A `tokenizers.Tokenizer` from a `tokenizer.json`, without padding or truncation."""
    from tokenizers import Tokenizer

    try:
        tok = Tokenizer.from_file(path)
    except Exception as e:  # tokenizers raises plain Exception subclasses
        raise CheckpointError(f"cannot read tokenizer {path}: {e}") from e
    tok.no_padding()
    tok.no_truncation()
    return tok


def _complete(vocabulary: Sequence[str]) -> bool:
    """Whether a vocabulary list ends with Whisper's special tokens and then every timestamp
    token, as CTranslate2 writes them: then it alone gives every id."""
    names = ("<|endoftext|>", "<|startoftranscript|>", "<|notimestamps|>")
    first = len(vocabulary) - N_TIMESTAMPS
    return (
        first > 0
        and vocabulary[first] == "<|0.00|>"
        and vocabulary[-1] == f"<|{(N_TIMESTAMPS - 1) * TIME_PRECISION:.2f}|>"
        and vocabulary[first - 1] == "<|notimestamps|>"
        and all(name in vocabulary[-N_TIMESTAMPS - 200 :] for name in names)
    )


def _add_timestamp_tokens(tok: object) -> None:
    """Append `<|0.00|>` ... `<|30.00|>` to a `tokenizers.Tokenizer` whose last token is
    `<|notimestamps|>`."""
    from tokenizers import AddedToken

    expected = tok.token_to_id("<|notimestamps|>") + 1  # type: ignore[attr-defined]
    if tok.get_vocab_size(with_added_tokens=True) != expected:  # type: ignore[attr-defined]
        raise CheckpointError(
            "the tokenizer has no timestamp tokens and <|notimestamps|> is not its last "
            "token, so their ids cannot be placed; use a newer tokenizer.json"
        )
    names = [f"<|{i * TIME_PRECISION:.2f}|>" for i in range(N_TIMESTAMPS)]
    tok.add_special_tokens([AddedToken(n, special=True, normalized=False) for n in names])  # type: ignore[attr-defined]


def _check_vocabulary(tok: object, vocabulary: Sequence[str]) -> None:
    """CheckpointError unless `tok` (a `tokenizers.Tokenizer`) and `vocabulary` (tokens by id)
    agree on the size and on every token from `<|endoftext|>` on, where old files differ
    (`<|nocaptions|>` and `<|nospeech|>` are one token under two names)."""
    size = tok.get_vocab_size(with_added_tokens=True)  # type: ignore[attr-defined]
    if len(vocabulary) != size:
        raise CheckpointError(
            f"vocabulary.txt lists {len(vocabulary)} tokens, the tokenizer has {size}"
        )
    for i in range(tok.token_to_id("<|endoftext|>"), size):  # type: ignore[attr-defined]
        theirs = tok.id_to_token(i)  # type: ignore[attr-defined]
        if theirs != vocabulary[i] and {theirs, vocabulary[i]} != {
            "<|nocaptions|>",
            "<|nospeech|>",
        }:
            raise CheckpointError(
                f"token {i} is {theirs!r} in tokenizer.json but {vocabulary[i]!r} in vocabulary.txt"
            )


def _first_special(vocabulary: list[str]) -> int:
    """Index of `<|endoftext|>`, where the special tokens start (0 if it is missing)."""
    try:
        return vocabulary.index("<|endoftext|>")
    except ValueError:
        return 0
