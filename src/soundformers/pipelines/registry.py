"""`pipeline(task, model=...)`: the task table, each task's default model, and model loading.

A task may serve several model families. The loader is chosen by the `model_type` in the
checkpoint's config.json (`Task.loaders`), and the pipeline class by what the loaded model can
do (`Task.pipelines`: the first method name the model has wins), so task code never tests a
model family.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import ModelNotFoundError, SoundformersError
from .base import Pipeline


@dataclass(frozen=True)
class Task:
    """A task: its pipeline class (module path, class name), its loader and default model.

    Attributes:
        pipeline: "module:Class" relative to soundformers.pipelines, for models no entry of
            `pipelines` matches.
        loader: "module:function" taking (name, device=, dtype=), relative to soundformers,
            for checkpoints whose config.json names no `model_type` (or None: one is required).
        default_model: bundled alias, or None when the user must name one.
        loaders: (config.json model_type, loader) pairs.
        pipelines: (method of the loaded model, pipeline class) pairs, tried in order.
    """

    pipeline: str
    loader: str | None
    default_model: str | None
    loaders: tuple[tuple[str, str], ...] = ()
    pipelines: tuple[tuple[str, str], ...] = ()


_W2V_CTC = ".models.wav2vec2:from_pretrained_ctc"
_W2V_CLS = ".models.wav2vec2:from_pretrained_classifier"

TASKS: dict[str, Task] = {
    "automatic-speech-recognition": Task(
        pipeline=".automatic_speech_recognition:AutomaticSpeechRecognitionPipeline",
        loader=".models.whisper:from_pretrained",
        default_model="whisper-tiny.en",
        loaders=(
            ("whisper", ".models.whisper:from_pretrained"),
            ("wav2vec2", _W2V_CTC),
            ("hubert", _W2V_CTC),
        ),
        pipelines=(("logits", ".ctc_speech_recognition:CTCSpeechRecognitionPipeline"),),
    ),
    "audio-classification": Task(
        pipeline=".audio_classification:AudioClassificationPipeline",
        loader=None,
        default_model=None,
        loaders=(
            ("wav2vec2", _W2V_CLS),
            ("hubert", _W2V_CLS),
            ("audio-spectrogram-transformer", ".models.ast:from_pretrained"),
            ("whisper", ".models.whisper.classification:from_pretrained_classifier"),
        ),
    ),
    "zero-shot-audio-classification": Task(
        pipeline=".zero_shot_audio_classification:ZeroShotAudioClassificationPipeline",
        loader=None,
        default_model=None,
        loaders=(("clap", ".models.clap:from_pretrained"),),
    ),
    "text-to-speech": Task(
        pipeline=".text_to_speech:TextToSpeechPipeline",
        loader=".models.vits:from_pretrained",  # Piper .onnx voices have no config.json
        default_model="en_US-joe-medium",
        loaders=(("vits", ".models.vits:from_pretrained"),),
    ),
}


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while a model loads (restored after).

    Loading allocates thousands of objects (modules, parameters, tokenizer tables), which
    sets off full collections, and each one walks the ~170 000 objects `import torch` left
    behind: 0.1 s of Whisper tiny.en's 0.3 s load. Any cyclic garbage of the load goes at
    the first collection after it.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _resolve(spec: str, package: str) -> Any:
    module, name = spec.split(":")
    return getattr(importlib.import_module(module, package), name)


def pipeline(
    task: str,
    model: Any = None,
    *,
    device: str | None = None,
    dtype: Any = None,
    model_kwargs: dict[str, Any] | None = None,
    **kwargs: Any,
) -> Pipeline:
    """Build the pipeline for `task`.

    Args:
        task: one of `TASKS` ("automatic-speech-recognition", ...).
        model: a bundled alias ("whisper-tiny.en", "whisper-base"), a local folder or file, a
            hub id, or an already loaded model. None: the task's bundled default.
        device: "cpu", "cuda", ... (default: the CPU).
        dtype: torch dtype for the weights (default float32).
        model_kwargs: more arguments for the model's loader, e.g. `{"quantization": "int8"}`
            for Whisper (int8 decoder weights).
        **kwargs: passed to the pipeline (batch_size, num_workers).

    Returns:
        A callable pipeline; see its class for the call arguments and outputs.

    Raises:
        SoundformersError: unknown task.
        ModelNotFoundError: the model cannot be found locally and cannot be downloaded.
    """
    if task not in TASKS:
        raise SoundformersError(f"unknown task {task!r}; available: {', '.join(sorted(TASKS))}")
    spec = TASKS[task]
    if model is None:
        model = spec.default_model
    if model is None:
        raise ModelNotFoundError(
            f"the {task!r} pipeline has no bundled default model yet: pass model= a local folder "
            "holding config.json and model.safetensors (or pytorch_model.bin) as written by "
            "transformers' save_pretrained, e.g. pipeline('audio-classification', "
            "model='path/to/ast-finetuned-audioset'), or a hub id such as "
            "'MIT/ast-finetuned-audioset-10-10-0.4593' (needs the network or the hub cache)"
        )
    if isinstance(model, str) or hasattr(model, "__fspath__"):
        loader = _loader_for(task, spec, model)
        with _collector_paused():
            load = _resolve(loader, "soundformers")
            model = load(model, device=device, dtype=dtype, **(model_kwargs or {}))
    elif model_kwargs:
        raise ValueError(
            "model_kwargs apply when the pipeline loads the model: pass a name or path"
        )
    pipeline_class = spec.pipeline
    for method, candidate in spec.pipelines:
        if callable(getattr(model, method, None)):
            pipeline_class = candidate
            break
    return _resolve(pipeline_class, __package__)(model, **kwargs)


def _loader_for(task: str, spec: Task, name: Any) -> str:
    """The loader for the checkpoint `name`, from the `model_type` in its config.json."""
    model_type = None
    if spec.loaders:
        from ..hub import resolve_model

        files = resolve_model(name)
        config_path = files.file("config.json")
        if config_path is not None:
            try:
                model_type = json.loads(config_path.read_text(encoding="utf-8")).get("model_type")
            except (OSError, ValueError, AttributeError):
                model_type = None  # the family's own loader reports a broken config
    loaders = dict(spec.loaders)
    if model_type in loaders:
        return loaders[model_type]
    if model_type is None and spec.loader is not None:
        return spec.loader
    raise SoundformersError(
        f"{name}: the {task!r} pipeline does not support model_type {model_type!r} (from its "
        f"config.json); supported: {', '.join(loaders)}"
    )
