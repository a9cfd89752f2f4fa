"""Weight names of transformers VITS (MMS-TTS) and Piper ONNX voices -> our modules.

Our modules carry the original VITS names, which Piper's ONNX export keeps for most
initializers. Two kinds of Piper weights lost their names to constant folding:

- convolutions whose weight norm was folded (`onnx::Conv_8168`): the Conv node consuming the
  initializer is named after the module (`/flow/flows.6/enc/in_layers.0/Conv`), so the weight
  is `flow.flows.6.enc.in_layers.0.weight`; `enc_p.emb.weight` is found the same way from its
  Gather node;
- the duration predictor's `ElementwiseAffine.logs`, folded into `exp(-logs)`
  (`/dp/flows.0/Exp_output_0`), recovered by the named fix `neg_log`.

Every other initializer is a graph constant (shapes, pads, scalars) and is dropped. The
transformers table maps names with their layer indices written `{}`; weight norm
(`weight_g`/`weight_v` or `parametrizations.weight.original0/1`) is folded first.
Coverage is checked both ways by `assign_weights`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch

from ...checkpoints import name_listing, rename
from ...errors import CheckpointError
from ...onnx_reader import OnnxGraph
from .config import VitsConfig

__all__ = ["convert_hf", "convert_piper", "fold_weight_norms", "hf_table", "piper_config"]


# --------------------------------------------------------------------------------------------
# named tensor fixes


def linear_to_conv(w: torch.Tensor) -> torch.Tensor:
    """nn.Linear weight (out, in) -> 1x1 Conv1d weight (out, in, 1)."""
    return w.unsqueeze(-1) if w.ndim == 2 else w


def neg_log(w: torch.Tensor) -> torch.Tensor:
    """exp(-logs) folded by the ONNX export -> logs."""
    return -torch.log(w)


_WEIGHT_NORM = (
    (".weight_g", ".weight_v"),
    (".parametrizations.weight.original0", ".parametrizations.weight.original1"),
)


def fold_weight_norms(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Replace each weight-normed pair by `<module>.weight = g * v / ||v||` (norm over all
    axes but 0, torch's default `dim=0`).

    Raises:
        CheckpointError: one half of a pair is missing.
    """
    out = dict(tensors)
    for g_suffix, v_suffix in _WEIGHT_NORM:
        for name in [n for n in tensors if n.endswith(g_suffix)]:
            module = name[: -len(g_suffix)]
            if module + v_suffix not in tensors:
                raise CheckpointError(f"{name} has no matching {module + v_suffix}")
            g, v = out.pop(name).float(), out.pop(module + v_suffix)
            v32 = v.float()
            norm = v32.norm(dim=list(range(1, v.ndim)), keepdim=True)
            out[module + ".weight"] = (v32 * (g / norm)).to(v.dtype)
        orphans = [n for n in out if n.endswith(v_suffix)]
        if orphans:
            raise CheckpointError(f"weight-norm halves without their pair: {name_listing(orphans)}")
    return out


# --------------------------------------------------------------------------------------------
# transformers VitsModel


@dataclass(frozen=True)
class Rule:
    """Where a source tensor goes: `target` formatted with the (possibly remapped) indices,
    after `fix`."""

    target: str
    fix: Callable[[torch.Tensor], torch.Tensor] | None = None
    index: Callable[..., tuple[int, ...] | None] | None = None

    def split(
        self, name: str, tensor: torch.Tensor, layer: Sequence[str]
    ) -> dict[str, torch.Tensor]:
        """{our name: the fixed tensor}, or {} when `index` drops this layer."""
        indices = tuple(int(i) for i in layer)
        mapped = self.index(*indices) if self.index else indices
        if mapped is None:
            return {}
        return {self.target.format(*mapped): self.fix(tensor) if self.fix else tensor}


Target = str | Rule | None


