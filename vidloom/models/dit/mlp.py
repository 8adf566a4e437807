"""Two-layer feed-forward network (fc1 -> activation -> fc2), as in every DiT block."""

from __future__ import annotations

import torch
from torch import nn


class MLP(nn.Module):
    """fc1 -> act -> fc2; GELU (tanh) in the double/single blocks, SiLU in the token refiner."""

    def __init__(self, dim: int, hidden: int, act: str = "gelu_tanh"):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU(approximate="tanh") if act == "gelu_tanh" else nn.SiLU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))
