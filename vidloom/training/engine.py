"""Wrapping a model for training: DeepSpeed (ZeRO 0-3, offload, bf16), the LR schedule, EMA,
and checkpoints that hold everything a resume needs (model, optimizer, scheduler, EMA, step).

Kept apart from the loop (torchtitan's style): the loop only calls `wrap`, `save`, `restore`.
"""

from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vidloom.training.config import StageConfig, TrainConfig

CHECKPOINT_TAG = "ckpt"
EMA_FILE = "ema.safetensors"


def deepspeed_config(cfg: TrainConfig, micro_batch: int = 1) -> dict[str, Any]:
    """The DeepSpeed config of a run (the optimizer is ours, so nothing is JIT-compiled on CPU)."""
    zero: dict[str, Any] = {"stage": cfg.deepspeed.zero_stage}
    if cfg.deepspeed.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": False}
    if cfg.deepspeed.zero_stage == 3:
        # Gather a consolidated 16-bit state dict on save (used by exports).
        zero["stage3_gather_16bit_weights_on_model_save"] = True
    ds: dict[str, Any] = {
        "train_micro_batch_size_per_gpu": micro_batch,
        "gradient_accumulation_steps": cfg.gradient_accumulation,
        "zero_optimization": zero,
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
        "zero_allow_untested_optimizer": True,
    }
    if cfg.optimizer.grad_clip > 0:
        ds["gradient_clipping"] = cfg.optimizer.grad_clip
    if cfg.precision == "bf16":
        ds["bf16"] = {"enabled": True}
    return ds


def lr_lambda(stage: StageConfig):
    """Multiplier of the stage's LR at each optimizer step: linear warm-up, then constant or cosine."""
    warm, total = stage.warmup_steps, stage.steps

    def f(step: int) -> float:
        if warm and step < warm:
            return (step + 1) / warm
        if stage.schedule == "cosine":
            progress = (step - warm) / max(1, total - warm)
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
        return 1.0

    return f


def make_optimizer(params, cfg: TrainConfig, lr: float):
    """AdamW; DeepSpeed's CPU Adam when the optimizer state is offloaded (it requires it)."""
    o = cfg.optimizer
    if cfg.deepspeed.offload_optimizer:
        from deepspeed.ops.adam import DeepSpeedCPUAdam

        return DeepSpeedCPUAdam(params, lr=lr, betas=o.betas, eps=o.eps, weight_decay=o.weight_decay, adamw_mode=True)
    return torch.optim.AdamW(params, lr=lr, betas=o.betas, eps=o.eps, weight_decay=o.weight_decay)


def wrap(model: nn.Module, cfg: TrainConfig, stage: StageConfig, micro_batch: int = 1):
    """``deepspeed.initialize`` with our optimizer and schedule; returns the engine."""
    import deepspeed

    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(trainable, cfg, stage.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(stage))
    engine, _, _, _ = deepspeed.initialize(
        model=model, optimizer=optimizer, lr_scheduler=scheduler, config=deepspeed_config(cfg, micro_batch),
        dist_init_required=False,
    )
    return engine


@contextlib.contextmanager
def full_parameters(engine, modifier_rank: int | None = None):
    """Inside: every parameter of the engine's module is whole (gathers ZeRO-3 partitions)."""
    if getattr(engine, "zero_optimization_stage", lambda: 0)() == 3:
        import deepspeed

        with deepspeed.zero.GatheredParameters(list(engine.module.parameters()), modifier_rank=modifier_rank):
            yield
    else:
        yield