def _coupling(i: int, *rest: int) -> tuple[int, ...]:
    return (2 * i, *rest)  # [coupling, flip] pairs: the i-th coupling layer is flows[2i]


def _spline_flow(i: int, *rest: int) -> tuple[int, ...] | None:
    """[affine, (flow, flip) ...]: spline flow i is flows[2i-1]; flow 1 is never used at
    inference (VITS drops it), so it is dropped (None)."""
    return None if i == 1 else (2 * i - 1, *rest)


def _wb(
    src: str, dst: str, index: Callable[..., tuple[int, ...] | None] | None = None
) -> dict[str, Target]:
    return {f"{src}.weight": Rule(f"{dst}.weight", None, index),
            f"{src}.bias": Rule(f"{dst}.bias", None, index)}  # fmt: skip


def _ln(
    src: str, dst: str, index: Callable[..., tuple[int, ...] | None] | None = None
) -> dict[str, Target]:
    return {f"{src}.weight": Rule(f"{dst}.gamma", None, index),
            f"{src}.bias": Rule(f"{dst}.beta", None, index)}  # fmt: skip


def _dds(
    src: str, dst: str, index: Callable[..., tuple[int, ...] | None] | None = None
) -> dict[str, Target]:
    return {
        **_wb(f"{src}.convs_dilated.{{}}", f"{dst}.convs_sep.{{}}", index),
        **_wb(f"{src}.convs_pointwise.{{}}", f"{dst}.convs_1x1.{{}}", index),
        **_ln(f"{src}.norms_1.{{}}", f"{dst}.norms_1.{{}}", index),
        **_ln(f"{src}.norms_2.{{}}", f"{dst}.norms_2.{{}}", index),
    }


def hf_table() -> dict[str, Target]:
    """transformers `VitsModel` names (weight norms folded) -> ours."""
    te, enc, att = "text_encoder.", "enc_p.encoder.", "text_encoder.encoder.layers.{}."
    dp, fl = "duration_predictor.", "duration_predictor.flows.{}."
    table: dict[str, Target] = {
        te + "embed_tokens.weight": "enc_p.emb.weight",
        att + "attention.emb_rel_k": enc + "attn_layers.{}.emb_rel_k",
        att + "attention.emb_rel_v": enc + "attn_layers.{}.emb_rel_v",
        **_ln(att + "layer_norm", enc + "norm_layers_1.{}"),
        **_wb(att + "feed_forward.conv_1", enc + "ffn_layers.{}.conv_1"),
        **_wb(att + "feed_forward.conv_2", enc + "ffn_layers.{}.conv_2"),
        **_ln(att + "final_layer_norm", enc + "norm_layers_2.{}"),
        **_wb(te + "project", "enc_p.proj"),
        # prior flow: coupling layer i -> flows[2i]
        **_wb("flow.flows.{}.conv_pre", "flow.flows.{}.pre", _coupling),
        **_wb("flow.flows.{}.conv_post", "flow.flows.{}.post", _coupling),
        **_wb("flow.flows.{}.wavenet.in_layers.{}", "flow.flows.{}.enc.in_layers.{}", _coupling),
        **_wb("flow.flows.{}.wavenet.res_skip_layers.{}", "flow.flows.{}.enc.res_skip_layers.{}",
              _coupling),
        **_wb("flow.flows.{}.wavenet.cond_layer", "flow.flows.{}.enc.cond_layer", _coupling),
        # decoder
        **_wb("decoder.conv_pre", "dec.conv_pre"),
        **_wb("decoder.upsampler.{}", "dec.ups.{}"),
        **_wb("decoder.resblocks.{}.convs1.{}", "dec.resblocks.{}.convs1.{}"),
        **_wb("decoder.resblocks.{}.convs2.{}", "dec.resblocks.{}.convs2.{}"),
        "decoder.conv_post.weight": "dec.conv_post.weight",
        **_wb("decoder.cond", "dec.cond"),
        # stochastic duration predictor
        **_wb(dp + "conv_pre", "dp.pre"),
        **_wb(dp + "conv_proj", "dp.proj"),
        **_dds(dp + "conv_dds", "dp.convs"),
        **_wb(dp + "cond", "dp.cond"),
        fl + "translate": "dp.flows.{}.m",
        fl + "log_scale": "dp.flows.{}.logs",
        **_wb(fl + "conv_pre", "dp.flows.{}.pre", _spline_flow),
        **_wb(fl + "conv_proj", "dp.flows.{}.proj", _spline_flow),
        **_dds(fl + "conv_dds", "dp.flows.{}.convs", _spline_flow),
        # deterministic duration predictor
        **_wb(dp + "conv_1", "dp.conv_1"),
        **_wb(dp + "conv_2", "dp.conv_2"),
        **_ln(dp + "norm_1", "dp.norm_1"),
        **_ln(dp + "norm_2", "dp.norm_2"),
        **_wb(dp + "proj", "dp.proj"),
        "embed_speaker.weight": "emb_g.weight",
    }  # fmt: skip
    for src, dst in (("q_proj", "conv_q"), ("k_proj", "conv_k"), ("v_proj", "conv_v"),
                     ("out_proj", "conv_o")):  # fmt: skip
        table[att + f"attention.{src}.weight"] = Rule(
            enc + f"attn_layers.{{}}.{dst}.weight", linear_to_conv
        )
        table[att + f"attention.{src}.bias"] = enc + f"attn_layers.{{}}.{dst}.bias"
    return table


