"""Inputs and random weights for DiT tests (imported by the DiT, layout and convert tests)."""

from __future__ import annotations

import re

import torch


def make_inputs(cfg, batch=2, latent=(3, 8, 8), text_len=7, valid=(7, 4), seed=0):
    """(x, t, text_states, text_mask, pooled) for `cfg`; text right-padded as tokenizers do."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, cfg.in_channels, *latent, generator=g)
    text = torch.randn(batch, text_len, cfg.text_dim, generator=g)
    mask = torch.zeros(batch, text_len, dtype=torch.long)
    for i, n in enumerate(valid[:batch]):
        mask[i, :n] = 1
    pooled = torch.randn(batch, cfg.pooled_dim, generator=g)
    t = torch.tensor([500.0, 250.0][:batch])
    return x, t, text, mask, pooled


def randomize(model: torch.nn.Module, seed: int = 0) -> None:
    """Random values everywhere, zero-initialised modulations included, so that a wrong key
    map or layout shows in the outputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            is_norm_scale = re.search(r"norm\d?\.weight$", name) is not None
            p.copy_(1 + 0.1 * noise if is_norm_scale else 0.05 * noise)
