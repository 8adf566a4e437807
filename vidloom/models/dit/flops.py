"""Analytic forward matmul FLOPs of the DiT, for MFU reporting.

Counts every matrix multiply of one forward pass (linear layers, patch-embed convolution,
attention scores and attention-weighted values) at 2 FLOPs per multiply-add; elementwise work
(norms, RoPE, activations, softmax) is left out, as is usual for MFU. Per-sample work (the
conditioning MLPs and modulation linears) is spread over the sequence. A training step costs
about 3× the forward (backward = 2× forward).
"""

from __future__ import annotations

import math

from vidloom.models.dit.config import DiTConfig
from vidloom.models.dit.embeddings import TIMESTEP_FREQ_DIM


def forward_flops(config: DiTConfig, video_tokens: int, text_tokens: int) -> int:
    """Matmul FLOPs of one sample's forward with the given token counts (no padding)."""
    c = config
    h, m = c.hidden_size, c.mlp_hidden
    seq = video_tokens + text_tokens
    lin = lambda n_in, n_out: 2 * n_in * n_out  # noqa: E731 - FLOPs of one token through a Linear
    attn = lambda q_len, k_len: 4 * q_len * k_len * h  # noqa: E731 - QK^T and AV over all heads

    vec = lin(TIMESTEP_FREQ_DIM, h) + lin(h, h) + lin(c.pooled_dim, h) + lin(h, h)
    if c.guidance_embed:
        vec += lin(TIMESTEP_FREQ_DIM, h) + lin(h, h)

    patch = math.prod(c.patch_size)
    embed = video_tokens * lin(c.in_channels * patch, h)

    refiner = (lin(TIMESTEP_FREQ_DIM, h) + lin(h, h) + lin(c.text_dim, h) + lin(h, h)  # per-sample condition
               + text_tokens * lin(c.text_dim, h))
    refiner += c.refiner_depth * (
        lin(h, 2 * h) + text_tokens * (lin(h, 3 * h) + lin(h, h) + lin(h, m) + lin(m, h)) + attn(text_tokens,
                                                                                               text_tokens))

    double = c.depth_double * (
        2 * lin(h, 6 * h) + seq * (lin(h, 3 * h) + lin(h, h) + lin(h, m) + lin(m, h)) + attn(seq, seq))
    single = c.depth_single * (lin(h, 3 * h) + seq * (lin(h, 3 * h + m) + lin(h + m, h)) + attn(seq, seq))
    final = lin(h, 2 * h) + video_tokens * lin(h, patch * c.out_channels)
    return vec + embed + refiner + double + single + final


def count_flops_per_token(config: DiTConfig, seq_len: int, text_len: int = 256) -> float:
    """Forward matmul FLOPs per token of a joint sequence of `seq_len` tokens.

    Args:
        config: the DiT architecture.
        seq_len: video tokens + text tokens in one sample's joint sequence.
        text_len: the text part of `seq_len` (HunyuanVideo pads prompts to 256 tokens).
    """
    if not 0 <= text_len < seq_len:
        raise ValueError(f"text_len {text_len} must be in [0, seq_len={seq_len})")
    return forward_flops(config, seq_len - text_len, text_len) / seq_len
