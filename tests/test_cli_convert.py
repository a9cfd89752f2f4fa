"""`soundformers convert SRC DST`: a checkpoint we load, written in the Hugging Face layout."""

from __future__ import annotations

import json

import pytest

from soundformers.cli import main


def _tiny_en() -> None:
    from soundformers.hub import resolve_model

    try:
        resolve_model("whisper-tiny.en")
    except Exception as e:  # the bundled weight packages are a test extra
        pytest.skip(f"whisper-tiny.en not installed: {e}")


@pytest.mark.slow
def test_convert_bundled_alias_in_bfloat16(tmp_path, capsys):
    from safetensors import safe_open

    _tiny_en()
    out = tmp_path / "tiny.en-hf"
    assert main(["convert", "whisper-tiny.en", str(out), "--dtype", "bfloat16"]) == 0
    assert "Hugging Face layout, bfloat16" in capsys.readouterr().err
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "generation_config.json", "tokenizer.json",
            "tokenizer_config.json", "preprocessor_config.json"} <= names  # fmt: skip
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "whisper" and config["dtype"] == "bfloat16"
    assert config["d_model"] == 384 and config["decoder_layers"] == 4
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        weight = f.get_tensor("model.decoder.layers.3.fc2.weight")
        assert str(weight.dtype) == "torch.bfloat16" and weight.shape == (384, 1536)


def test_convert_failure_is_one_line_and_status_1(tmp_path, capsys):
    bad = tmp_path / "model.bin"
    bad.write_bytes(b"not a checkpoint at all")
    assert main(["convert", str(bad), str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "model.bin" in err
    assert not (tmp_path / "out").exists()


def test_convert_rejects_an_unknown_dtype(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["convert", "whisper-tiny.en", str(tmp_path / "x"), "--dtype", "int4"])
    assert e.value.code == 2 and "invalid choice" in capsys.readouterr().err
