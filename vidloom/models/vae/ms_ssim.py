"""Multi-scale SSIM (Wang, Simoncelli & Bovik 2003): the VAE loss's offline perceptual term.

LPIPS needs pretrained backbone weights; MS-SSIM needs none and still weighs structure over
per-pixel error, so the VAE objective keeps a perceptual term on a machine without weights.
Videos are compared frame by frame. Small frames use as many scales as their size allows
(a scale needs at least one full window), with the standard scale weights renormalised.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: The five scale weights of the original paper.
SCALE_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_C1, _C2 = 0.01**2, 0.03**2  # for images in [0, 1]


def _window(size: int, sigma: float, device, dtype) -> torch.Tensor:
    x = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _ssim_parts(a: torch.Tensor, b: torch.Tensor, win: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean SSIM and mean contrast-structure term per image (B,) with a separable window."""
    c = a.shape[1]
    kh = win.view(1, 1, -1, 1).expand(c, 1, -1, 1)
    kw = win.view(1, 1, 1, -1).expand(c, 1, 1, -1)
    blur = lambda x: F.conv2d(F.conv2d(x, kh, groups=c), kw, groups=c)  # noqa: E731
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    cs = (2 * cov + _C2) / (var_a + var_b + _C2)
    lum = (2 * mu_a * mu_b + _C1) / (mu_a**2 + mu_b**2 + _C1)
    return (lum * cs).flatten(1).mean(1), cs.flatten(1).mean(1)


def ms_ssim(a: torch.Tensor, b: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """MS-SSIM per image (B,) of images (B, C, H, W) in [0, 1]."""
    size = min(a.shape[-2:])
    win_size = min(window, size if size % 2 else size - 1)
    win = _window(win_size, sigma * win_size / window, a.device, a.dtype)
    scales = 1
    while scales < len(SCALE_WEIGHTS) and size // (2**scales) >= win_size:
        scales += 1
    weights = torch.tensor(SCALE_WEIGHTS[:scales], device=a.device, dtype=a.dtype)
    weights = weights / weights.sum()
    values = []
    for level in range(scales):
        ssim, cs = _ssim_parts(a, b, win)
        last = level == scales - 1
        values.append(F.relu(ssim if last else cs))
        if not last:
            a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
    stacked = torch.stack(values, dim=1).clamp_min(1e-8)
    return torch.prod(stacked ** weights, dim=1)


def ms_ssim_loss(video: torch.Tensor, reconstruction: torch.Tensor) -> torch.Tensor:
    """1 − MS-SSIM averaged over frames of videos (B, 3, F, H, W) in [-1, 1]."""
    frames = lambda v: ((v.transpose(1, 2).flatten(0, 1) + 1) / 2).clamp(0, 1)  # noqa: E731
    return 1.0 - ms_ssim(frames(video).float(), frames(reconstruction).float()).mean()
