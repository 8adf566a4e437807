"""The DOVER model (Wu et al., ICCV 2023): two quality views, two backbones, two heads, one fusion.

* technical branch: `FragmentSwin3D` on the fragment mosaic -> technical head
* aesthetic branch: `ConvNeXt3D` on the whole frame squeezed to 224×224 -> aesthetic head

Each head is a 1×1×1-convolution MLP (768 -> 64 -> 1, GELU) applied at every position of the
backbone's feature map; a branch's raw score is the mean over positions (and over the
technical view's clips). DOVER's inference scripts turn the two raw scores into [0, 1] with
fixed affine maps and a logistic, and fuse them 0.6104 technical / 0.3896 aesthetic
(`fuse`). Module names (``technical_backbone``, ``aesthetic_backbone``, ``technical_head``,
``aesthetic_head``) match DOVER's checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from vidloom.pipelines.curation.quality.convnext3d import ConvNeXt3D
from vidloom.pipelines.curation.quality.swin3d import FragmentSwin3D

# Score-level fusion of DOVER's `evaluate_a_set_of_videos.py`: each raw branch score is
# standardised by these (mean, std) and mixed with these weights before a logistic.
TECHNICAL_MEAN, TECHNICAL_STD = 0.1107, 0.07355
AESTHETIC_MEAN, AESTHETIC_STD = -0.08285, 0.03774
TECHNICAL_WEIGHT, AESTHETIC_WEIGHT = 0.6104, 0.3896

# RGB normalisation applied to 0-255 pixels before either backbone (ImageNet statistics).
PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)


class VQAHead(nn.Module):
    """Per-position quality regressor: 1×1×1 conv 768 -> 64, GELU, 1×1×1 conv 64 -> 1."""

    def __init__(self, in_channels: int = 768, hidden_channels: int = 64):
        super().__init__()
        self.fc_hid = nn.Conv3d(in_channels, hidden_channels, kernel_size=1)
        self.fc_last = nn.Conv3d(hidden_channels, 1, kernel_size=1)
        self.gelu = nn.GELU()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc_last(self.gelu(self.fc_hid(features)))


class DOVER(nn.Module):
    """DOVER with DOVER.pth's module layout. `forward` returns the raw (technical, aesthetic)
    scores per batch item: the mean of each head's score map."""

    def __init__(self) -> None:
        super().__init__()
        self.technical_backbone = FragmentSwin3D()
        self.aesthetic_backbone = ConvNeXt3D()
        self.technical_head = VQAHead()
        self.aesthetic_head = VQAHead()

    def forward(self, technical: torch.Tensor, aesthetic: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t = self.technical_head(self.technical_backbone(technical)).flatten(1).mean(1)
        a = self.aesthetic_head(self.aesthetic_backbone(aesthetic)).flatten(1).mean(1)
        return t, a


@dataclass(frozen=True)
class DoverScores:
    """DOVER's outputs for one clip: raw branch scores and their [0, 1] forms."""

    technical_raw: float
    aesthetic_raw: float
    technical: float
    aesthetic: float
    overall: float


def _sigmoid(x: float) -> float:
    return float(1.0 / (1.0 + np.exp(-x)))


def fuse(technical_raw: float, aesthetic_raw: float) -> DoverScores:
    """DOVER's score-level fusion of the two raw branch scores into [0, 1] scores."""
    t = (technical_raw - TECHNICAL_MEAN) / TECHNICAL_STD
    a = (aesthetic_raw - AESTHETIC_MEAN) / AESTHETIC_STD
    return DoverScores(
        technical_raw=float(technical_raw),
        aesthetic_raw=float(aesthetic_raw),
        technical=_sigmoid(t),
        aesthetic=_sigmoid(a),
        overall=_sigmoid(TECHNICAL_WEIGHT * t + AESTHETIC_WEIGHT * a),
    )
