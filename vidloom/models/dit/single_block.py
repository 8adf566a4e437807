"""Single-stream block: image and text tokens share all weights (parallel attention + MLP).

One linear produces qkv and the MLP input together, one linear maps [attention ‖ MLP] back to
the hidden size, and a single gate scales the residual. RoPE touches the image part of q/k only.
"""

from __future__ import annotations

import torch
from torch import nn

from vidloom.models.dit import fused
from vidloom.models.dit.attention import AttentionFn, RMSNorm, merge_heads, sdpa_attention, split_heads
from vidloom.models.dit.embeddings import Modulation, gated_residual, modulate
from vidloom.models.dit.mlp import TanhGELU
from vidloom.models.dit.rope import apply_rope


class SingleStreamBlock(nn.Module):
    """One single-stream block over the joint [image; text] sequence."""

    def __init__(self, hidden_size: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.heads = heads
        self.hidden_size = hidden_size
        self.mlp_hidden = int(hidden_size * mlp_ratio)
        head_dim = hidden_size // heads
        self.linear1 = nn.Linear(hidden_size, 3 * hidden_size + self.mlp_hidden)
        self.linear2 = nn.Linear(hidden_size + self.mlp_hidden, hidden_size)
        self.q_norm = RMSNorm(head_dim)
        self.k_norm = RMSNorm(head_dim)
        self.pre_norm = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.mlp_act = TanhGELU()
        self.modulation = Modulation(hidden_size, 3)
        self.gradient_checkpointing = False
        self.fast = False  # fused kernels (see fused.py), set by HunyuanVideoDiT.set_fast_path

    def forward(
        self,
        x: torch.Tensor,
        vec: torch.Tensor,
        img_len: int,
        rope: tuple[torch.Tensor, torch.Tensor] | None,
        key_mask: torch.Tensor | None,
        attention_fn: AttentionFn = sdpa_attention,
    ) -> torch.Tensor:
        """x (B, Li+Lt, D) with the first `img_len` tokens being video."""
        shift, scale, gate = self.modulation(vec)
        mod, res = (fused.modulate, fused.gated_residual) if self.fast else (modulate, gated_residual)
        qkv, mlp = self.linear1(mod(self.pre_norm(x), shift, scale)).split(
            [3 * self.hidden_size, self.mlp_hidden], dim=-1
        )
        q, k, v = (split_heads(p, self.heads) for p in qkv.chunk(3, dim=-1))
        q, k = self.q_norm(q), self.k_norm(k)
        if rope is not None and self.fast:
            table = fused.rope_table(*rope, text_len=q.shape[2] - img_len)
            q, k = fused.apply_rope(q, table), fused.apply_rope(k, table)
        elif rope is not None:
            q = torch.cat([apply_rope(q[:, :, :img_len], *rope), q[:, :, img_len:]], dim=2)
            k = torch.cat([apply_rope(k[:, :, :img_len], *rope), k[:, :, img_len:]], dim=2)
        attn = merge_heads(attention_fn(q, k, v, key_mask))
        return res(x, gate, self.linear2(torch.cat([attn, self.mlp_act(mlp)], dim=-1)))
