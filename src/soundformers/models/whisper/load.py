"""Load Whisper from any layout we read: name -> files (hub.py) -> tensors (checkpoints.py) ->
renamed (convert.py) -> `Whisper` on the requested device and dtype.

| layout | recognised by | config from | table |
| --- | --- | --- | --- |
| transformers | safetensors / .bin without `dims` | `config.json` | `HF_TABLE` |
| OpenAI `.pt` | a `dims` entry in the pickle | `dims` | `OPENAI_TABLE` |
| CTranslate2 | `model.bin` spec `WhisperSpec` | tensor shapes + `num_heads` | `CT2_TABLE` |
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from ...checkpoints import Checkpoint, read_checkpoint, read_json
from ...errors import CheckpointError
from ...hub import ModelFiles, resolve_model
from ...text.whisper_tokenizer import WhisperTokenizer
from .config import WhisperConfig
from .convert import (
    CT2_TABLE,
    HF_TABLE,
    OPENAI_TABLE,
    check_ct2_scalars,
    convert_state_dict,
    load_weights,
)
from .generate import WhisperForConditionalGeneration, WhisperGenerationConfig
from .model import Whisper, inference_layout

__all__ = ["LoadedWhisper", "from_pretrained", "load_model"]

logger = logging.getLogger(__name__)


class LoadedWhisper:
    """A loaded model plus where it came from (for tokenizer and generation settings).

    Attributes:
        model: the `Whisper` module, in eval mode, without gradients.
        files: the resolved files.
        layout: "transformers", "openai" or "ctranslate2".
        config_json: the folder's `config.json` as a dict ({} if absent).
    """

    def __init__(self, model: Whisper, files: ModelFiles, layout: str, config_json: dict) -> None:
        self.model = model
        self.files = files
        self.layout = layout
        self.config_json = config_json


def load_model(
    name_or_path: str | Path,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    local_files_only: bool = False,
) -> LoadedWhisper:
    """Load Whisper weights from a bundled alias, a local folder or file, or a hub id.

    Args:
        name_or_path: e.g. "whisper-tiny.en", "path/to/folder", "base.pt", "openai/whisper-small".
        dtype: parameter dtype; default float32 (float16 checkpoints upcast exactly).
        device: default CPU.
        local_files_only: do not go online for a hub id.

    Raises:
        ModelNotFoundError: the name resolves to nothing.
        CheckpointError: the files are not a Whisper checkpoint we can read.
    """
    dtype = torch.float32 if dtype is None else dtype
    if not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating dtype (float32, bfloat16, ...), got {dtype}")
    files = resolve_model(name_or_path, local_files_only=local_files_only)
    checkpoint = read_checkpoint(files.weights)
    source = "+".join(str(p) for p in files.weights)
    config_path = files.file("config.json")
    config_json = read_json(config_path) if config_path else {}

    if checkpoint.format == "ctranslate2":
        layout = "ctranslate2"
        if checkpoint.metadata.get("spec") != "WhisperSpec":
            raise CheckpointError(
                f"{source} is a CTranslate2 {checkpoint.metadata.get('spec')!r} model, "
                "expected a WhisperSpec (faster-whisper) model"
            )
        check_ct2_scalars(checkpoint.tensors, source)
        config = WhisperConfig.from_ctranslate2(checkpoint.tensors)
        table = CT2_TABLE
    elif "dims" in checkpoint.metadata:
        layout = "openai"
        config = WhisperConfig.from_openai(checkpoint.metadata["dims"])
        table = OPENAI_TABLE
    else:
        layout = "transformers"
        if not config_json:
            raise CheckpointError(
                f"{source} looks like a transformers checkpoint but there is no config.json "
                "beside it; put the weights in their folder with config.json"
            )
        config = WhisperConfig.from_hf(config_json)
        table = HF_TABLE
    tensors = _with_hf_prefix(checkpoint) if layout == "transformers" else checkpoint.tensors
    state_dict = inference_layout(convert_state_dict(tensors, table, source=source), dtype)
    model = load_weights(config, state_dict, dtype=dtype, device=device, source=source)
    logger.debug("loaded Whisper %s (%s layout) from %s", config, layout, source)
    return LoadedWhisper(model, files, layout, config_json)


def _with_hf_prefix(checkpoint: Checkpoint) -> dict[str, torch.Tensor]:
    """A bare `WhisperModel` saves `encoder.*`/`decoder.*`; the full model adds `model.`."""
    tensors = checkpoint.tensors
    if any(name.startswith("model.") for name in tensors):
        return dict(tensors)
    return {f"model.{name}": t for name, t in tensors.items()}


def from_pretrained(
    name_or_path: str | Path,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    local_files_only: bool = False,
    quantization: str | None = None,
) -> WhisperForConditionalGeneration:
    """Load a Whisper model with its tokenizer and decoding defaults, ready to `generate`.

    Args:
        name_or_path: a bundled alias ("whisper-tiny.en", "whisper-base"), a folder, a weight
            file with its tokenizer.json beside it, or a hub id.
        dtype: parameter dtype (default float32).
        device: default CPU.
        local_files_only: do not go online for a hub id.
        quantization: "int8" decodes with int8 weights (per row) and bfloat16 activations
            (`Whisper.set_step_format`); the encoder keeps `dtype`. None: exact weights.

    Example:
        >>> whisper = from_pretrained("whisper-tiny.en")
        >>> results = whisper.generate(mel)  # mel: (B, 80, 3000)
        >>> results[0].text
    """
    if quantization not in (None, "int8"):
        raise ValueError(f"quantization must be None or 'int8', got {quantization!r}")
    loaded = load_model(name_or_path, dtype=dtype, device=device, local_files_only=local_files_only)
    if quantization is not None:
        loaded.model.set_step_format(quantization)
    folder = loaded.files.folder
    if folder is None or not (folder / "tokenizer.json").is_file():
        raise CheckpointError(
            f"no tokenizer.json beside {loaded.files.weights[0]}: Whisper needs its tokenizer. "
            "Copy tokenizer.json from the matching openai/whisper-* hub repo into that folder."
        )
    tokenizer = WhisperTokenizer.from_folder(folder)
    config = loaded.model.config
    if tokenizer.multilingual != config.is_multilingual or tokenizer.vocab_size > config.n_vocab:
        raise CheckpointError(
            f"{folder}/tokenizer.json ({tokenizer.vocab_size} tokens, "
            f"{'multilingual' if tokenizer.multilingual else 'English-only'}) does not fit the "
            f"model ({config.n_vocab} tokens); use the tokenizer that came with these weights"
        )
    gen_path = folder / "generation_config.json"
    gen_json = read_json(gen_path) if gen_path.is_file() else {}
    generation_config = WhisperGenerationConfig.from_json(loaded.config_json, gen_json)
    return WhisperForConditionalGeneration(loaded.model, tokenizer, generation_config)
