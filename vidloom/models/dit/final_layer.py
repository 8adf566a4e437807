"""Final layer: adaptive LayerNorm (shift, scale) then a linear to patch voxels × channels."""

from __future__ import annotations

import math

import torch
from torch import nn

from vidloom.models.dit.embeddings import modulate


class FinalLayer(nn.Module):
    """Zero-initialised so a fresh model predicts zero velocity (stable start of training)."""

    def __init__(self, hidden_size: int, patch_size: tuple[int, int, int], out_channels: int):
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden_size, math.prod(patch_size) * out_channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 2 * hidden_size))
        for layer in (self.linear, self.adaLN_modulation[1]):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor, vec: torch.Tensor) -> torch.Tensor:
        shift, scale = (c.unsqueeze(1) for c in self.adaLN_modulation(vec).chunk(2, dim=-1))
        return self.linear(modulate(self.norm_final(x), shift, scale))


def unpatchify(
    tokens: torch.Tensor, grid: tuple[int, int, int], patch_size: tuple[int, int, int], channels: int
) -> torch.Tensor:
    """(B, T*H*W, C*pt*ph*pw) tokens -> (B, C, T*pt, H*ph, W*pw) latents.

    Each token's features are laid out (channel, pt, ph, pw), the official and diffusers order.
    """
    b = tokens.shape[0]
    t, h, w = grid
    pt, ph, pw = patch_size
    x = tokens.reshape(b, t, h, w, channels, pt, ph, pw)
    x = x.permute(0, 4, 1, 5, 2, 6, 3, 7)
    return x.reshape(b, channels, t * pt, h * ph, w * pw)
