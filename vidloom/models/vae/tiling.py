"""Tiled encode/decode in space and time with overlapping tiles and linear blending.

Semantics match diffusers' ``AutoencoderKLHunyuanVideo`` (and the released HunyuanVideo
VAE) for the same tile sizes, so tiled outputs agree to float precision:

* Tiles start every ``stride`` (sample pixels / frames) and span ``min`` (+1 frame in
  time, so that each temporal tile begins with its own causal "first" frame).
* Tiles are blended in raster order; each one is blended with its *already blended*
  upper and left (or previous-in-time) neighbours over ``min - stride`` positions with
  weights ramping linearly from the neighbour to itself, then cropped to ``stride``.
* Every temporal tile after the first drops its leading output frame, which duplicates
  the previous tile's last one.

Decoder activations are bounded by the tile size, so peak memory stays roughly flat as
videos grow; only the assembled output scales with the video.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass
class TileSettings:
    """Tile sizes and strides in *sample* (pixel / frame) units.

    Defaults are the released model's: 256 px tiles every 192 px, 64-frame tiles every 48.
    """

    tile_sample_min_height: int = 256
    tile_sample_min_width: int = 256
    tile_sample_min_num_frames: int = 64
    tile_sample_stride_height: int = 192
    tile_sample_stride_width: int = 192
    tile_sample_stride_num_frames: int = 48


def blend(prev: torch.Tensor, cur: torch.Tensor, extent: int, dim: int) -> torch.Tensor:
    """Return `cur` with its first `extent` slices along `dim` cross-faded from `prev`'s last ones."""
    extent = min(prev.shape[dim], cur.shape[dim], extent)
    if extent <= 0:
        return cur
    shape = [1] * cur.ndim
    shape[dim] = extent
    w = (torch.arange(extent, dtype=torch.float64) / extent).to(cur.device, cur.dtype).view(shape)
    head = prev.narrow(dim, prev.shape[dim] - extent, extent) * (1 - w) + cur.narrow(dim, 0, extent) * w
    return torch.cat([head, cur.narrow(dim, extent, cur.shape[dim] - extent)], dim=dim)


def tile_spatially(
    x: torch.Tensor,
    fn: Callable[[torch.Tensor], torch.Tensor],
    tile: tuple[int, int],
    stride: tuple[int, int],
    blend_extent: tuple[int, int],
    keep: tuple[int, int],
    out_size: tuple[int, int],
) -> torch.Tensor:
    """Apply `fn` to overlapping (H, W) tiles of `x` (B, C, T, H, W) and blend the results.

    `tile`/`stride` are in input units; `blend_extent`/`keep`/`out_size` in output units.
    Only the previous row of results is held while the next one is computed.
    """
    height, width = x.shape[-2:]
    rows: list[torch.Tensor] = []
    prev_row: list[torch.Tensor] | None = None
    for i in range(0, height, stride[0]):
        row: list[torch.Tensor] = []
        kept: list[torch.Tensor] = []
        for j in range(0, width, stride[1]):
            out = fn(x[:, :, :, i : i + tile[0], j : j + tile[1]])
            if prev_row is not None:
                out = blend(prev_row[len(row)], out, blend_extent[0], dim=3)
            if row:
                out = blend(row[-1], out, blend_extent[1], dim=4)
            row.append(out)
            kept.append(out[:, :, :, : keep[0], : keep[1]])
        rows.append(torch.cat(kept, dim=4))
        prev_row = row
    return torch.cat(rows, dim=3)[:, :, :, : out_size[0], : out_size[1]]


def tile_temporally(
    x: torch.Tensor,
    fn: Callable[[torch.Tensor], torch.Tensor],
    tile: int,
    stride: int,
    blend_extent: int,
    keep: int,
    out_frames: int,
) -> torch.Tensor:
    """Apply `fn` to overlapping causal time windows of ``tile + 1`` frames of `x` and blend.

    `tile`/`stride` are in input frames; `blend_extent`/`keep`/`out_frames` in output frames.
    """
    kept: list[torch.Tensor] = []
    prev: torch.Tensor | None = None
    for n, i in enumerate(range(0, x.shape[2], stride)):
        out = fn(x[:, :, i : i + tile + 1])
        if n == 0:
            kept.append(out[:, :, : keep + 1])
        else:
            out = blend(prev, out[:, :, 1:], blend_extent, dim=2)  # type: ignore[arg-type]
            kept.append(out[:, :, :keep])
        prev = out
    return torch.cat(kept, dim=2)[:, :, :out_frames]
