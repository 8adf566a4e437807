"""One typed YAML describes a whole training run: model, optimiser, precision, DeepSpeed,
workers, checkpoints and the ordered list of curriculum stages.

`load_train_config(NAME|PATH, overrides)` reads a shipped config (``vidloom/training/configs/
NAME.yaml``) or a user's file, applies ``--set key.path=value`` overrides and validates the
values with pydantic. Checks that need the data (tiers present in a latent cache, the cache's
VAE and text encoder, buckets the model can take) run in `vidloom.training.validate` on the
driver, before any worker starts.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterable, Literal

from pydantic import Field, field_validator, model_validator

from vidloom.models.fast_path import FastPathSetting
from vidloom.platform.config import ConfigError, StrictModel, load_config, read_yaml

CONFIG_DIR = Path(__file__).with_name("configs")

StageKind = Literal["image", "joint", "sft", "distill", "vae"]


def shipped_configs() -> list[str]:
    """Names of the configs that ship inside the package."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


class DatasetRef(StrictModel):
    """One dataset of a stage: a tier or image set of a latent cache (DiT stages), or of a
    curated folder (VAE stages and `data_mode: pixels`), drawn with probability ∝ `ratio`."""

    tier: str = Field(..., min_length=1, description="tier or image-set name, or 'byod' for a plain captioned set")
    ratio: float = Field(1.0, gt=0.0, description="mixing weight among the stage's datasets")


class BucketEntry(StrictModel):
    """Batch size of one (frames, height, width) bucket, in pixels (1 frame = image)."""

    frames: int = Field(..., ge=1, le=1024)
    height: int = Field(..., ge=16, le=4096)
    width: int = Field(..., ge=16, le=4096)
    batch_size: int = Field(..., ge=1, le=4096)


class BucketTable(StrictModel):
    """Every batch holds samples of one shape. Listed buckets take their `batch_size`; other
    shapes take ``tokens_per_batch // latent tokens per sample`` (constant tokens per batch,
    as Open-Sora's bucket table does), capped at `max_batch_size`; with neither, a sample of an
    unlisted shape is left out and counted."""

    table: list[BucketEntry] = Field(default_factory=list)
    tokens_per_batch: int | None = Field(None, ge=1)
    max_batch_size: int = Field(8, ge=1, le=4096)


class FlowSettings(StrictModel):
    """Flow-matching settings of a DiT stage."""

    t_sampling: Literal["logit_normal", "uniform"] = "logit_normal"
    logit_mean: float = 0.0
    logit_std: float = Field(1.0, gt=0.0)
    shift: float = Field(1.0, gt=0.0, le=100.0, description="timestep shift of the training draws (1 = off)")
    text_dropout: float = Field(0.1, ge=0.0, le=1.0, description="probability of the empty prompt (for CFG)")


class DistillSettings(StrictModel):
    """Guidance distillation: the student learns the frozen teacher's CFG prediction."""

    guidance_min: float = Field(1.0, ge=1.0, le=30.0)
    guidance_max: float = Field(8.0, ge=1.0, le=30.0)

    @model_validator(mode="after")
    def _range(self) -> "DistillSettings":
        if self.guidance_max < self.guidance_min:
            raise ValueError(f"guidance_max ({self.guidance_max}) must be >= guidance_min ({self.guidance_min})")
        return self


class VAELossSettings(StrictModel):
    """VAE objective: L1 + perceptual + KL, and the adversarial term after `adversarial_start`."""

    l1: float = Field(1.0, ge=0.0)
    perceptual: float = Field(0.1, ge=0.0)
    kl: float = Field(1e-6, ge=0.0)
    adversarial: float = Field(0.05, ge=0.0)
    adversarial_start: int = Field(1000, ge=0, description="optimizer step at which the GAN term switches on")
    lpips_weights: str | None = Field(None, description="LPIPS weights; null = the offline perceptual term")
    offline_perceptual: Literal["ms_ssim"] = "ms_ssim"


