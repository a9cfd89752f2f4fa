"""The Whisper tokenizer on the bundled (old-format) tokenizer files of tiny.en and base."""

from __future__ import annotations

import json
import pickle

import pytest

from soundformers.errors import CheckpointError
from soundformers.hub import resolve_model
from soundformers.text.whisper_tokenizer import WhisperTokenizer

# NOTES-checkpoints.md: English-only and multilingual special ids differ by one
SPECIAL_IDS = {
    "whisper-tiny.en": dict(eot=50256, sot=50257, translate=50357, transcribe=50358,
                            sot_lm=50359, sot_prev=50360, no_speech=50361, no_timestamps=50362),
    "whisper-base": dict(eot=50257, sot=50258, translate=50358, transcribe=50359,
                         sot_lm=50360, sot_prev=50361, no_speech=50362, no_timestamps=50363),
}  # fmt: skip
TEXTS = [
    " Hello world, it's 2024!",
    " The quick brown fox -- jumps (over) the lazy dog.",
    " Ünïcödé and 日本語 text ♪",
    "no leading space",
]


def _folder(name: str):
    try:
        return resolve_model(name).folder
    except Exception as e:
        pytest.skip(f"{name} is not installed: {e}")


@pytest.fixture(scope="module", params=list(SPECIAL_IDS))
def bundled(request):
    folder = _folder(request.param)
    return request.param, folder, WhisperTokenizer.from_folder(folder)


def test_special_token_ids(bundled):
    name, _, tok = bundled
    for attr, expected in SPECIAL_IDS[name].items():
        assert getattr(tok, attr) == expected, attr
    assert tok.timestamp_begin == tok.no_timestamps + 1
    assert tok.vocab_size == tok.timestamp_begin + 1501  # timestamps added to the old file
    assert tok.multilingual == (name == "whisper-base")
    assert tok.language_codes[:3] == ("en", "zh", "de") and len(tok.language_codes) == 99
    assert tok.language_id("en") == tok.sot + 1


def test_sot_sequences(bundled):
    name, _, tok = bundled
    if tok.multilingual:
        assert tok.sot_sequence("de", "translate") == (tok.sot, tok.sot + 3, tok.translate)
        with pytest.raises(ValueError, match="needs a language"):
            tok.sot_sequence(None)
        with pytest.raises(ValueError, match="unknown language 'xx'"):
            tok.sot_sequence("xx")
    else:
        assert tok.sot_sequence() == (tok.sot,)
        assert tok.sot_sequence(timestamps=False) == (tok.sot, tok.no_timestamps)
        with pytest.raises(ValueError, match="English-only"):
            tok.sot_sequence("de")


def test_default_suppress_list_equals_the_packaged_one(bundled):
    """openai-whisper's suppress_tokens="-1" list, as CTranslate2 stored it in config.json."""
    _, folder, tok = bundled
    packaged = json.loads((folder / "config.json").read_text())["suppress_ids"]
    specials = {tok.transcribe, tok.translate, tok.sot, tok.sot_prev, tok.sot_lm, tok.no_speech}
    assert sorted(set(tok.non_speech_tokens) | specials) == packaged


def test_encode_decode_match_transformers(bundled):
    transformers = pytest.importorskip("transformers")
    _, folder, tok = bundled
    ref = transformers.WhisperTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"))
    for text in TEXTS:
        ids = tok.encode(text)
        assert ids == ref.encode(text, add_special_tokens=False)
        assert tok.decode(ids) == text
        assert tok.decode([tok.sot, *ids, tok.eot]) == text  # specials dropped


def test_timestamps(bundled):
    _, _, tok = bundled
    hello, world = tok.encode(" Hello"), tok.encode(" world")
    ids = [tok.timestamp_id(0.0), *hello, tok.timestamp_id(1.2), tok.timestamp_id(1.2), *world,
           tok.timestamp_id(2.0), tok.eot]  # fmt: skip
    assert tok.decode(ids) == " Hello world"
    assert tok.decode_with_timestamps(ids) == "<|0.00|> Hello<|1.20|><|1.20|> world<|2.00|>"
    spans = tok.split_timestamps(ids, time_offset=30.0)
    assert [(s.start, s.end, s.text) for s in spans] == [
        (30.0, 31.2, " Hello"),
        (31.2, 32.0, " world"),
    ]
    assert tok.split_timestamps([*hello])[0].end is None
    assert tok.timestamp_id(30.0) == tok.vocab_size - 1
    with pytest.raises(ValueError):
        tok.timestamp_id(30.02)


def test_vocabulary_mismatch_is_reported(tmp_path):
    folder = _folder("whisper-tiny.en")
    (tmp_path / "tokenizer.json").write_bytes((folder / "tokenizer.json").read_bytes())
    lines = (folder / "vocabulary.txt").read_text(encoding="utf-8").split("\n")
    lines[50257] = "<|wrong|>"
    (tmp_path / "vocabulary.txt").write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(CheckpointError, match="token 50257"):
        WhisperTokenizer.from_folder(tmp_path)
    with pytest.raises(CheckpointError, match="no tokenizer.json"):
        WhisperTokenizer.from_folder(tmp_path / "absent")


def test_decode_matches_tokenizers_on_random_ids(bundled):
    """Our byte-level decoding equals the `tokenizers` library's, specials and broken UTF-8
    (ids below 300 are single bytes, mostly halves of characters) included."""
    import random

    _, _, tok = bundled
    rng = random.Random(0)
    for n in range(1500):
        top = 300 if n % 3 == 0 else tok.vocab_size
        ids = [rng.randrange(top) for _ in range(rng.randrange(1, 12))]
        assert tok._decode(ids) == tok._tok.decode(ids, skip_special_tokens=False), ids


def test_tokenizer_json_is_read_at_the_first_encode(tmp_path):
    """With a complete vocabulary.txt, loading, ids and decoding never read tokenizer.json;
    the first `encode` does, and checks it against the vocabulary then."""
    folder = _folder("whisper-tiny.en")
    tok = WhisperTokenizer.from_folder(folder)
    assert tok.decode(tok.sot_sequence() + (383, 2068, tok.eot)) == " The quick"
    assert tok.vocab_size == 51864 and tok.no_speech == 50361 and len(tok.language_codes) == 99
    assert "_tok" not in vars(tok)
    copy = pickle.loads(pickle.dumps(tok))  # the deferred loader travels too
    assert "_tok" not in vars(copy) and copy.encode(" The quick") == [383, 2068]
    assert tok.encode(" The quick") == [383, 2068] and "_tok" in vars(tok)

    (tmp_path / "tokenizer.json").write_bytes((folder / "tokenizer.json").read_bytes())
    lines = (folder / "vocabulary.txt").read_text(encoding="utf-8").split("\n")
    lines[50300] = "<|xx|>"  # a language token: the vocabulary alone still looks whole
    (tmp_path / "vocabulary.txt").write_text("\n".join(lines), encoding="utf-8")
    tok = WhisperTokenizer.from_folder(tmp_path)
    with pytest.raises(CheckpointError, match="token 50300"):
        tok.encode(" hello")
