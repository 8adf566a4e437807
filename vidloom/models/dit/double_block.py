"""Double-stream block: image and text keep separate weights but attend jointly.

Each stream has its own modulation (shift1, scale1, gate1, shift2, scale2, gate2), fused qkv,
per-head RMSNorm on q and k, output projection and GELU-tanh MLP. 3D RoPE rotates image q/k
only; one attention runs over the concatenation [image; text].
"""

from __future__ import annotations

import torch
from torch import nn

from vidloom.models.dit import fused
from vidloom.models.dit.attention import AttentionFn, RMSNorm, merge_heads, sdpa_attention, split_heads
from vidloom.models.dit.embeddings import Modulation, gated_residual, modulate
from vidloom.models.dit.mlp import MLP
from vidloom.models.dit.rope import apply_rope


class DoubleStreamBlock(nn.Module):
    """One dual-stream (MM-DiT) block; parameter names follow the official checkpoint."""

    def __init__(self, hidden_size: int, heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True):
        super().__init__()
        self.heads = heads
        head_dim = hidden_size // heads
        mlp_hidden = int(hidden_size * mlp_ratio)
        for stream in ("img", "txt"):
            self.add_module(f"{stream}_mod", Modulation(hidden_size, 6))
            self.add_module(f"{stream}_norm1", nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6))
            self.add_module(f"{stream}_attn_qkv", nn.Linear(hidden_size, 3 * hidden_size, bias=qkv_bias))
            self.add_module(f"{stream}_attn_q_norm", RMSNorm(head_dim))
            self.add_module(f"{stream}_attn_k_norm", RMSNorm(head_dim))
            self.add_module(f"{stream}_attn_proj", nn.Linear(hidden_size, hidden_size, bias=qkv_bias))
            self.add_module(f"{stream}_norm2", nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6))
            self.add_module(f"{stream}_mlp", MLP(hidden_size, mlp_hidden, act="gelu_tanh"))
        self.gradient_checkpointing = False
        self.fast = False  # fused kernels (see fused.py), set by HunyuanVideoDiT.set_fast_path

    def _qkv(self, stream: str, x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor):
        h = (fused.modulate if self.fast else modulate)(getattr(self, f"{stream}_norm1")(x), shift, scale)
        q, k, v = (split_heads(p, self.heads) for p in getattr(self, f"{stream}_attn_qkv")(h).chunk(3, dim=-1))
        q = getattr(self, f"{stream}_attn_q_norm")(q)
        k = getattr(self, f"{stream}_attn_k_norm")(k)
        return q, k, v

    def forward(
        self,
        img: torch.Tensor,
        txt: torch.Tensor,
        vec: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor] | None,
        key_mask: torch.Tensor | None,
        attention_fn: AttentionFn = sdpa_attention,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """img (B, Li, D), txt (B, Lt, D), vec (B, D); key_mask (B, Li+Lt) or None."""
        i_shift1, i_scale1, i_gate1, i_shift2, i_scale2, i_gate2 = self.img_mod(vec)
        t_shift1, t_scale1, t_gate1, t_shift2, t_scale2, t_gate2 = self.txt_mod(vec)

        iq, ik, iv = self._qkv("img", img, i_shift1, i_scale1)
        tq, tk, tv = self._qkv("txt", txt, t_shift1, t_scale1)
        if rope is not None and self.fast:
            table = fused.rope_table(*rope)
            iq, ik = fused.apply_rope(iq, table), fused.apply_rope(ik, table)
        elif rope is not None:
            iq, ik = apply_rope(iq, *rope), apply_rope(ik, *rope)

        attn = attention_fn(torch.cat([iq, tq], 2), torch.cat([ik, tk], 2), torch.cat([iv, tv], 2), key_mask)
        attn = merge_heads(attn)
        img_attn, txt_attn = attn[:, : img.shape[1]], attn[:, img.shape[1]:]

        mod, res = (fused.modulate, fused.gated_residual) if self.fast else (modulate, gated_residual)
        img = res(img, i_gate1, self.img_attn_proj(img_attn))
        img = res(img, i_gate2, self.img_mlp(mod(self.img_norm2(img), i_shift2, i_scale2)))
        txt = res(txt, t_gate1, self.txt_attn_proj(txt_attn))
        txt = res(txt, t_gate2, self.txt_mlp(mod(self.txt_norm2(txt), t_shift2, t_scale2)))
        return img, txt
