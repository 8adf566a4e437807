"""3D rotary position embedding for video tokens.

The head dimension is split into three parts (t, h, w); each part encodes one latent-grid axis
with standard 1D RoPE. Channel pairs are interleaved (GPT-J style: channels 2i and 2i+1 form one
complex number). Angles and the rotation are computed in float32: bf16 angles at positions of a
few hundred lose whole radians.
"""

from __future__ import annotations

import torch


def axis_frequencies(dim: int, theta: float, device: torch.device | None = None) -> torch.Tensor:
    """Inverse frequencies of one axis: theta^(-2i/dim), i < dim/2 (float32)."""
    exponents = torch.arange(0, dim, 2, device=device, dtype=torch.float32) / dim
    return 1.0 / (theta ** exponents)


def rope_3d(
    grid: tuple[int, int, int],
    rope_dims: tuple[int, int, int],
    theta: float = 256.0,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables for a (T, H, W) token grid, each (T*H*W, head_dim), float32.

    Rows follow the (t, h, w) raster order of the patch embedding; each angle is repeated for
    the two channels of its pair.
    """
    axes = [torch.arange(n, device=device, dtype=torch.float32) for n in grid]
    mesh = torch.meshgrid(*axes, indexing="ij")
    angles = []
    for pos, dim in zip(mesh, rope_dims):
        ang = torch.outer(pos.reshape(-1), axis_frequencies(dim, theta, device=pos.device))
        angles.append(ang.repeat_interleave(2, dim=-1))
    full = torch.cat(angles, dim=-1)
    return full.cos(), full.sin()


def rotate_pairs(x: torch.Tensor) -> torch.Tensor:
    """Multiply each interleaved pair (a, b) by i: (a, b) -> (-b, a)."""
    a, b = x.unflatten(-1, (-1, 2)).unbind(-1)
    return torch.stack((-b, a), dim=-1).flatten(-2)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x (..., L, head_dim) by tables (L, head_dim); math in float32, result in x.dtype."""
    xf = x.float()
    return (xf * cos + rotate_pairs(xf) * sin).to(x.dtype)
