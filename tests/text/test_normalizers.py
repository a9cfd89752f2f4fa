"""Whisper's text normalizers: same output as the reference implementation (transformers' copy of
openai-whisper's `normalizers/basic.py` and `english.py`), on realistic and generated text."""

from __future__ import annotations

import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from soundformers.errors import MissingDependencyError
from soundformers.text import (
    BasicTextNormalizer,
    EnglishNumberNormalizer,
    EnglishSpellingNormalizer,
    EnglishTextNormalizer,
)
from soundformers.text.normalizers import english_spelling_mapping

reference = pytest.importorskip("transformers.models.whisper.english_normalizer")

OURS = EnglishTextNormalizer()
THEIRS = reference.EnglishTextNormalizer(english_spelling_mapping())

REALISTIC = [
    # numbers spelled out, digits, ordinals, decades
    "twenty five", "one hundred and twenty three", "two thousand and nineteen", "nineteen eighty four",
    "one oh one", "zero point zero one", "two point five million", "three and a half", "and a half",
    "a million and a half", "double oh seven", "triple nine", "the 1st, 2nd, 3rd and 4th", "twenty first",
    "the nineteen sixties", "the 1960s", "the sixties and seventies", "fifty fifth", "a hundredth",
    "one of the ones", "I have 1 apple and 1s", "nine", "nineth", "zeroth", "sixes and sevens",
    "eleven twelve", "twelve hundred", "five thousand five hundred and fifty five", "1,234,567",
    "3.14159", "192.168.0.1", "0.5", ".5", "1.", "five point", "point five", "point", "oh",
    "minus five", "negative two point five", "plus one", "positive", "minus the tax",
    # money and percentages
    "$3.50", "it costs $20 million", "£5", "€2.99", "¢50", "five dollars", "a dollar",
    "two dollars and fifty cents", "$2 and 7 cents", "$0.07", "twenty euros", "10 pounds",
    "ten percent", "5%", "five per cent", "per", "percent", "a 50-50 chance", "100% sure",
    # contractions, titles, fillers
    "I won't, can't, shouldn't", "let's go y'all", "I'm gonna wanna gotta", "ain't it",
    "we'd been there", "she's gone", "he'd done it", "it's got to be", "they're here", "you'll see",
    "I've", "ma'am", "Mr. Smith and Mrs. Jones", "Dr. Who", "St. Louis", "Prof. X", "Gen. Lee",
    "Lt. Col. Sanders Jr.", "uh, um, hmm, mhm, mm", "hmmm umm", "I 'm here", "rock 'n' roll",
    # British spellings, symbols, diacritics, brackets
    "The colour of the centre", "organise the theatre", "travelled", "analyse the catalogue",
    "Café naïve résumé", "Œuvre, Straße, Ærø, Łódź, Þór, ðá", "naïve — em dash – en dash", "a/b c\\d",
    "[music] hello <unk> (laughs) world", "(unclosed paren", "[unclosed", "nested (a (b) c)",
    "email me@example.com", "#hashtag @mention", "ＦＵＬＬ　ｗｉｄｔｈ", "ﬁne ligature", "x² + y²",
    "Hello!!! How are you???", "  leading and trailing  ", "tabs\tand\nnewlines\r\n", "", "   ",
    "日本語のテキスト", "Привет, мир", "مرحبا ٣ دولارات", "emoji 😀 ok 👍🏽", "♪ la la ♪",
]  # fmt: skip


@pytest.mark.parametrize("text", REALISTIC)
def test_english_matches_reference(text):
    assert OURS(text) == THEIRS(text)


@pytest.mark.parametrize("options", [{}, {"remove_diacritics": True}])
@pytest.mark.parametrize("text", REALISTIC)
def test_basic_matches_reference(text, options):
    assert BasicTextNormalizer(**options)(text) == reference.BasicTextNormalizer(**options)(text)


