"""VITS architecture (`VitsConfig`) and synthesis knobs (`SynthesisOptions`).

Two sources: a transformers `config.json` (`VitsConfig.from_hf`, MMS-TTS) and a Piper voice,
whose architecture is read off the ONNX weights' shapes and conv attributes
(`convert.piper_config`). Field names follow the original VITS hyperparameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ...errors import CheckpointError

__all__ = ["SynthesisOptions", "VitsConfig"]


@dataclass(frozen=True)
class VitsConfig:
    """The shape of a VITS model (inference parts only: no posterior encoder).

    Attributes:
        n_vocab: input symbols (phoneme ids or characters).
        hidden_channels: text-encoder width.
        inter_channels: latent (spectrogram-like) channels fed to the flow and decoder.
        filter_channels: text-encoder feed-forward width.
        n_heads: attention heads; the head size is `hidden_channels // n_heads`.
        n_layers: text-encoder blocks.
        kernel_size: text-encoder feed-forward kernel.
        window_size: relative-attention window (positions -window..window).
        use_sdp: stochastic duration predictor (else the deterministic one).
        dp_filter_channels: duration-predictor width.
        dp_kernel_size: duration-predictor kernel.
        dp_n_layers: dilated depth-separable conv layers (stochastic predictor).
        dp_n_flows: spline flows of the stochastic predictor.
        dp_num_bins: rational-quadratic spline bins.
        dp_tail_bound: spline domain [-tail_bound, tail_bound].
        flow_n_flows: coupling layers of the prior flow.
        flow_n_layers: WaveNet layers per coupling layer.
        flow_kernel_size: WaveNet kernel.
        flow_dilation_rate: WaveNet dilation growth per layer.
        resblock: HiFi-GAN residual block type, "1" (convs1 + convs2) or "2" (convs).
        resblock_kernel_sizes: kernel of each parallel residual block.
        resblock_dilation_sizes: dilations of each residual block's convs.
        upsample_rates: stride of each transposed conv (their product is the hop size).
        upsample_kernel_sizes: kernel of each transposed conv.
        upsample_initial_channel: channels after the decoder's first conv.
        leaky_relu_slope: slope of the decoder's leaky ReLUs (not the last one: 0.01).
        n_speakers: speakers (an embedding table when > 1).
        gin_channels: speaker-embedding size (0 for one speaker).
        layer_norm_eps: epsilon of every LayerNorm.
        sampling_rate: output rate in Hz.
    """

    n_vocab: int
    hidden_channels: int = 192
    inter_channels: int = 192
    filter_channels: int = 768
    n_heads: int = 2
    n_layers: int = 6
    kernel_size: int = 3
    window_size: int = 4
    use_sdp: bool = True
    dp_filter_channels: int = 192
    dp_kernel_size: int = 3
    dp_n_layers: int = 3
    dp_n_flows: int = 4
    dp_num_bins: int = 10
    dp_tail_bound: float = 5.0
    flow_n_flows: int = 4
    flow_n_layers: int = 4
    flow_kernel_size: int = 5
    flow_dilation_rate: int = 1
    resblock: str = "1"
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    upsample_rates: tuple[int, ...] = (8, 8, 2, 2)
    upsample_kernel_sizes: tuple[int, ...] = (16, 16, 4, 4)
    upsample_initial_channel: int = 512
    leaky_relu_slope: float = 0.1
    n_speakers: int = 1
    gin_channels: int = 0
    layer_norm_eps: float = 1e-5
    sampling_rate: int = 22050

    def __post_init__(self) -> None:
        if self.hidden_channels % self.n_heads:
            raise CheckpointError(
                f"hidden size {self.hidden_channels} is not a multiple of {self.n_heads} heads"
            )
        if self.resblock not in ("1", "2"):
            raise CheckpointError(f"resblock type must be '1' or '2', got {self.resblock!r}")

    @property
    def hop_length(self) -> int:
        """Audio samples per latent frame (product of the upsample rates)."""
        hop = 1
        for rate in self.upsample_rates:
            hop *= rate
        return hop

    @classmethod
    def from_hf(cls, config: Mapping[str, Any]) -> VitsConfig:
        """Build from a transformers VitsConfig `config.json` (known keys only).

        Raises:
            CheckpointError: a required key is missing or `model_type` is not "vits".
        """
        if config.get("model_type", "vits") != "vits":
            raise CheckpointError(f"expected model_type 'vits', got {config.get('model_type')!r}")
        missing = [k for k in ("vocab_size",) if k not in config]
        if missing:
            raise CheckpointError(f"config.json lacks {missing}: not a transformers VITS config")

        def get(key: str, default: Any) -> Any:
            value = config.get(key, default)
            return default if value is None else value

        hidden = int(get("hidden_size", 192))
        use_sdp = bool(get("use_stochastic_duration_prediction", True))
        return cls(
            n_vocab=int(config["vocab_size"]),
            hidden_channels=hidden,
            inter_channels=int(get("flow_size", 192)),
            filter_channels=int(get("ffn_dim", 768)),
            n_heads=int(get("num_attention_heads", 2)),
            n_layers=int(get("num_hidden_layers", 6)),
            kernel_size=int(get("ffn_kernel_size", 3)),
            window_size=int(get("window_size", 4)),
            use_sdp=use_sdp,
            # the stochastic predictor of transformers is as wide as the encoder
            dp_filter_channels=hidden
            if use_sdp
            else int(get("duration_predictor_filter_channels", 256)),
            dp_kernel_size=int(get("duration_predictor_kernel_size", 3)),
            dp_n_layers=int(get("depth_separable_num_layers", 3)),
            dp_n_flows=int(get("duration_predictor_num_flows", 4)),
            dp_num_bins=int(get("duration_predictor_flow_bins", 10)),
            dp_tail_bound=float(get("duration_predictor_tail_bound", 5.0)),
            flow_n_flows=int(get("prior_encoder_num_flows", 4)),
            flow_n_layers=int(get("prior_encoder_num_wavenet_layers", 4)),
            flow_kernel_size=int(get("wavenet_kernel_size", 5)),
            flow_dilation_rate=int(get("wavenet_dilation_rate", 1)),
            resblock="1",
            resblock_kernel_sizes=tuple(get("resblock_kernel_sizes", (3, 7, 11))),
            resblock_dilation_sizes=tuple(
                tuple(d) for d in get("resblock_dilation_sizes", ((1, 3, 5),) * 3)
            ),
            upsample_rates=tuple(get("upsample_rates", (8, 8, 2, 2))),
            upsample_kernel_sizes=tuple(get("upsample_kernel_sizes", (16, 16, 4, 4))),
            upsample_initial_channel=int(get("upsample_initial_channel", 512)),
            leaky_relu_slope=float(get("leaky_relu_slope", 0.1)),
            n_speakers=int(get("num_speakers", 1)),
            gin_channels=int(get("speaker_embedding_size", 0)),
            layer_norm_eps=float(get("layer_norm_eps", 1e-5)),
            sampling_rate=int(get("sampling_rate", 16000)),
        )


@dataclass(frozen=True)
class SynthesisOptions:
    """How to sample speech from the model (decoding knobs, not architecture).

    Attributes:
        noise_scale: scale of the prior noise (0 = the prior mean; Piper's default 0.667).
        length_scale: duration multiplier (> 1 is slower speech).
        noise_w: scale of the duration predictor's noise (0 = deterministic durations).
    """

    noise_scale: float = 0.667
    length_scale: float = 1.0
    noise_w: float = 0.8

    def __post_init__(self) -> None:
        for name in ("noise_scale", "length_scale", "noise_w"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value != value or value < 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")
        if self.length_scale == 0:
            raise ValueError("length_scale must be > 0 (1.0 is normal speed, 2.0 half as fast)")
