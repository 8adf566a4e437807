"""The HunyuanVideo-compatible causal 3D VAE (4x temporal, 8x8 spatial compression, 16 latent channels)."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from vidloom.models.vae.config import VAEConfig
from vidloom.models.vae.decoder import Decoder3D
from vidloom.models.vae.distribution import DiagonalGaussianDistribution
from vidloom.models.vae.encoder import Encoder3D
from vidloom.models.vae.tiling import TileSettings, tile_spatially, tile_temporally


class CausalVAE3D(nn.Module):
    """Causal 3D VAE: videos in [-1, 1] shaped (B, 3, 4k+1, H, W) <-> latents (B, C, k+1, H/8, W/8).

    Latent frame 0 depends only on pixel frame 0, so images (F = 1) and videos share one
    latent space. Multiply ``posterior.mode()`` by `scaling_factor` before handing latents
    to the diffusion model, and divide before `decode`.
    """

    def __init__(self, config: VAEConfig | None = None, **overrides: Any) -> None:
        super().__init__()
        config = config or VAEConfig()
        if overrides:
            config = dataclasses.replace(config, **overrides)
        self.config = config
        self.encoder = Encoder3D(config)
        self.decoder = Decoder3D(config)
        self.quant_conv = nn.Conv3d(2 * config.latent_channels, 2 * config.latent_channels, 1)
        self.post_quant_conv = nn.Conv3d(config.latent_channels, config.latent_channels, 1)
        self.use_tiling = False
        self.tiles = TileSettings()

    # ------------------------------------------------------------------ properties
    @property
    def scaling_factor(self) -> float:
        return self.config.scaling_factor

    @property
    def latent_channels(self) -> int:
        return self.config.latent_channels

    @property
    def dtype(self) -> torch.dtype:
        return self.quant_conv.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.quant_conv.weight.device

    # ------------------------------------------------------------------ tiling
    def enable_tiling(
        self,
        tile_sample_min_height: int | None = None,
        tile_sample_min_width: int | None = None,
        tile_sample_min_num_frames: int | None = None,
        tile_sample_stride_height: int | None = None,
        tile_sample_stride_width: int | None = None,
        tile_sample_stride_num_frames: int | None = None,
    ) -> "CausalVAE3D":
        """Encode/decode in overlapping tiles (sizes in pixels / frames; None keeps the current value).

        Spatial tiles are used when H or W exceeds the tile size, temporal tiles when the
        frame count exceeds the temporal tile size. Sizes must be multiples of the
        compression ratios (8 px, 4 frames).
        """
        given = {k: v for k, v in locals().items() if k != "self" and v is not None}
        tiles = dataclasses.replace(self.tiles, **{k: int(v) for k, v in given.items()})
        s, t = self.config.spatial_compression_ratio, self.config.temporal_compression_ratio
        for name in ("height", "width"):
            lo, st = getattr(tiles, f"tile_sample_min_{name}"), getattr(tiles, f"tile_sample_stride_{name}")
            if lo % s or st % s or not 0 < st <= lo:
                raise ValueError(f"{name} tile {lo} / stride {st} must be multiples of {s} with 0 < stride <= tile")
        lo, st = tiles.tile_sample_min_num_frames, tiles.tile_sample_stride_num_frames
        if lo % t or st % t or not 0 < st <= lo:
            raise ValueError(f"frame tile {lo} / stride {st} must be multiples of {t} with 0 < stride <= tile")
        self.tiles = tiles
        self.use_tiling = True
        return self

    def disable_tiling(self) -> "CausalVAE3D":
        """Process whole videos in one pass."""
        self.use_tiling = False
        return self

    def enable_gradient_checkpointing(self, enabled: bool = True) -> "CausalVAE3D":
        """Recompute block activations in the backward pass (training at high resolution)."""
        self.encoder.gradient_checkpointing = enabled
        self.decoder.gradient_checkpointing = enabled
        return self

    # ------------------------------------------------------------------ encode
    def _encode_tile(self, x: torch.Tensor) -> torch.Tensor:
        return self.quant_conv(self.encoder(x))

    def _encode_spatial(self, x: torch.Tensor) -> torch.Tensor:
        tl, s = self.tiles, self.config.spatial_compression_ratio
        height, width = x.shape[-2:]
        if not (self.use_tiling and (height > tl.tile_sample_min_height or width > tl.tile_sample_min_width)):
            return self._encode_tile(x)
        tile = (tl.tile_sample_min_height, tl.tile_sample_min_width)
        stride = (tl.tile_sample_stride_height, tl.tile_sample_stride_width)
        keep = (stride[0] // s, stride[1] // s)
        extent = (tile[0] // s - keep[0], tile[1] // s - keep[1])
        return tile_spatially(x, self._encode_tile, tile, stride, extent, keep, (height // s, width // s))

    def encode_moments(self, video: torch.Tensor) -> torch.Tensor:
        """Posterior parameters (B, 2*C, k+1, H/8, W/8): mean and log-variance stacked on channels."""
        self.config.latent_shape(*video.shape[2:])  # validates 4k+1 frames, multiples of 8
        tl, t = self.tiles, self.config.temporal_compression_ratio
        frames = video.shape[2]
        if not (self.use_tiling and frames > tl.tile_sample_min_num_frames):
            return self._encode_spatial(video)
        keep = tl.tile_sample_stride_num_frames // t
        extent = tl.tile_sample_min_num_frames // t - keep
        return tile_temporally(
            video, self._encode_spatial, tl.tile_sample_min_num_frames, tl.tile_sample_stride_num_frames,
            extent, keep, (frames - 1) // t + 1,
        )

    def encode(self, video: torch.Tensor) -> DiagonalGaussianDistribution:
        """Encode videos in [-1, 1] (B, 3, 4k+1, H, W) into the latent posterior."""
        return DiagonalGaussianDistribution(self.encode_moments(video))

    # ------------------------------------------------------------------ decode
    def _decode_tile(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.post_quant_conv(z))

    def _decode_spatial(self, z: torch.Tensor) -> torch.Tensor:
        tl, s = self.tiles, self.config.spatial_compression_ratio
        height, width = z.shape[-2:]
        tile = (tl.tile_sample_min_height // s, tl.tile_sample_min_width // s)
        if not (self.use_tiling and (height > tile[0] or width > tile[1])):
            return self._decode_tile(z)
        stride = (tl.tile_sample_stride_height // s, tl.tile_sample_stride_width // s)
        keep = (tl.tile_sample_stride_height, tl.tile_sample_stride_width)
        extent = (tl.tile_sample_min_height - keep[0], tl.tile_sample_min_width - keep[1])
        return tile_spatially(z, self._decode_tile, tile, stride, extent, keep, (height * s, width * s))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Decode unscaled latents (B, C, k+1, h, w) into videos (B, 3, 4k+1, 8h, 8w), nominally in [-1, 1]."""
        tl, t = self.tiles, self.config.temporal_compression_ratio
        frames = z.shape[2]
        tile = tl.tile_sample_min_num_frames // t
        if not (self.use_tiling and frames > tile):
            return self._decode_spatial(z)
        stride = tl.tile_sample_stride_num_frames // t
        keep = tl.tile_sample_stride_num_frames
        extent = tl.tile_sample_min_num_frames - keep
        return tile_temporally(z, self._decode_spatial, tile, stride, extent, keep, (frames - 1) * t + 1)

    # ------------------------------------------------------------------ training
    def forward(
        self, video: torch.Tensor, sample_posterior: bool = True, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, DiagonalGaussianDistribution]:
        """Reconstruct `video`; returns (reconstruction, posterior) for the VAE training loss."""
        posterior = self.encode(video)
        z = posterior.sample(generator) if sample_posterior else posterior.mode()
        return self.decode(z), posterior
