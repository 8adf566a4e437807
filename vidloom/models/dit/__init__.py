"""HunyuanVideo diffusion transformer (dual-stream -> single-stream DiT with 3D RoPE).

See docs/models_dit.md for the architecture, tiers, API and weight layouts.
"""

from vidloom.models.dit.attention import AttentionFn, sdpa_attention
from vidloom.models.dit.config import CONFIGS, DiTConfig, get_config
from vidloom.models.dit.flops import count_flops_per_token, forward_flops
from vidloom.models.dit.loading import build_dit, load_dit, save_dit, to_diffusers
from vidloom.models.dit.model import GUIDANCE_MULTIPLIER, HunyuanVideoDiT

__all__ = [
    "AttentionFn",
    "CONFIGS",
    "DiTConfig",
    "GUIDANCE_MULTIPLIER",
    "HunyuanVideoDiT",
    "build_dit",
    "count_flops_per_token",
    "forward_flops",
    "get_config",
    "load_dit",
    "save_dit",
    "sdpa_attention",
    "to_diffusers",
]
