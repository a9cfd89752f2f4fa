"""Model name resolution: bundled aliases, local folders and files, hub ids (offline)."""

from __future__ import annotations

import importlib.util

import pytest

from soundformers import hub
from soundformers.errors import MissingDependencyError, ModelNotFoundError


@pytest.mark.parametrize("alias", list(hub.BUNDLED))
def test_bundled_aliases(alias):
    spec = hub.BUNDLED[alias]
    if any(importlib.util.find_spec(p) is None for p, _ in spec.weight_parts) or (
        importlib.util.find_spec(spec.package) is None
    ):
        pytest.skip(f"{alias}: its packages are not installed")
    files = hub.resolve_model(alias)
    assert all(p.is_file() for p in files.weights)
    expected = {
        "whisper-tiny.en": ["model.bin"],
        "whisper-base": ["model.bin.part1", "model.bin.part2"],
        "en_US-joe-medium": ["en_US-joe-medium.onnx"],
    }
    assert [p.name for p in files.weights] == expected[alias]
    if alias.startswith("whisper"):
        assert files.file("config.json") and files.file("tokenizer.json")
    else:  # a Piper voice: its config is the .onnx.json beside the weights
        assert files.weights[0].with_suffix(".onnx.json").is_file()


def test_missing_alias_package_names_what_to_install(monkeypatch):
    fake = hub.BundledModel("no_such_pkg_xyz", "model", pip_names=("no-such-pkg-xyz",))
    monkeypatch.setitem(hub.BUNDLED, "whisper-fake", fake)
    with pytest.raises(MissingDependencyError, match=r"soundformers\[models\].*no-such-pkg-xyz"):
        hub.resolve_model("whisper-fake")


def test_local_folder_and_file(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelNotFoundError, match="no weights in"):
        hub.resolve_model(tmp_path)
    (tmp_path / "model.bin.part2").write_bytes(b"2")
    (tmp_path / "model.bin.part1").write_bytes(b"1")
    assert [p.name for p in hub.resolve_model(tmp_path).weights] == [
        "model.bin.part1",
        "model.bin.part2",
    ]
    (tmp_path / "model.safetensors").write_bytes(b"x")
    assert hub.resolve_model(tmp_path).weights == (tmp_path / "model.safetensors",)
    files = hub.resolve_model(str(tmp_path / "model.bin.part1"))
    assert files.folder == tmp_path and files.file("config.json") == tmp_path / "config.json"


def test_unknown_hub_id_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ModelNotFoundError, match="local directory") as info:
        hub.resolve_model("nobody-xyz/no-such-whisper", local_files_only=True)
    assert "soundformers[models]" in str(info.value)


def test_nonsense_name():
    with pytest.raises(ModelNotFoundError, match="neither a bundled alias"):
        hub.resolve_model("./not/a/dir/or/file")
