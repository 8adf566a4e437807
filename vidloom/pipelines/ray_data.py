"""The one adapter between vidloom stages and Ray Data.

Each `Stage` becomes ``Dataset.map_batches`` over an actor pool
(``compute=ActorPoolStrategy(min_size, max_size)``) with the stage's declared CPUs, GPUs,
memory and batch size. Per-row error capture and the per-stage metrics live here, once, so a
stage's own file holds only its work.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from vidloom.pipelines.stage import Row, Stage, StageResources
from vidloom.platform.metrics import StageMetrics


# Batches travel as Arrow tables: binary columns (packed frames) stay exact bytes, whereas
# NumPy's fixed-width bytes dtype would strip trailing NUL bytes from them.
def batch_to_rows(batch: pa.Table) -> list[Row]:
    """An Arrow batch as a list of plain-Python rows."""
    return batch.to_pylist()


def rows_to_batch(rows: list[Row]) -> pa.Table:
    """Rows back into an Arrow table; every row must carry the same keys."""
    if not rows:
        return pa.table({})
    keys = list(rows[0])
    for row in rows[1:]:
        if set(row) != set(keys):
            raise ValueError(f"stage produced rows with different columns: {sorted(keys)} vs {sorted(row)}")
    return pa.Table.from_pylist(rows)


class ProgressBoard:
    """Rows and work units each stage has finished, for a driver-side progress display. Runs
    as a zero-CPU Ray actor; workers report to it without waiting for an answer."""

    def __init__(self) -> None:
        self.counts: dict[str, list[int]] = {}

    def add(self, stage: str, rows: int, units: int) -> None:
        done = self.counts.setdefault(stage, [0, 0])
        done[0] += rows
        done[1] += units

    def snapshot(self) -> dict[str, list[int]]:
        return {k: list(v) for k, v in self.counts.items()}


def start_progress_board():
    """A `ProgressBoard` actor on the current Ray cluster (no CPU reserved)."""
    import ray

    return ray.remote(num_cpus=0)(ProgressBoard).remote()


class StageWorker:
    """Runs one stage on one Ray actor: setup once, then rows, with errors kept per row."""

    def __init__(self, stage_cls: type[Stage], stage_kwargs: dict[str, Any], progress=None):
        self.stage = stage_cls(**stage_kwargs)
        self.stage.setup()
        self.metrics = StageMetrics(self.stage.name)
        self.progress = progress

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows_in = batch_to_rows(batch)
        self.metrics.rows_in(len(rows_in))
        out: list[Row] = []
        for row in rows_in:
            if self.stage.skip(row):
                out.append(row)
                continue
            with self.metrics.time_row():
                try:
                    result = self.stage.process_row(row)
                except Exception as exc:  # noqa: BLE001 - one bad row must not stop the run
                    result = self.stage.error_row(row, exc)
            if result.get("status", "ok") == "error":
                self.metrics.errors()
            out.append(result)
        self.metrics.rows_out(len(out))
        if self.progress is not None:  # fire and forget: the display must never slow the work
            self.progress.add.remote(self.stage.name, len(out), sum(self.stage.progress_units(r) for r in out))
        return rows_to_batch(out)


def apply_stage(ds, stage_cls: type[Stage], stage_kwargs: dict[str, Any], resources: StageResources,
                progress=None):
    """Append `stage_cls` to the Ray Dataset `ds` as an actor-pool map_batches step; its workers
    report finished rows to the `progress` board actor when one is given."""
    import ray

    remote_args: dict[str, Any] = {"num_cpus": resources.num_cpus}
    if resources.num_gpus:
        remote_args["num_gpus"] = resources.num_gpus
    if resources.memory_gb:
        remote_args["memory"] = int(resources.memory_gb * 1024**3)
    max_workers = max(resources.min_workers, resources.max_workers)
    # A subclass named after the stage, so Ray Data's progress bars and the dashboard say
    # "MapBatches(VideoAnalysisStage)" rather than a generic worker name.
    worker = type(stage_cls.__name__, (StageWorker,), {})
    return ds.map_batches(
        worker,
        fn_constructor_kwargs={"stage_cls": stage_cls, "stage_kwargs": stage_kwargs, "progress": progress},
        batch_size=resources.batch_size,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(min_size=resources.min_workers, max_size=max_workers),
        **remote_args,
    )
