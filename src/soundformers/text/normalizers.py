"""Text normalizers for scoring speech recognition: Whisper's English normalizer and its basic one.

Their output is the same as openai-whisper's `whisper/normalizers/basic.py` and `english.py`
(and so as transformers' copies): WER scores computed after them are comparable with
published Whisper numbers.

- `BasicTextNormalizer`: lowercases, drops text in brackets and parentheses, turns symbols and
  punctuation into spaces, optionally strips diacritics and splits letters. Language-agnostic.
- `EnglishTextNormalizer`: English only. On top of that it expands contractions and titles,
  drops fillers ("um", "hmm"), writes spelled-out numbers as digits (`EnglishNumberNormalizer`)
  and British spellings as American ones (`EnglishSpellingNormalizer`).

Data: `english_spelling.json`, the British-to-American word list, is openai-whisper's
`whisper/normalizers/english.json` (MIT License, Copyright (c) 2022 OpenAI), itself from
https://www.tysto.com/uk-us-spelling-list.html.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterator, Mapping
from fractions import Fraction
from functools import lru_cache
from importlib import resources

from ..errors import MissingDependencyError

__all__ = [
    "BasicTextNormalizer",
    "EnglishNumberNormalizer",
    "EnglishSpellingNormalizer",
    "EnglishTextNormalizer",
    "english_spelling_mapping",
    "remove_symbols",
    "remove_symbols_and_diacritics",
]

# ---------------------------------------------------------------------------------------------
# symbols and diacritics

# letters that NFKD does not decompose into a base letter and a combining mark
_LETTER_FOLDS = {
    "œ": "oe", "Œ": "OE", "æ": "ae", "Æ": "AE", "ø": "o", "Ø": "O", "ß": "ss", "ẞ": "SS",
    "đ": "d", "Đ": "D", "ð": "d", "Ð": "D", "þ": "th", "Þ": "th", "ł": "l", "Ł": "L",
}  # fmt: skip


class _CharTable(dict):
    """A `str.translate` table filled on demand: character -> replacement, per Unicode category.

    Marks, symbols and punctuation (categories M*, S*, P*) become a space; with
    `strip_diacritics`, nonspacing marks (Mn) are deleted instead and `_LETTER_FOLDS` applies;
    characters in `keep` stay as they are.
    """

    def __init__(self, strip_diacritics: bool, keep: str = ""):
        super().__init__()
        self.strip_diacritics = strip_diacritics
        self.keep = keep

    def __missing__(self, code: int) -> str:
        char = chr(code)
        category = unicodedata.category(char)
        if char in self.keep:
            result = char
        elif self.strip_diacritics and char in _LETTER_FOLDS:
            result = _LETTER_FOLDS[char]
        elif self.strip_diacritics and category == "Mn":
            result = ""
        elif category[0] in "MSP":
            result = " "
        else:
            result = char
        self[code] = result
        return result


_KEEP_DIACRITICS = _CharTable(strip_diacritics=False)
_tables: dict[str, _CharTable] = {}


def remove_symbols_and_diacritics(text: str, keep: str = "") -> str:
    """Decompose (NFKD), drop diacritics, and turn other marks, symbols and punctuation into spaces.

    Args:
        text: any text.
        keep: characters to leave untouched (e.g. ".%$" to keep numbers readable).

    Returns:
        The text with `œ -> oe`-style folds applied, nonspacing marks removed and every other
        mark, symbol or punctuation character replaced by a space (not collapsed).
    """
    table = _tables.get(keep)
    if table is None:
        table = _tables[keep] = _CharTable(strip_diacritics=True, keep=keep)
    return unicodedata.normalize("NFKD", text).translate(table)


def remove_symbols(text: str) -> str:
    """Compose (NFKC) and turn marks, symbols and punctuation into spaces, keeping diacritics.

    Args:
        text: any text.

    Returns:
        The text with every mark, symbol or punctuation character replaced by a space.
    """
    return unicodedata.normalize("NFKC", text).translate(_KEEP_DIACRITICS)


_BRACKETED = re.compile(r"[<\[][^>\]]*[>\]]")  # "[music]", "<unk>"
_PARENTHESIZED = re.compile(r"\(([^)]+?)\)")  # "(laughs)"
_WHITESPACE = re.compile(r"\s+")


class BasicTextNormalizer:
    """Whisper's language-agnostic normalizer.

    Lowercases, removes "[...]", "<...>" and "(...)" spans, replaces marks, symbols and
    punctuation by spaces (optionally removing diacritics), optionally puts a space between all
    letters (grapheme clusters), and collapses whitespace runs to one space. Leading or trailing
    spaces are kept, as in Whisper (WER tokenization ignores them).

    Args:
        remove_diacritics: fold "é" to "e", "ß" to "ss", etc.
        split_letters: separate every grapheme cluster by a space (for languages written
            without spaces); needs the `regex` package.

    Example:
        >>> BasicTextNormalizer()("Hello, World! [music] (laughs)")
        'hello world '
    """

    def __init__(self, remove_diacritics: bool = False, split_letters: bool = False):
        self.remove_diacritics = remove_diacritics
        self.split_letters = split_letters
        self._graphemes = _grapheme_pattern() if split_letters else None

    @property
    def name(self) -> str:
        """How metrics results name this normalizer: "basic", with non-default options listed."""
        options = [
            f"{option}=True"
            for option in ("remove_diacritics", "split_letters")
            if getattr(self, option)
        ]
        return f"basic({', '.join(options)})" if options else "basic"

    def __call__(self, text: str) -> str:
        """Normalize one text (str -> str)."""
        text = _PARENTHESIZED.sub("", _BRACKETED.sub("", text.lower()))
        text = (
            remove_symbols_and_diacritics(text) if self.remove_diacritics else remove_symbols(text)
        )
        text = text.lower()
        if self._graphemes is not None:
            text = " ".join(self._graphemes.findall(text))
        return _WHITESPACE.sub(" ", text)

    def __repr__(self) -> str:
        return (
            f"BasicTextNormalizer(remove_diacritics={self.remove_diacritics}, "
            f"split_letters={self.split_letters})"
        )


def _grapheme_pattern():
    try:
        import regex
    except ImportError as e:
        raise MissingDependencyError(
            "BasicTextNormalizer(split_letters=True) splits text into grapheme clusters with the "
            "'regex' package, which is not installed: pip install regex"
        ) from e
    return regex.compile(r"\X", regex.U)


# ---------------------------------------------------------------------------------------------
# English numbers

_ONES_NAMES = (
    "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen"
).split()
_TENS_NAMES = "twenty thirty forty fifty sixty seventy eighty ninety".split()
_MULTIPLIER_NAMES = (
    "hundred thousand million billion trillion quadrillion quintillion sextillion septillion "
    "octillion nonillion decillion"
).split()


def _ordinals() -> dict[str, tuple[int, str]]:
    irregular = {"zeroth": 0, "first": 1, "second": 2, "third": 3, "fifth": 5, "twelfth": 12}
    ordinals = {
        name: (v, {1: "st", 2: "nd", 3: "rd"}.get(v, "th")) for name, v in irregular.items()
    }
    for name, value in _ONES.items():  # Whisper's rule, which spells 9th "nineth"
        if value > 3 and value not in (5, 12):
            ordinals[name + ("h" if name.endswith("t") else "th")] = (value, "th")
    return ordinals


# word -> value, or (value, suffix) for the "suffixed" forms that end a number
_ZEROS = frozenset({"o", "oh", "zero"})
_ONES = {name: value for value, name in enumerate(_ONES_NAMES, start=1)}
_ONES_SUFFIXED = {
    **{("sixes" if name == "six" else name + "s"): (value, "s") for name, value in _ONES.items()},
    **_ordinals(),
}
_TENS = {name: 10 * value for value, name in enumerate(_TENS_NAMES, start=2)}
_TENS_SUFFIXED = {
    **{name.replace("y", "ies"): (value, "s") for name, value in _TENS.items()},
    **{name.replace("y", "ieth"): (value, "th") for name, value in _TENS.items()},
}
_MULTIPLIERS = {
    "hundred": 100,
    **{name: 1000**i for i, name in enumerate(_MULTIPLIER_NAMES[1:], start=1)},
}
_MULTIPLIERS_SUFFIXED = {
    **{name + "s": (value, "s") for name, value in _MULTIPLIERS.items()},
    **{name + "th": (value, "th") for name, value in _MULTIPLIERS.items()},
}
_SIGNS = {"minus": "-", "negative": "-", "plus": "+", "positive": "+"}  # before a number
_CURRENCIES = {  # after a number
    "pound": "£", "pounds": "£", "euro": "€", "euros": "€",
    "dollar": "$", "dollars": "$", "cent": "¢", "cents": "¢",
}  # fmt: skip
_SUFFIXES = {"per": {"cent": "%"}, "percent": "%"}
_REPEATS = {"double": 2, "triple": 3}
_SPECIALS = frozenset({"and", "point", *_REPEATS})
_ALL_NUMBER_WORDS = frozenset().union(
    _ZEROS, _ONES, _ONES_SUFFIXED, _TENS, _TENS_SUFFIXED, _MULTIPLIERS, _MULTIPLIERS_SUFFIXED,
    _SIGNS, _CURRENCIES, _SUFFIXES, _SPECIALS,
)  # fmt: skip
_DECIMAL_WORDS = frozenset({*_ONES, *_TENS, *_ZEROS})  # words that may follow "point"
_SYMBOL_PREFIXES = frozenset({*_SIGNS.values(), *_CURRENCIES.values()})

_DIGITS = re.compile(r"^\d+(\.\d+)?$")
_AND_A_HALF = re.compile(r"\band\s+a\s+half\b")
_LETTER_DIGIT = re.compile(r"([a-z])([0-9])")
_DIGIT_LETTER = re.compile(r"([0-9])([a-z])")
_DIGIT_SUFFIX = re.compile(r"([0-9])\s+(st|nd|rd|th|s)\b")
_DOLLARS_AND_CENTS = re.compile(r"([€£$])([0-9]+) (?:and )?¢([0-9]{1,2})\b")
_ONLY_CENTS = re.compile(r"[€£$]0.([0-9]{1,2})\b")
_DIGIT_ONE = re.compile(r"\b1(s?)\b")


def _fraction(text: str) -> Fraction | None:
    try:
        return Fraction(text)
    except ValueError:
        return None


class _NumberState:
    """The number being read by `EnglishNumberNormalizer.process_words`.

    `value` is None (no number), an int (a quantity: "twenty" then "one" adds up to 21), or a
    str (a digit string: "one two" is "12", "two point" is "2."). `prefix` is a sign or currency
    symbol to write in front of it.
    """

    def __init__(self):
        self.value: int | str | None = None
        self.prefix: str | None = None

    def emit(self, text: int | str) -> str:
        """`text` with the pending prefix; the number is finished."""
        result = str(text) if self.prefix is None else self.prefix + str(text)
        self.value = None
        self.prefix = None
        return result

    def flush(self) -> Iterator[str]:
        if self.value is not None:
            yield self.emit(self.value)

    def append_digit(self, digit: int, previous: str | None) -> str | int:
        """The value with one more digit (0..19) "spoken" after it."""
        value = self.value
        if value is None:
            return digit
        if isinstance(value, str) or previous in _ONES:
            if previous in _TENS and digit < 10:  # "oh twenty one": the 1 replaces the 0
                return value[:-1] + str(digit)
            return str(value) + str(digit)
        if value % (10 if digit < 10 else 100) == 0:  # "twenty" + "one", "hundred" + "twelve"
            return value + digit
        return str(value) + str(digit)

    def append_tens(self, tens: int) -> str | int:
        value = self.value
        if value is None:
            return tens
        if isinstance(value, str) or value % 100 != 0:
            return str(value) + str(tens)
        return value + tens

    def times(self, multiplier: int) -> int:
        """An int value scaled: "two thousand three hundred" keeps the thousands."""
        return self.value // 1000 * 1000 + self.value % 1000 * multiplier


class EnglishNumberNormalizer:
    """Writes spelled-out English numbers as digits, as Whisper's normalizer does.

    - "twenty five" -> "25", "one oh one" -> "101", "two point five" -> "2.5",
      "two and a half" -> "2.5", "double oh seven" -> "007";
    - keeps suffixes: "1960s", "twenty first" -> "21st", "fifties" -> "50s";
    - currencies and percentages: "five dollars" -> "$5", "$2 and 7 cents" -> "$2.07",
      "ten percent" -> "10%";
    - writes "one" / "ones" back in words when alone ("one" -> "one", "1" -> "one").

    Expects lowercase text with punctuation already removed (as `EnglishTextNormalizer` gives it).
    """

    def __call__(self, text: str) -> str:
        """Normalize the numbers of one text (str -> str)."""
        words = self.preprocess(text).split()
        return self.postprocess(" ".join(self.process_words(words)))

    def preprocess(self, text: str) -> str:
        """Rewrite "X and a half" as "X point five" after a number; space digits apart from letters."""
        pieces = []
        segments = _AND_A_HALF.split(text)
        for index, segment in enumerate(segments):
            if not segment.strip():
                continue  # (Whisper drops an "and a half" that follows nothing)
            pieces.append(segment)
            if index < len(segments) - 1:
                last = segment.rsplit(maxsplit=2)[-1]
                numeric = last in _DECIMAL_WORDS or last in _MULTIPLIERS
                pieces.append("point five" if numeric else "and a half")
        text = " ".join(pieces)
        text = _DIGIT_LETTER.sub(r"\1 \2", _LETTER_DIGIT.sub(r"\1 \2", text))
        return _DIGIT_SUFFIX.sub(r"\1\2", text)  # but "1960 s" -> "1960s", "21 st" -> "21st"

    def postprocess(self, text: str) -> str:
        """Merge currency amounts ("$2 ¢7" -> "$2.07", "$0.07" -> "¢7"); "1" -> "one"."""
        text = _DOLLARS_AND_CENTS.sub(lambda m: f"{m[1]}{m[2]}.{int(m[3]):02d}", text)
        text = _ONLY_CENTS.sub(lambda m: f"¢{int(m[1])}", text)
        return _DIGIT_ONE.sub(r"one\1", text)

    def process_words(self, words: list[str]) -> Iterator[str]:
        """The output words for a list of input words (numbers merged into digit strings)."""
        state = _NumberState()
        skip_next = False
        for index, word in enumerate(words):
            if skip_next:
                skip_next = False
                continue
            previous = words[index - 1] if index > 0 else None
            following = words[index + 1] if index + 1 < len(words) else None
            following_is_number = following is not None and bool(_DIGITS.match(following))
            following_may_be_number = following in _ALL_NUMBER_WORDS or following_is_number
            symbol = word[0] if word[0] in _SYMBOL_PREFIXES else None
            digits = word[1:] if symbol else word

            if _DIGITS.match(digits):  # written digits, maybe with a sign or currency symbol
                if isinstance(state.value, str) and state.value.endswith("."):
                    state.value += word  # "2." then "5": decimals (or an IP address)
                    continue
                yield from state.flush()
                state.prefix = symbol or state.prefix
                number = _fraction(digits)
                if number is None:
                    raise ValueError(f"cannot read the number {digits!r}")
                state.value = number.numerator if number.denominator == 1 else digits
            elif word not in _ALL_NUMBER_WORDS:
                yield from state.flush()
                yield state.emit(word)
            elif word in _ZEROS:
                state.value = str(state.value or "") + "0"
            elif word in _ONES:
                state.value = state.append_digit(_ONES[word], previous)
            elif word in _ONES_SUFFIXED:
                number, suffix = _ONES_SUFFIXED[word]
                yield state.emit(f"{state.append_digit(number, previous)}{suffix}")
            elif word in _TENS:
                state.value = state.append_tens(_TENS[word])
            elif word in _TENS_SUFFIXED:
                number, suffix = _TENS_SUFFIXED[word]
                yield state.emit(f"{state.append_tens(number)}{suffix}")
            elif word in _MULTIPLIERS:
                yield from self._multiply(state, _MULTIPLIERS[word])
            elif word in _MULTIPLIERS_SUFFIXED:
                multiplier, suffix = _MULTIPLIERS_SUFFIXED[word]
                yield from self._multiply_suffixed(state, multiplier, suffix)
            elif word in _SIGNS:  # a sign applies to the number that follows
                yield from state.flush()
                if following_may_be_number:
                    state.prefix = _SIGNS[word]
                else:
                    yield state.emit(word)
            elif word in _CURRENCIES:  # a currency applies to the number before it
                if state.value is not None:
                    state.prefix = _CURRENCIES[word]
                    yield state.emit(state.value)
                else:
                    yield state.emit(word)
            elif word in _SUFFIXES:
                suffix = _SUFFIXES[word]
                if state.value is None:
                    yield state.emit(word)
                elif isinstance(suffix, str):  # "percent"
                    yield state.emit(f"{state.value}{suffix}")
                elif following in suffix:  # "per cent"
                    yield state.emit(f"{state.value}{suffix[following]}")
                    skip_next = True
                else:
                    yield state.emit(state.value)
                    yield state.emit(word)
            elif not following_may_be_number:  # "and", "double", "triple", "point" as words
                yield from state.flush()
                yield state.emit(word)
            elif word == "and":
                if previous not in _MULTIPLIERS:  # "hundred and five": the "and" is dropped
                    yield from state.flush()
                    yield state.emit(word)
            elif word in _REPEATS:
                if following in _ONES or following in _ZEROS:
                    digit = str(_ONES.get(following, 0))
                    state.value = str(state.value or "") + digit * _REPEATS[word]
                    skip_next = True
                else:
                    yield from state.flush()
                    yield state.emit(word)
            elif following in _DECIMAL_WORDS or following_is_number:  # "point"
                state.value = str(state.value or "") + "."
        yield from state.flush()

    @staticmethod
    def _multiply(state: _NumberState, multiplier: int) -> Iterator[str]:
        value = state.value
        if value is None:
            state.value = multiplier
        elif isinstance(value, str) or value == 0:  # "2.5 million", "oh five hundred"
            number = _fraction(str(value))
            if number is not None and (number * multiplier).denominator == 1:
                state.value = (number * multiplier).numerator
            else:
                yield state.emit(value)
                state.value = multiplier
        else:
            state.value = state.times(multiplier)

    @staticmethod
    def _multiply_suffixed(state: _NumberState, multiplier: int, suffix: str) -> Iterator[str]:
        value = state.value
        if value is None:
            yield state.emit(f"{multiplier}{suffix}")
        elif isinstance(value, str):
            number = _fraction(value)
            if number is not None and (number * multiplier).denominator == 1:
                yield state.emit(f"{(number * multiplier).numerator}{suffix}")
            else:
                yield state.emit(value)
                yield state.emit(f"{multiplier}{suffix}")
        else:
            yield state.emit(f"{state.times(multiplier)}{suffix}")


# ---------------------------------------------------------------------------------------------
# English spelling and the full English normalizer


@lru_cache(maxsize=1)
def english_spelling_mapping() -> dict[str, str]:
    """The bundled British -> American spelling list (1739 words, from openai-whisper).

    Returns:
        A dict such as {"colour": "color", ...}; shared: do not modify it.
    """
    data = resources.files(__package__).joinpath("english_spelling.json").read_text("utf-8")
    return json.loads(data)


class EnglishSpellingNormalizer:
    """Replaces British spellings by American ones, word by word ("colour" -> "color").

    Args:
        mapping: British -> American words; default: the bundled list (`english_spelling_mapping`).
    """

    def __init__(self, mapping: Mapping[str, str] | None = None):
        self.mapping = english_spelling_mapping() if mapping is None else mapping

    def __call__(self, text: str) -> str:
        """Respell one text; whitespace runs become single spaces."""
        get = self.mapping.get
        return " ".join(get(word, word) for word in text.split())


_FILLERS = re.compile(r"\b(hmm|mm|mhm|mmm|uh|um)\b")
_SPACE_APOSTROPHE = re.compile(r"\s+'")
# applied in this order; each is (pattern, replacement)
_REWRITES = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        # common contractions
        (r"\bwon't\b", "will not"),
        (r"\bcan't\b", "can not"),
        (r"\blet's\b", "let us"),
        (r"\bain't\b", "aint"),
        (r"\by'all\b", "you all"),
        (r"\bwanna\b", "want to"),
        (r"\bgotta\b", "got to"),
        (r"\bgonna\b", "going to"),
        (r"\bi'ma\b", "i am going to"),
        (r"\bimma\b", "i am going to"),
        (r"\bwoulda\b", "would have"),
        (r"\bcoulda\b", "could have"),
        (r"\bshoulda\b", "should have"),
        (r"\bma'am\b", "madam"),
        # titles and abbreviated prefixes
        (r"\bmr\b", "mister "),
        (r"\bmrs\b", "missus "),
        (r"\bst\b", "saint "),
        (r"\bdr\b", "doctor "),
        (r"\bprof\b", "professor "),
        (r"\bcapt\b", "captain "),
        (r"\bgov\b", "governor "),
        (r"\bald\b", "alderman "),
        (r"\bgen\b", "general "),
        (r"\bsen\b", "senator "),
        (r"\brep\b", "representative "),
        (r"\bpres\b", "president "),
        (r"\brev\b", "reverend "),
        (r"\bhon\b", "honorable "),
        (r"\basst\b", "assistant "),
        (r"\bassoc\b", "associate "),
        (r"\blt\b", "lieutenant "),
        (r"\bcol\b", "colonel "),
        (r"\bjr\b", "junior "),
        (r"\bsr\b", "senior "),
        (r"\besq\b", "esquire "),
        # perfect tenses (only these participles: "'s done" is ambiguous)
        (r"'d been\b", " had been"),
        (r"'s been\b", " has been"),
        (r"'d gone\b", " had gone"),
        (r"'s gone\b", " has gone"),
        (r"'d done\b", " had done"),
        (r"'s got\b", " has got"),
        # general contractions
        (r"n't\b", " not"),
        (r"'re\b", " are"),
        (r"'s\b", " is"),
        (r"'d\b", " would"),
        (r"'ll\b", " will"),
        (r"'t\b", " not"),
        (r"'ve\b", " have"),
        (r"'m\b", " am"),
    )
)
_DIGIT_COMMA_DIGIT = re.compile(r"(\d),(\d)")
_PERIOD_NOT_DECIMAL = re.compile(r"\.([^0-9]|$)")
_LOOSE_PREFIX_SYMBOL = re.compile(r"[.$¢€£]([^0-9])")  # "$" or "." not before a digit
_LOOSE_PERCENT = re.compile(r"([^0-9])%")  # "%" not after a digit
_NUMERIC_SYMBOLS = ".%$¢€£"


class EnglishTextNormalizer:
    """Whisper's English normalizer: the one behind Whisper's published English WERs.

    Lowercases; removes "[...]", "<...>", "(...)" spans and fillers (hmm, mm, mhm, mmm, uh, um);
    expands contractions ("won't" -> "will not") and titles ("dr" -> "doctor"); removes
    punctuation, symbols and diacritics; writes numbers as digits (`EnglishNumberNormalizer`) and
    British spellings as American (`EnglishSpellingNormalizer`); collapses whitespace.

    Args:
        spelling_mapping: British -> American words; default: the bundled list.

    Example:
        >>> EnglishTextNormalizer()("Mr. Smith won't pay £20 for the colour TV!")
        'mister smith will not pay £20 for the color tv'
    """

    name = "whisper_english"

    def __init__(self, spelling_mapping: Mapping[str, str] | None = None):
        self.standardize_numbers = EnglishNumberNormalizer()
        self.standardize_spellings = EnglishSpellingNormalizer(spelling_mapping)

    def __call__(self, text: str) -> str:
        """Normalize one text (str -> str)."""
        text = _PARENTHESIZED.sub("", _BRACKETED.sub("", text.lower()))
        text = _SPACE_APOSTROPHE.sub("'", _FILLERS.sub("", text))
        for pattern, replacement in _REWRITES:
            text = pattern.sub(replacement, text)
        text = _DIGIT_COMMA_DIGIT.sub(r"\1\2", text)  # "1,000" -> "1000"
        text = _PERIOD_NOT_DECIMAL.sub(r" \1", text)
        text = remove_symbols_and_diacritics(text, keep=_NUMERIC_SYMBOLS)
        text = self.standardize_spellings(self.standardize_numbers(text))
        text = _LOOSE_PERCENT.sub(r"\1 ", _LOOSE_PREFIX_SYMBOL.sub(r" \1", text))
        return _WHITESPACE.sub(" ", text)

    def __repr__(self) -> str:
        return "EnglishTextNormalizer()"