# training-only parts of a transformers checkpoint
_HF_DROPPED = ("posterior_encoder.", "duration_predictor.post_")
_INDEX = re.compile(r"(?<=\.)\d+(?=\.|$)")


def convert_hf(tensors: Mapping[str, torch.Tensor], *, source: str) -> dict[str, torch.Tensor]:
    """Rename a transformers `VitsModel` state dict to ours.

    Raises:
        CheckpointError: tensors the table does not know (listed).
    """
    kept = {
        name: tensor
        for name, tensor in fold_weight_norms(tensors).items()
        if not name.startswith(_HF_DROPPED)
    }
    return rename(kept, hf_table(), source=source, what="VITS weights", indices=0, index=_INDEX)


# --------------------------------------------------------------------------------------------
# Piper ONNX voices

_MODULE_OPS = {"Conv": 1, "ConvTranspose": 1, "Gather": 0}  # op -> input slot of the weight


def convert_piper(graph: OnnxGraph, expected: set[str]) -> dict[str, torch.Tensor]:
    """Pick our weights out of a Piper voice's initializers.

    Args:
        graph: the voice's ONNX initializers and nodes.
        expected: our model's state-dict names (a name that is ours is kept as is).

    Returns:
        our-named tensors (float32).
    """
    consumers = graph.consumers()
    out: dict[str, torch.Tensor] = {}
    for name, tensor in graph.initializers.items():
        if name in expected:
            out[name] = tensor
            continue
        if name.endswith("/Exp_output_0") and name.startswith("/dp/flows."):
            module = name.rsplit("/", 1)[0].strip("/").replace("/", ".")
            out[f"{module}.logs"] = neg_log(tensor)
            continue
        for node in consumers.get(name, []):
            slot = _MODULE_OPS.get(node.op_type)
            if slot is None or len(node.inputs) <= slot or node.inputs[slot] != name:
                continue
            module = node.name.strip("/").rsplit("/", 1)[0].replace("/", ".")
            if f"{module}.weight" in expected:
                out[f"{module}.weight"] = tensor
                break
    return out


