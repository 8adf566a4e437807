"""Causal 3D encoder: video (B, 3, 4k+1, H, W) -> posterior moments (B, 2*C_latent, k+1, H/8, W/8)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from vidloom.models.vae.blocks import DownBlockCausal3D, MidBlockCausal3D
from vidloom.models.vae.causal_conv import CausalConv3d
from vidloom.models.vae.config import VAEConfig


class Encoder3D(nn.Module):
    """conv_in -> down blocks -> mid block (resnet, frame-causal attention, resnet) -> norm/SiLU -> conv_out."""

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        ch = config.block_out_channels
        groups, eps = config.norm_num_groups, config.norm_eps
        self.conv_in = CausalConv3d(config.in_channels, ch[0], 3)
        self.down_blocks = nn.ModuleList(
            DownBlockCausal3D(ch[max(i - 1, 0)], ch[i], config.layers_per_block, groups, stride, eps)
            for i, stride in enumerate(config.stage_strides())
        )
        self.mid_block = MidBlockCausal3D(ch[-1], groups, config.mid_block_add_attention, eps)
        self.norm_out = nn.GroupNorm(groups, ch[-1], eps=eps)
        # Mean and log-variance of the diagonal Gaussian posterior, stacked on channels.
        self.conv_out = CausalConv3d(ch[-1], 2 * config.latent_channels, 3)
        self.gradient_checkpointing = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        x = self.conv_in(x)
        for block in [*self.down_blocks, self.mid_block]:
            if self.gradient_checkpointing and torch.is_grad_enabled():
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return self.conv_out(F.silu(self.norm_out(x)))
