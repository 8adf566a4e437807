"""vidloom's metrics on the Ray dashboard (Prometheus names ``ray_vidloom_*``).

One place defines every metric name and tag, so dashboards and code cannot drift apart.
Metrics are created lazily once per process (each Ray worker exports its own series).
"""

from __future__ import annotations

from functools import lru_cache

# Latency buckets in seconds: per-row work ranges from milliseconds (a small clip's OCR) to
# minutes (decoding a long 4K video).
LATENCY_BOUNDARIES_S = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 180, 600]

STAGE_ROWS_IN = "vidloom_stage_rows_in"
STAGE_ROWS_OUT = "vidloom_stage_rows_out"
STAGE_ERRORS = "vidloom_stage_errors"
STAGE_LATENCY = "vidloom_stage_latency_s"
VIDEO_SECONDS = "vidloom_video_seconds"
CLIPS = "vidloom_clips"


@lru_cache(maxsize=None)
def _counter(name: str, description: str, tags: tuple[str, ...]):
    from ray.util.metrics import Counter

    return Counter(name, description=description, tag_keys=tags)


@lru_cache(maxsize=None)
def _histogram(name: str, description: str, tags: tuple[str, ...]):
    from ray.util.metrics import Histogram

    return Histogram(name, description=description, boundaries=LATENCY_BOUNDARIES_S, tag_keys=tags)


def _ray_ready() -> bool:
    try:
        import ray

        return ray.is_initialized()
    except ImportError:
        return False


class StageMetrics:
    """Rows in/out, errors and per-row latency of one pipeline stage, tagged by stage name."""

    def __init__(self, stage: str, pipeline: str = "curation"):
        self.tags = {"stage": stage, "pipeline": pipeline}
        self.enabled = _ray_ready()

    def _inc(self, name: str, description: str, value: float) -> None:
        if self.enabled and value:
            _counter(name, description, ("stage", "pipeline")).inc(value, tags=self.tags)

    def rows_in(self, n: int = 1) -> None:
        self._inc(STAGE_ROWS_IN, "Rows entering a pipeline stage", n)

    def rows_out(self, n: int = 1) -> None:
        self._inc(STAGE_ROWS_OUT, "Rows leaving a pipeline stage", n)

    def errors(self, n: int = 1) -> None:
        self._inc(STAGE_ERRORS, "Rows a pipeline stage marked as failed", n)

    def video_seconds(self, seconds: float) -> None:
        self._inc(VIDEO_SECONDS, "Seconds of source video processed", seconds)

    def clips(self, n: int, status: str) -> None:
        if self.enabled and n:
            _counter(CLIPS, "Clips produced, by status", ("stage", "pipeline", "status")).inc(
                n, tags={**self.tags, "status": status}
            )

    def row_latency(self, seconds: float) -> None:
        """One row's wall time in the stage (the worker measures it once, for this histogram
        and for the row's own stage-time record)."""
        if self.enabled:
            _histogram(STAGE_LATENCY, "Per-row latency of a pipeline stage", ("stage", "pipeline")).observe(
                seconds, tags=self.tags
            )


# -- training (names from cluster/monitoring/metrics_contract.yaml) -------------------------------
TRAIN_LOSS = "vidloom_train_loss"
TRAIN_TOKENS_PER_S = "vidloom_train_tokens_per_s"
TRAIN_MFU = "vidloom_train_mfu"
TRAIN_STEP_TIME = "vidloom_train_step_time_s"
TRAIN_LR = "vidloom_train_lr"
TRAIN_GRAD_NORM = "vidloom_train_grad_norm"
STEP_TIME_BOUNDARIES_S = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120]


@lru_cache(maxsize=None)
def _gauge(name: str, description: str, tags: tuple[str, ...]):
    from ray.util.metrics import Gauge

    return Gauge(name, description=description, tag_keys=tags)


class TrainMetrics:
    """Loss, tokens/s, MFU, step time, learning rate and gradient norm of one training rank."""

    def __init__(self, run: str, rank: int):
        self.tags = {"run": run, "rank": str(rank)}
        self.enabled = _ray_ready()

    def record(self, *, loss: float, tokens_per_s: float, step_time_s: float, lr: float,
               grad_norm: float | None = None, mfu: float | None = None) -> None:
        if not self.enabled:
            return
        keys = ("run", "rank")
        _gauge(TRAIN_LOSS, "Training loss of the last optimizer step", keys).set(loss, tags=self.tags)
        _gauge(TRAIN_TOKENS_PER_S, "Latent tokens per second of this rank", keys).set(tokens_per_s, tags=self.tags)
        _gauge(TRAIN_LR, "Learning rate of the last optimizer step", keys).set(lr, tags=self.tags)
        if grad_norm is not None:
            _gauge(TRAIN_GRAD_NORM, "Global gradient norm of the last optimizer step", keys).set(grad_norm, tags=self.tags)
        if mfu is not None:
            _gauge(TRAIN_MFU, "Model FLOPs utilisation of this rank", keys).set(mfu, tags=self.tags)
        _step_histogram().observe(step_time_s, tags=self.tags)


@lru_cache(maxsize=None)
def _step_histogram():
    from ray.util.metrics import Histogram

    return Histogram(TRAIN_STEP_TIME, description="Wall time of one optimizer step",
                     boundaries=STEP_TIME_BOUNDARIES_S, tag_keys=("run", "rank"))
