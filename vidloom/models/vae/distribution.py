"""Diagonal Gaussian posterior returned by `CausalVAE3D.encode`."""

from __future__ import annotations

import torch


class DiagonalGaussianDistribution:
    """N(mean, exp(logvar)) per latent element; `moments` stacks mean and logvar on dim 1."""

    def __init__(self, moments: torch.Tensor) -> None:
        self.moments = moments
        mean, logvar = moments.chunk(2, dim=1)
        self.mean = mean
        # Same clamp as the released model, keeps exp() finite early in training.
        self.logvar = logvar.clamp(-30.0, 20.0)
        self.std = torch.exp(0.5 * self.logvar)
        self.var = torch.exp(self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """Reparameterised sample ``mean + std * eps``; `generator` makes it reproducible."""
        eps = torch.randn(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + self.std * eps

    def mode(self) -> torch.Tensor:
        """Most likely latent (the mean): what inference and the DiT's training data use."""
        return self.mean

    def kl(self, other: "DiagonalGaussianDistribution | None" = None) -> torch.Tensor:
        """KL(self || other) summed over all latent elements, one value per batch item.

        `other` defaults to the standard normal prior.
        """
        dims = list(range(1, self.mean.ndim))
        if other is None:
            return 0.5 * torch.sum(self.mean.pow(2) + self.var - 1.0 - self.logvar, dim=dims)
        return 0.5 * torch.sum(
            (self.mean - other.mean).pow(2) / other.var + self.var / other.var - 1.0 - self.logvar + other.logvar,
            dim=dims,
        )
