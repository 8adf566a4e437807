"""LPIPS perceptual distance (VGG16 variant): learned weighting of normalised VGG16 feature differences.

Both parts need pretrained weights, which vidloom never downloads: configure
``vae.loss.lpips_weights`` with either

* a folder holding torchvision's ImageNet VGG16 file (``vgg16-397923af.pth``, keys
  ``features.N.*``) and the LPIPS v0.1 linear heads (``vgg.pth``, keys ``linK.model.1.weight``), or
* one ``.safetensors``/``.pt`` file in our layout (``features.N.*`` + ``heads.K.weight``),
  as written by `LPIPS.save`.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vidloom.models.weights_io import read_state_dict, save_state_dict

#: VGG16 convolution widths ("M" = 2x2 max-pool), in torchvision's `features` index order.
_VGG16_LAYOUT = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
#: `features` indices after which LPIPS taps activations (relu1_2, relu2_2, relu3_3, relu4_3, relu5_3).
_TAPS = (3, 8, 15, 22, 29)
_TAP_CHANNELS = (64, 128, 256, 512, 512)
# Input normalisation the LPIPS heads were trained with (inputs in [-1, 1]).
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
_WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors", ".ckpt")


def _vgg16_features() -> nn.Sequential:
    layers: list[nn.Module] = []
    channels = 3
    for item in _VGG16_LAYOUT:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, int(item), 3, padding=1), nn.ReLU(inplace=False)]
            channels = int(item)
    return nn.Sequential(*layers[: _TAPS[-1] + 1])


def _to_our_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        head = re.fullmatch(r"lin(\d)\.model\.1\.weight", key)
        if head:
            out[f"heads.{head.group(1)}.weight"] = value
        elif key.startswith(("features.", "heads.")):
            out[key] = value
    return out


class LPIPS(nn.Module):
    """Frozen LPIPS distance between image batches in [-1, 1] (B, 3, H, W); returns (B,)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = _vgg16_features()
        self.heads = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in _TAP_CHANNELS)
        self._set_normalisation()
        self.requires_grad_(False).eval()

    def _set_normalisation(self) -> None:
        device = self.heads[0].weight.device
        self.register_buffer("shift", torch.tensor(_SHIFT, device=device).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE, device=device).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def from_pretrained(cls, path: str | Path) -> "LPIPS":
        """Load from a weights folder or file (see module docstring); raises if any tensor is missing."""
        path = Path(path)
        files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.suffix in _WEIGHT_SUFFIXES)
        state: dict[str, torch.Tensor] = {}
        for file in files:
            state.update(_to_our_keys(read_state_dict(file)))
        with torch.device("meta"):  # skip the random init of 15 M parameters about to be overwritten
            model = cls()
        missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
        if missing or unexpected:
            raise ValueError(f"{path}: incomplete LPIPS weights (missing {missing[:4]}, unexpected {unexpected[:4]})")
        model._set_normalisation()
        return model.requires_grad_(False)

    def save(self, path: str | Path) -> None:
        """Write the weights as one safetensors file in our layout."""
        save_state_dict(self.state_dict(), path)

    def train(self, mode: bool = True) -> "LPIPS":
        # Always eval: the metric is fixed, even inside a module being trained.
        return super().train(False)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # noqa: D102
        h = torch.cat([x, y]).sub(self.shift).div(self.scale)
        total = x.new_zeros(x.shape[0])
        tap = 0
        for index, layer in enumerate(self.features):
            h = layer(h)
            if index == _TAPS[tap]:
                fx, fy = h.chunk(2)
                fx = fx / (fx.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
                fy = fy / (fy.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
                total = total + self.heads[tap]((fx - fy).pow(2)).mean(dim=(1, 2, 3))
                tap += 1
        return total
