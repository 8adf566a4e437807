"""A pipeline stage: a named unit of work that declares what it needs and what it adds.

One registration per stage, on its class (docs/writing_a_stage.md): its `name`, the config
sections it reads (`config_sections`, name -> typed model), the clip columns it fills
(`columns`, name -> Arrow type), its default resources, the stages that must run before it
(`dependencies`) and the weights files it needs (`weights`). The pipeline's stage list, order,
config, defaults, manifest columns and start-up checks are all derived from these.

Stages know nothing about Ray. `setup()` runs once per worker (load a model, build a flow
estimator); `process_row(row)` turns one row into one row. A row that raises is not lost:
the executor marks it with ``status="error"`` and the reason, and passes it on, so later
stages skip it and the manifest records why. The Ray Data adapter (`ray_data.py`) maps
stages onto actor pools using the declared resources.
"""

from __future__ import annotations

from typing import Any, ClassVar, Sequence

import pyarrow as pa
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

    @classmethod
    def fused(cls, members: "Sequence[StageResources]") -> "StageResources":
        """What one worker of a fused group asks for: its stages run one after another in one
        process, never at once, so the largest CPU, GPU and memory request of its members;
        batch size and pool size are the first member's (the group is fed like that stage)."""
        if not members:
            raise ValueError("a fused group needs at least one stage")
        first = members[0]
        return cls(
            num_cpus=max(m.num_cpus for m in members), num_gpus=max(m.num_gpus for m in members),
            memory_gb=max(m.memory_gb for m in members), batch_size=first.batch_size,
            min_workers=first.min_workers, max_workers=first.max_workers,
        )


class Stage:
    """Base class of pipeline stages."""

    name: ClassVar[str] = "stage"
    # YAML sections this stage reads: section name -> typed config model.
    config_sections: ClassVar[dict[str, type[StrictModel]]] = {}
    # Clip columns this stage fills (docs/manifest.md): column -> Arrow type, in manifest order.
    columns: ClassVar[dict[str, pa.DataType]] = {}
    # Resources per worker when the config does not say otherwise.
    default_resources: ClassVar[StageResources] = StageResources()
    # Stages that must run before this one whatever the config.
    requires: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def fusible(cls, config: Any) -> bool:
        """Whether, under `config`, this stage may share an actor with its neighbours when a
        `fuse` group lists it. Override to return False when a backend waits on something
        outside the process (a remote model server): in its own pool it waits while the
        decode and the other stages go on."""
        return True

    @classmethod
    def dependencies(cls, config: Any) -> tuple[str, ...]:
        """Stages this one needs under `config` (the whole typed config); override when a
        backend choice adds one."""
        return cls.requires

    @classmethod
    def weights(cls, config: Any) -> list[tuple[str | None, str]]:
        """(configured path, setting name) of every weights file this stage will load under
        `config`; checked on the driver before any work starts."""
        return []

    def __init__(self, resources: StageResources | None = None):
        self.resources = resources or StageResources()

    def setup(self) -> None:
        """Prepare per-worker state (models, estimators). Called once before any row."""

    def process_row(self, row: Row) -> Row:
        raise RuntimeError(f"{type(self).__name__} must define process_row")

    def progress_units(self, row: Row) -> int:
        """How much work a finished row stands for in a progress display (default: 1 row)."""
        return 1

    def skip(self, row: Row) -> bool:
        """Rows already marked as failed pass through untouched by default."""
        return row.get("status", "ok") != "ok"

    def error_row(self, row: Row, exc: BaseException) -> Row:
        """The row to emit when `process_row` raised: same keys, status and reason set."""
        out = dict(row)
        out["status"] = "error"
        out["error"] = f"{self.name}: {type(exc).__name__}: {exc}"[:500]
        return out
