"""Weight-name tables: each checkpoint layout's names -> ours (openai/whisper's names), and the
writer of the Hugging Face layout (`save_pretrained`, `convert`).

A table maps a source name, with the layer index written `{}`, to
- a name of ours (same tensor, cast to the model dtype),
- `None` (dropped: tied copies, scalars that only restate the architecture), or
- a named fix (`Split`) that cuts a fused tensor into several of ours.

Lookup is exact. After mapping, coverage is checked both ways: a source name the table does not
know, or a parameter of ours nothing produced, raises `CheckpointError` with both lists.

Writing goes the other way through the same `HF_TABLE`, inverted (`hf_state_dict`): every name
of ours must have exactly one transformers name, or the writer raises.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ...checkpoints import LAYER_INDEX, assign_weights, rename
from ...errors import CheckpointError
from .config import WhisperConfig
from .model import Whisper

if TYPE_CHECKING:
    from ...text.whisper_tokenizer import WhisperTokenizer
    from .generate import WhisperForConditionalGeneration

__all__ = [
    "CT2_TABLE",
    "HF_TABLE",
    "OPENAI_TABLE",
    "Split",
    "convert",
    "convert_state_dict",
    "hf_config",
    "hf_generation_config",
    "hf_state_dict",
    "load_weights",
    "save_pretrained",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Split:
    """Cut a fused tensor into equal parts along dim 0, one per target.

    A `None` target drops its part, which must be all zeros (CTranslate2 stores a zero key
    bias inside the fused qkv bias; Whisper's key projection has none).
    """

    targets: tuple[str | None, ...]

    def split(
        self, name: str, tensor: torch.Tensor, layer: Sequence[str]
    ) -> dict[str, torch.Tensor]:
        """Our names (formatted with `layer`) -> the parts of `tensor`."""
        n = len(self.targets)
        if tensor.shape[0] % n:
            raise CheckpointError(
                f"{name}: dim 0 of shape {tuple(tensor.shape)} does not split into {n} equal parts"
            )
        out = {}
        for target, part in zip(self.targets, tensor.chunk(n, dim=0)):
            if target is None:
                if torch.count_nonzero(part):
                    raise CheckpointError(
                        f"{name}: the slice we drop (a bias Whisper does not have) is not zero"
                    )
                continue
            out[target.format(*layer)] = part
        return out


Target = str | Split | None


def _hf_attention(src: str, dst: str) -> dict[str, Target]:
    """Rows for one transformers WhisperAttention (q/k/v/out_proj; k_proj has no bias)."""
    return {
        f"{src}.q_proj.weight": f"{dst}.query.weight",
        f"{src}.q_proj.bias": f"{dst}.query.bias",
        f"{src}.k_proj.weight": f"{dst}.key.weight",
        f"{src}.v_proj.weight": f"{dst}.value.weight",
        f"{src}.v_proj.bias": f"{dst}.value.bias",
        f"{src}.out_proj.weight": f"{dst}.out.weight",
        f"{src}.out_proj.bias": f"{dst}.out.bias",
    }


def _wb(src: str, dst: str, src_w: str = "weight", src_b: str = "bias") -> dict[str, Target]:
    """Rows for a module with a weight and a bias (Linear, Conv1d, LayerNorm)."""
    return {f"{src}.{src_w}": f"{dst}.weight", f"{src}.{src_b}": f"{dst}.bias"}


# --------------------------------------------------------------------------------------------
# Hugging Face transformers layout (WhisperForConditionalGeneration)

HF_TABLE: dict[str, Target] = {
    **_wb("model.encoder.conv1", "encoder.conv1"),
    **_wb("model.encoder.conv2", "encoder.conv2"),
    "model.encoder.embed_positions.weight": "encoder.positional_embedding",
    **_hf_attention("model.encoder.layers.{}.self_attn", "encoder.blocks.{}.attn"),
    **_wb("model.encoder.layers.{}.self_attn_layer_norm", "encoder.blocks.{}.attn_ln"),
    **_wb("model.encoder.layers.{}.fc1", "encoder.blocks.{}.mlp.0"),
    **_wb("model.encoder.layers.{}.fc2", "encoder.blocks.{}.mlp.2"),
    **_wb("model.encoder.layers.{}.final_layer_norm", "encoder.blocks.{}.mlp_ln"),
    **_wb("model.encoder.layer_norm", "encoder.ln_post"),
    "model.decoder.embed_tokens.weight": "decoder.token_embedding.weight",
    "model.decoder.embed_positions.weight": "decoder.positional_embedding",
    **_hf_attention("model.decoder.layers.{}.self_attn", "decoder.blocks.{}.attn"),
    **_wb("model.decoder.layers.{}.self_attn_layer_norm", "decoder.blocks.{}.attn_ln"),
    **_hf_attention("model.decoder.layers.{}.encoder_attn", "decoder.blocks.{}.cross_attn"),
    **_wb("model.decoder.layers.{}.encoder_attn_layer_norm", "decoder.blocks.{}.cross_attn_ln"),
    **_wb("model.decoder.layers.{}.fc1", "decoder.blocks.{}.mlp.0"),
    **_wb("model.decoder.layers.{}.fc2", "decoder.blocks.{}.mlp.2"),
    **_wb("model.decoder.layers.{}.final_layer_norm", "decoder.blocks.{}.mlp_ln"),
    **_wb("model.decoder.layer_norm", "decoder.ln"),
    "proj_out.weight": None,  # tied to model.decoder.embed_tokens.weight
}

# --------------------------------------------------------------------------------------------
# OpenAI Whisper .pt: our module names are theirs, so the table is the identity on our names


def _identity_table() -> dict[str, Target]:
    with torch.device("meta"):  # the smallest Whisper, only to list parameter names
        model = Whisper(WhisperConfig(1, 1, 4, 1, 1, 1, 1, 4, 1, 1))
    patterns = [LAYER_INDEX.sub("{}", name, count=1) for name in model.state_dict()]
    return {p: p for p in patterns}


OPENAI_TABLE: dict[str, Target] = _identity_table()

# --------------------------------------------------------------------------------------------
# CTranslate2 WhisperSpec (faster-whisper's model.bin): fused attention projections


def _ct2_self_attention(src: str, dst: str) -> dict[str, Target]:
    return {
        f"{src}/linear_0/weight": Split(
            (f"{dst}.query.weight", f"{dst}.key.weight", f"{dst}.value.weight")
        ),
        f"{src}/linear_0/bias": Split((f"{dst}.query.bias", None, f"{dst}.value.bias")),
        f"{src}/linear_1/weight": f"{dst}.out.weight",
        f"{src}/linear_1/bias": f"{dst}.out.bias",
    }


def _ct2_cross_attention(src: str, dst: str) -> dict[str, Target]:
    return {
        f"{src}/linear_0/weight": f"{dst}.query.weight",
        f"{src}/linear_0/bias": f"{dst}.query.bias",
        f"{src}/linear_1/weight": Split((f"{dst}.key.weight", f"{dst}.value.weight")),
        f"{src}/linear_1/bias": Split((None, f"{dst}.value.bias")),
        f"{src}/linear_2/weight": f"{dst}.out.weight",
        f"{src}/linear_2/bias": f"{dst}.out.bias",
    }


def _ct2_ln(src: str, dst: str) -> dict[str, Target]:
    return {f"{src}/gamma": f"{dst}.weight", f"{src}/beta": f"{dst}.bias"}


CT2_TABLE: dict[str, Target] = {
    "encoder/conv1/weight": "encoder.conv1.weight",
    "encoder/conv1/bias": "encoder.conv1.bias",
    "encoder/conv2/weight": "encoder.conv2.weight",
    "encoder/conv2/bias": "encoder.conv2.bias",
    "encoder/position_encodings/encodings": "encoder.positional_embedding",
    **_ct2_self_attention("encoder/layer_{}/self_attention", "encoder.blocks.{}.attn"),
    **_ct2_ln("encoder/layer_{}/self_attention/layer_norm", "encoder.blocks.{}.attn_ln"),
    "encoder/layer_{}/ffn/linear_0/weight": "encoder.blocks.{}.mlp.0.weight",
    "encoder/layer_{}/ffn/linear_0/bias": "encoder.blocks.{}.mlp.0.bias",
    "encoder/layer_{}/ffn/linear_1/weight": "encoder.blocks.{}.mlp.2.weight",
    "encoder/layer_{}/ffn/linear_1/bias": "encoder.blocks.{}.mlp.2.bias",
    **_ct2_ln("encoder/layer_{}/ffn/layer_norm", "encoder.blocks.{}.mlp_ln"),
    **_ct2_ln("encoder/layer_norm", "encoder.ln_post"),
    "encoder/num_heads": None,  # in WhisperConfig
    "decoder/embeddings/weight": "decoder.token_embedding.weight",
    "decoder/projection/weight": None,  # alias of the embeddings (tied)
    "decoder/position_encodings/encodings": "decoder.positional_embedding",
    **_ct2_self_attention("decoder/layer_{}/self_attention", "decoder.blocks.{}.attn"),
    **_ct2_ln("decoder/layer_{}/self_attention/layer_norm", "decoder.blocks.{}.attn_ln"),
    **_ct2_cross_attention("decoder/layer_{}/attention", "decoder.blocks.{}.cross_attn"),
    **_ct2_ln("decoder/layer_{}/attention/layer_norm", "decoder.blocks.{}.cross_attn_ln"),
    "decoder/layer_{}/ffn/linear_0/weight": "decoder.blocks.{}.mlp.0.weight",
    "decoder/layer_{}/ffn/linear_0/bias": "decoder.blocks.{}.mlp.0.bias",
    "decoder/layer_{}/ffn/linear_1/weight": "decoder.blocks.{}.mlp.2.weight",
    "decoder/layer_{}/ffn/linear_1/bias": "decoder.blocks.{}.mlp.2.bias",
    **_ct2_ln("decoder/layer_{}/ffn/layer_norm", "decoder.blocks.{}.mlp_ln"),
    **_ct2_ln("decoder/layer_norm", "decoder.ln"),
    "decoder/num_heads": None,
    # scalars that restate the architecture: checked against CT2_EXPECTED_SCALARS, then dropped
    "decoder/activation": None,
    "decoder/alibi": None,
    "decoder/alibi_use_positive_positions": None,  # meaningless with alibi = 0
    "decoder/scale_alibi": None,
    "decoder/pre_norm": None,
    "decoder/scale_embeddings": None,
    "decoder/start_from_zero_embedding": None,
    "decoder/alignment_heads": None,  # word-timing settings of CTranslate2's own decoder
    "decoder/alignment_layer": None,
}

# Whisper is: exact GELU (CTranslate2 activation id 3), no ALiBi, pre-norm, unscaled embeddings.
CT2_EXPECTED_SCALARS = {
    "decoder/activation": 3,
    "decoder/alibi": 0,
    "decoder/pre_norm": 1,
    "decoder/scale_embeddings": 0,
    "decoder/start_from_zero_embedding": 0,
}


def convert_state_dict(
    tensors: Mapping[str, torch.Tensor],
    table: Mapping[str, Target],
    *,
    source: str,
) -> dict[str, torch.Tensor]:
    """Rename a checkpoint's tensors to ours through `table` (`checkpoints.rename`).

    Args:
        tensors: the checkpoint's name -> tensor.
        table: one of HF_TABLE, OPENAI_TABLE, CT2_TABLE.
        source: what to call the checkpoint in errors (its path).

    Raises:
        CheckpointError: names the table does not know (listed).
    """
    return rename(tensors, table, source=source, what="Whisper weights in this layout")


def check_ct2_scalars(tensors: Mapping[str, torch.Tensor], source: str) -> None:
    """Raise if a CTranslate2 WhisperSpec describes something other than Whisper's blocks."""
    for name, expected in CT2_EXPECTED_SCALARS.items():
        if name in tensors and int(tensors[name]) != expected:
            raise CheckpointError(
                f"{source}: {name} = {int(tensors[name])}, Whisper has {expected}; this "
                "CTranslate2 model is not a plain Whisper"
            )


def load_weights(
    config: WhisperConfig,
    state_dict: Mapping[str, torch.Tensor],
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    source: str = "checkpoint",
) -> Whisper:
    """Build `Whisper(config)` on the meta device and assign our-named tensors to it.

    Args:
        config: architecture.
        state_dict: tensors already renamed to ours (`convert_state_dict`).
        dtype: floating dtype of the parameters (float16 checkpoints upcast exactly to float32).
        device: where the model lives.
        source: the checkpoint's name for error messages.

    Raises:
        CheckpointError: missing or unexpected tensors (both listed), or a shape mismatch.
    """
    with torch.device("meta"):
        model = Whisper(config)
    return assign_weights(model, state_dict, dtype=dtype, device=device, source=source)


# --------------------------------------------------------------------------------------------
# Writing the Hugging Face layout: HF_TABLE inverted, plus the JSON files transformers reads

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# transformers names every architecture field; these are the values Whisper always has
_HF_FIXED = {
    "activation_function": "gelu",
    "scale_embedding": False,
    "tie_word_embeddings": True,
    "use_cache": True,
    "is_encoder_decoder": True,
}


def _inverse(table: Mapping[str, Target]) -> dict[str, str]:
    """Our name pattern -> the source pattern, for the rows that map one name to one name."""
    inverse: dict[str, str] = {}
    for source, target in table.items():
        if isinstance(target, str):
            if target in inverse:
                raise CheckpointError(f"{target} has two sources: {inverse[target]}, {source}")
            inverse[target] = source
    return inverse


def hf_state_dict(model: Whisper, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """Our parameters under transformers' `WhisperForConditionalGeneration` names.

    The output projection `proj_out.weight` is tied to the token embedding, so it is not
    written (transformers ties it when loading, as its own `save_pretrained` does).

    Args:
        model: a loaded `Whisper`.
        dtype: cast floating tensors to this dtype (default: keep theirs).

    Returns:
        name -> contiguous CPU tensor, e.g. "model.decoder.layers.0.self_attn.q_proj.weight".

    Raises:
        CheckpointError: a parameter of ours has no transformers name (the table is not total).
    """
    renamed = rename(
        model.state_dict(), _inverse(HF_TABLE), source="HF_TABLE", what="names it can invert"
    )
    return {
        name: (t.to(dtype) if dtype is not None and t.is_floating_point() else t)
        .detach()
        .to("cpu")
        .contiguous()
        for name, t in renamed.items()
    }


def hf_config(
    config: WhisperConfig, tokenizer: WhisperTokenizer, dtype: torch.dtype = torch.float32
) -> dict[str, Any]:
    """transformers' `WhisperConfig` keys (config.json) for our architecture and tokenizer."""
    return {
        "architectures": ["WhisperForConditionalGeneration"],
        "model_type": "whisper",
        "vocab_size": config.n_vocab,
        "num_mel_bins": config.n_mels,
        "d_model": config.n_audio_state,
        "encoder_layers": config.n_audio_layer,
        "encoder_attention_heads": config.n_audio_head,
        "encoder_ffn_dim": 4 * config.n_audio_state,
        "decoder_layers": config.n_text_layer,
        "decoder_attention_heads": config.n_text_head,
        "decoder_ffn_dim": 4 * config.n_text_state,
        "num_hidden_layers": config.n_audio_layer,
        "max_source_positions": config.n_audio_ctx,
        "max_target_positions": config.n_text_ctx,
        **_HF_FIXED,
        "bos_token_id": tokenizer.eot,
        "eos_token_id": tokenizer.eot,
        "pad_token_id": tokenizer.eot,
        "decoder_start_token_id": tokenizer.sot,
        "dtype": str(dtype).removeprefix("torch."),
    }


def hf_generation_config(
    config: WhisperConfig,
    tokenizer: WhisperTokenizer,
    alignment_heads: tuple[tuple[int, int], ...] = (),
    suppress_tokens: tuple[int, ...] | None = None,
    begin_suppress_tokens: tuple[int, ...] | None = None,
) -> dict[str, Any]:
    """transformers' `generation_config.json` for Whisper: special ids, decoding defaults.

    Args:
        config: architecture.
        tokenizer: the model's tokenizer (all ids are looked up in it).
        alignment_heads: (layer, head) pairs for word timing; () writes openai-whisper's
            fallback, every head of the second half of the decoder layers.
        suppress_tokens: the checkpoint's list; None: the tokenizer's non-speech symbols plus
            the task and start tokens (what decoding suppresses with "-1").
        begin_suppress_tokens: suppressed at the first sampled position; None: [" ", eot].
    """
    from .generate import DecodingOptions, WhisperGenerationConfig
    from .logit_rules import suppress_ids

    if not alignment_heads:
        alignment_heads = tuple(
            (layer, head)
            for layer in range(config.n_text_layer // 2, config.n_text_layer)
            for head in range(config.n_text_head)
        )
        logger.warning(
            "the checkpoint names no alignment heads; writing every head of decoder layers "
            "%d-%d (openai-whisper's fallback) for word timestamps",
            config.n_text_layer // 2, config.n_text_layer - 1,
        )  # fmt: skip
    suppress = suppress_ids(
        tokenizer, DecodingOptions(), WhisperGenerationConfig(suppress_tokens=suppress_tokens)
    )
    if begin_suppress_tokens is None:
        begin_suppress_tokens = (*tokenizer.encode(" "), tokenizer.eot)
    out: dict[str, Any] = {
        "alignment_heads": [list(pair) for pair in alignment_heads],
        "begin_suppress_tokens": list(begin_suppress_tokens),
        "suppress_tokens": suppress,
        "bos_token_id": tokenizer.eot,
        "eos_token_id": tokenizer.eot,
        "pad_token_id": tokenizer.eot,
        "decoder_start_token_id": tokenizer.sot,
        "no_timestamps_token_id": tokenizer.no_timestamps,
        "prev_sot_token_id": tokenizer.sot_prev,
        "max_initial_timestamp_index": 50,  # 1.0 s, as openai-whisper
        "max_length": config.n_text_ctx,
        "is_multilingual": tokenizer.multilingual,
    }
    if tokenizer.multilingual:
        out["lang_to_id"] = {
            f"<|{code}|>": tokenizer.language_id(code) for code in tokenizer.language_codes
        }
        out["task_to_id"] = {"transcribe": tokenizer.transcribe, "translate": tokenizer.translate}
    return out


def _tokenizer_files(tokenizer: WhisperTokenizer, n_text_ctx: int) -> dict[str, str]:
    """tokenizer.json (timestamp tokens included), the vocab.json/merges.txt pair of the slow
    tokenizer, and the configs transformers' `WhisperTokenizer` reads: file name -> text."""
    full = json.loads(tokenizer.to_json())
    bpe = full["model"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in bpe["merges"]]
    special = "<|endoftext|>"
    specials = {"bos_token": special, "eos_token": special, "unk_token": special,
                "pad_token": special}  # fmt: skip
    tokenizer_config = {
        "tokenizer_class": "WhisperTokenizer",
        "processor_class": "WhisperProcessor",
        "model_max_length": 2 * n_text_ctx + 128,  # transformers' own value for Whisper: 1024
        "add_prefix_space": False,
        "errors": "replace",
        **specials,
    }

    def dump(obj: Any) -> str:
        return json.dumps(obj, ensure_ascii=False, indent=2) + "\n"

    return {
        "tokenizer.json": tokenizer.to_json(pretty=True),
        "vocab.json": dump(bpe["vocab"]),
        "merges.txt": "#version: 0.2\n" + "\n".join(merges) + "\n",
        "tokenizer_config.json": dump(tokenizer_config),
        "special_tokens_map.json": dump(specials),
    }


def _preprocessor_config(n_mels: int, n_audio_ctx: int) -> dict[str, Any]:
    """`WhisperFeatureExtractor` settings: 16 kHz, 25 ms window, 10 ms hop, 30 s windows."""
    return {
        "feature_extractor_type": "WhisperFeatureExtractor",
        "processor_class": "WhisperProcessor",
        "feature_size": n_mels,
        "sampling_rate": 16000,
        "hop_length": 160,
        "n_fft": 400,
        "chunk_length": 30,
        "n_samples": 480000,
        "nb_max_frames": 2 * n_audio_ctx,
        "padding_side": "right",
        "padding_value": 0.0,
        "return_attention_mask": False,
    }


def save_pretrained(
    whisper: WhisperForConditionalGeneration,
    folder: str | Path,
    *,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write a Whisper model in the Hugging Face layout, readable by transformers and by us.

    Writes `config.json`, `model.safetensors`, `generation_config.json`, `tokenizer.json`,
    `vocab.json`, `merges.txt`, `tokenizer_config.json`, `special_tokens_map.json` and
    `preprocessor_config.json`, so that `transformers.pipeline("automatic-speech-recognition",
    model=folder)` works offline.

    Args:
        whisper: the model with its tokenizer and decoding defaults (`from_pretrained(...)`).
        folder: the output folder (created; files of the same names are replaced).
        dtype: dtype of the saved weights (default: the model's).

    Returns:
        The folder.
    """
    from safetensors.torch import save_file

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise CheckpointError(f"cannot write a model folder at {folder}: it is a file")
    folder.mkdir(parents=True, exist_ok=True)
    model, tokenizer, gen = whisper.model, whisper.tokenizer, whisper.generation_config
    config = model.config
    dtype = dtype or next(model.parameters()).dtype
    tensors = hf_state_dict(model, dtype)
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    files = {
        "config.json": hf_config(config, tokenizer, dtype),
        "generation_config.json": hf_generation_config(
            config, tokenizer, gen.alignment_heads, gen.suppress_tokens, gen.begin_suppress_tokens
        ),
        "preprocessor_config.json": _preprocessor_config(config.n_mels, config.n_audio_ctx),
    }
    for name, content in files.items():
        (folder / name).write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
    for name, text in _tokenizer_files(tokenizer, config.n_text_ctx).items():
        (folder / name).write_text(text, encoding="utf-8")
    logger.info("wrote Whisper (%d tensors, %s) to %s", len(tensors), dtype, folder)
    return folder


# the bundled tokenizers, by vocabulary size, for checkpoints that come without one (OpenAI .pt)
_BUNDLED_TOKENIZERS = {51864: "whisper-tiny.en", 51865: "whisper-base"}


def _find_tokenizer(
    source_folder: Path | None, n_vocab: int, tokenizer: str | Path | None, source: str
) -> WhisperTokenizer:
    """The tokenizer for a checkpoint: the one asked for, the one beside it, or a bundled one
    with the same vocabulary."""
    from ...hub import resolve_model
    from ...text.whisper_tokenizer import WhisperTokenizer

    if tokenizer is not None:
        folder = resolve_model(tokenizer).folder
    elif source_folder is not None and (source_folder / "tokenizer.json").is_file():
        folder = source_folder
    elif n_vocab in _BUNDLED_TOKENIZERS:
        folder = resolve_model(_BUNDLED_TOKENIZERS[n_vocab]).folder
        logger.info("%s has no tokenizer.json beside it: using %s's", source, folder)
    else:
        raise CheckpointError(
            f"{source} has no tokenizer.json beside it and no bundled tokenizer has its "
            f"{n_vocab} tokens; pass tokenizer= (a folder or hub id with the matching "
            "tokenizer.json, e.g. openai/whisper-large-v3)"
        )
    if folder is None:
        raise CheckpointError(f"no tokenizer folder for {tokenizer}")
    result = WhisperTokenizer.from_folder(folder)
    if result.vocab_size > n_vocab or result.multilingual != (n_vocab >= 51865):
        raise CheckpointError(
            f"the tokenizer in {folder} ({result.vocab_size} tokens) does not fit {source} "
            f"({n_vocab} tokens); use the tokenizer that came with these weights"
        )
    return result


def convert(
    src: str | Path,
    dst: str | Path,
    *,
    dtype: torch.dtype | str | None = None,
    tokenizer: str | Path | None = None,
) -> Path:
    """Convert any Whisper checkpoint we load to the Hugging Face layout.

    Args:
        src: a bundled alias ("whisper-tiny.en"), a CTranslate2 / transformers folder, an
            OpenAI `.pt` file, or a hub id.
        dst: the output folder.
        dtype: "float32", "float16", "bfloat16" or a torch dtype (default float32).
        tokenizer: where to take the tokenizer from when `src` has none beside it (OpenAI
            `.pt` files); default: a bundled tokenizer with the same vocabulary.

    Returns:
        The output folder.

    Example:
        >>> convert("whisper-tiny.en", "whisper-tiny.en-hf")
        >>> transformers.pipeline("automatic-speech-recognition", model="whisper-tiny.en-hf")
    """
    from ...checkpoints import read_json
    from .generate import WhisperForConditionalGeneration, WhisperGenerationConfig
    from .load import load_model

    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        dtype = DTYPES[dtype]
    dtype = dtype or torch.float32
    loaded = load_model(src, dtype=torch.float32)
    source = "+".join(str(p) for p in loaded.files.weights)
    folder = loaded.files.folder
    tok = _find_tokenizer(folder, loaded.model.config.n_vocab, tokenizer, source)
    gen_path = folder / "generation_config.json" if folder is not None else None
    gen_json = read_json(gen_path) if gen_path is not None and gen_path.is_file() else {}
    # a lone .pt's folder may hold unrelated files: only a folder checkpoint's configs count
    configs = (loaded.config_json, gen_json) if loaded.layout != "openai" else ()
    generation_config = WhisperGenerationConfig.from_json(*configs)
    whisper = WhisperForConditionalGeneration(loaded.model, tok, generation_config)
    return save_pretrained(whisper, dst, dtype=dtype)
