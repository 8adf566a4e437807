"""The one adapter between vidloom stages and Ray Data.

Each `Stage`, or each group of fused stages, becomes ``Dataset.map_batches`` over an actor
pool (``compute=ActorPoolStrategy(min_size, max_size)``) with the declared CPUs, GPUs, memory
and batch size; a fused worker runs every batch through its stages in turn. Per-row error
capture, the per-stage metrics and the per-stage time record (`STAGE_SECONDS`) live here,
once, so a stage's own file holds only its work.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any, Iterable, Sequence

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


def limit_native_threads(num_cpus: float) -> int:
    """Size OpenCV's thread pool, and the video decoders' default thread count, to the CPUs this
    worker asked Ray for (at least one) and return it. Both otherwise start a thread per core
    in every actor, so on a node full of actors each one's resize, cascade and decode calls
    fight the others for the same cores: more CPU and more time for the same work (measured:
    docs/benchmarks.md, curation throughput)."""
    import cv2

    from vidloom.platform.media import set_default_decoder_threads

    threads = max(1, math.ceil(num_cpus))
    cv2.setNumThreads(threads)
    set_default_decoder_threads(threads)
    return threads


#: Row column with the time each stage spent on the row: JSON {stage: [wall s, CPU s]}. Kept per
#: stage whether stages share an actor or not, so a run can say where its time went.
STAGE_SECONDS = "stage_seconds"


def add_stage_seconds(row: Row, stage: str, wall_s: float, cpu_s: float) -> Row:
    """`row` with `stage`'s wall and CPU seconds added to its `STAGE_SECONDS` record. CPU is the
    worker process's (the decoder's and OpenCV's threads work for the stage too)."""
    times = json.loads(row.get(STAGE_SECONDS) or "{}")
    wall0, cpu0 = times.get(stage, (0.0, 0.0))
    times[stage] = [round(wall0 + wall_s, 6), round(cpu0 + cpu_s, 6)]
    return {**row, STAGE_SECONDS: json.dumps(times)}


def sum_stage_seconds(records: Iterable[str | None]) -> dict[str, dict[str, float]]:
    """Total wall and CPU seconds per stage over rows' `STAGE_SECONDS` records."""
    total: dict[str, list[float]] = {}
    for record in records:
        for stage, (wall_s, cpu_s) in json.loads(record or "{}").items():
            acc = total.setdefault(stage, [0.0, 0.0])
            acc[0] += wall_s
            acc[1] += cpu_s
    return {stage: {"wall_s": round(w, 3), "cpu_s": round(c, 3)} for stage, (w, c) in total.items()}


class StageWorker:
    """Runs one stage, or several fused ones in turn, on one Ray actor: setup once, then rows,
    with errors kept per row and per stage."""

    def __init__(self, stages: Sequence[tuple[type[Stage], dict[str, Any]]], progress=None, num_cpus: float = 1.0,
                 keep_columns: Sequence[str] | None = None):
        limit_native_threads(num_cpus)
        self.stages = [stage_cls(**kwargs) for stage_cls, kwargs in stages]
        for stage in self.stages:
            stage.setup()
        self.metrics = [StageMetrics(stage.name) for stage in self.stages]
        self.progress = progress
        self.keep_columns = list(keep_columns) if keep_columns else None

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = batch_to_rows(batch)
        for stage, metrics in zip(self.stages, self.metrics):
            rows = self._run(stage, metrics, rows)
        if self.keep_columns:
            rows = [{k: row[k] for k in self.keep_columns} for row in rows]
        return rows_to_batch(rows)

    def _run(self, stage: Stage, metrics: StageMetrics, rows_in: list[Row]) -> list[Row]:
        metrics.rows_in(len(rows_in))
        out: list[Row] = []
        for row in rows_in:
            if stage.skip(row):
                out.append(add_stage_seconds(row, stage.name, 0.0, 0.0))
                continue
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                result = stage.process_row(row)
            except Exception as exc:  # noqa: BLE001 - one bad row must not stop the run
                result = stage.error_row(row, exc)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            metrics.row_latency(wall)
            if result.get("status", "ok") == "error":
                metrics.errors()
            out.append(add_stage_seconds(result, stage.name, wall, cpu))
        metrics.rows_out(len(out))
        if self.progress is not None:  # fire and forget: the display must never slow the work
            self.progress.add.remote(stage.name, len(out), sum(stage.progress_units(r) for r in out))
        return out


def min_workers_that_fit(resources: StageResources, cluster: dict[str, float]) -> int:
    """`resources.min_workers`, lowered to as many workers as the whole cluster can hold (at
    least one). Ray Data waits for an actor pool's minimum before it starts, so a minimum the
    cluster cannot place would hang the run; on a 2-CPU machine a minimum of 2 is what keeps
    both cores busy."""
    fit = resources.min_workers
    for need, have in ((resources.num_cpus, cluster.get("CPU", 0.0)), (resources.num_gpus, cluster.get("GPU", 0.0))):
        if need > 0:
            fit = min(fit, int(have / need + 1e-9))
    return max(1, fit)


def apply_stage(ds, stage_cls: type[Stage], stage_kwargs: dict[str, Any], resources: StageResources,
                progress=None):
    """Append `stage_cls` to the Ray Dataset `ds` as an actor-pool map_batches step; its workers
    report finished rows to the `progress` board actor when one is given."""
    return apply_stages(ds, [(stage_cls, stage_kwargs)], resources, progress)


def apply_stages(ds, stages: Sequence[tuple[type[Stage], dict[str, Any]]], resources: StageResources,
                 progress=None, keep_columns: Sequence[str] | None = None):
    """Append `stages` to `ds` as ONE actor-pool map_batches step: each worker builds all of
    them and runs every batch through them in order (a fused group, `StageResources.fused`).
    Rows go from one stage to the next inside the process, not through the object store.

    `keep_columns`: the worker returns only these columns. Give it on the last step instead of
    a `select_columns` after it: that is a separate task operator wanting a whole CPU, which
    waits while the actor pools hold the cores, so the run's rows would reach the driver only
    when the last actor finished (measured: 2 s at the end of a 23 s run, and no row written
    to the manifest until then)."""
    import ray

    if not stages:
        raise ValueError("apply_stages needs at least one stage")
    remote_args: dict[str, Any] = {"num_cpus": resources.num_cpus}
    if resources.num_gpus:
        remote_args["num_gpus"] = resources.num_gpus
    if resources.memory_gb:
        remote_args["memory"] = int(resources.memory_gb * 1024**3)
    min_workers = min_workers_that_fit(resources, ray.cluster_resources())
    max_workers = max(min_workers, resources.max_workers)
    # A subclass named after the stage(s), so Ray Data's progress bars and the dashboard say
    # "MapBatches(VideoAnalysisStage)" (or "MapBatches(VideoAnalysisStage+TextDetectionStage)")
    # rather than a generic worker name.
    worker = type("+".join(cls.__name__ for cls, _ in stages), (StageWorker,), {})
    return ds.map_batches(
        worker,
        fn_constructor_kwargs={"stages": list(stages), "progress": progress, "num_cpus": resources.num_cpus,
                               "keep_columns": keep_columns},
        batch_size=resources.batch_size,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(min_size=min_workers, max_size=max_workers),
        **remote_args,
    )
