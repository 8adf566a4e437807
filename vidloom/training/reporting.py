"""What a user sees of a running stage: a progress file the driver turns into one progress
line, metrics on Ray's endpoint (names from cluster/monitoring/metrics_contract.yaml), and
TensorBoard / MLflow / W&B scalars written by rank 0."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from vidloom.platform.metrics import TrainMetrics
from vidloom.training.config import StageConfig, TrainConfig

PROGRESS_FILE = "progress.json"

#: Peak dense bf16 FLOP/s of accelerators we know, for the MFU estimate.
PEAK_BF16_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 125e12, "L4": 121e12}


def device_peak_flops() -> float | None:
    """Peak bf16 FLOP/s of this worker's GPU, or None (CPU or an unknown GPU: no MFU)."""
    import torch

    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    for key, peak in PEAK_BF16_FLOPS.items():
        if key in name:
            return peak
    return None


class StepReporter:
    """Per-step bookkeeping of one rank."""

    def __init__(self, cfg: TrainConfig, stage: StageConfig, stage_dir: Path, rank: int, world: int, start: int):
        self.cfg, self.stage, self.stage_dir, self.rank, self.world = cfg, stage, stage_dir, rank, world
        self.start = start
        self.peak = device_peak_flops()
        self.metrics_sink = TrainMetrics(f"{cfg.name}-{stage.name}", rank)
        self.last: dict[str, Any] = {}
        self.rates: list[float] = []  # tokens/s of each step after the first two (warm-up)
        self.t_start = time.time()
        self.last_write = 0.0
        self.trackers = _Trackers(cfg, stage, stage_dir.parent) if rank == 0 else None

    def step(self, done: int, loss: float, engine, tokens: int, seconds: float, flops: float = 0.0,
             grad_norm: float | None = None) -> None:
        """After optimizer step `done`: `tokens` latent tokens and `flops` model FLOPs in `seconds`."""
        lr = float(engine.get_lr()[0]) if hasattr(engine, "get_lr") else float("nan")
        tokens_per_s = tokens / max(seconds, 1e-9)
        mfu = flops / max(seconds, 1e-9) / self.peak if self.peak and flops else None
        if done - self.start > 2:
            self.rates.append(tokens_per_s)
        self.last = {"loss": loss, "lr": lr, "tokens_per_s": tokens_per_s, "step_time_s": seconds,
                     "grad_norm": float(grad_norm) if grad_norm is not None else None, "mfu": mfu,
                     "tokens_per_s_mean": sum(self.rates) / len(self.rates) if self.rates else None,
                     "peak_rss_mb": _peak_rss_mb()}
        self.metrics_sink.record(loss=loss, tokens_per_s=tokens_per_s, step_time_s=seconds, lr=lr,
                                 grad_norm=self.last["grad_norm"], mfu=mfu)
        if self.trackers is not None:
            self.trackers.scalars(done, {k: v for k, v in self.last.items() if v is not None})
        if self.rank == 0 and (time.time() - self.last_write > 0.5 or done == self.stage.steps):
            self._write(done)

    def _write(self, done: int) -> None:
        elapsed = time.time() - self.t_start
        rate = (done - self.start) / elapsed if elapsed > 0 and done > self.start else None
        eta = (self.stage.steps - done) / rate if rate else None
        body = {"stage": self.stage.name, "step": done, "steps": self.stage.steps, "eta_s": eta,
                "time": time.time(), **self.last}
        tmp = self.stage_dir / f".{PROGRESS_FILE}.tmp-{os.getpid()}"
        self.stage_dir.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(body))
        tmp.replace(self.stage_dir / PROGRESS_FILE)
        self.last_write = time.time()

    def evaluation(self, done: int, metrics: dict[str, float]) -> None:
        if self.trackers is not None:
            self.trackers.scalars(done, metrics)

    def checkpointed(self, done: int) -> None:
        if self.rank == 0:
            (self.stage_dir / "checkpointed.json").write_text(json.dumps({"step": done, "time": time.time()}))

    def metrics(self) -> dict[str, float]:
        return {k: v for k, v in self.last.items() if v is not None}

    def close(self) -> None:
        if self.trackers is not None:
            self.trackers.close()


def run_params(cfg: TrainConfig, stage: StageConfig) -> dict[str, Any]:
    """The settings a tracker records for one stage's run: flat scalars, short values."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            flat[prefix] = value if isinstance(value, (int, float, bool, str)) else json.dumps(value)

    walk("", cfg.model_dump(mode="json", exclude={"stages", "fault", "tracking"}))
    walk("stage", stage.model_dump(mode="json"))
    return flat


def _peak_rss_mb() -> float:
    """This process's peak resident memory (MiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class _Trackers:
    """TensorBoard event files by default; MLflow and W&B when configured, through Ray Train's
    integrations (`setup_mlflow`, `setup_wandb`). Built on rank 0 only."""

    def __init__(self, cfg: TrainConfig, stage: StageConfig, run_dir: Path):
        t = cfg.tracking
        self.tb = self.mlflow = self.wandb = None
        run_name = f"{cfg.name}-{stage.name}"
        params = run_params(cfg, stage) if (t.mlflow_uri or t.wandb_project) else {}
        if t.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run_dir / "tensorboard" / stage.name))
        if t.mlflow_uri:
            from ray.air.integrations.mlflow import setup_mlflow

            if t.mlflow_uri.startswith("file:"):
                # MLflow 3 keeps its file store in maintenance mode behind this opt-in; a file:
                # URI in the config is that opt-in (sqlite:// or a server need the full mlflow).
                os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
            self.mlflow = setup_mlflow(params, tracking_uri=t.mlflow_uri, experiment_name=cfg.name,
                                       run_name=run_name, create_experiment_if_not_exists=True,
                                       rank_zero_only=False)
        if t.wandb_project:
            from ray.air.integrations.wandb import setup_wandb

            # The mode travels in the environment, where Ray's setup reads it (offline: no key).
            os.environ["WANDB_MODE"] = t.wandb_mode
            os.environ.setdefault("WANDB_SILENT", "true")
            self.wandb = setup_wandb(params, project=t.wandb_project, trial_name=run_name,
                                     group=cfg.name, dir=str(run_dir), rank_zero_only=False)

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(k, v, step)
        if self.mlflow is not None:
            self.mlflow.log_metrics(values, step=step)
        if self.wandb is not None:
            self.wandb.log(values, step=step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        if self.mlflow is not None:
            self.mlflow.end_run()
        if self.wandb is not None:
            self.wandb.finish()