class StageConfig(StrictModel):
    """One curriculum stage: its own Ray Train run named ``<run>-<name>``."""

    name: str = Field(..., pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
    kind: StageKind
    datasets: list[DatasetRef] = Field(..., min_length=1)
    buckets: BucketTable = BucketTable()
    steps: int = Field(..., ge=1, le=10_000_000)
    lr: float = Field(1e-4, gt=0.0, le=1.0)
    warmup_steps: int = Field(0, ge=0)
    schedule: Literal["constant", "cosine"] = "constant"
    flow: FlowSettings = FlowSettings()
    distill: DistillSettings = DistillSettings()
    vae_loss: VAELossSettings = VAELossSettings()
    crop: tuple[int, int, int] | None = Field(None, description="VAE stages: random (frames, height, width) crop")
    video_image_ratio: float = Field(4.0, gt=0.0, description="VAE stages: video:image mix (the report's 4:1)")
    init_from: str | None = Field("previous", description="'previous', another stage's name, a weights path, or null")


class ModelSettings(StrictModel):
    """What is trained and what conditions it."""

    dit: str = Field("tiny", description="tiny | small | 1B | 13B | a weights path")
    dit_overrides: dict[str, Any] = Field(default_factory=dict, description="DiTConfig fields to change")
    vae: str = Field("tiny", description="VAE config name (from scratch) or a vidloom/diffusers VAE folder")
    text_encoder: str | dict[str, Any] = Field("minilm", description="anything build_text_encoder accepts")


class OptimizerSettings(StrictModel):
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = Field(0.0, ge=0.0)
    eps: float = Field(1e-8, gt=0.0)
    grad_clip: float = Field(1.0, ge=0.0, description="0 = off")


class DeepSpeedSettings(StrictModel):
    zero_stage: int = Field(0, ge=0, le=3)
    offload_optimizer: bool = Field(False, description="ZeRO-Offload: optimizer state in host memory (stage >= 1)")

    @model_validator(mode="after")
    def _offload(self) -> "DeepSpeedSettings":
        if self.offload_optimizer and self.zero_stage == 0:
            raise ValueError("offload_optimizer needs zero_stage >= 1")
        return self


class WorkerSettings(StrictModel):
    num_workers: int = Field(1, ge=1, le=4096)
    use_gpu: bool = False
    cpus_per_worker: float = Field(1.0, gt=0.0, le=256.0)
    gpus_per_worker: float = Field(1.0, gt=0.0, le=8.0)


class CheckpointSettings(StrictModel):
    every: int = Field(100, ge=1, description="save a checkpoint every N optimizer steps (and at the end)")
    keep: int = Field(2, ge=1, le=1000, description="checkpoints kept per stage")
    max_failures: int = Field(3, ge=0, le=1000, description="worker failures a stage survives")


class EvalSettings(StrictModel):
    every: int = Field(100, ge=1, description="validation loss every N steps (and at the end)")
    holdout: int = Field(4, ge=0, le=100_000, description="samples per stage held out for validation")
    t_values: list[float] = Field(default_factory=lambda: [0.25, 0.5, 0.75])
    samples_every: int = Field(0, ge=0, description="decode sample videos every N steps (0 = end of stage only)")
    sample_prompts: int = Field(2, ge=0, le=64, description="held-out captions to generate from")
    sample_steps: int = Field(8, ge=1, le=1000)
    sample_guidance: float = Field(4.0, ge=1.0, le=30.0)

    @field_validator("t_values")
    @classmethod
    def _t(cls, value: list[float]) -> list[float]:
        for t in value:
            if not 0.0 < t < 1.0:
                raise ValueError(f"t_values must lie in (0, 1), got {t}")
        return value


class TrackingSettings(StrictModel):
    """TensorBoard event files by default; MLflow and W&B through Ray Train's integrations
    (`setup_mlflow`, `setup_wandb`) on rank 0 when configured (`pip install 'vidloom[tracking]'`)."""

    tensorboard: bool = True
    mlflow_uri: str | None = Field(None, description="MLflow tracking URI (e.g. file:///path, http://host:5000); null = off")
    wandb_project: str | None = Field(None, description="Weights & Biases project; null = off")
    wandb_mode: Literal["online", "offline"] = Field(
        "online", description="offline writes the run under OUT/wandb for `wandb sync` (no key needed)")

    @model_validator(mode="after")
    def _installed(self) -> "TrackingSettings":
        import importlib.util

        for field, value, module in (("mlflow_uri", self.mlflow_uri, "mlflow"),
                                     ("wandb_project", self.wandb_project, "wandb")):
            if value is not None and importlib.util.find_spec(module) is None:
                raise ValueError(f"{field}: {value!r} is set but {module} is not installed; "
                                 f"pip install 'vidloom[tracking]' or set it to null")
        return self


class FaultSettings(StrictModel):
    """Fault injection for tests: `rank` exits (os._exit) at `step` of `stage`, once."""

    stage: str | None = None
    step: int = Field(0, ge=0)
    rank: int = Field(0, ge=0)


class TrainConfig(StrictModel):
    """The whole run. Field names are the YAML keys."""

    name: str = Field("run", pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
    target: Literal["dit", "vae"] = "dit"
    seed: int = 0
    data_mode: Literal["latents", "pixels"] = Field("latents", description="read a latent cache, or encode on the fly")
    model: ModelSettings = ModelSettings()
    optimizer: OptimizerSettings = OptimizerSettings()
    precision: Literal["fp32", "bf16"] = "fp32"
    gradient_accumulation: int = Field(1, ge=1, le=4096)
    activation_checkpointing: bool = False
    ema_decay: float | None = Field(0.999, ge=0.0, lt=1.0, description="null = no EMA")
    deepspeed: DeepSpeedSettings = DeepSpeedSettings()
    sequence_parallel: int = Field(1, ge=1, le=1024, description="ranks sharing one sample's tokens (Ulysses)")
    fast_path: FastPathSetting = Field(
        "off", description="off: reference path; on: the DiT's fused kernels and unmasked attention (same "
        "results); compile: those plus torch.compile of every block (a warm-up per new shape)")
    workers: WorkerSettings = WorkerSettings()
    checkpoint: CheckpointSettings = CheckpointSettings()
    eval: EvalSettings = EvalSettings()
    tracking: TrackingSettings = TrackingSettings()
    fault: FaultSettings = FaultSettings()
    stages: list[StageConfig] = Field(..., min_length=1)

    @model_validator(mode="after")
    def _stages(self) -> "TrainConfig":
        names = [s.name for s in self.stages]
        for i, stage in enumerate(self.stages):
            if names.count(stage.name) > 1:
                raise ValueError(f"stages[{i}].name: {stage.name!r} is used twice")
            if self.target == "vae" and stage.kind != "vae":
                raise ValueError(f"stages[{i}].kind: {stage.kind!r} in a VAE run; VAE runs take kind 'vae'")
            if self.target == "dit" and stage.kind == "vae":
                raise ValueError(f"stages[{i}].kind: 'vae' in a DiT run; use image, joint, sft or distill")
            if stage.kind == "distill" and i == 0 and stage.init_from in (None, "previous"):
                raise ValueError(f"stages[{i}]: a distill stage needs a teacher: a previous stage or init_from PATH")
            ref = stage.init_from
            if ref not in (None, "previous") and ref in names and names.index(ref) >= i:
                raise ValueError(f"stages[{i}].init_from: {ref!r} is not an earlier stage")
        if self.workers.num_workers % self.sequence_parallel:
            raise ValueError(f"sequence_parallel: {self.sequence_parallel} must divide workers.num_workers "
                             f"({self.workers.num_workers}); data-parallel groups are num_workers / sequence_parallel")
        if self.fault.stage is not None and self.fault.stage not in names:
            raise ValueError(f"fault.stage: {self.fault.stage!r} is not a stage ({names})")
        if self.fault.stage is not None and self.fault.rank >= self.workers.num_workers:
            raise ValueError(f"fault.rank: {self.fault.rank} must be < workers.num_workers ({self.workers.num_workers})")
        return self

    def stage_fingerprint(self, index: int, previous: str = "") -> str:
        """Identity of a stage's result: its own settings, the settings every stage shares and
        the previous stage's fingerprint. A finished stage with the same fingerprint is skipped."""
        shared = self.model_dump(mode="json", exclude={"stages", "fault", "tracking", "eval", "checkpoint", "name"})
        stage = self.stages[index].model_dump(mode="json")
        blob = json.dumps({"shared": shared, "stage": stage, "previous": previous}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def resolve_config_path(name_or_path: str, folder: Path = CONFIG_DIR, what: str = "config") -> Path:
    """A shipped config name (``dit-tiny``, a YAML file in `folder`) or a YAML path."""
    path = Path(name_or_path).expanduser()
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.exists():
            raise ConfigError(f"config file not found: {path}")
        return path
    shipped = folder / f"{name_or_path}.yaml"
    if not shipped.exists():
        names = sorted(p.stem for p in folder.glob("*.yaml"))
        raise ConfigError(f"--config: {name_or_path!r} is neither a file nor a shipped {what} {names}")
    return shipped


def load_train_config(name_or_path: str, overrides: Iterable[str] = ()) -> TrainConfig:
    """A shipped config or a YAML file, then ``key.path=value`` overrides, validated.

    A stage's fields can be overridden by name: ``stages.joint.steps=50``."""
    path = resolve_config_path(name_or_path)
    data = read_yaml(path)
    plain = []
    for text in overrides:
        key = text.split("=", 1)[0].strip()
        if key.startswith("stages.") and key.count(".") >= 2:
            _, stage_name, rest = key.split(".", 2)
            _override_stage(data, stage_name, rest, text.split("=", 1)[1] if "=" in text else "")
        else:
            plain.append(text)
    return load_config(TrainConfig, data, None, plain)


def _override_stage(data: dict[str, Any], stage_name: str, dotted: str, raw: str) -> None:
    from vidloom.platform.config import deep_merge, parse_override

    stages = data.get("stages") or []
    for i, stage in enumerate(stages):
        if stage.get("name") == stage_name or str(i) == stage_name:
            stages[i] = deep_merge(stage, parse_override(f"{dotted}={raw}"))
            return
    known = [s.get("name") for s in stages]
    raise ConfigError(f"stages.{stage_name}: no such stage (stages: {known})")
