"""`pipeline(task, model=...)`: the task table, each task's default model, and model loading."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from ..errors import SoundformersError
from .base import Pipeline


@dataclass(frozen=True)
class Task:
    """A task: its pipeline class (module path, class name), its loader and default model."""

    pipeline: str  # "module:Class", relative to soundformers.pipelines
    loader: str  # "module:function" taking (name, device=, dtype=), relative to soundformers
    default_model: str | None  # bundled alias, or None when the user must name one


TASKS: dict[str, Task] = {
    "automatic-speech-recognition": Task(
        pipeline=".automatic_speech_recognition:AutomaticSpeechRecognitionPipeline",
        loader=".models.whisper:from_pretrained",
        default_model="whisper-tiny.en",
    ),
}


def _resolve(spec: str, package: str) -> Any:
    module, name = spec.split(":")
    return getattr(importlib.import_module(module, package), name)


def pipeline(
    task: str,
    model: Any = None,
    *,
    device: str | None = None,
    dtype: Any = None,
    **kwargs: Any,
) -> Pipeline:
    """Build the pipeline for `task`.

    Args:
        task: one of `TASKS` ("automatic-speech-recognition", ...).
        model: a bundled alias ("whisper-tiny.en", "whisper-base"), a local folder or file, a
            hub id, or an already loaded model. None: the task's bundled default.
        device: "cpu", "cuda", ... (default: the CPU).
        dtype: torch dtype for the weights (default float32).
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
    if isinstance(model, str) or hasattr(model, "__fspath__"):
        model = _resolve(spec.loader, "soundformers")(model, device=device, dtype=dtype)
    return _resolve(spec.pipeline, __package__)(model, **kwargs)
