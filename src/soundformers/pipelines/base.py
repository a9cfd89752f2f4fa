"""`Pipeline`: inputs -> decode (thread pool) -> batched forward -> results, in input order.

A task pipeline subclasses `Pipeline` and implements `_forward(waves, **params)`, which receives
a batch of decoded `Waveform`s (mono, at `self.sampling_rate`) and returns one result per wave.
Everything else (every input form, lists, streaming iterables, batching, per-item errors) is
done here once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, ClassVar, Literal

from ..audio.io import Waveform
from ..errors import AudioDecodeError, SoundformersError
from .inputs import batched, decode_items, is_single_input

ErrorMode = Literal["raise", "return"]


class Pipeline:
    """Base of the task pipelines.

    Args:
        sampling_rate: the rate, in Hz, the model expects; every input is resampled to it.
        batch_size: default number of inputs decoded and run together.
        num_workers: audio decoding threads (default min(8, CPUs)).
    """

    task: ClassVar[str] = ""

    def __init__(self, sampling_rate: int, *, batch_size: int = 1, num_workers: int | None = None):
        self.sampling_rate = int(sampling_rate)
        self.batch_size = batch_size
        self.num_workers = num_workers

    def __call__(
        self,
        inputs: Any,
        *,
        batch_size: int | None = None,
        errors: ErrorMode = "raise",
        **params: Any,
    ) -> Any:
        """Run the pipeline.

        Args:
            inputs: one input (path, URL, bytes, file object, array at `self.sampling_rate`,
                dict row), a list/tuple of them, or any iterable of them (a generator, a
                dataset column), which is consumed lazily.
            batch_size: inputs run together (default: the pipeline's `batch_size`).
            errors: "raise" (default) stops at the first bad input with an error naming its
                index; "return" puts ``{"error": message, "index": i}`` in that input's place
                and still returns the others' results.
            **params: the task's own arguments.

        Returns:
            One result for one input, a list for a list or tuple, and a generator (results in
            input order, computed as it is consumed) for any other iterable.
        """
        if errors not in ("raise", "return"):
            raise SoundformersError(f"errors must be 'raise' or 'return', got {errors!r}")
        size = self.batch_size if batch_size is None else batch_size
        if not isinstance(size, int) or size < 1:
            raise SoundformersError(f"batch_size must be a positive integer, got {size!r}")
        params = self._check_params(**params)
        if is_single_input(inputs):
            return next(self._iterate([inputs], 1, errors, params))
        results = self._iterate(inputs, size, errors, params)
        return list(results) if isinstance(inputs, (list, tuple)) else results

    def _iterate(
        self, inputs: Iterable[Any], size: int, errors: ErrorMode, params: dict[str, Any]
    ) -> Iterator[Any]:
        start = 0
        for chunk in batched(inputs, size):
            decoded = decode_items(
                chunk, self.sampling_rate, start_index=start, num_workers=self.num_workers
            )
            waves = [d for d in decoded if isinstance(d, Waveform)]
            if errors == "raise":
                for item in decoded:
                    if isinstance(item, AudioDecodeError):
                        raise item
            outputs = iter(self._forward(waves, **params) if waves else [])
            for position, item in enumerate(decoded):
                if isinstance(item, Waveform):
                    yield next(outputs)
                else:
                    yield {"error": str(item), "index": start + position}
            start += len(chunk)

    def _check_params(self, **params: Any) -> dict[str, Any]:
        """Validate the task's arguments once per call; return them (possibly normalised)."""
        if params:
            raise SoundformersError(
                f"the {self.task or type(self).__name__} pipeline takes no argument(s) "
                f"{sorted(params)}"
            )
        return params

    def _forward(self, waves: list[Waveform], **params: Any) -> list[Any]:
        """Run the model on a batch of decoded inputs; one result per wave, in order."""
        raise NotImplementedError
