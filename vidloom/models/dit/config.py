"""DiT configuration and the named tiers (tiny, small, 1B, 13B).

The 13B tier is the report's HunyuanVideo transformer: hidden 3072, 24 heads, 20 double-stream
and 40 single-stream blocks, MLP ratio 4, 3D RoPE split (16, 56, 56) over (t, h, w).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any


def default_rope_dims(head_dim: int) -> tuple[int, int, int]:
    """Split a head dimension over (t, h, w): 1/8 to time, the rest evenly to h and w.

    Every part must be even because RoPE rotates channel pairs. 128 gives (16, 56, 56).
    """
    t = 2 * max(1, head_dim // 16)
    rest = head_dim - t
    hw = rest // 2
    if hw % 2:
        hw -= 1
        t = head_dim - 2 * hw
    dims = (t, hw, hw)
    if any(d <= 0 or d % 2 for d in dims) or sum(dims) != head_dim:
        raise ValueError(f"cannot split head_dim={head_dim} into even RoPE parts")
    return dims


@dataclass(frozen=True)
class DiTConfig:
    """Constructor arguments of `HunyuanVideoDiT`; serialised as-is into exports."""

    in_channels: int = 16
    out_channels: int = 16
    hidden_size: int = 3072
    heads: int = 24
    mlp_ratio: float = 4.0
    depth_double: int = 20
    depth_single: int = 40
    refiner_depth: int = 2
    text_dim: int = 4096
    pooled_dim: int = 768
    patch_size: tuple[int, int, int] = (1, 2, 2)
    rope_dims: tuple[int, int, int] = (16, 56, 56)
    rope_theta: float = 256.0
    guidance_embed: bool = True
    qkv_bias: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "patch_size", tuple(int(p) for p in self.patch_size))
        object.__setattr__(self, "rope_dims", tuple(int(d) for d in self.rope_dims))
        if self.hidden_size % self.heads:
            raise ValueError(f"hidden_size {self.hidden_size} not divisible by heads {self.heads}")
        if sum(self.rope_dims) != self.head_dim or any(d % 2 for d in self.rope_dims):
            raise ValueError(f"rope_dims {self.rope_dims} must be even and sum to head_dim {self.head_dim}")
        if len(self.patch_size) != 3:
            raise ValueError(f"patch_size must be (t, h, w), got {self.patch_size}")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.heads

    @property
    def mlp_hidden(self) -> int:
        return int(self.hidden_size * self.mlp_ratio)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (tuples become lists)."""
        d = asdict(self)
        d["patch_size"] = list(self.patch_size)
        d["rope_dims"] = list(self.rope_dims)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DiTConfig":
        """Build from `to_dict` output; unknown keys are an error so typos surface."""
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown DiT config keys: {sorted(unknown)}")
        return cls(**d)

    def with_overrides(self, **kwargs: Any) -> "DiTConfig":
        """A copy with some fields changed (rope_dims re-derived if heads/hidden change)."""
        if ("hidden_size" in kwargs or "heads" in kwargs) and "rope_dims" not in kwargs:
            hidden = kwargs.get("hidden_size", self.hidden_size)
            heads = kwargs.get("heads", self.heads)
            kwargs["rope_dims"] = default_rope_dims(hidden // heads)
        return replace(self, **kwargs)


CONFIGS: dict[str, DiTConfig] = {
    # CPU unit tests: every code path (refiner, both block kinds, 3D RoPE), ~0.5M params.
    "tiny": DiTConfig(
        hidden_size=64, heads=2, depth_double=2, depth_single=2, refiner_depth=2,
        text_dim=32, pooled_dim=24, rope_dims=(4, 14, 14), guidance_embed=False,
    ),
    # CPU-trainable demo that consumes real text-encoder features (4096 / 768).
    "small": DiTConfig(
        hidden_size=768, heads=12, depth_double=2, depth_single=4, refiner_depth=2,
        rope_dims=(8, 28, 28), guidance_embed=False,
    ),
    # Single-GPU research tier with the 13B head size (128) so RoPE is identical.
    "1B": DiTConfig(
        hidden_size=1536, heads=12, depth_double=6, depth_single=12, refiner_depth=2,
        rope_dims=(16, 56, 56), guidance_embed=False,
    ),
    # The report's model (guidance-distilled release layout).
    "13B": DiTConfig(),
}


def get_config(name: str, **overrides: Any) -> DiTConfig:
    """Look up a named tier and apply field overrides."""
    if name not in CONFIGS:
        raise KeyError(f"unknown DiT config {name!r}; known: {sorted(CONFIGS)}")
    cfg = CONFIGS[name]
    return cfg.with_overrides(**overrides) if overrides else cfg
