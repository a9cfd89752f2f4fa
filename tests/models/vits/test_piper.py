"""Piper voices: ONNX reading, config inference, parity with onnxruntime on the real voice."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from soundformers.errors import CheckpointError
from soundformers.onnx_reader import read_onnx

SENTENCE = "The birch canoe slid, didn't it?"


def test_onnx_reader_reads_every_initializer(joe_path):
    graph = read_onnx(joe_path)
    assert len(graph.initializers) == 401
    assert graph.initializers["dec.conv_pre.weight"].shape == (256, 192, 7)
    names = {n.name for n in graph.nodes}
    assert "/flow/flows.6/enc/in_layers.0/Conv" in names
    ups = next(n for n in graph.nodes if n.name == "/dec/ups.0/ConvTranspose")
    assert ups.attributes["strides"] == (8,)


def test_onnx_reader_rejects_garbage(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\xff" * 64)
    with pytest.raises(CheckpointError):
        read_onnx(bad)


def test_piper_config(joe):
    cfg = joe.model.config
    assert (cfg.n_vocab, cfg.hidden_channels, cfg.n_layers, cfg.n_heads) == (256, 192, 6, 2)
    assert cfg.upsample_rates == (8, 8, 4) and cfg.resblock == "2"
    assert cfg.resblock_dilation_sizes == ((1, 2), (2, 6), (3, 12))
    assert cfg.sampling_rate == 22050 and cfg.hop_length == 256


def test_parity_with_onnxruntime(joe, joe_path):
    length_scale = 1.2
    ort = pytest.importorskip("onnxruntime")
    [ids] = joe.split(SENTENCE)
    session = ort.InferenceSession(str(joe_path), providers=["CPUExecutionProvider"])
    ref = session.run(None, {
        "input": np.array([ids], np.int64),
        "input_lengths": np.array([len(ids)], np.int64),
        "scales": np.array([0.0, length_scale, 0.0], np.float32),
    })[0].reshape(-1)  # fmt: skip
    with torch.inference_mode():
        audio, n = joe.model(torch.tensor([ids]), torch.tensor([len(ids)]), noise_scale=0.0,
                             length_scale=length_scale, noise_w=0.0)  # fmt: skip
    ours = audio[0, : int(n[0])].numpy()
    assert ours.shape == ref.shape
    assert np.abs(ours - ref).max() < 1e-3


def test_batch_matches_single_items(joe):
    sentences = joe.split("Hi. A longer second one.")
    from soundformers.models.vits import SynthesisOptions

    quiet = SynthesisOptions(noise_scale=0.0, noise_w=0.0)
    together = joe.synthesize(sentences, options=quiet)
    alone = [joe.synthesize([s], options=quiet)[0] for s in sentences]
    for a, b in zip(together, alone):
        assert a.shape == b.shape
        # the decoder sees the padding of the shorter item only in its last few frames
        assert np.abs(a[:-2048] - b[:-2048]).max() < 1e-4


def test_voice_json_that_does_not_match_the_model(joe_path, tmp_path):
    from soundformers.models.vits import load_piper

    pytest.importorskip("espeakng_loader")
    onnx = tmp_path / "voice.onnx"
    try:
        onnx.symlink_to(joe_path)
    except OSError:
        shutil.copy(joe_path, onnx)
    voice = json.loads(joe_path.with_name(joe_path.name + ".json").read_text())
    voice["num_symbols"] = 100
    (tmp_path / "voice.onnx.json").write_text(json.dumps(voice))
    with pytest.raises(CheckpointError, match="num_symbols is 100"):
        load_piper(onnx)


def test_missing_json(joe_path, tmp_path):
    from soundformers.errors import ModelNotFoundError
    from soundformers.models.vits import load_piper

    onnx = tmp_path / "lonely.onnx"
    onnx.symlink_to(joe_path)
    with pytest.raises(ModelNotFoundError, match="lonely.onnx.json"):
        load_piper(onnx)
