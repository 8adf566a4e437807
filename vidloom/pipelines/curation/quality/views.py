"""DOVER's two input views, built from the few frames the pipeline ships per clip.

DOVER samples the decoded video itself:

* technical view: 3 temporal segments; in each, 32 consecutive frames 2 apart; every frame cut
  into a 7×7 grid whose cells each give one 32×32 patch (same position for all 32 frames of a
  segment, a random offset inside the cell), spliced into a 224×224 mosaic. Frames whose
  short side is under 224 are first upscaled (bilinear) so the grid fits.
* aesthetic view: 32 frames, one at a random offset in each of 32 equal segments, each
  squeezed (aspect ratio not kept) to 224×224 with bilinear resizing.

Here the stage may not decode again and gets `signals.frames_per_clip` RGB frames per clip,
evenly spaced, at the analysis size (short side `decode.analysis_short_side`). So:

* technical: one shipped frame per segment (`evenly`), held for the whole segment instead of
  32 moving frames; patches are taken at the centre of each cell (the mean of DOVER's random
  offset) so scores are deterministic; patches come from the analysis-size frame, not the
  source resolution. A frame under 224 px gets its grid laid over the upscaled frame (DOVER
  computes it from the size before upscaling, so its grid spans only the top-left part).
* aesthetic: the shipped frames, each held for an equal share of the 32 slots.
Pixel values follow DOVER's preprocessing: ImageNet mean/std on 0-255 RGB, uint8 rounding
after the aesthetic resize (torchvision on uint8 tensors) and truncation after the technical
upscale (DOVER's own cast).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from vidloom.pipelines.curation.quality.dover import PIXEL_MEAN, PIXEL_STD
from vidloom.pipelines.curation.rows import evenly

# The fragment grid must match the 7×7 attention windows: the fragment bias tables of
# DOVER's checkpoint were learnt for one fragment per window cell.
FRAGMENT_GRID = 7


def _to_tensor(frame: np.ndarray) -> torch.Tensor:
    """H×W×3 uint8 RGB -> 3×H×W float32 in 0-255."""
    arr = np.asarray(frame)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an H×W×3 RGB frame, got shape {arr.shape}")
    return torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).float()


def normalise(view: torch.Tensor) -> torch.Tensor:
    """(..., 3, T, H, W) 0-255 RGB -> DOVER's normalised input."""
    mean = torch.tensor(PIXEL_MEAN).view(3, 1, 1, 1)
    std = torch.tensor(PIXEL_STD).view(3, 1, 1, 1)
    return (view - mean) / std


def fragment_mosaic(frame: np.ndarray, fragment_size: int = 32, grid: int = FRAGMENT_GRID) -> torch.Tensor:
    """One frame's grid×grid mosaic of fragment_size² patches: 3×S×S, S = grid·fragment_size."""
    img = _to_tensor(frame)
    side = grid * fragment_size
    h, w = img.shape[1:]
    ratio = min(h / side, w / side)
    if ratio < 1.0:  # too small for the grid: upscale like DOVER (bilinear, then truncate)
        img = F.interpolate(img[None] / 255.0, scale_factor=1.0 / ratio, mode="bilinear")[0]
        img = (img * 255.0).to(torch.uint8).float()
        h, w = img.shape[1:]
    cell_h, cell_w = h // grid, w // grid
    off_h = (cell_h - fragment_size) // 2 if cell_h > fragment_size else 0
    off_w = (cell_w - fragment_size) // 2 if cell_w > fragment_size else 0
    out = torch.empty(3, side, side)
    for i in range(grid):
        top = min(cell_h * i, h - fragment_size) + off_h
        for j in range(grid):
            left = min(cell_w * j, w - fragment_size) + off_w
            out[:, i * fragment_size:(i + 1) * fragment_size, j * fragment_size:(j + 1) * fragment_size] = img[
                :, top:top + fragment_size, left:left + fragment_size
            ]
    return out


def technical_view(
    frames: Sequence[np.ndarray], clips: int = 3, clip_len: int = 32, fragment_size: int = 32
) -> torch.Tensor:
    """DOVER's technical input for one clip: (clips', 3, clip_len, S, S), normalised.

    clips' = min(clips, len(frames)): one shipped frame per temporal segment.
    """
    if not frames:
        raise ValueError("no frames to score")
    picked = evenly(list(frames), clips)
    mosaics = [fragment_mosaic(f, fragment_size) for f in picked]
    view = torch.stack([m[:, None].expand(-1, clip_len, -1, -1) for m in mosaics])
    return normalise(view)


def aesthetic_view(frames: Sequence[np.ndarray], clip_len: int = 32, size: int = 224) -> torch.Tensor:
    """DOVER's aesthetic input for one clip: (1, 3, clip_len, size, size), normalised."""
    if not frames:
        raise ValueError("no frames to score")
    resized = []
    for frame in frames:
        img = F.interpolate(_to_tensor(frame)[None], size=(size, size), mode="bilinear", align_corners=False)[0]
        resized.append(img.round().clamp(0, 255))
    n = len(resized)
    slots = [resized[(k * n) // clip_len] for k in range(clip_len)]  # equal holds, in time order
    return normalise(torch.stack(slots, dim=1)[None])
