"""The driver of a training run: validate everything against the data, then run each stage as
its own Ray Train run (``<run>-<stage>``) and export the result.

Run folder::

    OUT/config.yaml            the resolved config         OUT/summary.json   what ran, figures
    OUT/<stage>/fingerprint    identity of the stage       OUT/<stage>/done.json  finished
    OUT/<stage>/progress.json  live progress (rank 0)      OUT/<stage>/samples/   mp4 + PNG grids
    OUT/<stage>/final/         export (EMA weights)        OUT/<stage>/weights/   trained weights
    OUT/ray/<run>-<stage>/     Ray Train checkpoints       OUT/final/             the last stage's export
    OUT/tensorboard/<stage>/   event files

A stage whose ``done.json`` carries its current fingerprint is skipped; one whose fingerprint
changed (its settings, the shared settings or an earlier stage changed) starts again from
scratch, and so does every stage after it; an interrupted one resumes from its last
checkpoint (Ray Train restores the run of the same name and storage path).
"""

from __future__ import annotations

import json
import shutil
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vidloom.platform.config import ConfigError, dump_config
from vidloom.training.config import StageConfig, TrainConfig
from vidloom.training.data import build_plan, ingest_config, latent_key, rank_datasets
from vidloom.training.reporting import PROGRESS_FILE


@dataclass
class StageResult:
    name: str
    kind: str
    status: str  # trained | resumed | skipped
    steps: int
    seconds: float = 0.0
    metrics: dict[str, Any] = field(default_factory=dict)
    skipped_samples: dict[str, int] = field(default_factory=dict)
    export: str = ""


@dataclass
class TrainSummary:
    out: str
    target: str
    stages: list[StageResult]
    final: str
    notes: list[str] = field(default_factory=list)

    def to_text(self) -> str:
        lines = [f"training run {self.out} ({self.target})"]
        for s in self.stages:
            figures = ", ".join(f"{k} {s.metrics[k]:.4g}" for k in ("val_loss", "val_loss_initial", "val_psnr",
                                                                    "val_psnr_initial") if k in s.metrics)
            lines.append(f"  {s.name:<12} {s.kind:<8} {s.status:<8} {s.steps} steps  {s.seconds:6.1f} s  {figures}")
        lines += [f"  note: {n}" for n in self.notes]
        lines.append(f"final model: {self.final}")
        return "\n".join(lines)


# -- validation (driver, before any worker) ---------------------------------------------------

@dataclass
class Prepared:
    """A run checked against its data: what the driver hands to each stage's trainer."""

    cfg: TrainConfig
    index_by_tier: dict[str, list]
    patch: tuple[int, int, int]
    meta: dict[str, Any]
    vae_source: str
    notes: list[str]
    loop: Any  # train_loop_per_worker
    loader: Any = None  # Ray Data callable class: plan rows -> batches
    loader_args: tuple = ()
    extra: dict[str, Any] = field(default_factory=dict)  # more train_loop_config entries


def _dit_config(cfg: TrainConfig):
    from vidloom.models.dit import CONFIGS, get_config
    from vidloom.models.dit.loading import read_dit_checkpoint

    overrides = dict(cfg.model.dit_overrides)
    try:
        if cfg.model.dit in CONFIGS:
            return get_config(cfg.model.dit, **overrides)
        from vidloom.platform.weights import resolve_weights

        config, _ = read_dit_checkpoint(resolve_weights(cfg.model.dit, "model.dit"), **overrides)
        return config
    except (TypeError, ValueError, KeyError) as exc:
        raise ConfigError(f"model.dit / model.dit_overrides: {exc}") from None