def test_basic_split_letters_matches_reference():
    pytest.importorskip("regex")
    for text in REALISTIC:
        ours = BasicTextNormalizer(split_letters=True)(text)
        assert ours == reference.BasicTextNormalizer(split_letters=True)(text)


def test_parts_match_reference():
    numbers, theirs = EnglishNumberNormalizer(), reference.EnglishNumberNormalizer()
    for text in REALISTIC:
        lowered = text.lower()
        assert numbers(lowered) == theirs(lowered)
    spelling = EnglishSpellingNormalizer()
    theirs_spelling = reference.EnglishSpellingNormalizer(english_spelling_mapping())
    assert spelling("the colour of the  centre") == theirs_spelling("the colour of the  centre")


def test_examples():
    assert (
        OURS("Mr. Smith won't pay £20 for the colour TV!")
        == "mister smith will not pay £20 for the color tv"
    )
    assert OURS("I won't pay twenty five dollars!") == "i will not pay $25"
    assert BasicTextNormalizer()("Hello, World! [music] (laughs)") == "hello world "
    assert BasicTextNormalizer(remove_diacritics=True)("Ça été") == "ca ete"


def test_custom_spelling_mapping():
    assert EnglishTextNormalizer({"gray": "grey"})("Gray colour") == "grey colour"
    assert len(english_spelling_mapping()) == 1739
    assert english_spelling_mapping()["colour"] == "color"


def test_split_letters_without_regex_names_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "regex", None)  # makes `import regex` fail
    with pytest.raises(MissingDependencyError, match="pip install regex"):
        BasicTextNormalizer(split_letters=True)


# --- generated text --------------------------------------------------------------------------

PIECES = [
    "one", "two", "five", "nine", "ten", "eleven", "twenty", "ninety", "hundred", "thousand",
    "million", "zero", "oh", "o", "first", "second", "third", "fifth", "twelfth", "twentieth",
    "thirties", "sixes", "hundreds", "thousandth", "and", "a", "half", "double", "triple", "point",
    "minus", "plus", "negative", "dollar", "dollars", "cents", "cent", "euros", "pounds", "per",
    "percent", "$", "£", "€", "¢", "%", "0", "1", "7", "12", "3.5", "1,000", "2.", ".5", "10.0.1",
    "$5", "£0.50", "1st", "22nd", "1990s", "won't", "it's", "'s", "'d", "n't", "mr", "dr.", "st",
    "colour", "centre", "café", "ß", "œ", "uh", "um", "hmm", "[x]", "(y)", "<z>", "-", "—", "!",
    "?", ",", ".", "'", "a1b", "x9", "٣", "²", "½",
]  # fmt: skip
SEPARATORS = [" ", " ", " ", "", "  ", "-", ", ", ". ", "\n"]


@st.composite
def phrases(draw):
    pieces = draw(st.lists(st.sampled_from(PIECES), max_size=12))
    seps = draw(st.lists(st.sampled_from(SEPARATORS), min_size=len(pieces), max_size=len(pieces)))
    text = "".join(piece + sep for piece, sep in zip(pieces, seps))
    return text.upper() if draw(st.integers(0, 9)) == 0 else text


def same_outcome(ours, theirs, text):
    try:
        expected = theirs(text)
    except ValueError:
        with pytest.raises(ValueError):
            ours(text)
        return
    assert ours(text) == expected


@settings(max_examples=600, deadline=None)
@given(phrases())
def test_english_generated_phrases(text):
    same_outcome(OURS, THEIRS, text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_english_arbitrary_text(text):
    same_outcome(OURS, THEIRS, text)


@settings(max_examples=300, deadline=None)
@given(st.one_of(phrases(), st.text(max_size=40)), st.booleans())
def test_basic_generated_text(text, remove_diacritics):
    ours = BasicTextNormalizer(remove_diacritics=remove_diacritics)
    assert ours(text) == reference.BasicTextNormalizer(remove_diacritics=remove_diacritics)(text)
