"""Weight-name table for transformers Wav2Vec2/HuBERT checkpoints -> our modules.

Our module names are the checkpoint's with the backbone prefix ("wav2vec2." or "hubert.")
renamed to "backbone.". Two tensor fixes:
- the positional convolution's weight norm, stored as `weight_g`/`weight_v` (older checkpoints)
  or `parametrizations.weight.original0/1` (saved by torch's parametrizations API), is folded
  into one plain `weight`;
- each layer's `q_proj`, `k_proj` and `v_proj` are concatenated (in that order) into our fused
  `attention.qkv`.

A table maps a source name (layer index written `{}`) to our name, to `None` (dropped), to a
`WeightNormPart` (one half of a weight-normed tensor) or to a `FusedPart` (one slice of a fused
tensor). Lookup is exact; coverage is checked both ways and a mismatch raises `CheckpointError`
listing both sides.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from ...checkpoints import rename
from ...errors import CheckpointError

__all__ = ["FusedPart", "WeightNormPart", "convert_state_dict", "fold_weight_norm", "hf_table"]


@dataclass(frozen=True)
class WeightNormPart:
    """Half of `weight = g * v / ||v||` (norm over every dim but `dim`) for our `target`."""

    target: str
    part: str  # "g" (magnitude) or "v" (direction)
    dim: int = 2

    def combine(self, name: str, parts: dict[str, torch.Tensor], source: str) -> torch.Tensor:
        """The folded weight `name` from its "g" and "v" halves."""
        if set(parts) != {"g", "v"}:
            raise CheckpointError(
                f"{source}: the weight norm of {name} needs both g and v, found only {sorted(parts)}"
            )
        return fold_weight_norm(parts["g"], parts["v"], self.dim)


@dataclass(frozen=True)
class FusedPart:
    """Slice `part` of `count` of our `target`, concatenated along dim 0 (fused q/k/v)."""

    target: str
    part: int
    count: int = 3

    def combine(self, name: str, parts: dict[int, torch.Tensor], source: str) -> torch.Tensor:
        """Our fused tensor `name`: the parts concatenated in order along dim 0."""
        if sorted(parts) != list(range(self.count)):
            labels = ("query", "key", "value") if self.count == 3 else range(self.count)
            raise CheckpointError(
                f"{source}: {name} fuses {self.count} tensors ({', '.join(map(str, labels))} "
                f"projections), found only {[list(labels)[i] for i in sorted(parts)]}"
            )
        return torch.cat([parts[i] for i in range(self.count)])


Target = str | WeightNormPart | FusedPart | None

_LAYER_INDEX = re.compile(r"(?<=\.)(\d+)(?=\.)")  # between dots: "encoder.layers.3.fc1"


def fold_weight_norm(g: torch.Tensor, v: torch.Tensor, dim: int) -> torch.Tensor:
    """The plain weight of `torch.nn.utils.weight_norm(module, dim=dim)`: g * v / ||v||."""
    dims = [d for d in range(v.ndim) if d != dim]
    v32 = v.float()
    return (v32 * (g.float() / v32.norm(dim=dims, keepdim=True))).to(v.dtype)


def _wb(src: str, dst: str) -> dict[str, Target]:
    return {f"{src}.weight": f"{dst}.weight", f"{src}.bias": f"{dst}.bias"}


def _qkv(src: str, dst: str) -> dict[str, Target]:
    """Rows fusing `src`.{q,k,v}_proj weights and biases into `dst` (rows q, then k, then v)."""
    return {
        f"{src}.{name}_proj.{kind}": FusedPart(f"{dst}.{kind}", index)
        for index, name in enumerate("qkv")
        for kind in ("weight", "bias")
    }


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
        **_qkv(f"{layer}.attention", f"{ours}.attention.qkv"),
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
    tensors: Mapping[str, torch.Tensor],
    table: Mapping[str, Target],
    *,
    source: str,
    model: str = "Wav2Vec2/HuBERT",
) -> dict[str, torch.Tensor]:
    """Rename a checkpoint's tensors through `table` (`checkpoints.rename`), folding
    weight-normed pairs and concatenating fused parts. AST's table goes through here too.

    Args:
        tensors: the checkpoint's name -> tensor.
        table: our name (layer index written `{}`) for each checkpoint name pattern.
        source: what to call the checkpoint in errors (its path).
        model: what to call the architecture in errors.

    Raises:
        CheckpointError: names the table does not know, half of a weight-normed pair, or a
            fused tensor with a part missing.
    """
    return rename(tensors, table, source=source, what=f"{model} weights", index=_LAYER_INDEX)
