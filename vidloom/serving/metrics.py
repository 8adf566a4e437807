"""The serving metrics of cluster/monitoring/metrics_contract.yaml (Prometheus ``ray_vidloom_serve_*``),
which the serving dashboard queries. Created lazily once per replica process."""

from __future__ import annotations

from functools import lru_cache

from vidloom.platform.metrics import LATENCY_BOUNDARIES_S, _ray_ready

QUEUE_DEPTH = "vidloom_serve_queue_depth"
GENERATION_LATENCY = "vidloom_serve_generation_latency_s"
BATCH_SIZE = "vidloom_serve_batch_size"
BATCH_BOUNDARIES = [1, 2, 4, 8, 16, 32]


@lru_cache(maxsize=None)
def _metric(name: str):
    from ray.util.metrics import Gauge, Histogram

    if name == QUEUE_DEPTH:
        return Gauge(name, description="Requests waiting in a replica for a generation batch", tag_keys=("deployment",))
    if name == GENERATION_LATENCY:
        return Histogram(name, description="Time from request arrival to finished video",
                         boundaries=LATENCY_BOUNDARIES_S, tag_keys=("deployment", "resolution"))
    return Histogram(name, description="Requests generated together in one batch", boundaries=BATCH_BOUNDARIES,
                     tag_keys=("deployment",))


def resolution(params: dict) -> str:
    """The latency's resolution tag, WIDTHxHEIGHTxFRAMES, from generation parameters."""
    return f"{params['width']}x{params['height']}x{params['num_frames']}"


def queue_depth(deployment: str, depth: int) -> None:
    if _ray_ready():
        _metric(QUEUE_DEPTH).set(depth, tags={"deployment": deployment})


def generation_latency(deployment: str, resolution: str, seconds: float) -> None:
    if _ray_ready():
        _metric(GENERATION_LATENCY).observe(seconds, tags={"deployment": deployment, "resolution": resolution})


def batch_size(deployment: str, size: int) -> None:
    if _ray_ready():
        _metric(BATCH_SIZE).observe(size, tags={"deployment": deployment})
