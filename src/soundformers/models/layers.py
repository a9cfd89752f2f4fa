"""Small building blocks shared by the model files."""

from __future__ import annotations

import torch
from torch import nn


def embedding(
    num_embeddings: int, embedding_dim: int, padding_idx: int | None = None
) -> nn.Embedding:
    """An `nn.Embedding` without random initialisation: the checkpoint's weights replace it.

    Models are built on the meta device and then filled from the checkpoint. `nn.Embedding`'s
    own `normal_` initialisation has no native meta kernel, so the first one in a process
    imports torch's Python decompositions (torch._dynamo: about 1.3 s of start-up).

    Returns:
        An embedding whose weight, shape (num_embeddings, embedding_dim), is uninitialised.
    """
    weight = torch.empty(num_embeddings, embedding_dim)
    return nn.Embedding(num_embeddings, embedding_dim, padding_idx=padding_idx, _weight=weight)
