"""VITS for inference: text encoder, duration predictor, prior flow, HiFi-GAN decoder.

The parts live in the files named after them, in the order they run: `text_encoder.py`,
`duration.py`, `flow.py`, `decoder.py` (shared small modules in `layers.py`); this file puts
them together. Module names are those of the original VITS code, which Piper voices keep
(`enc_p`, `dp`, `flow`, `dec`, `emb_g`); transformers' names are mapped in `convert.py`.
Tensors are channels-first: `(batch, channels, time)`; masks are `(batch, 1, time)` floats.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from ..layers import embedding
from .config import VitsConfig
from .decoder import Generator
from .duration import DurationPredictor, StochasticDurationPredictor
from .flow import ResidualCouplingBlock
from .layers import Conv1d, sequence_mask
from .text_encoder import TextEncoder

__all__ = ["VitsModel", "VitsOutput"]


class VitsOutput(NamedTuple):
    """audio: (B, samples) float, zero past each item's length; lengths: (B,) samples."""

    audio: torch.Tensor
    lengths: torch.Tensor


class VitsModel(nn.Module):
    """Text (symbol ids) to waveform."""

    def __init__(self, config: VitsConfig) -> None:
        super().__init__()
        self.config = config
        self.enc_p = TextEncoder(config)
        self.dp = (
            StochasticDurationPredictor(config) if config.use_sdp else DurationPredictor(config)
        )
        self.flow = ResidualCouplingBlock(config)
        self.dec = Generator(config)
        if config.n_speakers > 1:
            self.emb_g = embedding(config.n_speakers, config.gin_channels)

    @torch.no_grad()
    def prepare_(self) -> VitsModel:
        """Build the fast inference forms of the current weights: packed oneDNN weights for
        the convolutions (`layers.Conv1d.prepare_`) and the decoder's (`Generator.prepare_`).
        Call once the weights are loaded and placed (again after changing them). Returns self."""
        for module in self.modules():
            if isinstance(module, Conv1d):
                module.prepare_()
        self.dec.prepare_()
        return self

    def forward(
        self,
        ids: torch.Tensor,
        lengths: torch.Tensor,
        *,
        noise_scale: float = 0.667,
        length_scale: float = 1.0,
        noise_w: float = 0.8,
        speaker: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> VitsOutput:
        """Synthesize a batch.

        Args:
            ids: (B, T) long symbol ids, padded with any id past each length.
            lengths: (B,) number of valid ids per row.
            noise_scale: prior noise scale (0: deterministic latent).
            length_scale: duration multiplier.
            noise_w: duration-noise scale (0: deterministic durations).
            speaker: (B,) speaker ids (multi-speaker models only).
            generator: random generator for the two noise draws.

        Returns:
            `VitsOutput(audio (B, samples), lengths (B,))`.
        """
        x, m_p, logs_p, x_mask = self.enc_p(ids, lengths)
        g = self.emb_g(speaker).unsqueeze(-1) if speaker is not None else None  # (B, gin, 1)
        b, _, t_x = x.shape
        noise = x.new_zeros(b, 2, t_x)
        if noise_w:
            noise = torch.randn(b, 2, t_x, generator=generator, device=x.device, dtype=x.dtype)
            noise = noise * noise_w
        logw = self.dp(x, x_mask, g, noise)  # (B, 1, T_x)
        w_ceil = torch.ceil(torch.exp(logw) * x_mask * length_scale)
        y_lengths = torch.clamp_min(w_ceil.sum((1, 2)), 1).long()
        t_y = int(y_lengths.max())
        y_mask = sequence_mask(y_lengths, t_y).unsqueeze(1).to(x.dtype)  # (B, 1, T_y)
        # frame f belongs to the symbol whose cumulative duration first exceeds f
        ends = torch.cumsum(w_ceil[:, 0], dim=-1)  # (B, T_x)
        frames = torch.arange(t_y, device=x.device, dtype=ends.dtype)
        owner = torch.searchsorted(ends, frames.expand(b, -1).contiguous(), right=True)
        owner = owner.clamp(max=t_x - 1).unsqueeze(1)  # (B, 1, T_y)
        m = m_p.gather(2, owner.expand(-1, m_p.shape[1], -1)) * y_mask
        logs = logs_p.gather(2, owner.expand(-1, logs_p.shape[1], -1)) * y_mask
        z_p = m
        if noise_scale:
            eps = torch.randn(m.shape, generator=generator, device=x.device, dtype=x.dtype)
            z_p = m + eps * torch.exp(logs) * noise_scale
        z = self.flow(z_p, y_mask, g)
        audio = self.dec(z * y_mask, g).squeeze(1)  # (B, T_y * hop)
        hop = self.config.hop_length
        return VitsOutput(audio, y_lengths * hop)
