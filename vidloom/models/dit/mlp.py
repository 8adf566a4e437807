"""Two-layer feed-forward network (fc1 -> activation -> fc2), as in every DiT block."""

from __future__ import annotations

import torch
from torch import nn

from vidloom.models.dit import fused


class TanhGELU(nn.GELU):
    """diffusers' `GELU(approximate="tanh")`; with the fast path on, `fused.gelu_tanh` (the same
    function, written for torch.compile). Used by the double blocks' MLPs and the single blocks."""

    def __init__(self):
        super().__init__(approximate="tanh")
        self.fast = False  # set by HunyuanVideoDiT.set_fast_path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fused.gelu_tanh(x) if self.fast else super().forward(x)


class MLP(nn.Module):
    """fc1 -> act -> fc2; GELU (tanh) in the double/single blocks, SiLU in the token refiner."""

    def __init__(self, dim: int, hidden: int, act: str = "gelu_tanh"):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = TanhGELU() if act == "gelu_tanh" else nn.SiLU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))