def prepare(cfg: TrainConfig, data: str) -> Prepared:
    """Check a DiT run against its data (a latent cache, or a curated folder with
    `data_mode: pixels`); every problem names its field."""
    from vidloom.models.text import build_text_encoder
    from vidloom.training.dit_loop import train_dit_stage
    from vidloom.training.latents import LatentCache, NotALatentCacheError, vae_digest

    problems: list[str] = []
    dit = _dit_config(cfg)
    try:
        digest = vae_digest(cfg.model.vae, cfg.seed)
    except Exception as exc:  # noqa: BLE001 - a missing VAE is a config problem
        raise ConfigError(f"model.vae: {cfg.model.vae!r} cannot be loaded: {exc}") from None
    try:
        encoder = build_text_encoder(cfg.model.text_encoder)
    except Exception as exc:  # noqa: BLE001 - missing weights name their setting
        raise ConfigError(f"model.text_encoder: {exc}") from None

    if cfg.data_mode == "pixels":  # encode on the fly: the VAE and encoder of the config
        from vidloom.models import load_vae
        from vidloom.training.pixels import PixelLoader, pixel_captions, pixel_index, stage_crop

        by_tier = pixel_index(cfg, data)
        crops = {ref.tier: stage_crop(st) for st in cfg.stages for ref in st.datasets}
        captions = pixel_captions(data, sorted(crops))
        vae_meta = {"source": cfg.model.vae, "digest": digest,
                    "latent_channels": load_vae(cfg.model.vae).config.latent_channels}
        text_meta = {"spec": cfg.model.text_encoder, **encoder.describe()}
        extra = {"captions": captions, "crops": {k: list(v) for k, v in crops.items()}}
        loader, loader_args = PixelLoader, (crops, cfg.seed, captions)
    else:
        try:
            cache = LatentCache.open(data)
        except NotALatentCacheError as exc:
            raise ConfigError(f"--data: {exc}") from None
        vae_meta, text_meta = cache.meta["vae"], dict(cache.meta["text_encoder"])
        if digest != vae_meta.get("digest"):
            problems.append(
                f"model.vae: {cfg.model.vae!r} (digest {digest}) is not the VAE the latent cache was made with "
                f"({vae_meta.get('source')!r}, digest {vae_meta.get('digest')}); set model.vae to it or precompute again")
        if encoder.encoder_id != text_meta.get("encoder_id"):
            problems.append(f"model.text_encoder: {encoder.encoder_id!r} is not the encoder of the latent cache "
                            f"({text_meta.get('encoder_id')!r})")
        by_tier = {}
        for r in cache.index().to_pylist():
            key = (r["latent_frames"], r["latent_height"], r["latent_width"])
            by_tier.setdefault(r["tier"], []).append((r["sample_id"], key, r["file"], int(r["row"])))
        extra, loader, loader_args = {"cache": str(cache.path)}, None, ()

    if (dit.text_dim, dit.pooled_dim) != (encoder.state_dim, encoder.pooled_dim):
        problems.append(
            f"model.dit_overrides: the DiT takes text {dit.text_dim}/{dit.pooled_dim} (text_dim/pooled_dim) but "
            f"{encoder.encoder_id} gives {encoder.state_dim}/{encoder.pooled_dim}; set text_dim and pooled_dim to match")
    if dit.heads % cfg.sequence_parallel:
        problems.append(f"sequence_parallel: {cfg.sequence_parallel} must divide the DiT's heads ({dit.heads})")
    if int(vae_meta.get("latent_channels", 16)) != dit.in_channels:
        problems.append(f"model.dit_overrides.in_channels: {dit.in_channels} but the VAE has "
                        f"{vae_meta.get('latent_channels')} latent channels")
    patch = tuple(dit.patch_size)
    for i, stage in enumerate(cfg.stages):
        for j, ref in enumerate(stage.datasets):
            if ref.tier not in by_tier:
                problems.append(f"stages[{i}].datasets[{j}].tier: {ref.tier!r} is not in the data "
                                f"(it has {sorted(by_tier)})")
        for k, entry in enumerate(stage.buckets.table):
            key = latent_key(entry.frames, entry.height, entry.width)
            if (entry.frames - 1) % 4:
                problems.append(f"stages[{i}].buckets.table[{k}].frames: {entry.frames} is not 4k+1")
            if entry.height % 16 or entry.width % 16 or any(a % p for a, p in zip(key, patch)):
                problems.append(f"stages[{i}].buckets.table[{k}]: {entry.width}x{entry.height} is not a multiple of "
                                f"16 px (the VAE's 8x and the DiT's {patch[1]}x patch)")
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))
    for i, stage in enumerate(cfg.stages):
        plan = build_plan(stage, by_tier, patch, cfg.seed, cfg.eval.holdout)
        if not plan.sources:
            raise ConfigError(f"stages[{i}].buckets: no sample of {[d.tier for d in stage.datasets]} fits the "
                              f"bucket table (left out: {plan.skipped}); add their sizes or set tokens_per_batch")

    shapes = [k for rows in by_tier.values() for _, k, _, _ in rows]
    limits = {"max_frames": max((t - 1) * 4 + 1 for t, _, _ in shapes), "max_height": max(h * 8 for _, h, _ in shapes),
              "max_width": max(w * 8 for _, _, w in shapes)} if shapes else {}
    meta = {"text_encoder": text_meta, "vae": {"source": vae_meta.get("source"), "digest": vae_meta.get("digest")},
            "limits": limits}
    return Prepared(cfg, by_tier, patch, meta, cfg.model.vae, [f"data: {cfg.data_mode}"], train_dit_stage,
                    loader, loader_args, extra)


