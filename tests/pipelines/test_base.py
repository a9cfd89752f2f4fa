"""The pipeline base: input forms, batching, streaming and per-item errors, on a toy task."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import soundformers as sf
from soundformers.pipelines import Pipeline
from tests.conftest import fixture_path


class Loudness(Pipeline):
    """Toy task: peak level and duration of each input; records the batches it saw."""

    task = "loudness"

    def __init__(self, **kwargs):
        super().__init__(16000, **kwargs)
        self.batches: list[int] = []

    def _check_params(self, scale=1.0):
        return {"scale": float(scale)}

    def _forward(self, waves, scale):
        self.batches.append(len(waves))
        return [
            {"peak": float(np.abs(w.samples).max()) * scale, "seconds": w.duration} for w in waves
        ]


def tone(seconds=1.0, rate=16000):
    return np.sin(np.arange(int(seconds * rate)) / rate * 2 * np.pi * 440).astype(np.float32) * 0.5


def test_single_list_and_tuple():
    pipe = Loudness()
    assert pipe(tone())["seconds"] == 1.0
    out = pipe([tone(1), tone(2)], batch_size=2)
    assert [o["seconds"] for o in out] == [1.0, 2.0] and pipe.batches[-1] == 2
    assert isinstance(pipe((tone(),)), list)


def test_other_rates_are_resampled_not_misread():
    pipe = Loudness()
    out = pipe({"array": tone(1.0, 44100), "sampling_rate": 44100})
    assert out["seconds"] == pytest.approx(1.0)
    path = fixture_path("sounds", "synthetic", "tone_440hz_48000.wav")
    assert pipe(path)["seconds"] == pytest.approx(2.0)


def test_iterables_stream_lazily_in_order():
    pipe = Loudness()
    endless = ({"array": tone(0.1 * (i + 1)), "sampling_rate": 16000} for i in itertools.count())
    results = pipe(endless, batch_size=3)
    first = list(itertools.islice(results, 5))
    assert [round(r["seconds"], 3) for r in first] == [0.1, 0.2, 0.3, 0.4, 0.5]
    assert pipe.batches == [3, 3]  # only what was consumed was computed


def test_bad_item_raises_with_its_index():
    pipe = Loudness()
    with pytest.raises(sf.AudioDecodeError, match="input 3: .*no such file"):
        pipe([tone(), tone(), tone(), "/missing.wav", tone()], batch_size=2)


def test_errors_return_keeps_the_other_results():
    pipe = Loudness()
    out = pipe([tone(), b"not audio at all", tone(2)], batch_size=2, errors="return", scale=2)
    assert out[0]["peak"] == pytest.approx(1.0, abs=1e-3) and out[2]["seconds"] == 2.0
    assert out[1]["index"] == 1 and "not a readable audio file" in out[1]["error"]


@pytest.mark.parametrize("kwargs", [{"batch_size": 0}, {"errors": "ignore"}, {"nope": 1}])
def test_bad_arguments_are_refused(kwargs):
    with pytest.raises((sf.SoundformersError, TypeError)):
        Loudness()(tone(), **kwargs)


@pytest.mark.parametrize("was_enabled", [True, False])
def test_the_collector_is_paused_while_a_model_loads_and_restored(monkeypatch, was_enabled):
    import gc

    from soundformers.pipelines import registry

    seen = []

    def load(name, **kwargs):
        seen.append(gc.isenabled())
        raise sf.ModelNotFoundError("no such model")

    monkeypatch.setattr(registry, "_loader_for", lambda task, spec, name: "module:loader")
    monkeypatch.setattr(registry, "_resolve", lambda spec, package: load)
    (gc.enable if was_enabled else gc.disable)()
    try:
        with pytest.raises(sf.ModelNotFoundError):
            sf.pipeline("automatic-speech-recognition", model="/nowhere/model")
        assert seen == [False]  # off during the load
        assert gc.isenabled() == was_enabled  # as before, even when the load failed
    finally:
        gc.enable()
