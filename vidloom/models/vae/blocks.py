"""Residual, resampling and attention blocks of the causal 3D VAE (all causal in time)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vidloom.models.vae.causal_conv import CausalConv3d


class ResnetBlockCausal3D(nn.Module):
    """GroupNorm -> SiLU -> causal conv, twice, plus a (1x1x1-projected) skip connection."""

    def __init__(self, in_channels: int, out_channels: int, groups: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_channels, eps=eps)
        self.conv1 = CausalConv3d(in_channels, out_channels, 3)
        self.norm2 = nn.GroupNorm(groups, out_channels, eps=eps)
        self.conv2 = CausalConv3d(out_channels, out_channels, 3)
        self.conv_shortcut = CausalConv3d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        skip = x if self.conv_shortcut is None else self.conv_shortcut(x)
        return h + skip


class UpsampleCausal3D(nn.Module):
    """Nearest-neighbour upsampling then a causal conv.

    The first frame is upsampled in space only, so F latent-side frames become
    ``1 + factor_t * (F - 1)``: the exact inverse of causal temporal down-sampling.
    """

    def __init__(self, channels: int, factor: tuple[int, int, int]) -> None:
        super().__init__()
        self.factor = tuple(factor)
        self.conv = CausalConv3d(channels, channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        first = F.interpolate(x[:, :, 0], scale_factor=self.factor[1:], mode="nearest").unsqueeze(2)
        if x.shape[2] > 1:
            # contiguous(): nearest 3D interpolation of a non-contiguous slice is unreliable (pytorch#81665).
            rest = F.interpolate(x[:, :, 1:].contiguous(), scale_factor=self.factor, mode="nearest")
            x = torch.cat([first, rest], dim=2)
        else:
            x = first
        return self.conv(x)


class FrameCausalAttention(nn.Module):
    """Single-head self-attention over all (t, h, w) positions; a position attends only to frames <= its own.

    Pre-norm (GroupNorm) and a residual connection, as in the mid block of image VAEs.
    """

    def __init__(self, channels: int, groups: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels, eps=eps)
        self.to_q = nn.Linear(channels, channels)
        self.to_k = nn.Linear(channels, channels)
        self.to_v = nn.Linear(channels, channels)
        self.to_out = nn.Linear(channels, channels)

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        """Attention over (already normalised) features (B, C, T, H, W); exactly frame-causal.

        Queries of frame t attend to the keys of frames 0..t. Done frame by frame rather than
        with an N x N mask so memory stays O(N * H * W) and fused SDPA kernels apply.
        """
        b, c, t, h, w = x.shape
        hw = h * w
        tokens = x.flatten(2).transpose(1, 2)  # (B, T*H*W, C), frame-major order
        q, k, v = (proj(tokens).unsqueeze(1) for proj in (self.to_q, self.to_k, self.to_v))  # one head
        out = torch.cat(
            [
                F.scaled_dot_product_attention(q[:, :, i * hw : (i + 1) * hw], k[:, :, : (i + 1) * hw], v[:, :, : (i + 1) * hw])
                for i in range(t)
            ],
            dim=2,
        )[:, 0]
        return self.to_out(out).transpose(1, 2).reshape(b, c, t, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return x + self.attend(self.norm(x))


class MidBlockCausal3D(nn.Module):
    """resnet -> frame-causal attention -> resnet, at the lowest resolution."""

    def __init__(self, channels: int, groups: int, add_attention: bool = True, eps: float = 1e-6) -> None:
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlockCausal3D(channels, channels, groups, eps) for _ in range(2)])
        self.attention = FrameCausalAttention(channels, groups, eps) if add_attention else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        x = self.resnets[0](x)
        if self.attention is not None:
            x = self.attention(x)
        return self.resnets[1](x)


class DownBlockCausal3D(nn.Module):
    """`num_layers` resnets, then an optional strided causal conv (stride (t, h, w))."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_layers: int,
        groups: int,
        stride: tuple[int, int, int],
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.resnets = nn.ModuleList(
            [ResnetBlockCausal3D(in_channels if i == 0 else out_channels, out_channels, groups, eps) for i in range(num_layers)]
        )
        self.downsample = CausalConv3d(out_channels, out_channels, 3, stride=stride) if max(stride) > 1 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        for resnet in self.resnets:
            x = resnet(x)
        return x if self.downsample is None else self.downsample(x)


class UpBlockCausal3D(nn.Module):
    """`num_layers` resnets, then optional causal upsampling by `factor` (t, h, w)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_layers: int,
        groups: int,
        factor: tuple[int, int, int],
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.resnets = nn.ModuleList(
            [ResnetBlockCausal3D(in_channels if i == 0 else out_channels, out_channels, groups, eps) for i in range(num_layers)]
        )
        self.upsample = UpsampleCausal3D(out_channels, factor) if max(factor) > 1 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        for resnet in self.resnets:
            x = resnet(x)
        return x if self.upsample is None else self.upsample(x)
