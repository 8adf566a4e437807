"""From a latent cache (or a curated folder's pixels) to batches of one shape per step.

The driver builds a *plan*: a deterministic stream of batches, each holding samples of one
bucket (latent frames, height, width) of one dataset. Datasets are drawn with probability ∝
their ratio, each dataset's samples are shuffled per epoch and grouped by bucket with the
bucket table's batch size (constant tokens per batch). Micro-batch ``m`` of rank ``r`` at step
``s`` is stream entry ``(s·world + r)·accumulation + m``, so the order depends only on the
seed: a resumed run sees exactly the batches the interrupted one would have seen next.

Each rank reads its part of the plan as its own Ray Data dataset (``rank<r>``): tiny plan rows
are mapped to loaded tensors by Ray Data tasks, in order, and the worker takes it with
``ray.train.get_dataset_shard``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np
import torch

from vidloom.training.config import BucketTable, DatasetRef, StageConfig

#: Latent compression of the causal VAE: 4x in time, 8x in space.
TIME_RATIO, SPACE_RATIO = 4, 8


def latent_key(frames: int, height: int, width: int) -> tuple[int, int, int]:
    """Latent (frames, height, width) of a pixel shape (1 frame = an image)."""
    return ((frames - 1) // TIME_RATIO + 1, height // SPACE_RATIO, width // SPACE_RATIO)


def batch_size_for(table: BucketTable, key: tuple[int, int, int], patch: tuple[int, int, int]) -> int | None:
    """Batch size of a latent bucket under the stage's table; None = not trainable."""
    for entry in table.table:
        if latent_key(entry.frames, entry.height, entry.width) == key:
            return entry.batch_size
    if table.tokens_per_batch is None:
        return None
    tokens = (key[0] // patch[0]) * (key[1] // patch[1]) * (key[2] // patch[2])
    return int(max(1, min(table.max_batch_size, table.tokens_per_batch // max(1, tokens))))


def _hash01(text: str) -> float:
    return int(hashlib.sha1(text.encode()).hexdigest()[:12], 16) / float(1 << 48)


def holdout_ids(sample_ids: list[str], count: int) -> set[str]:
    """`count` samples held out for validation, chosen by a hash of their id (stable
    whatever the order or the other samples)."""
    return set(sorted(sample_ids, key=_hash01)[:count])


@dataclass(frozen=True)
class PlannedBatch:
    dataset: str
    bucket: tuple[int, int, int]
    items: tuple[tuple[str, int], ...]  # (file, row) of each sample

    @property
    def size(self) -> int:
        return len(self.items)


@dataclass
class _Source:
    """One dataset's samples, grouped into batches anew each epoch."""

    name: str
    ratio: float
    samples: list[tuple[str, tuple[int, int, int], str, int]]  # (sample_id, bucket, file, row)
    sizes: dict[tuple[int, int, int], int]
    seed: int
    epoch: int = 0
    queue: list[PlannedBatch] = field(default_factory=list)

    def _refill(self) -> None:
        rng = np.random.default_rng([self.seed, self.epoch, int(_hash01(self.name) * 1e9)])
        order = rng.permutation(len(self.samples))
        groups: dict[tuple[int, int, int], list[tuple[str, int]]] = {}
        for i in order:
            _, bucket, file, row = self.samples[i]
            groups.setdefault(bucket, []).append((file, row))
        batches = []
        for bucket in sorted(groups):
            items, size = groups[bucket], self.sizes[bucket]
            batches += [PlannedBatch(self.name, bucket, tuple(items[k:k + size])) for k in range(0, len(items), size)]
        self.queue = [batches[i] for i in rng.permutation(len(batches))]
        self.epoch += 1

    def next(self) -> PlannedBatch:
        if not self.queue:
            self._refill()
        return self.queue.pop(0)


@dataclass
class StagePlan:
    """The stage's batch stream plus what was left out and why."""

    sources: list[_Source]
    seed: int
    holdout: list[tuple[str, str, int]]  # (sample_id, file, row)
    skipped: dict[str, int]  # reason -> samples left out
    _stream: list[PlannedBatch] = field(default_factory=list)

    def batch(self, index: int) -> PlannedBatch:
        """Entry `index` of the stream (generated lazily, deterministically)."""
        while len(self._stream) <= index:
            i = len(self._stream)
            weights = np.array([s.ratio for s in self.sources], dtype=np.float64)
            pick = np.random.default_rng([self.seed, 7, i]).choice(len(self.sources), p=weights / weights.sum())
            self._stream.append(self.sources[pick].next())
        return self._stream[index]

    def rank_items(self, rank: int, world: int, accumulation: int, start: int, steps: int) -> list[dict[str, Any]]:
        """Plan rows of one rank for steps [start, steps): what its dataset maps to tensors."""
        rows = []
        for step in range(start, steps):
            for micro in range(accumulation):
                b = self.batch((step * world + rank) * accumulation + micro)
                rows.append({"step": step, "micro": micro, "dataset": b.dataset,
                             "files": [f for f, _ in b.items], "rows": [r for _, r in b.items]})
        return rows


def build_plan(stage: StageConfig, index_by_tier: dict[str, list[tuple[str, tuple[int, int, int], str, int]]],
               patch: tuple[int, int, int], seed: int, holdout: int) -> StagePlan:
    """Plan a stage from each dataset's (sample_id, latent bucket, file, row) index."""
    sources, skipped, held = [], {}, []
    pooled_ids = [sid for ref in stage.datasets for sid, *_ in index_by_tier[ref.tier]]
    hold = holdout_ids(pooled_ids, holdout)
    for k, ref in enumerate(stage.datasets):
        samples, sizes = [], {}
        for sid, bucket, file, row in index_by_tier[ref.tier]:
            if sid in hold:
                held.append((sid, file, row))
                continue
            if bucket not in sizes:
                sizes[bucket] = batch_size_for(stage.buckets, bucket, patch)
            if sizes[bucket] is None or any(b % p for b, p in zip(bucket, patch)):
                skipped["bucket_not_in_table" if sizes[bucket] is None else "bucket_not_divisible"] = (
                    skipped.get("bucket_not_in_table" if sizes[bucket] is None else "bucket_not_divisible", 0) + 1)
                continue
            samples.append((sid, bucket, file, row))
        if samples:
            sources.append(_Source(ref.tier, ref.ratio, samples, {b: s for b, s in sizes.items() if s}, seed + 1000 * k))
    return StagePlan(sources, seed, sorted(held), skipped)


# -- loading (runs in Ray Data tasks and in the worker for held-out samples) -------------------

def collate(samples: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Stack decoded samples (one bucket) into a batch; text padded to the longest prompt."""
    length = max(int(s["text_states"].shape[0]) for s in samples)
    dim = int(samples[0]["text_states"].shape[1])
    states = np.zeros((len(samples), length, dim), dtype=np.float32)
    mask = np.zeros((len(samples), length), dtype=np.int64)
    for i, s in enumerate(samples):
        n = int(s["text_states"].shape[0])
        states[i, :n] = s["text_states"].numpy() if torch.is_tensor(s["text_states"]) else s["text_states"]
        mask[i, :n] = 1
    as_np = lambda t: t.numpy() if torch.is_tensor(t) else np.asarray(t)  # noqa: E731
    return {
        "latent": np.stack([as_np(s["latent"]).astype(np.float32) for s in samples]),
        "text_states": states,
        "text_mask": mask,
        "pooled": np.stack([as_np(s["pooled"]).astype(np.float32) for s in samples]),
    }


def read_items(files: list[str], rows: list[int]) -> list[dict[str, Any]]:
    """Decoded samples for (file, row) pairs, in the given order (one read per file)."""
    from vidloom.training.latents import read_rows

    wanted: dict[str, list[int]] = {}
    for f, r in zip(files, rows):
        wanted.setdefault(f, []).append(int(r))
    loaded = {}
    for f, rs in wanted.items():
        uniq = sorted(set(rs))
        for r, sample in zip(uniq, read_rows(f, uniq)):
            loaded[(f, r)] = sample
    return [loaded[(f, int(r))] for f, r in zip(files, rows)]


def load_plan_row(row: dict[str, Any]) -> dict[str, Any]:
    """Ray Data map: a plan row -> the batch's arrays (plus its step and dataset)."""
    batch = collate(read_items(list(row["files"]), list(row["rows"])))
    return {"step": int(row["step"]), "micro": int(row["micro"]), "dataset": row["dataset"], **batch}


class PlanLoader:
    """Ray Data actor: plan rows -> loaded batches (`load_plan_row`)."""

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        return load_plan_row(row)


def rank_datasets(plan: StagePlan, world: int, accumulation: int, start: int, steps: int,
                  loader: type = None, loader_args: tuple = ()) -> dict[str, Any]:
    """One Ray Dataset per rank, named ``rank<r>``, in plan order; `loader` (a callable class,
    default `PlanLoader`) turns plan rows into batches. Train reads them with `ingest_config()`,
    which keeps that order."""
    import ray.data

    out = {}
    for rank in range(world):
        items = plan.rank_items(rank, world, accumulation, start, steps)
        ds = ray.data.from_items(items or [{"step": -1, "micro": 0, "dataset": "", "files": [], "rows": []}])
        ds.context.enable_progress_bars = False  # the driver shows one progress line per stage
        # Reading a batch is I/O: one loader actor per rank with num_cpus=0 never waits for the
        # CPUs the training workers hold (on a small cluster they hold them all), and a fixed
        # pool (not zero-CPU tasks) keeps Ray from starting a process per block.
        out[f"rank{rank}"] = (ds.map(loader or PlanLoader, fn_constructor_args=loader_args, num_cpus=0,
                                     compute=ray.data.ActorPoolStrategy(size=1))
                              if items else ds.filter(lambda r: False))
    return out


def ingest_config():
    """Ray Train's ingest of `rank_datasets`: no splitting (each rank has its own) and plan order
    kept. The order must be set here: Train's ingest options replace a dataset's own, and its
    defaults copy `preserve_order` from the driver's global DataContext (off), so a batch that
    finishes loading early could overtake another and a run would stop being reproducible."""
    import ray.train
    from ray.data import DataContext, ExecutionOptions

    current = DataContext.get_current().execution_options
    # The other defaults as Train's own; the deprecated exclude_resources is left unset (copying
    # it, as Train's default_ingest_options does, prints a deprecation warning on every stage).
    options = ExecutionOptions(resource_limits=current.resource_limits, preserve_order=True,
                               verbose_progress=current.verbose_progress)
    return ray.train.DataConfig(datasets_to_split=[], execution_options=options)


_PLAN_KEYS = ("step", "micro", "dataset")


def _tensor(value: Any):
    """A batch column as a tensor; text columns (captions) stay a list of strings."""
    array = np.array(value)
    return list(array.tolist()) if array.dtype.kind in "USO" else torch.from_numpy(array)


def iterate_batches(iterator, start: int, accumulation: int) -> Iterator[tuple[int, list[dict[str, torch.Tensor]]]]:
    """(step, micro-batches) from a rank's Ray Data iterator, skipping steps before `start`.

    Rows must come in plan order (the runner asks Ray Train's ingest to preserve it): a batch
    out of order would train the same samples in another order than a clean or resumed run."""
    pending: list[dict[str, torch.Tensor]] = []
    previous = (start - 1, accumulation - 1)
    for row in iterator.iter_rows():
        step = int(row["step"])
        if step < start:
            continue
        key = (step, int(row["micro"]))
        if key <= previous:
            raise RuntimeError(f"training batches out of plan order: (step, micro) {key} after {previous}; "
                               "the rank's dataset must be read with preserve_order")
        previous = key
        pending.append({k: _tensor(v) for k, v in row.items() if k not in _PLAN_KEYS})
        if len(pending) == accumulation:
            yield step, pending
            pending = []


def with_text_dropout(batch: dict[str, torch.Tensor], null_states: torch.Tensor, null_pooled: torch.Tensor,
                      p: float, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Replace each sample's prompt by the empty prompt with probability `p` (for CFG)."""
    if p <= 0:
        return batch
    drop = torch.rand(batch["latent"].shape[0], generator=generator) < p
    if not bool(drop.any()):
        return batch
    states, mask, pooled = batch["text_states"].clone(), batch["text_mask"].clone(), batch["pooled"].clone()
    n = null_states.shape[0]
    if states.shape[1] < n:
        pad = n - states.shape[1]
        states = torch.nn.functional.pad(states, (0, 0, 0, pad))
        mask = torch.nn.functional.pad(mask, (0, pad))
    for i in torch.nonzero(drop).flatten().tolist():
        states[i].zero_()
        mask[i].zero_()
        states[i, :n] = null_states
        mask[i, :n] = 1
        pooled[i] = null_pooled
    return {**batch, "text_states": states, "text_mask": mask, "pooled": pooled}
