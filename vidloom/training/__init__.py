"""Training: the latent cache (`vidloom.training.latents`), the staged curriculum on Ray Train +
DeepSpeed, and the VAE and DiT jobs that read curated tiers or latent caches."""
