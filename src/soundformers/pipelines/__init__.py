"""Task pipelines: `pipeline(task, model=...)` returns a callable from audio to results."""

from __future__ import annotations

from .base import Pipeline
from .inputs import decode_items, is_single_input
from .registry import TASKS, pipeline

__all__ = ["TASKS", "Pipeline", "decode_items", "is_single_input", "pipeline"]
