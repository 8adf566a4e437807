"""One sweep trial: one DiT size trained on one compute budget, as a Ray Tune function trainable.

A trial IS the training stage's loop at world size 1: the same seeded bucket plan
(`build_plan`), batches (`collate` of `read_items`), text dropout, flow-matching loss with
`step_generator`'s draws, optimizer (`make_optimizer`), LR schedule (`lr_lambda`) and held-out
validation (`StageEvaluator.validation_loss`: fixed t, fixed noise, so every size is measured
on exactly the same problem). Only DeepSpeed is left out: a 1-process trial needs no engine.

The stage's step count is set to the steps the budget pays for (`budget_steps`, worked out
on the driver from the plan), so a cosine schedule decays to the budget's end, as Chinchilla
matches the schedule to each run's horizon. The validation loss is reported with
``ray.tune.report`` at geometric fractions of the budget, against the FLOPs consumed so far;
each report carries a checkpoint (model, optimizer, scheduler, step), so a trial interrupted
with its sweep continues where it stopped, and a finished one is never trained again.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from vidloom.training.data import StagePlan, collate, read_items

MODEL_DIR = "model"  # a vidloom DiT export inside every trial checkpoint (load_dit reads it)
OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "trial_state.json"


@dataclass
class SweepContext:
    """What every trial shares, put in the object store once (`tune.with_parameters`)."""

    train: dict[str, Any]  # the one-stage TrainConfig, as JSON
    index_by_tier: dict[str, list]
    patch: tuple[int, int, int]
    cache: str
    vae_source: str
    meta: dict[str, Any]  # provenance written into every trial's weights
    init_weights: dict[int, str]  # width -> a DiT export to start from (image -> video)


def text_lengths(cache_files: list[str]) -> dict[tuple[str, int], int]:
    """Prompt length (tokens) of every sample of a latent cache: the batch's text length sets
    its FLOPs, so the budget's step count can be worked out before training."""
    import pyarrow.parquet as pq

    out = {}
    for file in cache_files:
        for row, n in enumerate(pq.read_table(file, columns=["text_len"]).column("text_len").to_pylist()):
            out[(file, row)] = int(n)
    return out


def budget_steps(plan: StagePlan, dit, budget: float, accumulation: int, lengths: dict[tuple[str, int], int],
                 fractions: list[float], max_steps: int = 10_000_000) -> tuple[int, float, int, list[int]]:
    """(steps, FLOPs, video tokens) of the shortest run of the plan that spends `budget`, and
    the report steps: the first step whose FLOPs reach each of `fractions` of the budget."""
    from vidloom.training.sweep.config import train_flops

    flops, tokens, step, marks = 0.0, 0, 0, set()
    pending = sorted(fractions)
    while flops < budget:
        if step >= max_steps:
            raise ValueError(f"budget {budget:.3g} FLOPs needs more than {max_steps} steps")
        for m in range(accumulation):
            b = plan.batch(step * accumulation + m)
            per_sample = _video_tokens(b.bucket, dit.patch_size)
            text = max(lengths[item] for item in b.items)
            flops += train_flops(dit, per_sample, text, b.size)
            tokens += per_sample * b.size
        step += 1
        while pending and flops >= pending[0] * budget:
            marks.add(step)
            pending.pop(0)
    return step, flops, tokens, sorted(marks | {step})


