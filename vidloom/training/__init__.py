"""Training: the latent cache (`vidloom.training.latents`), the staged curriculum on Ray Train +
DeepSpeed, and the VAE and DiT jobs that read curated tiers or latent caches."""

from vidloom.training.config import TrainConfig, load_train_config, shipped_configs


def prepare_run(cfg: TrainConfig, data: str):
    """Validate a run against its data on the driver (no Ray needed); raises ConfigError."""
    if cfg.target == "vae":
        from vidloom.training.vae_loop import prepare_vae

        return prepare_vae(cfg, data)
    from vidloom.training.runner import prepare

    return prepare(cfg, data)


def run_prepared(prepared, out, export_format: str = "vidloom"):
    """Run every stage of a prepared run into `out`; returns its TrainSummary."""
    from vidloom.training.runner import run_prepared as _run

    return _run(prepared, out, export_format)


def train(cfg: TrainConfig, data: str, out, export_format: str = "vidloom"):
    """Validate, then train (Ray must be initialised)."""
    return run_prepared(prepare_run(cfg, data), out, export_format)


__all__ = ["TrainConfig", "load_train_config", "prepare_run", "run_prepared", "shipped_configs", "train"]