class EMA:
    """Exponential moving average of the trainable weights, kept in fp32 on every rank."""

    def __init__(self, engine, decay: float):
        self.decay = decay
        with full_parameters(engine):
            self.shadow = {n: p.detach().float().clone() for n, p in engine.module.named_parameters() if p.requires_grad}

    @torch.no_grad()
    def update(self, engine) -> None:
        with full_parameters(engine):
            for n, p in engine.module.named_parameters():
                if n in self.shadow:
                    self.shadow[n].lerp_(p.detach().float(), 1.0 - self.decay)

    def state_dict(self, full_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """`full_state` with the averaged weights in place of the trained ones."""
        return {k: (self.shadow[k].to(v.dtype) if k in self.shadow else v) for k, v in full_state.items()}


def backward_and_step(engine, loss: torch.Tensor) -> float | None:
    """``engine.backward`` + ``engine.step``; returns the global gradient norm of an optimizer
    step (DeepSpeed's own under ZeRO 2/3, measured here before the step under ZeRO 0/1)."""
    engine.backward(loss)
    norm = None
    if engine.is_gradient_accumulation_boundary() and engine.zero_optimization_stage() < 2:
        grads = [p.grad.detach().float().norm() for p in engine.module.parameters() if p.grad is not None]
        norm = float(torch.stack(grads).norm()) if grads else None
    engine.step()
    if norm is None:
        value = engine.get_global_grad_norm()
        norm = float(value) if value is not None else None
    return norm


def full_state_dict(engine) -> dict[str, torch.Tensor]:
    """The whole model's weights on every rank (gathered under ZeRO-3), on the CPU, fp32."""
    with full_parameters(engine):
        return {k: v.detach().float().cpu().clone() for k, v in engine.module.state_dict().items()}


def save(engine, folder: str | Path, step: int, ema: EMA | None, extra: dict[str, Any] | None = None) -> None:
    """Every rank writes its DeepSpeed shards (model, optimizer, scheduler) into `folder`; rank 0
    adds the EMA weights. Ray Train merges the ranks' folders into one checkpoint."""
    from safetensors.torch import save_file

    folder = Path(folder)
    engine.save_checkpoint(str(folder), tag=CHECKPOINT_TAG, client_state={"step": step, **(extra or {})})
    if ema is not None and engine.global_rank == 0:
        save_file({k: v.contiguous() for k, v in ema.shadow.items()}, str(folder / EMA_FILE))


def restore(engine, folder: str | Path, ema: EMA | None) -> int:
    """Load a checkpoint written by `save`; returns the optimizer step to continue from.

    DeepSpeed's own files are torch pickles written by this run into its own storage; the
    EMA and every export are safetensors."""
    from safetensors.torch import load_file

    folder = Path(folder)
    _, client = engine.load_checkpoint(str(folder), tag=CHECKPOINT_TAG, load_module_strict=True)
    if ema is not None and (folder / EMA_FILE).exists():
        ema.shadow = {k: v.float() for k, v in load_file(str(folder / EMA_FILE)).items()}
    return int((client or {}).get("step", 0))


def stage_context(config: dict[str, Any]) -> tuple[TrainConfig, StageConfig, int, int, Path]:
    """In a Ray Train worker: (run config, stage, rank, world size, stage folder); seeds torch."""
    import ray.train

    cfg = TrainConfig.model_validate(config["train"])
    ctx = ray.train.get_context()
    torch.manual_seed(cfg.seed)
    return cfg, cfg.stages[config["stage_index"]], ctx.get_world_rank(), ctx.get_world_size(), Path(config["stage_dir"])


def report(engine, done: int, steps: int, every: int, ema: EMA | None, metrics: dict[str, Any],
           evaluated: bool, save_extra=None) -> bool:
    """`ray.train.report` on every rank: with a checkpoint every `every` steps and at the end
    (`save_extra(folder)` adds files), without one when there are new validation figures.
    Returns whether a checkpoint was written."""
    import tempfile

    import ray.train

    if done % every == 0 or done == steps:
        with tempfile.TemporaryDirectory() as folder:
            save(engine, folder, done, ema)
            if save_extra is not None:
                save_extra(Path(folder))
            ray.train.report({**metrics, "step": done}, checkpoint=ray.train.Checkpoint.from_directory(folder))
        return True
    if evaluated:
        ray.train.report({**metrics, "step": done})
    return False


def resume(engine, ema: EMA | None, load_extra=None) -> int:
    """Restore the stage's last checkpoint (if Ray Train has one); returns the step to start at."""
    import ray.train

    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        return 0
    with checkpoint.as_directory() as folder:
        start = restore(engine, folder, ema)
        if load_extra is not None:
            load_extra(Path(folder))
    return start


def maybe_inject_fault(cfg: TrainConfig, stage: StageConfig, step: int, rank: int, marker_dir: Path) -> None:
    """The test-only fault: the configured rank dies at the configured step, once per run."""
    f = cfg.fault
    if f.stage != stage.name or f.step != step or f.rank != rank:
        return
    marker = marker_dir / f"fault-injected-{stage.name}"
    if marker.exists():
        return
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(str(step))
    os._exit(17)
