"""Small modules shared by the VITS parts: a Conv1d with a oneDNN fast path, channel
LayerNorm, sequence masks, the channel flip of the flows. Tensors are (batch, channels, time)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Conv1d", "Flip", "LayerNorm", "sequence_mask"]


class Conv1d(nn.Conv1d):
    """nn.Conv1d that calls oneDNN directly for large enough float32 CPU inputs.

    For batch sizes under 16 on one thread, PyTorch runs many of VITS's convolutions (the
    text encoder's feed-forward, the flows' 1x1 convs) through its im2col fallback, up to
    twice as slow as oneDNN. Small convolutions stay on the default path, where oneDNN's setup
    cost would dominate. Same weights, same result (float rounding aside).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C_in, T) -> (B, C_out, T')."""
        if (
            _ONEDNN
            and x.device.type == "cpu"
            and x.dtype == torch.float32
            and not (torch.is_grad_enabled() and self.weight.requires_grad)
            and self.padding_mode == "zeros"
            and x.shape[-1] * self.weight.numel() >= 1 << 20
        ):
            return torch.mkldnn_convolution(x, self.weight, self.bias, self.padding, self.stride,
                                            self.dilation, self.groups)  # fmt: skip
        return super().forward(x)


_ONEDNN = torch.backends.mkldnn.is_available() and hasattr(torch, "mkldnn_convolution")


def sequence_mask(lengths: torch.Tensor, max_length: int) -> torch.Tensor:
    """(batch,) lengths -> (batch, max_length) bool, True inside each sequence."""
    return torch.arange(max_length, device=lengths.device) < lengths.unsqueeze(1)


class LayerNorm(nn.Module):
    """LayerNorm over the channel axis of (batch, channels, time)."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x.transpose(1, -1), self.gamma.shape, self.gamma, self.beta, self.eps)
        return x.transpose(1, -1)


class Flip(nn.Module):
    """Reverse the channel order (no weights)."""

    def reverse(
        self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor | None
    ) -> torch.Tensor:
        return torch.flip(x, [1])
