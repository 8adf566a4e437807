"""Training the causal 3D VAE from scratch (report §3.1): L1 + 0.1·perceptual + 1e-6·KL, and the
0.05-weighted adversarial term from a configured step, on a mix of tier clips and stills.

`prepare_vae` checks the run against a curated folder on the driver; `train_vae_stage` is the
Ray Train loop: build → wrap with DeepSpeed → resume → loop. The small 3D patch discriminator
is trained beside it by a plain optimizer whose gradients are averaged over the ranks.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidloom.models.vae import get_vae_config, load_vae, save_vae
from vidloom.models.vae.autoencoder import CausalVAE3D
from vidloom.models.vae.loss import VAELoss, VAELossWeights
from vidloom.platform.config import ConfigError
from vidloom.training import engine as eng
from vidloom.training.config import TrainConfig
from vidloom.training.data import build_plan, iterate_batches
from vidloom.training.dit_loop import step_generator
from vidloom.training.pixels import PixelLoader, load_clip, pixel_index, stage_crop
from vidloom.training.reporting import StepReporter

DISC_FILE = "discriminator.safetensors"
DISC_OPT_FILE = "discriminator_optimizer.pt"


def prepare_vae(cfg: TrainConfig, data: str):
    """Check a VAE run against a curated folder; every problem names its field."""
    from vidloom.training.runner import Prepared

    if cfg.model.vae not in ("tiny", "hunyuan") and not Path(cfg.model.vae).exists():
        raise ConfigError(f"model.vae: {cfg.model.vae!r} is neither a VAE config name (tiny, hunyuan) nor a folder")
    index = pixel_index(cfg, data)
    problems = []
    for i, stage in enumerate(cfg.stages):
        f, h, w = stage_crop(stage)
        if (f - 1) % 4 or h % 8 or w % 8:
            problems.append(f"stages[{i}].crop: {f}x{h}x{w} must be 4k+1 frames and multiples of 8 px")
        for j, ref in enumerate(stage.datasets):
            if ref.tier not in index:
                problems.append(f"stages[{i}].datasets[{j}].tier: {ref.tier!r} has no readable clips in {data}")
        if not problems and not build_plan(stage, index, (1, 1, 1), cfg.seed, cfg.eval.holdout).sources:
            problems.append(f"stages[{i}].buckets: no sample fits the bucket table; set tokens_per_batch")
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))
    lpips = cfg.stages[-1].vae_loss.lpips_weights
    perceptual = "lpips" if lpips else f"1 - MS-SSIM (offline; set stages[*].vae_loss.lpips_weights for LPIPS)"
    crops = {ref.tier: stage_crop(s) for s in cfg.stages for ref in s.datasets}
    return Prepared(cfg, index, (1, 1, 1), {"perceptual": perceptual}, cfg.model.vae,
                    [f"perceptual term: {perceptual}"], train_vae_stage, PixelLoader, (crops, cfg.seed),
                    extra={"crops": {k: list(v) for k, v in crops.items()}})


def psnr(video: torch.Tensor, recon: torch.Tensor) -> float:
    """PSNR in dB of videos in [-1, 1] (peak-to-peak 2)."""
    mse = torch.mean((recon.clamp(-1, 1) - video) ** 2).item()
    return float(10 * np.log10(4.0 / max(mse, 1e-12)))


def _average_gradients(module: torch.nn.Module) -> None:
    import torch.distributed as dist

    if not dist.is_initialized() or dist.get_world_size() == 1:
        return
    for p in module.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= dist.get_world_size()


def train_vae_stage(config: dict[str, Any]) -> None:
    """Ray Train's ``train_loop_per_worker`` for a VAE stage."""
    import ray.train
    from safetensors.torch import load_file, save_file

    cfg, stage, rank, world, stage_dir = eng.stage_context(config)

    vae = load_vae(config["init"]) if config["init"] else CausalVAE3D(get_vae_config(cfg.model.vae))
    vae.train()
    s = stage.vae_loss
    criterion = VAELoss(VAELossWeights(s.l1, s.perceptual, s.adversarial, s.kl), lpips_weights=s.lpips_weights,
                        discriminator_start_step=s.adversarial_start)
    disc = criterion.discriminator
    d_opt = torch.optim.AdamW(disc.parameters(), lr=stage.lr, betas=(0.5, 0.9))
    engine = eng.wrap(vae, cfg, stage)
    ema = eng.EMA(engine, cfg.ema_decay) if cfg.ema_decay is not None else None

    def load_discriminator(folder: Path) -> None:
        disc.load_state_dict(load_file(str(folder / DISC_FILE)))
        d_opt.load_state_dict(torch.load(str(folder / DISC_OPT_FILE), weights_only=True))

    def save_discriminator(folder: Path) -> None:
        if rank == 0:
            save_file({k: v.contiguous() for k, v in disc.state_dict().items()}, str(folder / DISC_FILE))
            torch.save(d_opt.state_dict(), str(folder / DISC_OPT_FILE))

    start = eng.resume(engine, ema, load_discriminator)
    crop = tuple(config["crops"][stage.datasets[0].tier])
    held = [load_clip(p, crop, cfg.seed, 0, centre=True) for _, p, _ in config["holdout"]]
    history: list[dict[str, float]] = []

    def evaluate(done: int) -> dict[str, float]:
        if not held:
            return {}
        model = engine.module
        model.eval()
        with torch.no_grad():
            values = [psnr(torch.from_numpy(c)[None], model(torch.from_numpy(c)[None], sample_posterior=False)[0])
                      for c in held]
        model.train()
        out = {"val_psnr": float(np.mean(values))}
        history.append({"step": done, **out})
        return out

    initial = evaluate(start) if start == 0 else {}
    reporter = StepReporter(cfg, stage, stage_dir, rank, world, start)
    for step, micro_batches in iterate_batches(ray.train.get_dataset_shard(f"rank{rank}"), start, cfg.gradient_accumulation):
        eng.maybe_inject_fault(cfg, stage, step, rank, stage_dir)
        t0 = time.perf_counter()
        for m, batch in enumerate(micro_batches):
            video = batch["pixels"].float()
            disc.requires_grad_(False)  # the generator step must not train the discriminator
            recon, posterior = engine(video, generator=step_generator(cfg.seed, step, rank, m))
            losses = criterion(video, recon, posterior, step)
            grad_norm = eng.backward_and_step(engine, losses["loss"])
            disc.requires_grad_(True)
            gan = {}
            if criterion._adversarial_on(step):
                d_opt.zero_grad(set_to_none=True)
                d_loss = criterion.discriminator_loss(video, recon.detach(), step)["loss"]
                d_loss.backward()
                _average_gradients(disc)
                d_opt.step()
                # once on, both sides of the GAN are in the step's metrics
                gan = {"adversarial": float(losses["adversarial"]), "discriminator": float(d_loss)}
        if ema is not None:
            ema.update(engine)
        done = step + 1
        pixels = video.shape[0] * video.shape[2] * video.shape[3] * video.shape[4]
        reporter.step(done, float(losses["loss"]), engine, pixels, time.perf_counter() - t0, 0.0, grad_norm)
        metrics = evaluate(done) if done % cfg.eval.every == 0 or done == stage.steps else {}
        reporter.evaluation(done, metrics)
        extra = {"l1": float(losses["l1"]), "perceptual": float(losses["lpips"]), **gan, **metrics,
                 **{f"{k}_initial": v for k, v in initial.items()}}
        if eng.report(engine, done, stage.steps, cfg.checkpoint.every, ema, {**reporter.metrics(), **extra},
                      bool(metrics), save_discriminator):
            reporter.checkpointed(done)
    state = eng.full_state_dict(engine)
    if rank == 0:
        meta = {"training": {"run": cfg.name, "stage": stage.name, "steps": stage.steps,
                             "perceptual": criterion.perceptual_kind, "validation": history[-1:] or None,
                             "initial": initial or None}}
        save_vae(engine.module, stage_dir / "weights", meta=meta, state=state)
        save_vae(engine.module, stage_dir / "final", meta=meta, state=ema.state_dict(state) if ema is not None else state)
    reporter.close()
