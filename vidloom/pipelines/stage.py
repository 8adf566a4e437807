"""A pipeline stage: a named unit of work that declares the resources it needs.

Stages know nothing about Ray. `setup()` runs once per worker (load a model, build a flow
estimator); `process_row(row)` turns one row into one row. A row that raises is not lost:
the executor marks it with ``status="error"`` and the reason, and passes it on, so later
stages skip it and the manifest records why. The Ray Data adapter (`ray_data.py`) maps
stages onto actor pools using the declared resources.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from vidloom.platform.config import StrictModel

Row = dict[str, Any]


class StageResources(StrictModel):
    """What one worker of a stage asks the cluster for, and how many workers may run."""

    num_cpus: float = Field(1.0, ge=0.0, le=256)
    num_gpus: float = Field(0.0, ge=0.0, le=16)
    memory_gb: float = Field(0.0, ge=0.0, le=2048, description="0 = no reservation")
    batch_size: int = Field(1, ge=1, le=4096)
    min_workers: int = Field(1, ge=1, le=10_000)
    max_workers: int = Field(2, ge=1, le=10_000)


class Stage:
    """Base class of pipeline stages."""

    name: ClassVar[str] = "stage"

    def __init__(self, resources: StageResources | None = None):
        self.resources = resources or StageResources()

    def setup(self) -> None:
        """Prepare per-worker state (models, estimators). Called once before any row."""

    def process_row(self, row: Row) -> Row:
        raise RuntimeError(f"{type(self).__name__} must define process_row")

    def skip(self, row: Row) -> bool:
        """Rows already marked as failed pass through untouched by default."""
        return row.get("status", "ok") != "ok"

    def error_row(self, row: Row, exc: BaseException) -> Row:
        """The row to emit when `process_row` raised: same keys, status and reason set."""
        out = dict(row)
        out["status"] = "error"
        out["error"] = f"{self.name}: {type(exc).__name__}: {exc}"[:500]
        return out
