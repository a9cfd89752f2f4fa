"""Weight-name tables: each checkpoint layout's names -> ours (openai/whisper's names).

A table maps a source name, with the layer index written `{}`, to
- a name of ours (same tensor, cast to the model dtype),
- `None` (dropped: tied copies, scalars that only restate the architecture), or
- a named fix (`Split`) that cuts a fused tensor into several of ours.

Lookup is exact. After mapping, coverage is checked both ways: a source name the table does not
know, or a parameter of ours nothing produced, raises `CheckpointError` with both lists.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from ...checkpoints import assign_weights
from ...checkpoints import name_listing as _listing
from ...errors import CheckpointError
from .config import WhisperConfig
from .model import Whisper

__all__ = [
    "CT2_TABLE",
    "HF_TABLE",
    "OPENAI_TABLE",
    "Split",
    "convert_state_dict",
    "load_weights",
]


@dataclass(frozen=True)
class Split:
    """Cut a fused tensor into equal parts along dim 0, one per target.

    A `None` target drops its part, which must be all zeros (CTranslate2 stores a zero key
    bias inside the fused qkv bias; Whisper's key projection has none).
    """

    targets: tuple[str | None, ...]

    def __call__(self, name: str, tensor: torch.Tensor, layer: str) -> dict[str, torch.Tensor]:
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
            out[target.format(layer)] = part
        return out


Target = str | Split | None

# the first layer index in a name: "encoder.layers.3.fc1" / "decoder/layer_3/ffn"
_LAYER_INDEX = re.compile(r"(?<=[._])(\d+)(?=[./])")


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
    patterns = [_LAYER_INDEX.sub("{}", name, count=1) for name in model.state_dict()]
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
    """Rename a checkpoint's tensors to ours through `table` (exact lookup, fixes applied).

    Args:
        tensors: the checkpoint's name -> tensor.
        table: one of HF_TABLE, OPENAI_TABLE, CT2_TABLE.
        source: what to call the checkpoint in errors (its path).

    Raises:
        CheckpointError: names the table does not know (listed).
    """
    out: dict[str, torch.Tensor] = {}
    unknown = []
    for name, tensor in tensors.items():
        match = _LAYER_INDEX.search(name)
        layer = match.group(1) if match else ""
        pattern = _LAYER_INDEX.sub("{}", name, count=1) if match else name
        if pattern not in table:
            unknown.append(name)
            continue
        target = table[pattern]
        if target is None:
            continue
        if isinstance(target, Split):
            out.update(target(name, tensor, layer))
        else:
            out[target.format(layer)] = tensor
    if unknown:
        raise CheckpointError(
            f"{source}: {len(unknown)} tensors are not Whisper weights in this layout: "
            f"{_listing(unknown)}"
        )
    return out


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
