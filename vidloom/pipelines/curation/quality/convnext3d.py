"""DOVER's aesthetic backbone: ConvNeXt-T inflated to 3D.

ConvNeXt-T (dims 96-192-384-768, depths 3-3-9-3, 7×7 depthwise convolutions, layer scale) with
a 2×4×4 space-time stem, spatial-only 1×2×2 downsampling, and depthwise kernels inflated in
time following the "131" pattern: within each stage, blocks 0, 2, 3, 5, ... keep a 1×7×7
kernel and every third block from the second (1, 4, 7, ...) uses 3×7×7. The output is the
spatial feature map, channel-normalised, not a pooled vector: DOVER's head scores every
position and averages.

Parameter names are those of DOVER's ``aesthetic_backbone`` (``downsample_layers.i.j``,
``stages.i.j.{dwconv,norm,pwconv1,pwconv2,gamma}``, ``norm``).
"""

from __future__ import annotations

import torch
from torch import nn

INFLATE_PATTERN = "131"


class ChannelsFirstLayerNorm(nn.Module):
    """LayerNorm over dim 1 of (B, C, ...) tensors (ConvNeXt's stem/downsample norm)."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return self.weight.view(shape) * x + self.bias.view(shape)


class ChannelsLastLayerNorm(nn.LayerNorm):
    """nn.LayerNorm with ConvNeXt's eps; kept as its own class so the key names match."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__(dim, eps=eps)


class ConvNeXtBlock3D(nn.Module):
    """Depthwise conv -> LN -> 4× MLP with GELU -> layer scale, residual."""

    def __init__(self, dim: int, temporal_kernel: int):
        super().__init__()
        self.dwconv = nn.Conv3d(
            dim, dim, kernel_size=(temporal_kernel, 7, 7), padding=(temporal_kernel // 2, 3, 3), groups=dim
        )
        self.norm = ChannelsLastLayerNorm(dim)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(1e-6 * torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x).permute(0, 2, 3, 4, 1)
        y = self.gamma * self.pwconv2(self.act(self.pwconv1(self.norm(y))))
        return x + y.permute(0, 4, 1, 2, 3)


class ConvNeXt3D(nn.Module):
    """(B, 3, T, H, W) normalised RGB -> (B, 768, T/2, H/32, W/32) normalised features."""

    def __init__(self, depths: tuple[int, ...] = (3, 3, 9, 3), dims: tuple[int, ...] = (96, 192, 384, 768)):
        super().__init__()
        self.downsample_layers = nn.ModuleList(
            [nn.Sequential(nn.Conv3d(3, dims[0], kernel_size=(2, 4, 4), stride=(2, 4, 4)), ChannelsFirstLayerNorm(dims[0]))]
        )
        for i in range(len(dims) - 1):
            self.downsample_layers.append(
                nn.Sequential(
                    ChannelsFirstLayerNorm(dims[i]),
                    nn.Conv3d(dims[i], dims[i + 1], kernel_size=(1, 2, 2), stride=(1, 2, 2)),
                )
            )
        self.stages = nn.ModuleList(
            nn.Sequential(
                *[ConvNeXtBlock3D(dims[i], int(INFLATE_PATTERN[j % len(INFLATE_PATTERN)])) for j in range(depths[i])]
            )
            for i in range(len(depths))
        )
        self.norm = ChannelsLastLayerNorm(dims[-1])
        self.apply(_init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for down, stage in zip(self.downsample_layers, self.stages):
            x = stage(down(x))
        return self.norm(x.permute(0, 2, 3, 4, 1)).permute(0, 4, 1, 2, 3)


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, (nn.Conv3d, nn.Linear)):
        nn.init.trunc_normal_(m.weight, std=0.02)
        nn.init.zeros_(m.bias)


__all__ = ["ConvNeXt3D", "ConvNeXtBlock3D"]
