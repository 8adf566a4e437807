"""VAE training objective: L1 + perceptual + hinge adversarial (3D patch discriminator) + KL.

Default weights: 1.0 * L1 + 0.1 * perceptual + 0.05 * adversarial + 1e-6 * KL. The perceptual
term is LPIPS when its backbone weights are configured (setting ``vae.loss.lpips_weights``) and
otherwise the named offline alternative, 1 − MS-SSIM (`vidloom.models.vae.ms_ssim`), which
needs no weights: the term is never silently dropped. `perceptual_kind` says which one runs,
and every loss dict reports ``lpips_active``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vidloom.models.vae.discriminator import PatchDiscriminator3D
from vidloom.models.vae.distribution import DiagonalGaussianDistribution
from vidloom.models.vae.lpips import LPIPS
from vidloom.models.vae.ms_ssim import ms_ssim_loss
from vidloom.platform.weights import resolve_weights

logger = logging.getLogger(__name__)

LPIPS_SETTING = "vae.loss.lpips_weights"


@dataclass(frozen=True)
class VAELossWeights:
    """Weights of the loss terms."""

    l1: float = 1.0
    lpips: float = 0.1
    adversarial: float = 0.05
    kl: float = 1e-6


class VAELoss(nn.Module):
    """Generator and discriminator losses for training `CausalVAE3D`.

    Owns the discriminator: optimise ``loss.discriminator.parameters()`` with
    `discriminator_loss` and the VAE with the ``"loss"`` entry of `forward`.
    """

    def __init__(
        self,
        weights: VAELossWeights | None = None,
        lpips_weights: str | Path | None = None,
        discriminator: nn.Module | None = None,
        discriminator_start_step: int = 0,
        perceptual: str = "auto",
    ) -> None:
        """`perceptual`: ``auto`` (LPIPS when `lpips_weights` is set, else MS-SSIM), ``lpips``
        (its weights must be found: `MissingWeightsError` names the setting) or ``ms_ssim``."""
        super().__init__()
        if perceptual not in ("auto", "lpips", "ms_ssim"):
            raise ValueError(f"perceptual must be auto, lpips or ms_ssim, got {perceptual!r}")
        self.weights = weights or VAELossWeights()
        self.discriminator = discriminator if discriminator is not None else PatchDiscriminator3D()
        self.discriminator_start_step = discriminator_start_step
        self.lpips: LPIPS | None = None
        want_lpips = perceptual == "lpips" or (perceptual == "auto" and lpips_weights)
        if self.weights.lpips > 0 and want_lpips:
            self.lpips = LPIPS.from_pretrained(resolve_weights(lpips_weights, LPIPS_SETTING))
        self.perceptual_kind = "lpips" if self.lpips is not None else ("ms_ssim" if self.weights.lpips > 0 else "off")
        if self.perceptual_kind == "ms_ssim":
            logger.info("VAE loss: perceptual term is 1 - MS-SSIM (no %s configured)", LPIPS_SETTING)

    @property
    def lpips_active(self) -> bool:
        return self.lpips is not None

    def _adversarial_on(self, step: int) -> bool:
        return self.weights.adversarial > 0 and step >= self.discriminator_start_step

    def perceptual(self, video: torch.Tensor, reconstruction: torch.Tensor) -> torch.Tensor:
        """Mean LPIPS (or 1 − MS-SSIM) over all frames of videos (B, 3, F, H, W)."""
        if self.perceptual_kind == "ms_ssim":
            return ms_ssim_loss(video, reconstruction)
        if self.lpips is None:
            return video.new_zeros(())
        frames = lambda v: v.transpose(1, 2).flatten(0, 1)  # noqa: E731 - (B*F, 3, H, W)
        return self.lpips(frames(video), frames(reconstruction)).mean()

    def forward(
        self,
        video: torch.Tensor,
        reconstruction: torch.Tensor,
        posterior: DiagonalGaussianDistribution,
        step: int = 0,
    ) -> dict[str, torch.Tensor]:
        """Generator-side loss; ``"loss"`` is the weighted total, other entries are unweighted terms."""
        w = self.weights
        l1 = F.l1_loss(reconstruction, video)
        lpips = self.perceptual(video, reconstruction)
        kl = posterior.kl().mean()  # summed over latent elements, averaged over the batch
        adversarial = video.new_zeros(())
        if self._adversarial_on(step):
            adversarial = -self.discriminator(reconstruction).mean()
        total = w.l1 * l1 + w.kl * kl + w.adversarial * adversarial + w.lpips * lpips
        return {
            "loss": total,
            "l1": l1.detach(),
            "lpips": lpips.detach(),
            "lpips_active": torch.tensor(float(self.lpips_active)),
            "kl": kl.detach(),
            "adversarial": adversarial.detach(),
        }

    def discriminator_loss(
        self, video: torch.Tensor, reconstruction: torch.Tensor, step: int = 0
    ) -> dict[str, torch.Tensor]:
        """Hinge loss of the discriminator (reconstruction is detached); zero before the start step."""
        if not self._adversarial_on(step):
            zero = video.new_zeros(())
            return {"loss": zero, "logits_real": zero, "logits_fake": zero}
        real = self.discriminator(video)
        fake = self.discriminator(reconstruction.detach())
        loss = 0.5 * (F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean())
        return {"loss": loss, "logits_real": real.mean().detach(), "logits_fake": fake.mean().detach()}
