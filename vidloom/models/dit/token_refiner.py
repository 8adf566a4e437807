"""Token refiner: adapts the decoder-only LLM's text states before they join the DiT.

The LLM's hidden states are causal (early tokens never saw later ones); the refiner gives them
a few bidirectional self-attention blocks conditioned on the diffusion time and on the masked
mean of the prompt. Padded tokens are excluded from the mean and from attention.
"""

from __future__ import annotations

import torch
from torch import nn

from vidloom.models.dit.attention import merge_heads, split_heads
from vidloom.models.dit.embeddings import TimestepEmbedder
from vidloom.models.dit.mlp import MLP


class TextProjection(nn.Module):
    """Linear -> SiLU -> Linear for the masked-mean context vector."""

    def __init__(self, in_dim: int, hidden_size: int):
        super().__init__()
        self.linear_1 = nn.Linear(in_dim, hidden_size)
        self.act_1 = nn.SiLU()
        self.linear_2 = nn.Linear(hidden_size, hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act_1(self.linear_1(x)))


class RefinerBlock(nn.Module):
    """Pre-norm self-attention + SiLU MLP, each residual scaled by a gate from the condition."""

    def __init__(self, hidden_size: int, heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(hidden_size, eps=1e-6)
        self.self_attn_qkv = nn.Linear(hidden_size, 3 * hidden_size, bias=qkv_bias)
        self.self_attn_proj = nn.Linear(hidden_size, hidden_size, bias=qkv_bias)
        self.norm2 = nn.LayerNorm(hidden_size, eps=1e-6)
        self.mlp = MLP(hidden_size, int(hidden_size * mlp_ratio), act="silu")
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 2 * hidden_size))
        nn.init.zeros_(self.adaLN_modulation[1].weight)
        nn.init.zeros_(self.adaLN_modulation[1].bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
        gate_attn, gate_mlp = (g.unsqueeze(1) for g in self.adaLN_modulation(cond).chunk(2, dim=-1))
        q, k, v = (split_heads(p, self.heads) for p in self.self_attn_qkv(self.norm1(x)).chunk(3, dim=-1))
        # Full (query x key) mask here, so call SDPA directly rather than the key-mask hook.
        attn = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        x = x + gate_attn * self.self_attn_proj(merge_heads(attn))
        return x + gate_mlp * self.mlp(self.norm2(x))


class IndividualTokenRefiner(nn.Module):
    """A stack of `RefinerBlock`s sharing one pairwise mask."""

    def __init__(self, hidden_size: int, heads: int, depth: int, mlp_ratio: float = 4.0, qkv_bias: bool = True):
        super().__init__()
        self.blocks = nn.ModuleList(RefinerBlock(hidden_size, heads, mlp_ratio, qkv_bias) for _ in range(depth))

    def forward(self, x: torch.Tensor, cond: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        attn_mask = None
        if mask is not None:
            valid = mask.bool()
            attn_mask = (valid[:, None, :, None] & valid[:, None, None, :]).clone()
            # A padded query would see no key at all (softmax of nothing = NaN, and NaN leaks
            # through the later key-masked attention as 0 * NaN); let every query see token 0.
            attn_mask[..., 0] = True
        for block in self.blocks:
            x = block(x, cond, attn_mask)
        return x


class SingleTokenRefiner(nn.Module):
    """Input Linear, condition = timestep MLP + masked-mean text MLP, then refiner blocks."""

    def __init__(self, text_dim: int, hidden_size: int, heads: int, depth: int, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True):
        super().__init__()
        self.input_embedder = nn.Linear(text_dim, hidden_size)
        self.t_embedder = TimestepEmbedder(hidden_size)
        self.c_embedder = TextProjection(text_dim, hidden_size)
        self.individual_token_refiner = IndividualTokenRefiner(hidden_size, heads, depth, mlp_ratio, qkv_bias)

    def forward(self, text: torch.Tensor, t: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if mask is None:
            pooled = text.mean(dim=1)
        else:
            m = mask.to(torch.float32).unsqueeze(-1)
            pooled = ((text.float() * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)).to(text.dtype)
        cond = self.t_embedder(t) + self.c_embedder(pooled)
        return self.individual_token_refiner(self.input_embedder(text), cond, mask)


__all__ = ["SingleTokenRefiner", "IndividualTokenRefiner", "RefinerBlock", "TextProjection"]
