"""Input embeddings: video patches, the timestep/guidance sinusoid MLP, the pooled-text MLP.

Module and parameter names follow the official HunyuanVideo layout (``mlp.0``/``mlp.2``,
``in_layer``/``out_layer``, ``proj``) so official checkpoints load without renaming.
"""

from __future__ import annotations

import math

import torch
from torch import nn

TIMESTEP_FREQ_DIM = 256


def sinusoid(t: torch.Tensor, dim: int = TIMESTEP_FREQ_DIM, max_period: float = 10000.0) -> torch.Tensor:
    """[cos | sin] features of scalar t (B,), frequencies max_period^(-i/half), float32."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class PatchEmbed(nn.Module):
    """Conv3d with kernel = stride = patch size; output tokens in (t, h, w) raster order."""

    def __init__(self, patch_size: tuple[int, int, int], in_channels: int, hidden_size: int):
        super().__init__()
        self.proj = nn.Conv3d(in_channels, hidden_size, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class TimestepEmbedder(nn.Module):
    """Sinusoid(256) -> Linear -> SiLU -> Linear; used for diffusion time and for guidance."""

    def __init__(self, hidden_size: int, freq_dim: int = TIMESTEP_FREQ_DIM):
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, hidden_size), nn.SiLU(), nn.Linear(hidden_size, hidden_size))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(sinusoid(t, self.freq_dim).to(self.mlp[0].weight.dtype))


class VectorEmbedder(nn.Module):
    """Pooled text vector (CLIP) -> Linear -> SiLU -> Linear."""

    def __init__(self, in_dim: int, hidden_size: int):
        super().__init__()
        self.in_layer = nn.Linear(in_dim, hidden_size)
        self.act = nn.SiLU()
        self.out_layer = nn.Linear(hidden_size, hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out_layer(self.act(self.in_layer(x)))


class Modulation(nn.Module):
    """Linear(SiLU(vec)) split into `factor` chunks (shift/scale/gate vectors), zero-initialised
    so every residual branch starts as identity."""

    def __init__(self, hidden_size: int, factor: int):
        super().__init__()
        self.factor = factor
        self.act = nn.SiLU()
        self.linear = nn.Linear(hidden_size, factor * hidden_size)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, vec: torch.Tensor) -> list[torch.Tensor]:
        return [c.unsqueeze(1) for c in self.linear(self.act(vec)).chunk(self.factor, dim=-1)]


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """x * (1 + scale) + shift."""
    return x * (1 + scale) + shift


def gated_residual(x: torch.Tensor, gate: torch.Tensor, branch: torch.Tensor) -> torch.Tensor:
    """x + gate * branch: a block's residual update scaled by its modulation gate."""
    return x + gate * branch
