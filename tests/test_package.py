"""The package itself: cheap import, lazy public names, one exception root."""

from __future__ import annotations

import inspect
import subprocess
import sys

import soundformers
from soundformers import errors


def test_import_loads_neither_numpy_nor_torch():
    code = (
        "import sys, soundformers\n"
        "heavy = [m for m in ('torch', 'numpy', 'soundfile', 'av', 'transformers') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_public_names_resolve_lazily():
    for name in soundformers.__all__:
        assert getattr(soundformers, name) is not None, name
    assert "load_audio" in dir(soundformers)
    assert callable(soundformers.audio.resample)  # the function, not a submodule of that name


def test_every_exception_derives_from_the_root():
    classes = [
        c for _, c in inspect.getmembers(errors, inspect.isclass) if c.__module__ == errors.__name__
    ]
    assert len(classes) >= 5
    for cls in classes:
        assert issubclass(cls, soundformers.SoundformersError), cls
    assert issubclass(soundformers.AudioDecodeError, ValueError)


def test_unknown_attribute_raises_attribute_error():
    try:
        soundformers.no_such_thing  # noqa: B018
    except AttributeError as e:
        assert "no_such_thing" in str(e)
    else:
        raise AssertionError("expected AttributeError")
