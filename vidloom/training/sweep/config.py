"""The typed sweep config: which training stage each trial runs, the family of DiT sizes and the
compute budgets.

A trial trains one member of the family on one budget with the stage's own data, objective and
optimizer (taken from a training config, ``train:`` plus ``train_overrides:``). The family
scales width and depth together, as the HunyuanVideo report's and Chinchilla's families do:
``blocks = round(width / width_per_block)``, a third of them double-stream blocks (the 13B
model's 20 + 40 at width 3072 is ``width_per_block: 51.2``).

Sweep configs ship in ``vidloom/training/configs/sweeps/`` (apart from the training configs,
which `shipped_configs` lists and which all load as `TrainConfig`).
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

from pydantic import Field, field_validator, model_validator

from vidloom.training.config import resolve_config_path
from vidloom.platform.config import ConfigError, StrictModel, load_config, read_yaml

SWEEP_DIR = Path(__file__).resolve().parents[1] / "configs" / "sweeps"


def shipped_sweeps() -> list[str]:
    """Names of the sweep configs that ship inside the package."""
    return sorted(p.stem for p in SWEEP_DIR.glob("*.yaml"))


class FamilySettings(StrictModel):
    """The DiT family: one size per width; depth grows with width."""

    widths: list[int] = Field(..., min_length=3, description="hidden sizes, one trial family member each")
    head_dim: int = Field(16, ge=8, le=256, description="channels per attention head (heads = width / head_dim)")
    width_per_block: float = Field(16.0, gt=0.0, le=10_000.0, description="blocks = round(width / width_per_block)")
    double_fraction: float = Field(1 / 3, gt=0.0, lt=1.0, description="share of double-stream blocks (13B: 20 of 60)")

    @field_validator("widths")
    @classmethod
    def _widths(cls, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise ValueError(f"widths must differ from one another, got {value}")
        return sorted(value)

    @model_validator(mode="after")
    def _heads(self) -> "FamilySettings":
        for w in self.widths:
            if w % self.head_dim or w // self.head_dim < 1:
                raise ValueError(f"family.widths: {w} is not a multiple of family.head_dim ({self.head_dim})")
        return self

    def shape(self, width: int) -> dict[str, int]:
        """The DiT fields of the family member of `width` (depth scaled with it)."""
        blocks = max(2, round(width / self.width_per_block))
        double = min(blocks - 1, max(1, round(blocks * self.double_fraction)))
        return {"hidden_size": width, "heads": width // self.head_dim, "depth_double": double,
                "depth_single": blocks - double}


class TrialSettings(StrictModel):
    """Resources of one trial (a single training process)."""

    cpus: float = Field(1.0, gt=0.0, le=256.0)
    gpus: float = Field(0.0, ge=0.0, le=8.0)
    max_concurrent: int | None = Field(None, ge=1, le=10_000, description="null = as many as the cluster fits")
    max_failures: int = Field(1, ge=0, le=100, description="retries of a failed trial (from its last checkpoint)")


class FitSettings(StrictModel):
    bootstrap: int = Field(400, ge=10, le=100_000, description="bootstrap resamples for the intervals")
    confidence: float = Field(0.9, gt=0.0, lt=1.0, description="central interval of the bootstrap")
    seed: int = 0


class SweepConfig(StrictModel):
    """A scaling-law sweep. Field names are the YAML keys."""

    name: str = Field("sweep", pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
    train: str = Field(..., description="training config (shipped name or YAML) whose stage each trial runs")
    train_overrides: list[str] = Field(default_factory=list, description="--set style overrides of that config")
    stage: str = Field(..., description="the stage of the training config a trial trains (image or video)")
    family: FamilySettings
    budgets: list[float] = Field(..., min_length=2, description="training FLOPs of a trial (forward + backward)")
    reports: int = Field(8, ge=2, le=1000, description="validation-loss reports per trial")
    first_report: float = Field(0.1, gt=0.0, lt=1.0, description="first report at this fraction of the budget")
    init_from_sweep: str | None = Field(
        None, description="an image sweep's folder: each size starts from that sweep's trained weights of the "
                          "same width (the report's image-then-video two-step)")
    trial: TrialSettings = TrialSettings()
    fit: FitSettings = FitSettings()

    @field_validator("budgets")
    @classmethod
    def _budgets(cls, value: list[float]) -> list[float]:
        for b in value:
            if not 0 < b < 1e30:
                raise ValueError(f"every budget must lie in (0, 1e30) FLOPs, got {b:g}")
        if len(set(value)) != len(value):
            raise ValueError(f"budgets must differ from one another, got {value}")
        return sorted(float(b) for b in value)

    def report_fractions(self) -> list[float]:
        """Fractions of the budget at which a trial reports: geometric from `first_report` to 1,
        so the loss curves are sampled evenly on the log-compute axis of the plots."""
        k = self.reports - 1
        return [self.first_report ** (1 - i / k) for i in range(self.reports)]


def resolve_sweep_path(name_or_path: str) -> Path:
    """A shipped sweep name (``sweep-tiny``) or a YAML path."""
    return resolve_config_path(name_or_path, SWEEP_DIR, "sweep")


def load_sweep_config(name_or_path: str, overrides: Iterable[str] = (), train_overrides: Iterable[str] = ()):
    """The sweep config and its training config, both validated: (SweepConfig, TrainConfig).

    The training config must be a DiT run holding `stage`; its overrides are the sweep's
    ``train_overrides`` (themselves overridable: ``--set 'train_overrides=[...]'``), then
    `train_overrides` (the CLI's ``--train-set``)."""
    from vidloom.training.config import load_train_config

    cfg = load_config(SweepConfig, read_yaml(resolve_sweep_path(name_or_path)), None, overrides)
    try:
        train = load_train_config(cfg.train, [*cfg.train_overrides, *train_overrides])
    except ConfigError as exc:
        raise ConfigError(f"train / train_overrides: {exc}") from None
    if train.target != "dit":
        raise ConfigError(f"train: {cfg.train!r} trains a {train.target}; a sweep trains DiTs")
    names = [s.name for s in train.stages]
    if cfg.stage not in names:
        raise ConfigError(f"stage: {cfg.stage!r} is not a stage of {cfg.train!r} (stages: {names})")
    if train.stages[names.index(cfg.stage)].kind == "distill":
        raise ConfigError(f"stage: {cfg.stage!r} is a distill stage; a sweep trains image or video stages")
    return cfg, train


# -- sizes: parameters and FLOPs from the model's own code ----------------------------------------

def member_config(train, width: int, family: FamilySettings):
    """The DiTConfig of the family member of `width`, with the run's conditioning overrides."""
    from vidloom.models.dit import get_config

    base = train.model.dit
    if base not in _tiers():
        raise ConfigError(f"model.dit: a sweep builds its family from a named tier {sorted(_tiers())}, got {base!r}")
    return get_config(base, **{**train.model.dit_overrides, **family.shape(width)})


def _tiers() -> dict:
    from vidloom.models.dit import CONFIGS

    return CONFIGS


@lru_cache(maxsize=256)
def _count(key: tuple) -> int:
    import torch

    from vidloom.models.dit.config import DiTConfig
    from vidloom.models.dit.model import HunyuanVideoDiT

    with torch.device("meta"):  # shapes only: a 13B member costs no memory
        model = HunyuanVideoDiT(DiTConfig(**dict(key)))
    return sum(p.numel() for p in model.parameters())


def parameter_count(config) -> int:
    """Parameters of a DiT, counted on the model itself (built on the meta device)."""
    d = config.to_dict()
    return _count(tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in d.items())))


