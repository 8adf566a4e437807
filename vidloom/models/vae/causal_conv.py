"""Causal 3D convolution: the building block that makes latent frame t depend only on pixel frames <= t."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _triple(value: int | tuple[int, int, int]) -> tuple[int, int, int]:
    return (value, value, value) if isinstance(value, int) else tuple(value)  # type: ignore[return-value]


class CausalConv3d(nn.Conv3d):
    """`nn.Conv3d` on (B, C, T, H, W) with causal replicate padding and no padding of its own.

    Height and width are padded by ``k // 2`` on both sides; time by ``k - 1`` frames in front
    (copies of the first frame) and none behind, so output frame t sees input frames <= t.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int, int] = 3,
        stride: int | tuple[int, int, int] = 1,
        bias: bool = True,
    ) -> None:
        kt, kh, kw = _triple(kernel_size)
        super().__init__(in_channels, out_channels, (kt, kh, kw), _triple(stride), padding=0, bias=bias)
        # F.pad order is last dimension first: (W, W, H, H, T_front, T_back).
        self.causal_padding = (kw // 2, kw // 2, kh // 2, kh // 2, kt - 1, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if any(self.causal_padding):
            x = F.pad(x, self.causal_padding, mode="replicate")
        return super().forward(x)
