"""The audio-classification pipeline (AST, Wav2Vec2/HuBERT sequence classification).

>>> clf = soundformers.pipeline("audio-classification", model="path/to/ast-finetuned-audioset")
>>> clf("dog.wav", top_k=3)
[{'score': 0.91, 'label': 'Dog'}, {'score': 0.03, 'label': 'Bark'}, ...]

The model is reached through the `AudioClassifier` protocol only: `sampling_rate`, `labels`
(class names in logit order), `multi_label` and `classify(audios) -> (batch, labels) logits`.
"""

from __future__ import annotations

from typing import Any

import torch

from ..audio.io import Waveform
from ..errors import SoundformersError
from .base import Pipeline

__all__ = ["AudioClassificationPipeline"]

FUNCTIONS = ("softmax", "sigmoid", "none")


class AudioClassificationPipeline(Pipeline):
    """Labels for sounds.

    Args:
        model: an `AudioClassifier` (e.g. `soundformers.models.ast.from_pretrained(...)`).
        top_k: default number of labels returned per input (5).
        function_to_apply: default score function: "softmax", "sigmoid" (independent classes,
            e.g. AudioSet) or "none" (raw logits); default "sigmoid" when the checkpoint says
            it is multi-label, else "softmax".
        batch_size: inputs run together (default 1).
        num_workers: audio decoding threads.

    Call it with one input, a list, or an iterable (see `Pipeline.__call__`), with optional
    `top_k` and `function_to_apply` overriding the defaults.

    Returns per input a list of ``{"score": float, "label": str}``, best first.
    """

    task = "audio-classification"

    def __init__(self, model: Any, *, top_k: int = 5, function_to_apply: str | None = None,
                 batch_size: int = 1, num_workers: int | None = None) -> None:  # fmt: skip
        super().__init__(model.sampling_rate, batch_size=batch_size, num_workers=num_workers)
        self.model = model
        self.labels = tuple(model.labels)
        default_function = "sigmoid" if getattr(model, "multi_label", False) else "softmax"
        self.defaults = self._check_params(top_k, function_to_apply or default_function)

    def _check_params(self, top_k: int | None = None,
                      function_to_apply: str | None = None) -> dict[str, Any]:  # fmt: skip
        defaults = getattr(self, "defaults", {})
        top_k = defaults.get("top_k") if top_k is None else top_k
        function_to_apply = function_to_apply or defaults.get("function_to_apply")
        if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
            raise SoundformersError(f"top_k must be a positive integer, got {top_k!r}")
        if function_to_apply not in FUNCTIONS:
            raise SoundformersError(
                f"function_to_apply must be one of {FUNCTIONS}, got {function_to_apply!r}"
            )
        return {"top_k": min(top_k, len(self.labels)), "function_to_apply": function_to_apply}

    def _forward(self, waves: list[Waveform], **params: Any) -> list[list[dict[str, Any]]]:
        logits = self.model.classify([w.samples for w in waves]).float()
        if params["function_to_apply"] == "softmax":
            scores = logits.softmax(-1)
        elif params["function_to_apply"] == "sigmoid":
            scores = logits.sigmoid()
        else:
            scores = logits
        top = torch.topk(scores, params["top_k"], dim=-1)
        return [
            [{"score": float(s), "label": self.labels[int(i)]} for s, i in zip(values, indices)]
            for values, indices in zip(top.values, top.indices)
        ]