def piper_config(graph: OnnxGraph, voice: Mapping) -> VitsConfig:
    """The architecture of a Piper voice, from weight shapes, conv attributes and its json.

    Args:
        graph: the voice's ONNX initializers and nodes.
        voice: its `.onnx.json` (speakers, sample rate).

    Raises:
        CheckpointError: the graph lacks a tensor every VITS voice has.
    """
    # module weights by our name, whether the initializer kept it or a consuming node names it
    weights: dict[str, tuple[int, ...]] = {k: tuple(v.shape) for k, v in graph.initializers.items()}
    attrs: dict[str, dict] = {}
    for node in graph.nodes:
        slot = _MODULE_OPS.get(node.op_type)
        if slot is None or len(node.inputs) <= slot or node.inputs[slot] not in graph.initializers:
            continue
        module = node.name.strip("/").rsplit("/", 1)[0].replace("/", ".")
        weights[f"{module}.weight"] = tuple(graph.initializers[node.inputs[slot]].shape)
        attrs[module] = node.attributes

    def shape(name: str) -> tuple[int, ...]:
        if name not in weights:
            raise CheckpointError(f"{graph.path}: no weight {name!r}: not a Piper VITS voice")
        return weights[name]

    def count(prefix: str) -> int:  # 1 + the largest index i of any `{prefix}.{i}.*`
        found = re.compile(re.escape(prefix) + r"\.(\d+)\.")
        return 1 + max((int(m.group(1)) for k in weights if (m := found.match(k))), default=-1)

    proj = shape("enc_p.proj.weight")
    rel = shape("enc_p.encoder.attn_layers.0.emb_rel_k")
    ffn = shape("enc_p.encoder.ffn_layers.0.conv_1.weight")
    n_ups = count("dec.ups")
    resblock = "2" if "dec.resblocks.0.convs.0.weight" in weights else "1"
    convs = "convs" if resblock == "2" else "convs1"
    n_kernels = count("dec.resblocks") // max(n_ups, 1)
    blocks = [
        [
            attrs[f"dec.resblocks.{j}.{convs}.{c}"]
            for c in range(count(f"dec.resblocks.{j}.{convs}"))
        ]
        for j in range(n_kernels)
    ]
    ups = [attrs[f"dec.ups.{i}"] for i in range(n_ups)]
    wn = attrs.get("flow.flows.0.enc.in_layers.1", {})
    return VitsConfig(
        n_vocab=shape("enc_p.emb.weight")[0],
        hidden_channels=proj[1],
        inter_channels=proj[0] // 2,
        filter_channels=ffn[0],
        n_heads=proj[1] // rel[2],
        n_layers=count("enc_p.encoder.attn_layers"),
        kernel_size=ffn[2],
        window_size=(rel[1] - 1) // 2,
        use_sdp=True,
        dp_filter_channels=shape("dp.pre.weight")[0],
        dp_kernel_size=shape("dp.convs.convs_sep.0.weight")[2],
        dp_n_layers=count("dp.convs.convs_sep"),
        dp_n_flows=count("dp.flows") // 2,
        dp_num_bins=(shape("dp.flows.3.proj.weight")[0] + 1) // 3,
        flow_n_flows=(count("flow.flows") + 1) // 2,
        flow_n_layers=count("flow.flows.0.enc.in_layers"),
        flow_kernel_size=shape("flow.flows.0.enc.in_layers.0.weight")[2],
        flow_dilation_rate=int(wn.get("dilations", (1,))[0]),
        resblock=resblock,
        resblock_kernel_sizes=tuple(int(b[0]["kernel_shape"][0]) for b in blocks),
        resblock_dilation_sizes=tuple(tuple(int(a["dilations"][0]) for a in b) for b in blocks),
        upsample_rates=tuple(int(a["strides"][0]) for a in ups),
        upsample_kernel_sizes=tuple(int(a["kernel_shape"][0]) for a in ups),
        upsample_initial_channel=shape("dec.conv_pre.weight")[0],
        n_speakers=int(voice.get("num_speakers", 1)),
        gin_channels=weights["emb_g.weight"][1] if "emb_g.weight" in weights else 0,
        sampling_rate=int(voice.get("audio", {}).get("sample_rate", 22050)),
    )
