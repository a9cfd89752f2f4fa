"""Writers for transcription results: txt, json, srt, vtt, tsv.

A result is the automatic-speech-recognition pipeline's output,
``{"text": str, "chunks": [{"text": str, "timestamp": (start_s, end_s)}, ...]}``; the subtitle
formats need its chunks (ask the pipeline for ``return_timestamps=True`` or ``"word"``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .errors import SoundformersError

FORMATS = ("txt", "json", "srt", "vtt", "tsv")


def _clock(seconds: float, decimal: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal}{millis:03d}"


def _chunks(result: Mapping[str, Any], fmt: str) -> list[tuple[float, float, str]]:
    chunks = result.get("chunks")
    if not chunks:
        raise SoundformersError(
            f"{fmt} needs timestamps: the result has no 'chunks'; transcribe with "
            "return_timestamps=True (or 'word')"
        )
    rows = []
    for chunk in chunks:
        start, end = chunk["timestamp"]
        if end is None:  # an open last segment: it lasts until its start at least
            end = start
        rows.append((float(start), float(end), chunk["text"].strip()))
    return rows


def to_txt(result: Mapping[str, Any]) -> str:
    """The transcript, one segment per line when there are chunks, else the whole text."""
    if result.get("chunks"):
        return "\n".join(c["text"].strip() for c in result["chunks"]) + "\n"
    return result["text"].strip() + "\n"


def to_json(result: Mapping[str, Any]) -> str:
    """The result as JSON (timestamps as [start, end] lists)."""
    return json.dumps(result, ensure_ascii=False, indent=2, default=str) + "\n"


def to_srt(result: Mapping[str, Any]) -> str:
    """SubRip: numbered cues, `HH:MM:SS,mmm --> HH:MM:SS,mmm`."""
    cues = [
        f"{i}\n{_clock(s, ',')} --> {_clock(e, ',')}\n{text}\n"
        for i, (s, e, text) in enumerate(_chunks(result, "srt"), start=1)
    ]
    return "\n".join(cues)


def to_vtt(result: Mapping[str, Any]) -> str:
    """WebVTT: a `WEBVTT` header, then `HH:MM:SS.mmm --> HH:MM:SS.mmm` cues."""
    cues = [
        f"{_clock(s, '.')} --> {_clock(e, '.')}\n{text}\n" for s, e, text in _chunks(result, "vtt")
    ]
    return "WEBVTT\n\n" + "\n".join(cues)


def to_tsv(result: Mapping[str, Any]) -> str:
    """Tab-separated `start`, `end` (integer milliseconds, as openai-whisper writes) and `text`."""
    rows = ["start\tend\ttext"]
    for s, e, text in _chunks(result, "tsv"):
        rows.append(f"{round(s * 1000)}\t{round(e * 1000)}\t{text.replace(chr(9), ' ')}")
    return "\n".join(rows) + "\n"


WRITERS: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "txt": to_txt,
    "json": to_json,
    "srt": to_srt,
    "vtt": to_vtt,
    "tsv": to_tsv,
}


def format_result(result: Mapping[str, Any], fmt: str) -> str:
    """Render a result in one of FORMATS."""
    try:
        writer = WRITERS[fmt]
    except KeyError:
        raise SoundformersError(
            f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}"
        ) from None
    return writer(result)


def write_result(result: Mapping[str, Any], path: str | Path, fmt: str | None = None) -> Path:
    """Write a result to `path`, in `fmt` or else the format its extension names."""
    path = Path(path)
    text = format_result(result, fmt or path.suffix.lstrip(".").lower())
    path.write_text(text, encoding="utf-8")
    return path
