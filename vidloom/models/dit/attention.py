"""Joint attention and the hook through which sequence parallelism plugs in.

Every attention in the DiT goes through an `AttentionFn`: ``fn(q, k, v, key_mask) -> out`` with
q, k, v shaped (batch, heads, tokens, head_dim) and ``key_mask`` (batch, tokens) bool, True for
keys that may be attended (or None: all). The default is PyTorch SDPA; a serving-time
sequence-parallel implementation (e.g. all-to-all over heads) replaces it via
`HunyuanVideoDiT.set_attention_fn` without touching the blocks.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from vidloom.models.dit import fused

AttentionFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, Optional[torch.Tensor]], torch.Tensor]


def sdpa_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Default `AttentionFn`: scaled_dot_product_attention with an optional key mask."""
    mask = None if key_mask is None else key_mask[:, None, None, :]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


class RMSNorm(nn.Module):
    """RMS normalisation over the last dim (per attention head for q/k), computed in float32."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.fast = False  # PyTorch's fused kernel, set by HunyuanVideoDiT.set_fast_path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fast:
            return fused.rms_norm(x, self.weight, self.eps)
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return (xf * self.weight.float()).to(x.dtype)


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, L, heads*D) -> (B, heads, L, D)."""
    return x.unflatten(-1, (heads, -1)).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, heads, L, D) -> (B, L, heads*D)."""
    return x.transpose(1, 2).flatten(2)