# -- stages ------------------------------------------------------------------------------------

#: Serve defaults of a guidance-distilled export: the few-step setting benchmarks/generation.py
#: measured best for the distilled dit-small student (docs/benchmarks.md, "Generation"): 20 steps
#: at the report's few-step shift 17, 5.05x faster than 50-step true CFG end to end; shift 17
#: beat 7 at both 10 and 20 steps. Euler, because DPM-Solver++(2M) was no closer to the reference at
#: 10, 16 or 20 steps on that student (0.0-0.3 dB lower).
DISTILLED_STEPS, DISTILLED_SHIFT, DISTILLED_SOLVER = 20, 17.0, "euler"


def _sampling_meta(stage: StageConfig, guidance_embed: bool) -> dict[str, Any]:
    from vidloom.models.sampling import default_shift

    if stage.kind == "distill":
        steps, shift, solver = DISTILLED_STEPS, DISTILLED_SHIFT, DISTILLED_SOLVER
    else:
        steps, shift, solver = 50, default_shift(50), "euler"
    return {"guidance": "embedded" if guidance_embed else "cfg", "num_inference_steps": steps,
            "flow_shift": shift, "solver": solver, "guidance_scale": 6.0 if guidance_embed else 5.0}


def _init_paths(cfg: TrainConfig, i: int, out: Path) -> tuple[str | None, str | None]:
    """(weights the stage starts from, teacher of a distill stage)."""
    stage = cfg.stages[i]
    ref = stage.init_from
    if ref is None:
        init = None
    elif ref == "previous":
        init = str(out / cfg.stages[i - 1].name / "weights") if i > 0 else None
    elif ref in [s.name for s in cfg.stages]:
        init = str(out / ref / "weights")
    else:
        init = ref
    teacher = None
    if stage.kind == "distill":
        teacher = init.replace("/weights", "/final") if init and init.endswith("/weights") else init
    return init, teacher


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


class _ProgressLine:
    """One progress line per stage, fed by the stage's progress file (rank 0 writes it)."""

    def __init__(self, run: str, stage_dir: Path):
        self.label, self.file = run, stage_dir / PROGRESS_FILE
        self.tty = sys.stdout.isatty()
        self.stop = threading.Event()
        self.last_text, self.last_print = "", 0.0

    def _text(self) -> str | None:
        p = _read_json(self.file)
        if not p:
            return None
        eta = p.get("eta_s")
        eta_text = time.strftime("%H:%M:%S", time.gmtime(eta)) if eta is not None else "--:--:--"
        return (f"[{self.label}] step {p['step']}/{p['steps']}  loss {p.get('loss', float('nan')):.4f}  "
                f"lr {p.get('lr', 0):.2e}  {p.get('tokens_per_s', 0):,.0f} tok/s  ETA {eta_text}")

    def run(self) -> None:
        while not self.stop.wait(1.0):
            self.show()

    def show(self, final: bool = False) -> None:
        text = self._text()
        if not text or (text == self.last_text and not final):
            return
        if self.tty:
            print("\r" + text.ljust(100), end="\n" if final else "", flush=True)
        elif final or time.time() - self.last_print > 10:
            print(text, flush=True)
            self.last_print = time.time()
        self.last_text = text


