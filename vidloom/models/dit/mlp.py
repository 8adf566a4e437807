"""Two-layer feed-forward network (fc1 -> activation -> fc2), as in every DiT block."""

from __future__ import annotations

import torch
from torch import nn

from vidloom.models.dit import fused


class MLP(nn.Module):
    """fc1 -> act -> fc2; GELU (tanh) in the double/single blocks, SiLU in the token refiner."""

    def __init__(self, dim: int, hidden: int, act: str = "gelu_tanh"):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU(approximate="tanh") if act == "gelu_tanh" else nn.SiLU()
        self.fc2 = nn.Linear(hidden, dim)
        self.fast = False  # fused kernels (see fused.py), set by HunyuanVideoDiT.set_fast_path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = fused.gelu_tanh if self.fast and isinstance(self.act, nn.GELU) else self.act
        return self.fc2(act(self.fc1(x)))
