"""Subtitle and transcript writers."""

from __future__ import annotations

import json

import pytest

from soundformers import formats
from soundformers.errors import SoundformersError

RESULT = {
    "text": " Hello there. General Kenobi!",
    "chunks": [
        {"text": " Hello there.", "timestamp": (0.0, 1.5)},
        {"text": " General Kenobi!", "timestamp": (3661.25, 3663.0)},
    ],
}


def test_srt():
    assert formats.to_srt(RESULT) == (
        "1\n00:00:00,000 --> 00:00:01,500\nHello there.\n\n"
        "2\n01:01:01,250 --> 01:01:03,000\nGeneral Kenobi!\n"
    )


def test_vtt_and_tsv_and_txt():
    assert formats.to_vtt(RESULT).startswith(
        "WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nHello there.\n"
    )
    assert formats.to_tsv(RESULT).splitlines() == [
        "start\tend\ttext", "0\t1500\tHello there.", "3661250\t3663000\tGeneral Kenobi!",
    ]  # fmt: skip
    assert formats.to_txt(RESULT) == "Hello there.\nGeneral Kenobi!\n"
    assert formats.to_txt({"text": " plain "}) == "plain\n"


def test_json_round_trips_and_write_picks_format_from_extension(tmp_path):
    assert json.loads(formats.to_json(RESULT))["chunks"][1]["timestamp"] == [3661.25, 3663.0]
    path = formats.write_result(RESULT, tmp_path / "out.srt")
    assert path.read_text().startswith("1\n00:00:00,000")


def test_errors_are_clear():
    with pytest.raises(SoundformersError, match="return_timestamps"):
        formats.to_srt({"text": "no chunks"})
    with pytest.raises(SoundformersError, match="expected one of txt, json"):
        formats.format_result(RESULT, "docx")