def _run_stage(prep: Prepared, i: int, out: Path, fingerprint: str) -> StageResult:
    import ray.train
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    cfg, stage = prep.cfg, prep.cfg.stages[i]
    stage_dir = out / stage.name
    init, teacher = _init_paths(cfg, i, out)
    plan = build_plan(stage, prep.index_by_tier, prep.patch, cfg.seed, cfg.eval.holdout)
    checkpointed = _read_json(stage_dir / "checkpointed.json") or {}
    start = int(checkpointed.get("step", 0))
    w = cfg.workers
    guidance_embed = stage.kind == "distill" or bool(cfg.model.dit_overrides.get("guidance_embed", False))
    loop_config = {
        "train": cfg.model_dump(mode="json"), "stage_index": i, "stage_dir": str(stage_dir),
        "init": init, "teacher": teacher, "vae_source": prep.vae_source, **prep.extra,
        "holdout": plan.holdout,
        "export_meta": {**prep.meta, "sampling": _sampling_meta(stage, guidance_embed),
                        "training": {"run": cfg.name, "stage": stage.name, "kind": stage.kind, "steps": stage.steps,
                                     "fingerprint": fingerprint}},
    }
    resources = {"CPU": w.cpus_per_worker, **({"GPU": w.gpus_per_worker} if w.use_gpu else {})}
    trainer = TorchTrainer(
        prep.loop,
        train_loop_config=loop_config,
        scaling_config=ScalingConfig(num_workers=w.num_workers, use_gpu=w.use_gpu, resources_per_worker=resources),
        run_config=RunConfig(
            name=f"{cfg.name}-{stage.name}", storage_path=str((out / "ray").resolve()),
            failure_config=FailureConfig(max_failures=cfg.checkpoint.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=cfg.checkpoint.keep),
        ),
        # one dataset per data-parallel group: the ranks of a sequence-parallel group read the same
        datasets=rank_datasets(plan, w.num_workers // cfg.sequence_parallel, cfg.gradient_accumulation, start,
                               stage.steps, prep.loader, prep.loader_args),
        dataset_config=ingest_config(),
    )
    progress = _ProgressLine(f"{cfg.name}/{stage.name}", stage_dir)
    watcher = threading.Thread(target=progress.run, daemon=True)
    t0 = time.time()
    watcher.start()
    try:
        result = trainer.fit()
    finally:
        progress.stop.set()
        watcher.join()
    progress.show(final=True)
    if result.error:
        raise RuntimeError(f"stage {stage.name!r} failed: {result.error}") from result.error
    return StageResult(stage.name, stage.kind, "resumed" if start else "trained", stage.steps, time.time() - t0,
                       dict(result.metrics or {}), dict(plan.skipped), str(stage_dir / "final"))


def run_training(cfg: TrainConfig, data: str, out: str | Path, export_format: str = "vidloom") -> TrainSummary:
    """Train every stage of `cfg` on `data` into `out` (Ray must be initialised)."""
    return run_prepared(prepare(cfg, data), out, export_format)


def run_prepared(prep: Prepared, out: str | Path, export_format: str = "vidloom") -> TrainSummary:
    """Run the stages of a validated run (`prepare`)."""
    cfg = prep.cfg
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(dump_config(cfg))
    results: list[StageResult] = []
    previous = ""
    for i, stage in enumerate(cfg.stages):
        fingerprint = cfg.stage_fingerprint(i, previous)
        stage_dir = out / stage.name
        done = _read_json(stage_dir / "done.json")
        if done and done.get("fingerprint") == fingerprint and (stage_dir / "final").is_dir():
            results.append(StageResult(stage.name, stage.kind, "skipped", stage.steps, 0.0, done.get("metrics", {}),
                                       export=str(stage_dir / "final")))
            previous = fingerprint
            continue
        if (_read_json(stage_dir / "fingerprint.json") or {}).get("fingerprint") != fingerprint:
            shutil.rmtree(stage_dir, ignore_errors=True)
            shutil.rmtree(out / "ray" / f"{cfg.name}-{stage.name}", ignore_errors=True)
        stage_dir.mkdir(parents=True, exist_ok=True)
        (stage_dir / "fingerprint.json").write_text(json.dumps({"fingerprint": fingerprint}))
        result = _run_stage(prep, i, out, fingerprint)
        (stage_dir / "done.json").write_text(json.dumps({"fingerprint": fingerprint, "metrics": result.metrics,
                                                         "finished": time.time()}))
        results.append(result)
        previous = fingerprint
    final = out / "final"
    shutil.rmtree(final, ignore_errors=True)
    shutil.copytree(out / cfg.stages[-1].name / "final", final)
    if export_format == "diffusers":
        if cfg.target == "vae":
            from vidloom.models import load_vae
            from vidloom.models.vae import to_diffusers as vae_to_diffusers

            vae_to_diffusers(load_vae(final), final / "diffusers")
        else:
            from vidloom.models import load_dit
            from vidloom.models.dit import to_diffusers

            to_diffusers(load_dit(final), final / "diffusers")
    summary = TrainSummary(str(out), cfg.target, results, str(final), prep.notes)
    (out / "summary.json").write_text(json.dumps(asdict(summary), indent=2, default=str))
    return summary
