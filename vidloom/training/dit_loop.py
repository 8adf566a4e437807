"""The DiT training loop of one stage, run by every Ray Train worker:
build the model → wrap it with DeepSpeed → resume → loop over the plan's batches.

Stage kinds share this loop: ``image``/``joint``/``sft`` regress the flow-matching velocity;
``distill`` regresses a frozen teacher's classifier-free-guided velocity with the guidance
scale fed to the student's guidance embedding (the report's guidance distillation).
"""

from __future__ import annotations

import time
from typing import Any

import torch

from vidloom.models.dit import HunyuanVideoDiT, forward_flops, load_dit
from vidloom.models.sampling import FlowMatchingConfig, flow_matching_loss, interpolate, sample_t
from vidloom.training import engine as eng
from vidloom.training.config import StageConfig, TrainConfig
from vidloom.training.data import iterate_batches, with_text_dropout
from vidloom.training.reporting import StepReporter


def step_generator(seed: int, step: int, rank: int, micro: int = 0) -> torch.Generator:
    """Noise, t and dropout of a micro-batch depend only on (seed, step, rank, micro), so a
    resumed run draws exactly what the interrupted one would have."""
    return torch.Generator().manual_seed(((seed * 1_000_003 + step) * 4099 + rank) * 131 + micro)


def build_student(cfg: TrainConfig, stage: StageConfig, init: str | None) -> HunyuanVideoDiT:
    """The stage's trainable DiT: the init weights (previous stage) or a fresh tier model."""
    distill = stage.kind == "distill"
    if init is None:
        overrides = dict(cfg.model.dit_overrides)
        if distill:
            overrides["guidance_embed"] = True
        return load_dit(cfg.model.dit, seed=cfg.seed, **overrides)
    model = load_dit(init)
    if distill and not model.config.guidance_embed:
        # The student is the teacher plus a guidance embedding whose output layer starts at
        # zero, so at step 0 it predicts exactly the teacher's conditional velocity.
        student = load_dit(model.config.with_overrides(guidance_embed=True), seed=cfg.seed)
        missing, _ = student.load_state_dict(model.state_dict(), strict=False)
        assert all(k.startswith("guidance_in.") for k in missing), missing
        torch.nn.init.zeros_(student.guidance_in.mlp[2].weight)
        torch.nn.init.zeros_(student.guidance_in.mlp[2].bias)
        return student
    return model


def distill_loss(student, teacher, batch, null, stage: StageConfig, gen: torch.Generator) -> torch.Tensor:
    """MSE between the student's one-pass prediction at guidance w and the teacher's CFG output."""
    x0 = batch["latent"]
    b = x0.shape[0]
    t = sample_t(b, FlowMatchingConfig(stage.flow.t_sampling, stage.flow.logit_mean, stage.flow.logit_std,
                                       stage.flow.shift), generator=gen)
    noise = torch.randn(x0.shape, generator=gen)
    w = stage.distill.guidance_min + (stage.distill.guidance_max - stage.distill.guidance_min) * torch.rand(b, generator=gen)
    x_t = interpolate(x0, noise, t)
    with torch.no_grad():
        v_pos = teacher(x_t, t * 1000, batch["text_states"], batch["text_mask"], batch["pooled"])
        n_states, n_pooled = null
        v_neg = teacher(x_t, t * 1000, n_states.expand(b, -1, -1), None, n_pooled.expand(b, -1))  # (n,D)->(b,n,D)
        target = v_neg + w.view(-1, 1, 1, 1, 1) * (v_pos - v_neg)
    pred = student(x_t, t * 1000, batch["text_states"], batch["text_mask"], batch["pooled"], w)
    return torch.nn.functional.mse_loss(pred.float(), target.float())


def train_dit_stage(config: dict[str, Any]) -> None:
    """Ray Train's ``train_loop_per_worker`` for a DiT stage (`config` from the runner)."""
    import ray.train

    from vidloom.training.evaluation import StageEvaluator, load_teacher

    cfg, stage, rank, world, stage_dir = eng.stage_context(config)
    model = build_student(cfg, stage, config["init"])
    if cfg.activation_checkpointing:
        model.set_gradient_checkpointing(True)
    model.use_fast_path(cfg.fast_path)
    data_rank = rank
    if cfg.sequence_parallel > 1:  # Ulysses: an SP group shares one batch, sharded over its tokens
        from vidloom.models.dit.parallel import enable_sequence_parallel, parallel_groups

        groups = parallel_groups(cfg.sequence_parallel)
        enable_sequence_parallel(model, groups.sp_group)
        data_rank = groups.dp_rank
    teacher = load_teacher(config["teacher"]) if stage.kind == "distill" else None
    engine = eng.wrap(model, cfg, stage)
    ema = eng.EMA(engine, cfg.ema_decay) if cfg.ema_decay is not None else None
    start = eng.resume(engine, ema)
    pixel_encoder = None
    if config.get("captions") is not None:  # data_mode: pixels: encode each batch here
        from vidloom.training.pixels import OnTheFlyEncoder

        pixel_encoder = OnTheFlyEncoder(config["vae_source"], cfg.model.text_encoder)
    evaluator = StageEvaluator(cfg, stage, config, engine, rank, teacher, pixel_encoder)
    evaluator.evaluate_initial(start)
    reporter = StepReporter(cfg, stage, stage_dir, rank, world, start)
    null = evaluator.null_text
    flow = FlowMatchingConfig(stage.flow.t_sampling, stage.flow.logit_mean, stage.flow.logit_std, stage.flow.shift)
    patch = model.config.patch_size

    batches = iterate_batches(ray.train.get_dataset_shard(f"rank{data_rank}"), start, cfg.gradient_accumulation)
    for step, micro_batches in batches:
        eng.maybe_inject_fault(cfg, stage, step, rank, stage_dir)
        t0 = time.perf_counter()
        tokens, flops = 0, 0.0
        for m, batch in enumerate(micro_batches):
            if pixel_encoder is not None:
                batch = pixel_encoder.batch(batch)
            gen = step_generator(cfg.seed, step, data_rank, m)  # same t, noise, dropout in an SP group
            batch = with_text_dropout(batch, *null, stage.flow.text_dropout, gen)
            if teacher is not None:
                loss = distill_loss(engine, teacher, batch, null, stage, gen)
            else:
                loss = flow_matching_loss(engine, batch["latent"], batch["text_states"], batch["text_mask"],
                                          batch["pooled"], config=flow, generator=gen).loss
            grad_norm = eng.backward_and_step(engine, loss)
            lat = batch["latent"].shape
            per_sample = (lat[2] // patch[0]) * (lat[3] // patch[1]) * (lat[4] // patch[2])
            tokens += lat[0] * per_sample / cfg.sequence_parallel  # each rank holds 1/P of the tokens
            # forward + backward ≈ 3 forwards (a distill step adds the teacher's two forwards)
            passes = 5 if teacher is not None else 3
            flops += passes * lat[0] * forward_flops(model.config, per_sample, int(batch["text_states"].shape[1])) \
                / cfg.sequence_parallel
        if ema is not None:
            ema.update(engine)
        done = step + 1
        reporter.step(done, float(loss.detach()), engine, tokens, time.perf_counter() - t0, flops, grad_norm)
        metrics = evaluator.maybe_evaluate(done, ema)
        reporter.evaluation(done, metrics)
        if eng.report(engine, done, stage.steps, cfg.checkpoint.every, ema, {**reporter.metrics(), **metrics},
                      bool(metrics)):
            reporter.checkpointed(done)
    evaluator.export_final(ema)
    reporter.close()
