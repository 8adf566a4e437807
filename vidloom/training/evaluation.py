"""Validation, sample videos and the stage export of a DiT stage.

* Validation loss: held-out latents at fixed noise levels with fixed noise, so numbers from
  different steps (and different runs) compare. A distill stage measures instead how far the
  student's one-pass prediction is from the teacher's CFG prediction.
* Samples: held-out prompts generated with the flow-matching sampler, decoded with the VAE,
  written as ``<stage>/samples/step<k>-<i>.mp4`` and a PNG frame grid.
* Export: ``<stage>/final/`` (EMA weights where kept) and ``<stage>/weights/`` (the trained
  weights the next stage starts from), both vidloom DiT exports with provenance.

All ranks run the model (ZeRO-3 gathers parameters collectively); rank 0 writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from vidloom.models.dit import load_dit, save_dit
from vidloom.models.sampling import FlowMatchingConfig, SamplerConfig, euler_sample, flow_matching_loss, interpolate
from vidloom.models.text.base import TextEmbeddings
from vidloom.training import engine as eng
from vidloom.training.config import StageConfig, TrainConfig
from vidloom.training.data import collate, read_items

FINAL, WEIGHTS, SAMPLES = "final", "weights", "samples"


class StageEvaluator:
    def __init__(self, cfg: TrainConfig, stage: StageConfig, config: dict[str, Any], engine, rank: int,
                 teacher=None, pixel_encoder=None):
        from vidloom.training.latents import LatentCache

        self.cfg, self.stage, self.engine, self.rank, self.teacher = cfg, stage, engine, rank, teacher
        self.stage_dir = Path(config["stage_dir"])
        self.init_record = _init_record(config.get("init"))
        self.meta = config["export_meta"]
        self.vae_source = config["vae_source"]
        held = config["holdout"]
        if pixel_encoder is None:
            cache = LatentCache.open(config["cache"])
            states, pooled = cache.null_text()
            self.null_text = (states.float(), pooled.float())
            self.scaling = float(cache.meta["vae"]["scaling_factor"])
            self.holdout = read_items([f for _, f, _ in held], [r for _, _, r in held]) if held else []
        else:  # DiT from pixels: held-out clips encoded here, centre-cropped
            from vidloom.training.pixels import load_clip

            self.null_text = pixel_encoder.null_text()
            self.scaling = pixel_encoder.scaling
            crop = tuple(config["crops"][stage.datasets[0].tier])
            self.holdout = [pixel_encoder.sample(load_clip(path, crop, cfg.seed, 0, centre=True),
                                                 config["captions"].get(path, "")) for _, path, _ in held]
        self.history: list[dict[str, float]] = []
        self.initial: dict[str, float] = {}

    def evaluate_initial(self, start: int) -> dict[str, float]:
        """Validation of the starting weights (a fresh stage only): the baseline a stage must beat."""
        if start == 0 and self.holdout:
            self.initial = {f"{k}_initial": v for k, v in self.validation_loss().items()}
        return self.initial

    # -- validation ---------------------------------------------------------------------------
    def _batches(self):
        groups: dict[tuple, list[dict]] = {}
        for s in self.holdout:
            groups.setdefault(tuple(s["latent"].shape), []).append(s)
        for key in sorted(groups):
            b = collate(groups[key])
            yield {k: torch.from_numpy(v) for k, v in b.items()}

    @torch.no_grad()
    def validation_loss(self) -> dict[str, float]:
        model = self.engine.module
        was_training = model.training
        model.eval()
        out: dict[str, float] = {}
        for t_value in self.cfg.eval.t_values:
            total, count = 0.0, 0
            for i, batch in enumerate(self._batches()):
                gen = torch.Generator().manual_seed(self.cfg.seed * 7919 + i)
                x0 = batch["latent"]
                t = torch.full((x0.shape[0],), float(t_value))
                noise = torch.randn(x0.shape, generator=gen)
                if self.teacher is not None:
                    loss = self._distill_gap(model, batch, t, noise)
                else:
                    loss = flow_matching_loss(model, x0, batch["text_states"], batch["text_mask"], batch["pooled"],
                                              config=FlowMatchingConfig(), t=t, noise=noise).loss
                total += float(loss) * x0.shape[0]
                count += x0.shape[0]
            if count:
                out[f"val_loss_t{t_value:g}"] = total / count
        if out:
            out["val_loss"] = sum(out.values()) / len(out)
        model.train(was_training)
        return out

    def _distill_gap(self, student, batch, t, noise, guidance: float | None = None) -> torch.Tensor:
        """MSE between the student's guided one-pass output and the teacher's CFG output."""
        w = float(guidance if guidance is not None else self.cfg.eval.sample_guidance)
        b = noise.shape[0]
        x_t = interpolate(batch["latent"], noise, t)
        states, pooled = self.null_text
        v_pos = self.teacher(x_t, t * 1000, batch["text_states"], batch["text_mask"], batch["pooled"])
        v_neg = self.teacher(x_t, t * 1000, states.expand(b, -1, -1), None, pooled.expand(b, -1))
        target = v_neg + w * (v_pos - v_neg)
        pred = student(x_t, t * 1000, batch["text_states"], batch["text_mask"], batch["pooled"],
                       torch.full((b,), w))
        return torch.nn.functional.mse_loss(pred.float(), target.float())

    def maybe_evaluate(self, done: int, ema) -> dict[str, float]:
        """Validation every `eval.every` steps and at the end; samples as configured."""
        last = done == self.stage.steps
        metrics: dict[str, float] = {}
        if self.holdout and (done % self.cfg.eval.every == 0 or last):
            metrics = {**self.validation_loss(), **self.initial}
            self.history.append({"step": done, **metrics})
        every = self.cfg.eval.samples_every
        if self.holdout and self.cfg.eval.sample_prompts and ((every and done % every == 0) or last):
            self.write_samples(done)
        return metrics

    # -- samples ------------------------------------------------------------------------------
    @torch.no_grad()
    def write_samples(self, done: int) -> list[Path]:
        from vidloom.models import load_vae
        from vidloom.platform.video_out import frame_grid, to_uint8_frames, write_mp4, write_png

        model = self.engine.module
        was_training = model.training
        model.eval()
        distilled = bool(model.config.guidance_embed)
        g = self.cfg.eval.sample_guidance
        sampler = SamplerConfig(num_steps=self.cfg.eval.sample_steps, embedded_guidance_scale=g if distilled else None,
                                cfg_scale=1.0 if distilled else g)
        states, pooled = self.null_text
        negative = TextEmbeddings(states[None], torch.ones(1, states.shape[0], dtype=torch.int64), pooled[None])
        vae = load_vae(self.vae_source).eval() if self.rank == 0 else None
        written = []
        for i, s in enumerate(self.holdout[: self.cfg.eval.sample_prompts]):
            n = s["text_states"].shape[0]
            cond = TextEmbeddings(s["text_states"][None].float(), torch.ones(1, n, dtype=torch.int64), s["pooled"][None].float())
            gen = torch.Generator().manual_seed(self.cfg.seed * 31 + i)
            noise = torch.randn((1, *s["latent"].shape), generator=gen)
            latent = euler_sample(model, noise, cond, config=sampler, negative=None if distilled else negative)
            if vae is None:
                continue
            video = vae.decode(latent / self.scaling)[0].clamp(-1, 1).numpy()
            frames = to_uint8_frames(video)
            base = self.stage_dir / SAMPLES / f"step{done:06d}-{i}"
            if frames.shape[1] % 2 == 0 and frames.shape[2] % 2 == 0:
                written.append(write_mp4(frames, base.with_suffix(".mp4"), fps=24.0))
            written.append(write_png(frame_grid(frames), base.with_suffix(".png")))
            (base.parent / f"{base.name}.txt").write_text(s.get("caption") or "")
        model.train(was_training)
        return written

    # -- export -------------------------------------------------------------------------------
    def export_final(self, ema) -> None:
        """Rank 0 writes ``final/`` (EMA where kept) and ``weights/`` (trained weights)."""
        state = eng.full_state_dict(self.engine)  # collective under ZeRO-3
        if self.rank != 0:
            return
        model = self.engine.module
        meta = {**self.meta, "training": {**self.meta.get("training", {}), "validation": self.history[-1:] or None,
                                          "init": self.init_record}}
        save_dit(model, self.stage_dir / WEIGHTS, meta=meta, state=state)
        save_dit(model, self.stage_dir / FINAL, meta=meta, state=ema.state_dict(state) if ema is not None else state)


def _init_record(init: str | None) -> dict[str, str] | None:
    """Which weights the stage started from: their folder and the digest of their file."""
    from vidloom.platform.weights import file_digest

    if not init:
        return None
    weights = Path(init) / "model.safetensors"
    return {"source": str(init), "digest": file_digest(weights) if weights.is_file() else "unknown"}


def load_teacher(path: str) -> torch.nn.Module:
    """The frozen teacher of a distill stage (the previous stage's final weights)."""
    return load_dit(path).eval().requires_grad_(False)
