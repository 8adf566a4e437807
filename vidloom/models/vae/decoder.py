"""Causal 3D decoder: latent (B, C_latent, k+1, h, w) -> video (B, 3, 4k+1, 8h, 8w)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from vidloom.models.vae.blocks import MidBlockCausal3D, UpBlockCausal3D
from vidloom.models.vae.causal_conv import CausalConv3d
from vidloom.models.vae.config import VAEConfig


class Decoder3D(nn.Module):
    """Mirror of `Encoder3D`, with ``layers_per_block + 1`` resnets per up block."""

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        ch = tuple(reversed(config.block_out_channels))
        groups, eps = config.norm_num_groups, config.norm_eps
        self.conv_in = CausalConv3d(config.latent_channels, ch[0], 3)
        self.mid_block = MidBlockCausal3D(ch[0], groups, config.mid_block_add_attention, eps)
        self.up_blocks = nn.ModuleList(
            UpBlockCausal3D(ch[max(i - 1, 0)], ch[i], config.layers_per_block + 1, groups, factor, eps)
            for i, factor in enumerate(config.stage_strides())
        )
        self.norm_out = nn.GroupNorm(groups, ch[-1], eps=eps)
        self.conv_out = CausalConv3d(ch[-1], config.out_channels, 3)
        self.gradient_checkpointing = False

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # noqa: D102
        x = self.conv_in(z)
        for block in [self.mid_block, *self.up_blocks]:
            if self.gradient_checkpointing and torch.is_grad_enabled():
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return self.conv_out(F.silu(self.norm_out(x)))
