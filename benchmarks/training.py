"""Training benchmark: the platform's overhead, precompute throughput, memory per ZeRO stage.

    python benchmarks/training.py [--steps 8] [--work DIR] [--skip-zero] [--skip-precompute]

1. Overhead: tokens/s of a `small` DiT image stage under Ray Train + DeepSpeed (2 CPU workers,
   one core each) against the same model, batches and optimizer in a plain single-process
   PyTorch loop (both cores), measured in one run on the same latents, with the shipped
   config's DeepSpeed settings (ZeRO 0 for `small`). Target ratio >= 0.8.
2. Precompute: samples/s and bytes per sample of the latent cache (benchmarks/precompute.py).
3. Peak memory per rank (max RSS) of the `small` model under ZeRO 0, 2 and 3, and each stage's
   tokens/s against the plain loop (what the memory saving costs in communication).
4. GPU MFU of the `1B` config in bf16: only with --gpu on a machine with a GPU.

Without --work the sample corpus is rendered, curated and exported first (not timed).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

STAGE = ("stages=[{name: image, kind: image, datasets: [{tier: images_256}], "
         "buckets: {tokens_per_batch: 1024, max_batch_size: 16}, steps: %d, lr: 0.0002}]")


def small_config(steps: int, *extra: str):
    from vidloom.training.config import load_train_config

    return load_train_config("dit-small", [STAGE % steps, "eval.holdout=2", "eval.every=100000",
                                           "eval.sample_prompts=0", "checkpoint.every=100000", "ema_decay=null",
                                           "tracking.tensorboard=false", *extra])


def plain_loop(cfg, cache, steps: int) -> float:
    """Tokens/s of the same stage in one process: same plan, model, optimizer, loss."""
    import torch

    from vidloom.models.dit import load_dit
    from vidloom.models.sampling import FlowMatchingConfig, flow_matching_loss
    from vidloom.training.data import build_plan, collate, read_items
    from vidloom.training.dit_loop import step_generator
    from vidloom.training.engine import make_optimizer
    from vidloom.training.runner import prepare

    prep = prepare(cfg, str(cache))
    stage = cfg.stages[0]
    plan = build_plan(stage, prep.index_by_tier, prep.patch, cfg.seed, cfg.eval.holdout)
    model = load_dit(cfg.model.dit, seed=cfg.seed, **cfg.model.dit_overrides).train()
    opt = make_optimizer(model.parameters(), cfg, stage.lr)
    rates = []
    for step in range(steps):
        # the same batches rank 0 and rank 1 of the Ray run see, one after the other
        for rank in range(2):
            b = plan.batch(step * 2 + rank)
            batch = {k: torch.from_numpy(v) for k, v in collate(read_items([f for f, _ in b.items],
                                                                          [r for _, r in b.items])).items()}
            t0 = time.perf_counter()
            loss = flow_matching_loss(model, batch["latent"], batch["text_states"], batch["text_mask"], batch["pooled"],
                                      config=FlowMatchingConfig(), generator=step_generator(cfg.seed, step, rank)).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optimizer.grad_clip)
            opt.step()
            lat = batch["latent"].shape
            tokens = lat[0] * lat[2] * (lat[3] // 2) * (lat[4] // 2)
            if step >= 2:
                rates.append(tokens / (time.perf_counter() - t0))
    return sum(rates) / len(rates)


def ray_stage(cfg, cache, out: Path) -> dict:
    from vidloom.training import train

    summary = train(cfg, str(cache), out)
    return summary.stages[0].metrics


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--work", help="a curated folder with exported tiers (default: render the sample corpus)")
    p.add_argument("--skip-zero", action="store_true")
    p.add_argument("--skip-precompute", action="store_true")
    p.add_argument("--gpu", action="store_true", help="also measure the 1B config's MFU (needs a GPU)")
    args = p.parse_args(argv)

    import torch

    import precompute as precompute_bench
    from vidloom.platform.ray_runtime import init_ray

    init_ray(num_cpus=2, log_to_driver=False)
    data = Path(args.work) if args.work else precompute_bench.demo_data(precompute_bench.DEFAULT_WORK)
    tmp = Path(tempfile.mkdtemp(prefix="bench-train-"))
    cache = tmp / "latents"
    figures = precompute_bench.measure([str(data)], "tiny", "minilm", tiers=["images_256", "256p"], resize=128,
                                       frames=17, out=cache, num_cpus=2)
    if not args.skip_precompute:
        print(f"precompute: {figures['samples']} samples in {figures['seconds']:.1f} s = "
              f"{figures['samples_per_s']:.2f} samples/s; cache {figures['bytes_per_sample'] / 1024:.1f} KiB/sample "
              f"(raw pixels {figures['pixel_bytes_per_sample'] / 1024:.1f} KiB/sample)")

    cfg = small_config(args.steps)
    metrics = ray_stage(cfg, cache, tmp / "ray")
    ray_rate = metrics["tokens_per_s_mean"] * cfg.workers.num_workers
    torch.set_num_threads(2)
    plain_rate = plain_loop(cfg, cache, args.steps)
    print(f"overhead: Ray Train + DeepSpeed (2 workers) {ray_rate:,.0f} tok/s vs plain PyTorch loop "
          f"{plain_rate:,.0f} tok/s: ratio {ray_rate / plain_rate:.2f} (target >= 0.8)")

    if not args.skip_zero:
        for zero in (0, 2, 3):
            # The shipped config's stage was just measured above: its run is not repeated.
            m = metrics if zero == cfg.deepspeed.zero_stage else \
                ray_stage(small_config(args.steps, f"deepspeed.zero_stage={zero}"), cache, tmp / f"zero{zero}")
            rate = m["tokens_per_s_mean"] * cfg.workers.num_workers
            print(f"ZeRO {zero}: peak RSS per rank {m['peak_rss_mb']:,.0f} MiB (rank 0); {rate:,.0f} tok/s = "
                  f"{rate / plain_rate:.2f} of the plain loop")
    if args.gpu:
        if not torch.cuda.is_available():
            print("GPU MFU: not run (no GPU on this machine)")
        else:
            m = ray_stage(load_gpu_config(args.steps), cache, tmp / "gpu")
            print(f"GPU MFU (1B, bf16): {m.get('mfu', float('nan')):.1%} (target >= 40%)")
    return 0


def load_gpu_config(steps: int):
    from vidloom.training.config import load_train_config

    return load_train_config("dit-1B-gpu", [STAGE % steps, "workers.num_workers=1", "model.text_encoder=minilm",
                                            "model.dit_overrides={text_dim: 384, pooled_dim: 384}", "model.vae=tiny",
                                            "eval.sample_prompts=0", "ema_decay=null"])


if __name__ == "__main__":
    sys.exit(main())
