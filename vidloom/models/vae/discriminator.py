"""3D PatchGAN discriminator for the VAE's adversarial loss: one realism logit per space-time patch."""

from __future__ import annotations

import torch
from torch import nn


class PatchDiscriminator3D(nn.Module):
    """Strided Conv3d stack -> (B, 1, t, h, w) logits; time is downsampled after the first layer.

    Uses GroupNorm (not BatchNorm) so the logits do not depend on the batch composition.
    """

    def __init__(self, in_channels: int = 3, base_channels: int = 64, num_layers: int = 3) -> None:
        super().__init__()
        k, p = (3, 4, 4), (1, 1, 1)
        layers: list[nn.Module] = [nn.Conv3d(in_channels, base_channels, k, (1, 2, 2), p), nn.LeakyReLU(0.2)]
        channels = base_channels
        for n in range(1, num_layers + 1):
            out = base_channels * min(2**n, 8)
            stride = (2, 2, 2) if n < num_layers else (1, 1, 1)
            layers += [
                nn.Conv3d(channels, out, k, stride, p, bias=False),
                nn.GroupNorm(min(32, out // 4) or 1, out),
                nn.LeakyReLU(0.2),
            ]
            channels = out
        layers.append(nn.Conv3d(channels, 1, 3, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, video: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.net(video)