def _video_tokens(latent_shape, patch) -> int:
    """Patches of one latent (frames, height, width)."""
    return (latent_shape[-3] // patch[0]) * (latent_shape[-2] // patch[1]) * (latent_shape[-1] // patch[2])


class _Samples:
    """Decoded samples by (file, row), kept in memory up to `capacity` (a small cache is read
    once; a big one streams through)."""

    def __init__(self, capacity: int = 20_000):
        self.capacity, self.items = capacity, OrderedDict()

    def batch(self, items) -> dict[str, torch.Tensor]:
        missing = [it for it in items if it not in self.items]
        if missing:
            for it, sample in zip(missing, read_items([f for f, _ in missing], [r for _, r in missing])):
                self.items[it] = sample
                if len(self.items) > self.capacity:
                    self.items.popitem(last=False)
        return {k: torch.from_numpy(v) for k, v in collate([self.items[it] for it in items]).items()}


def _save(folder: Path, model, optimizer, scheduler, state: dict[str, Any], meta: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    from vidloom.models.dit import save_dit

    save_dit(model, folder / MODEL_DIR, meta=meta)
    opt = optimizer.state_dict()
    tensors = {f"{i}.{k}": v.detach().clone().contiguous() for i, s in opt["state"].items() for k, v in s.items()
               if torch.is_tensor(v)}
    save_file(tensors, str(folder / OPTIMIZER_FILE))
    (folder / STATE_FILE).write_text(json.dumps({**state, "param_groups": opt["param_groups"],
                                                 "scheduler": scheduler.state_dict()}))


def complete_checkpoint(folder: Path) -> Path | None:
    """The checkpoint to resume from: `folder`, the one Tune names, when it is whole; else the
    trial's newest whole checkpoint beside it; None when there is none (start afresh).

    Tune snapshots the experiment every `TUNE_GLOBAL_CHECKPOINT_S` (2 s here) while a trial
    reports every few hundred ms and keeps one checkpoint, so a sweep killed between two
    snapshots is resumed from a checkpoint that was since replaced and deleted. The state file is
    written last (`_save`), so a folder holding it is whole; later steps reported twice are
    de-duplicated by `experiment._reports`."""
    if (folder / STATE_FILE).exists():
        return folder
    whole = sorted(p for p in folder.parent.glob("checkpoint_*") if (p / STATE_FILE).exists())
    return whole[-1] if whole else None


def _restore(folder: Path, model, optimizer, scheduler) -> dict[str, Any]:
    from safetensors.torch import load_file

    weights = load_file(str(folder / MODEL_DIR / "model.safetensors"))
    model.load_state_dict(weights)
    state = json.loads((folder / STATE_FILE).read_text())
    per_param: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in load_file(str(folder / OPTIMIZER_FILE)).items():
        i, name = key.split(".", 1)
        per_param.setdefault(int(i), {})[name] = value
    optimizer.load_state_dict({"state": per_param, "param_groups": state.pop("param_groups")})
    scheduler.load_state_dict(state.pop("scheduler"))
    return state


def sweep_trial(config: dict[str, Any], context: SweepContext) -> None:
    """Ray Tune function trainable: train `config['trial']` (width, budget, steps, report
    steps) to its budget; `config['family']` and `config['threads']` come from the sweep."""
    import tempfile

    import ray.tune

    from vidloom.models.sampling import FlowMatchingConfig, flow_matching_loss, sample_t
    from vidloom.training.config import TrainConfig
    from vidloom.training.data import build_plan, with_text_dropout
    from vidloom.training.dit_loop import build_student, step_generator
    from vidloom.training.engine import lr_lambda, make_optimizer
    from vidloom.training.evaluation import StageEvaluator

    spec = config["trial"]
    threads = max(1, int(config.get("threads", 1)))
    torch.set_num_threads(threads)
    train = TrainConfig.model_validate(context.train)
    width, budget, steps = int(spec["width"]), float(spec["budget"]), int(spec["steps"])
    from vidloom.training.sweep.config import FamilySettings, parameter_count

    family = FamilySettings.model_validate(config["family"])
    train = train.model_copy(update={"model": train.model.model_copy(
        update={"dit_overrides": {**train.model.dit_overrides, **family.shape(width)}})})
    stage = train.stages[0].model_copy(update={"steps": steps})
    torch.manual_seed(train.seed)
    device = torch.device("cuda" if float(config.get("gpus", 0)) > 0 and torch.cuda.is_available() else "cpu")
    model = build_student(train, stage, context.init_weights.get(width)).to(device)
    model.train()
    optimizer = make_optimizer([p for p in model.parameters() if p.requires_grad], train, stage.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(stage))
    dit, patch = model.config, model.config.patch_size
    params = parameter_count(dit)

    state = {"step": 0, "flops": 0.0, "tokens": 0, "seconds": 0.0, "reported": 0}
    checkpoint = ray.tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            if (whole := complete_checkpoint(Path(folder))) is not None:
                state = _restore(whole, model, optimizer, scheduler)
    if state["step"] >= steps:
        return  # finished before the sweep was interrupted: nothing to train again

    plan = build_plan(stage, context.index_by_tier, context.patch, train.seed, train.eval.holdout)
    evaluator = StageEvaluator(train, stage, {"stage_dir": tempfile.gettempdir(), "init": None, "export_meta": {},
                                              "vae_source": context.vae_source, "cache": context.cache,
                                              "holdout": plan.holdout},
                                SimpleNamespace(module=model if device.type == "cpu" else _OnDevice(model, device)), 0)
    null = evaluator.null_text
    flow = FlowMatchingConfig(stage.flow.t_sampling, stage.flow.logit_mean, stage.flow.logit_std, stage.flow.shift)
    samples, accumulation = _Samples(), train.gradient_accumulation
    marks = set(spec["marks"])  # report steps, planned on the driver (`budget_steps`)
    train_losses: list[float] = []
    t0 = time.perf_counter() - state["seconds"]
    for step in range(state["step"], steps):
        for m in range(accumulation):
            planned = plan.batch(step * accumulation + m)
            gen = step_generator(train.seed, step, 0, m)
            batch = with_text_dropout(samples.batch(planned.items), *null, stage.flow.text_dropout, gen)
            # t and noise drawn on the CPU in flow_matching_loss's own order: the same draws as
            # the training loop's, whatever the device.
            t = sample_t(batch["latent"].shape[0], flow, generator=gen)
            noise = torch.randn(batch["latent"].shape, generator=gen)
            batch = {k: v.to(device) for k, v in batch.items()}
            with torch.autocast(device.type, torch.bfloat16, enabled=train.precision == "bf16"):
                loss = flow_matching_loss(model, batch["latent"], batch["text_states"], batch["text_mask"],
                                          batch["pooled"], config=flow, t=t, noise=noise.to(device)).loss
            (loss / accumulation).backward()
            per_sample = _video_tokens(batch["latent"].shape, patch)
            state["flops"] += _measured(dit, per_sample, batch)
            state["tokens"] += per_sample * int(batch["latent"].shape[0])
            train_losses.append(float(loss.detach()))
        if train.optimizer.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), train.optimizer.grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        done = step + 1
        if done not in marks:
            continue
        state.update(step=done, seconds=time.perf_counter() - t0, reported=state["reported"] + 1)
        val = evaluator.validation_loss()
        metrics = {"loss": val["val_loss"], "train_loss": sum(train_losses) / max(1, len(train_losses)),
                   "flops": state["flops"], "tokens": state["tokens"], "step": done, "steps": steps,
                   "params": params, "width": width, "budget": budget, "seconds": state["seconds"],
                   "lr": scheduler.get_last_lr()[0], "finished": done == steps}
        train_losses = []
        with tempfile.TemporaryDirectory() as folder:
            _save(Path(folder), model, optimizer, scheduler, state,
                  {**context.meta, "sweep_trial": {"width": width, "budget": budget, "step": done, "steps": steps,
                                                   "flops": state["flops"], "tokens": state["tokens"]}})
            ray.tune.report(metrics, checkpoint=ray.tune.Checkpoint.from_directory(folder))


class _OnDevice(torch.nn.Module):
    """The model seen from CPU tensors (the held-out batches): inputs go to the model's
    device, the prediction comes back to the CPU."""

    def __init__(self, model: torch.nn.Module, device: torch.device):
        super().__init__()
        self.model, self.device = model, device

    def forward(self, *args):
        return self.model(*(a.to(self.device) if torch.is_tensor(a) else a for a in args)).float().cpu()


def _measured(dit, per_sample: int, batch: dict[str, torch.Tensor]) -> float:
    """FLOPs the step really spent: the batch's own text length (after dropout padding)."""
    from vidloom.training.sweep.config import train_flops

    return train_flops(dit, per_sample, int(batch["text_states"].shape[1]), int(batch["latent"].shape[0]))
