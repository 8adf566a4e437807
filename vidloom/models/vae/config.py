"""Constructor arguments of the causal 3D VAE and its named configurations.

Field names follow diffusers' ``AutoencoderKLHunyuanVideo`` config so a config can be
translated both ways without a lookup table (see `vidloom.models.vae.loading`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class VAEConfig:
    """Architecture of the causal 3D VAE.

    The encoder has one down block per entry of `block_out_channels`; the first
    log2(`spatial_compression_ratio`) blocks halve height and width, and the
    log2(`temporal_compression_ratio`) blocks just before the last one also halve time
    (causally: F = 4k+1 frames become k+1). The decoder mirrors it with
    ``layers_per_block + 1`` resnets per up block.
    """

    in_channels: int = 3
    out_channels: int = 3
    latent_channels: int = 16
    block_out_channels: tuple[int, ...] = (128, 256, 512, 512)
    layers_per_block: int = 2
    norm_num_groups: int = 32
    scaling_factor: float = 0.476986
    spatial_compression_ratio: int = 8
    temporal_compression_ratio: int = 4
    mid_block_add_attention: bool = True
    norm_eps: float = 1e-6

    def __post_init__(self) -> None:
        object.__setattr__(self, "block_out_channels", tuple(int(c) for c in self.block_out_channels))
        n = len(self.block_out_channels)
        s, t = self.num_spatial_stages, self.num_temporal_stages
        if 2**s != self.spatial_compression_ratio or 2**t != self.temporal_compression_ratio:
            raise ValueError("compression ratios must be powers of two")
        if s > n or t > n - 1:
            raise ValueError(
                f"{n} blocks cannot give spatial x{self.spatial_compression_ratio} and "
                f"temporal x{self.temporal_compression_ratio} compression"
            )
        for c in self.block_out_channels:
            if c % self.norm_num_groups:
                raise ValueError(f"channels {c} not divisible by norm_num_groups={self.norm_num_groups}")

    @property
    def num_spatial_stages(self) -> int:
        return int(round(math.log2(self.spatial_compression_ratio)))

    @property
    def num_temporal_stages(self) -> int:
        return int(round(math.log2(self.temporal_compression_ratio)))

    def stage_strides(self) -> list[tuple[int, int, int]]:
        """(time, height, width) resampling factor of each block, first to last.

        Encoder down block ``i`` and decoder up block ``i`` both use entry ``i`` (the
        decoder counts its blocks from the latent side, as diffusers does).
        """
        n = len(self.block_out_channels)
        s, t = self.num_spatial_stages, self.num_temporal_stages
        strides = []
        for i in range(n):
            last = i == n - 1
            hw = 2 if i < s else 1
            tt = 2 if (i >= n - 1 - t and not last) else 1
            strides.append((tt, hw, hw))
        return strides

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["block_out_channels"] = list(self.block_out_channels)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "VAEConfig":
        """Build from a dict, ignoring keys that are not constructor arguments."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def latent_shape(self, num_frames: int, height: int, width: int) -> tuple[int, int, int]:
        """Latent (frames, height, width) for a video of the given size."""
        t, s = self.temporal_compression_ratio, self.spatial_compression_ratio
        if (num_frames - 1) % t:
            raise ValueError(f"num_frames must be {t}k+1, got {num_frames}")
        if height % s or width % s:
            raise ValueError(f"height and width must be multiples of {s}, got {height}x{width}")
        return (num_frames - 1) // t + 1, height // s, width // s


#: Named configurations: ``hunyuan`` is the released 884-16c-hy VAE, ``tiny`` is for tests
#: and CPU benchmarks (same topology, compression and 16 latent channels, 0.28 M parameters).
VAE_CONFIGS: dict[str, VAEConfig] = {
    "hunyuan": VAEConfig(),
    "tiny": VAEConfig(block_out_channels=(8, 8, 16, 16), norm_num_groups=4),
}


def get_vae_config(name: str) -> VAEConfig:
    """Return the named configuration (``tiny`` or ``hunyuan``)."""
    try:
        return VAE_CONFIGS[name]
    except KeyError:
        raise KeyError(f"unknown VAE config {name!r}; known: {sorted(VAE_CONFIGS)}") from None
