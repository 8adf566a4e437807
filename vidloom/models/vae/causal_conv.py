"""Causal 3D convolution: the building block that makes latent frame t depend only on pixel frames <= t."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


# oneDNN is compiled into the PyTorch wheels we pin; a build without it keeps F.conv3d, and
# `torch.backends.mkldnn.flags(enabled=False)` turns this choice off with PyTorch's own.
_ONEDNN = torch.backends.mkldnn.is_available()


def conv3d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
           stride: tuple[int, int, int]) -> torch.Tensor:
    """`F.conv3d` without padding, except where CPU inference would take PyTorch's slowest kernel.

    PyTorch's dispatcher sends a float32 batch-1 input with few channels (N*C*T*H <= 20480, the
    decoder's full-resolution layers of a small VAE) to its im2col fallback, `slow_conv3d`,
    which measured 5-7x slower than oneDNN on those layers; a served video is decoded alone, so
    that path was most of a request's time. Exactly those inputs go to oneDNN here (larger ones
    already do, and forcing oneDNN on batches measured slower than PyTorch's own choice), and
    only without autograd (inference): training keeps PyTorch's choice and its backward. Same
    arithmetic, so results agree to rounding.
    """
    if (_ONEDNN and torch.backends.mkldnn.enabled and x.device.type == "cpu" and x.dtype == torch.float32 and x.shape[0] == 1
            and x.shape[1] * x.shape[2] * x.shape[3] <= 20480 and tuple(weight.shape[2:]) != (1, 1, 1)
            and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))):
        return torch.ops.aten.mkldnn_convolution(x.contiguous(), weight, bias, (0, 0, 0), stride, (1, 1, 1), 1)
    return F.conv3d(x, weight, bias, stride)


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
        return conv3d(x, self.weight, self.bias, self.stride)