def train_flops(config, video_tokens: int, text_tokens: int, batch: int) -> float:
    """FLOPs of one training micro-batch: forward + backward ≈ 3 forwards of the model's own
    matmul counter (the attention term included), as the training loop counts them."""
    from vidloom.models.dit import forward_flops

    return 3.0 * batch * forward_flops(config, video_tokens, text_tokens)


def describe_size(config) -> dict[str, Any]:
    """What a page or a recommendation shows of a size."""
    from vidloom.models.dit import count_flops_per_token

    return {"hidden_size": config.hidden_size, "heads": config.heads, "depth_double": config.depth_double,
            "depth_single": config.depth_single, "params": parameter_count(config),
            "forward_flops_per_token_1k": count_flops_per_token(config, 1024, 0)}


def nearest_width(family: FamilySettings, train, params: float) -> int:
    """The family width (a multiple of head_dim) whose member has the parameter count closest
    to `params` in log space (parameters grow monotonically with width)."""
    lo, hi = 1, 1
    while parameter_count(member_config(train, hi * family.head_dim, family)) < params and hi < 4096:
        lo, hi = hi, hi * 2
    while hi - lo > 1:  # bisection on width / head_dim
        mid = (lo + hi) // 2
        if parameter_count(member_config(train, mid * family.head_dim, family)) < params:
            lo = mid
        else:
            hi = mid
    gap = lambda k: abs(math.log(parameter_count(member_config(train, k * family.head_dim, family)) / params))  # noqa: E731
    return min((lo, hi), key=gap) * family.head_dim


SHAPE_KEYS = ("hidden_size", "heads", "depth_double", "depth_single", "rope_dims")


def shipped_sizes(train) -> dict[str, int]:
    """Parameters of every named DiT tier with the run's conditioning (text widths, channels)."""
    conditioning = {k: v for k, v in train.model.dit_overrides.items() if k not in SHAPE_KEYS}
    from vidloom.models.dit import get_config

    return {name: parameter_count(get_config(name, **conditioning)) for name in _tiers()}
