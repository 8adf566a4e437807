"""HunyuanVideo-compatible causal 3D VAE: model, tiling, loaders and training loss."""

from vidloom.models.vae.autoencoder import CausalVAE3D
from vidloom.models.vae.config import VAE_CONFIGS, VAEConfig, get_vae_config
from vidloom.models.vae.distribution import DiagonalGaussianDistribution
from vidloom.models.vae.loading import load_vae, save_vae, to_diffusers

__all__ = [
    "CausalVAE3D",
    "DiagonalGaussianDistribution",
    "VAEConfig",
    "VAE_CONFIGS",
    "get_vae_config",
    "load_vae",
    "save_vae",
    "to_diffusers",
]
