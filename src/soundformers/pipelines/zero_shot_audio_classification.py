"""The zero-shot-audio-classification pipeline (CLAP): score sounds against free-text labels.

>>> zs = soundformers.pipeline("zero-shot-audio-classification", model="path/to/clap-htsat-unfused")
>>> zs("dog.wav", candidate_labels=["a dog barking", "rain"])
[{'score': 0.97, 'label': 'a dog barking'}, {'score': 0.03, 'label': 'rain'}]

Every input is decoded and resampled to the model's rate (48 kHz) by the shared input code, so
a 16 kHz recording is never misread. The label texts are encoded once per (labels, template)
and kept in a small cache, so repeated calls with the same labels run the audio encoder only.

The model is reached through the `ZeroShotAudioModel` protocol only: `sampling_rate`,
`audio_embeddings(waves) -> (B, D)` and `text_embeddings(texts) -> (N, D)` (unit-norm, CPU
float32) and `logit_scale` (a float).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch

from ..audio.io import Waveform
from ..errors import AudioDecodeError, SoundformersError
from .base import Pipeline
from .inputs import batched, decode_items, is_single_input

__all__ = ["ZeroShotAudioClassificationPipeline"]

DEFAULT_TEMPLATE = "This is a sound of {}."


class ZeroShotAudioClassificationPipeline(Pipeline):
    """Free-text labels for sounds.

    Args:
        model: a `ZeroShotAudioModel` (e.g. `soundformers.models.clap.from_pretrained(...)`).
        hypothesis_template: default template the labels are put into; must contain "{}".
        cache_size: how many (labels, template) sets keep their text embeddings.
        batch_size: inputs run together (default 1).
        num_workers: audio decoding threads.

    Call it with one input, a list or an iterable (see `Pipeline.__call__`), with
    `candidate_labels` (required) and optionally `hypothesis_template`.

    Returns per input a list of ``{"score": float, "label": str}`` over all labels, best first,
    scores summing to 1 (softmax of the model's audio-to-text logits).
    """

    task = "zero-shot-audio-classification"

    def __init__(self, model: Any, *, hypothesis_template: str = DEFAULT_TEMPLATE,
                 cache_size: int = 32, batch_size: int = 1,
                 num_workers: int | None = None) -> None:  # fmt: skip
        super().__init__(model.sampling_rate, batch_size=batch_size, num_workers=num_workers)
        self.model = model
        self.hypothesis_template = _check_template(hypothesis_template)
        self.cache_size = cache_size
        self._label_cache: OrderedDict[tuple[tuple[str, ...], str], torch.Tensor] = OrderedDict()

    def _check_params(self, candidate_labels: Sequence[str] | str | None = None,
                      hypothesis_template: str | None = None) -> dict[str, Any]:  # fmt: skip
        if isinstance(candidate_labels, str):
            candidate_labels = [candidate_labels]
        if not candidate_labels:
            raise SoundformersError(
                "zero-shot-audio-classification needs candidate_labels, a non-empty list of "
                "label texts, e.g. zs('dog.wav', candidate_labels=['a dog barking', 'rain'])"
            )
        labels = tuple(candidate_labels)
        bad = [label for label in labels if not isinstance(label, str)]
        if bad:
            raise SoundformersError(f"candidate_labels must be strings; got {bad[:5]!r}")
        if len(set(labels)) != len(labels):
            raise SoundformersError(f"candidate_labels has duplicates: {list(labels)!r}")
        template = _check_template(hypothesis_template or self.hypothesis_template)
        return {"labels": labels, "template": template}

    def label_embeddings(self, labels: Sequence[str], template: str | None = None) -> torch.Tensor:
        """The (len(labels), D) text embeddings of `template.format(label)`, cached."""
        key = (tuple(labels), template or self.hypothesis_template)
        if key in self._label_cache:
            self._label_cache.move_to_end(key)
            return self._label_cache[key]
        embeddings = self.model.text_embeddings([key[1].format(label) for label in key[0]])
        self._label_cache[key] = embeddings
        while len(self._label_cache) > self.cache_size:
            self._label_cache.popitem(last=False)
        return embeddings

    def _forward(self, waves: list[Waveform], **params: Any) -> list[list[dict[str, Any]]]:
        labels = params["labels"]
        text = self.label_embeddings(labels, params["template"])  # (labels, D)
        audio = self.model.audio_embeddings([w.samples for w in waves])  # (B, D)
        scores = (self.model.logit_scale * audio @ text.T).softmax(-1)  # (B, labels)
        order = scores.argsort(dim=-1, descending=True, stable=True)
        return [
            [{"score": float(row[i]), "label": labels[int(i)]} for i in ranks]
            for row, ranks in zip(scores, order)
        ]

    def audio_embeddings(self, inputs: Any, *, batch_size: int | None = None) -> torch.Tensor:
        """Unit-norm audio embeddings, for search and retrieval.

        Args:
            inputs: one input or a list/iterable of them (any form the pipeline takes).
            batch_size: inputs run together (default: the pipeline's).

        Returns:
            float32 CPU (D,) for one input, (N, D) for several.

        Raises:
            AudioDecodeError: an input could not be decoded (its index is named).
        """
        single = is_single_input(inputs)
        out, start = [], 0
        for chunk in batched([inputs] if single else inputs, batch_size or self.batch_size):
            decoded = decode_items(chunk, self.sampling_rate, start_index=start,
                                   num_workers=self.num_workers)  # fmt: skip
            for item in decoded:
                if isinstance(item, AudioDecodeError):
                    raise item
            out.append(self.model.audio_embeddings([w.samples for w in decoded]))
            start += len(chunk)
        if not out:
            raise SoundformersError("audio_embeddings got no inputs")
        embeddings = torch.cat(out)
        return embeddings[0] if single else embeddings

    def text_embeddings(self, texts: str | Sequence[str]) -> torch.Tensor:
        """Unit-norm text embeddings of the texts as given (no template), not cached.

        Returns:
            float32 CPU (D,) for one string, (N, D) for a list.
        """
        if isinstance(texts, str):
            return self.model.text_embeddings([texts])[0]
        if not texts:
            raise SoundformersError("text_embeddings got an empty list of texts")
        return self.model.text_embeddings(list(texts))


def _check_template(template: str) -> str:
    if not isinstance(template, str) or "{}" not in template:
        raise SoundformersError(
            f"hypothesis_template must be a string containing '{{}}' where the label goes, "
            f"e.g. {DEFAULT_TEMPLATE!r}; got {template!r}"
        )
    return template
