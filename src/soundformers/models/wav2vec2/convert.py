"""Weight-name table for transformers Wav2Vec2/HuBERT checkpoints -> our modules.

Our module names are the checkpoint's with the backbone prefix ("wav2vec2." or "hubert.")
renamed to "backbone.". The one tensor fix is the positional convolution's weight norm: stored
as `weight_g`/`weight_v` (older checkpoints) or `parametrizations.weight.original0/1` (saved by
torch's parametrizations API); both are folded into one plain `weight`.

A table maps a source name (layer index written `{}`) to our name, to `None` (dropped), or to a
`WeightNormPart` (one half of a weight-normed tensor). Lookup is exact; coverage is checked both
ways and a mismatch raises `CheckpointError` listing both sides.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from ...checkpoints import name_listing as _listing
from ...errors import CheckpointError

__all__ = ["WeightNormPart", "convert_state_dict", "fold_weight_norm", "hf_table"]


@dataclass(frozen=True)
class WeightNormPart:
    """Half of `weight = g * v / ||v||` (norm over every dim but `dim`) for our `target`."""

    target: str
    part: str  # "g" (magnitude) or "v" (direction)
    dim: int = 2


Target = str | WeightNormPart | None

_LAYER_INDEX = re.compile(r"(?<=\.)(\d+)(?=\.)")


def fold_weight_norm(g: torch.Tensor, v: torch.Tensor, dim: int) -> torch.Tensor:
    """The plain weight of `torch.nn.utils.weight_norm(module, dim=dim)`: g * v / ||v||."""
    dims = [d for d in range(v.ndim) if d != dim]
    v32 = v.float()
    return (v32 * (g.float() / v32.norm(dim=dims, keepdim=True))).to(v.dtype)


def _wb(src: str, dst: str) -> dict[str, Target]:
    return {f"{src}.weight": f"{dst}.weight", f"{src}.bias": f"{dst}.bias"}


def hf_table(prefix: str) -> dict[str, Target]:
    """The table for a transformers checkpoint whose backbone prefix is `prefix`."""
    p, layer = prefix, f"{prefix}.encoder.layers.{{}}"
    ours = "backbone.encoder.layers.{}"
    conv = "backbone.encoder.pos_conv_embed.conv.weight"
    table: dict[str, Target] = {
        f"{p}.feature_extractor.conv_layers.{{}}.conv.weight":
            "backbone.feature_extractor.conv_layers.{}.conv.weight",
        f"{p}.feature_extractor.conv_layers.{{}}.conv.bias":
            "backbone.feature_extractor.conv_layers.{}.conv.bias",
        **_wb(f"{p}.feature_extractor.conv_layers.{{}}.layer_norm",
              "backbone.feature_extractor.conv_layers.{}.layer_norm"),
        **_wb(f"{p}.feature_projection.layer_norm", "backbone.feature_projection.layer_norm"),
        **_wb(f"{p}.feature_projection.projection", "backbone.feature_projection.projection"),
        f"{p}.encoder.pos_conv_embed.conv.bias": "backbone.encoder.pos_conv_embed.conv.bias",
        f"{p}.encoder.pos_conv_embed.conv.weight_g": WeightNormPart(conv, "g"),
        f"{p}.encoder.pos_conv_embed.conv.weight_v": WeightNormPart(conv, "v"),
        f"{p}.encoder.pos_conv_embed.conv.parametrizations.weight.original0":
            WeightNormPart(conv, "g"),
        f"{p}.encoder.pos_conv_embed.conv.parametrizations.weight.original1":
            WeightNormPart(conv, "v"),
        **_wb(f"{p}.encoder.layer_norm", "backbone.encoder.layer_norm"),
        **_wb(f"{layer}.attention.q_proj", f"{ours}.attention.q_proj"),
        **_wb(f"{layer}.attention.k_proj", f"{ours}.attention.k_proj"),
        **_wb(f"{layer}.attention.v_proj", f"{ours}.attention.v_proj"),
        **_wb(f"{layer}.attention.out_proj", f"{ours}.attention.out_proj"),
        **_wb(f"{layer}.layer_norm", f"{ours}.layer_norm"),
        **_wb(f"{layer}.feed_forward.intermediate_dense", f"{ours}.feed_forward.intermediate_dense"),
        **_wb(f"{layer}.feed_forward.output_dense", f"{ours}.feed_forward.output_dense"),
        **_wb(f"{layer}.final_layer_norm", f"{ours}.final_layer_norm"),
        f"{p}.masked_spec_embed": None,  # SpecAugment's mask vector: training only
        # heads
        **_wb("lm_head", "lm_head"),
        **_wb("projector", "projector"),
        **_wb("classifier", "classifier"),
        "layer_weights": "layer_weights",
    }  # fmt: skip
    return table


def convert_state_dict(
    tensors: Mapping[str, torch.Tensor], table: Mapping[str, Target], *, source: str
) -> dict[str, torch.Tensor]:
    """Rename a checkpoint's tensors through `table`, folding weight-normed pairs.

    Raises:
        CheckpointError: names the table does not know, or half of a weight-normed pair.
    """
    out: dict[str, torch.Tensor] = {}
    halves: dict[str, dict[str, torch.Tensor]] = {}
    dims: dict[str, int] = {}
    unknown = []
    for name, tensor in tensors.items():
        match = _LAYER_INDEX.search(name)
        pattern = _LAYER_INDEX.sub("{}", name, count=1) if match else name
        if pattern not in table:
            unknown.append(name)
            continue
        target = table[pattern]
        layer = match.group(1) if match else ""
        if isinstance(target, WeightNormPart):
            halves.setdefault(target.target.format(layer), {})[target.part] = tensor
            dims[target.target.format(layer)] = target.dim
        elif target is not None:
            out[target.format(layer)] = tensor
    if unknown:
        raise CheckpointError(
            f"{source}: {len(unknown)} tensors are not Wav2Vec2/HuBERT weights: {_listing(unknown)}"
        )
    for name, parts in halves.items():
        if set(parts) != {"g", "v"}:
            raise CheckpointError(
                f"{source}: the weight norm of {name} needs both g and v, found only {sorted(parts)}"
            )
        out[name] = fold_weight_norm(parts["g"], parts["v"], dims[name])
    return out
