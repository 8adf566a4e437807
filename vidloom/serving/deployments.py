"""The four model deployments. Each wraps one stage of `vidloom.serving.pipeline` (the code
`vidloom generate` runs), loads one model, and scales on its own: the DiT's denoising costs
far more than the rewrite, the text encoding or the VAE decode.

Resources, `max_ongoing_requests` and autoscaling are declared here as defaults; the app
builder (`vidloom.serving.app`) and cluster/serve/serve_config.yaml override them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from ray import serve

from vidloom.serving import metrics
from vidloom.serving.model import ModelSpec
from vidloom.serving.params import GenerationParams
from vidloom.serving.pipeline import (
    DecodeStage,
    DenoiseItem,
    Denoising,
    DenoiseStage,
    GenerationStopped,
    RewriteStage,
    TextStage,
)

log = logging.getLogger(__name__)

#: Least time between two progress reports of a denoising batch to the job store: a client
#: polls every `poll_after_ms` (1 s by default), so finer reports only cost the DiT time.
PROGRESS_INTERVAL_S = 0.1

# Small, fast stages: a few replicas absorb bursts; the DiT and VAE hold the accelerators.
_LIGHT = {"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 4}


def _threads(n: int | None) -> None:
    # Replicas share a node's cores: an unbounded intra-op pool per replica only adds contention.
    if n:
        import torch

        torch.set_num_threads(n)


@serve.deployment(max_ongoing_requests=16, autoscaling_config=_LIGHT, ray_actor_options={"num_cpus": 1})
class PromptRewriter:
    """The report's prompt rewriter: Normal or Master mode, or ``none`` to keep the prompt."""

    def __init__(self, backend: Any = None):
        self.stage = RewriteStage(backend)

    async def rewrite(self, prompt: str, mode: str) -> str:
        t0 = time.perf_counter()
        # Local LM and remote backends block: keep the replica's event loop free meanwhile.
        text = await asyncio.to_thread(self.stage, prompt, mode)
        metrics.generation_latency("PromptRewriter", "", time.perf_counter() - t0)
        return text


@serve.deployment(max_ongoing_requests=16, autoscaling_config=_LIGHT, ray_actor_options={"num_cpus": 1})
class TextEncoder:
    """The text encoder the DiT was trained with (a width mismatch fails the replica's start)."""

    def __init__(self, spec: ModelSpec, torch_threads: int | None = None):
        _threads(torch_threads)
        self.stage = TextStage(spec)

    async def encode(self, prompt: str, negative: str | None) -> dict[str, Any]:
        t0 = time.perf_counter()
        prompts = [prompt] if negative is None else [prompt, negative]
        emb = await asyncio.to_thread(self.stage, prompts)
        parts = [type(emb)(states=emb.states[i:i + 1], mask=emb.mask[i:i + 1], pooled=emb.pooled[i:i + 1])
                 for i in range(len(prompts))]
        seconds = time.perf_counter() - t0
        metrics.generation_latency("TextEncoder", "", seconds)
        return {"cond": parts[0], "negative": parts[1] if negative is not None else None,
                "timings_s": {"TextEncoder": round(seconds, 4)}}


@dataclass
class _Request:
    """A request at the DiT: waiting for a batch, then denoising in one."""

    job_id: str
    item: DenoiseItem
    text_timings: dict[str, float]
    params: dict[str, Any]
    company: int  # jobs the store said were on their way behind this one
    future: asyncio.Future
    arrived: float = field(default_factory=time.perf_counter)
    state: Denoising | None = None
    admitted: float = 0.0
    batch_size: int = 0  # the largest batch it was denoised in


@serve.deployment(
    max_ongoing_requests=16,
    autoscaling_config={"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 8},
    ray_actor_options={"num_cpus": 1},
)
class DiT:
    """Denoising with the flow-matching sampler, with continuous batching: one loop per replica
    steps every running request of one latent shape, text length and guidance with one model
    call, and a request that arrives while a batch runs joins it at the next step (at its own
    noise level, on its own schedule) instead of waiting for the batch to finish. A request
    leaves the batch when its own steps are done, or at the next step when its job is cancelled
    or timed out.

    A sequence-parallel replica (`sequence_parallel > 1`) denoises each batch to the end on all
    its ranks (`vidloom.serving.parallel`): requests join it only between batches."""

    def __init__(self, spec: ModelSpec, device: str = "cpu", dtype: str | None = None,
                 max_batch_size: int = 8, batch_wait_timeout_s: float = 0.1, torch_threads: int | None = None,
                 sequence_parallel: int = 1, fast_path: str = "off"):
        _threads(torch_threads)
        self.spec = spec
        if sequence_parallel > 1:  # this replica is rank 0 of P (vidloom.serving.parallel)
            from vidloom.serving.parallel import SequenceParallelDenoiser

            self.stage = SequenceParallelDenoiser(spec, sequence_parallel, device, dtype, torch_threads, fast_path)
        else:
            self.stage = DenoiseStage(spec, device, dtype, fast_path)
        self.joinable = sequence_parallel == 1
        self.max_batch_size = max_batch_size
        self.batch_wait_timeout_s = batch_wait_timeout_s
        self.waiting: list[_Request] = []
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.Task | None = None
        self._store = None

    async def check_health(self) -> None:
        # A sequence-parallel replica is only as healthy as its workers: Serve replaces it otherwise.
        check = getattr(self.stage, "check", None)
        if check is not None:
            await asyncio.to_thread(check)
        if self._loop is not None and self._loop.done() and not self._loop.cancelled() and self._loop.exception():
            raise RuntimeError(f"the DiT's batching loop stopped: {self._loop.exception()!r}")

    def _job_store(self):
        if self._store is None:
            import ray

            from vidloom.serving.jobs import NAMESPACE, store_name

            self._store = ray.get_actor(store_name(serve.get_replica_context().app_name), namespace=NAMESPACE)
        return self._store

    async def __call__(self, job_id: str, params: dict[str, Any], text: dict[str, Any],
                       company: int = 0) -> dict[str, Any]:
        """`company`: how many other jobs are on their way to the DiT (the job store counts them).
        A new batch waits up to `batch_wait_timeout_s` for them; a request with none starts at
        once, since any that come later join it between steps."""
        item = DenoiseStage.item(self.spec, GenerationParams(**params), text["cond"], text["negative"], job_id=job_id)
        request = _Request(job_id, item, text["timings_s"], params, company, asyncio.get_running_loop().create_future())
        self.waiting.append(request)
        metrics.queue_depth("DiT", len(self.waiting))
        if self._wake is None:
            self._wake = asyncio.Event()
        if self._loop is None or self._loop.done():
            self._loop = asyncio.create_task(self._run())
        self._wake.set()
        return await request.future

    # -- the batching loop ------------------------------------------------------------------

    async def _run(self) -> None:
        running: list[_Request] = []
        reports = _ProgressReports(self._job_store)
        while True:
            try:
                running = await self._cycle(running, reports)
            except Exception as exc:  # noqa: BLE001 - fail the batch's jobs, keep serving the next
                log.exception("denoising batch of %d failed", len(running))
                self._finish(running, exc)
                running = []

    async def _cycle(self, running: list[_Request], reports: _ProgressReports) -> list[_Request]:
        """Admit, step until something changes, hand out what is done; returns the batch left."""
        running = [r for r in running if not r.future.done()]  # callers that went away
        if not running:
            self.waiting = [r for r in self.waiting if not r.future.done()]
            if not self.waiting:
                self._wake.clear()
                await self._wake.wait()
                return []
            await self._gather(self.waiting[0])
        if (self.joinable or not running) and self.waiting:
            running += self._admit(running)
        if not running:
            return []
        stop: set[str] = set()
        try:
            if self.joinable:
                stop = await asyncio.to_thread(self._steps, running, reports)
            else:
                await self._whole_batch(running, reports)
        except GenerationStopped as exc:  # a sequence-parallel batch whose jobs all stopped
            self._finish(running, exc)
            return []
        self._finish([r for r in running if r.state.done])
        for r in running:
            if r.job_id in stop and not r.state.done:
                self._finish([r], GenerationStopped(
                    f"stopped at step {r.state.index} of {r.item.steps}: cancelled or timed out"))
        return [r for r in running if not r.state.done and r.job_id not in stop]

    def _steps(self, running: list[_Request], reports: _ProgressReports) -> set[str]:
        """Step the batch in a worker thread (the replica's event loop stays free to take
        requests) until a request is done, one waits to join, or the store says to stop some;
        returns those to stop. One thread hop per such event, not per step."""
        key, states = running[0].item.key, [r.state for r in running]
        while True:
            self.stage.step(states)
            if any(d.done for d in states) or any(r.future.done() for r in running):
                return set()
            stop = reports.update(running)
            if stop:
                return stop
            if len(running) < self.max_batch_size and self._joiners(key, running):
                return set()

    async def _gather(self, first: _Request) -> None:
        """Before a new batch: wait up to `batch_wait_timeout_s` after `first` arrived for the jobs
        the store said were behind it, unless the batch is full."""
        deadline = first.arrived + self.batch_wait_timeout_s
        while first.company and len([r for r in self.waiting if r.item.key == first.item.key]) < min(
                self.max_batch_size, first.company + 1):
            left = deadline - time.perf_counter()
            if left <= 0:
                return
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), left)
            except asyncio.TimeoutError:
                return

    def _joiners(self, key: tuple, running: list[_Request]) -> list[_Request]:
        """Waiting requests that may join a batch of `key`, in arrival order. While a batch runs,
        only those that came before the oldest request of another key: a stream of one shape
        cannot hold another shape back for ever, which starts when this batch has drained."""
        others = [r.arrived for r in self.waiting if r.item.key != key]
        cutoff = min(others) if running and others else float("inf")
        return [r for r in self.waiting if r.item.key == key and r.arrived < cutoff and not r.future.done()]

    def _admit(self, running: list[_Request]) -> list[_Request]:
        """Waiting requests of the running batch's key (or the oldest waiting one's), up to the
        batch size limit, in arrival order."""
        key = running[0].item.key if running else self.waiting[0].item.key
        joining = self._joiners(key, running)[:self.max_batch_size - len(running)]
        if not joining:
            return []
        now = time.perf_counter()
        for r in joining:
            self.waiting.remove(r)
            r.admitted = now
            if self.joinable:
                r.state = self.stage.begin(r.item)
        for r in [*running, *joining]:
            r.batch_size = max(r.batch_size, len(running) + len(joining))
        metrics.queue_depth("DiT", len(self.waiting))
        return joining

    async def _whole_batch(self, batch: list[_Request], reports: _ProgressReports) -> None:
        """A sequence-parallel batch: every rank runs the same items to the end."""
        def on_step(step: int, num_steps: int) -> None:
            for r in batch:
                r.state.index = min(step + 1, r.item.steps)
            if reports.update(batch, blocking_stop=True):
                raise GenerationStopped(f"stopped at step {step + 1} of {num_steps}: cancelled or timed out")

        for r in batch:
            r.state = Denoising(r.item, None, None)
        latents = await asyncio.to_thread(self.stage, [r.item for r in batch], on_step)
        for r, x in zip(batch, latents):
            r.state.x, r.state.index = x, r.item.steps

    def _finish(self, requests: list[_Request], error: BaseException | None = None) -> None:
        now = time.perf_counter()
        for r in requests:
            if r.future.done():
                continue
            if error is not None:
                r.future.set_exception(error)
                continue
            metrics.batch_size("DiT", r.batch_size)
            metrics.generation_latency("DiT", metrics.resolution(r.params), now - r.arrived)
            timings = {**r.text_timings, "DiT": round(now - r.admitted, 4)}
            r.future.set_result({"latents": r.state.x.cpu(), "batch_size": r.batch_size, "timings_s": timings})


class _ProgressReports:
    """Progress of the running requests to the job store, which answers which jobs no longer
    want a result. Reports go, and their answers are read once arrived (the sampler never waits
    for the round trip), at most every `PROGRESS_INTERVAL_S`, so short steps pay nothing: a
    cancel or a timeout stops its request within about two intervals."""

    def __init__(self, store):
        self.store = store
        self.pending: list = []
        self.last = 0.0
        self.stopped: set[str] = set()  # jobs the store already said to stop: not reported again

    def update(self, running: list[_Request], blocking_stop: bool = False) -> set[str]:
        import ray

        stop: set[str] = set()
        now = time.perf_counter()
        if now - self.last < PROGRESS_INTERVAL_S:
            return stop  # nothing due: not even a look at the last answer (a step may take 1 ms)
        ids = {r.job_id for r in running}
        self.stopped &= ids
        if self.pending and ray.wait(self.pending, timeout=0)[0]:
            self.stopped |= set(ray.get(self.pending.pop()))
            stop = self.stopped & ids
            # A whole batch stops only when none of its jobs wants a result.
            if blocking_stop and stop != ids:
                stop = set()
        progress = {r.job_id: [r.state.index, r.item.steps] for r in running if r.job_id not in self.stopped}
        if progress and not self.pending:
            self.last = now
            self.pending.append(self.store().step.remote(progress))
        return stop


@serve.deployment(
    max_ongoing_requests=4,
    autoscaling_config={"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 2},
    ray_actor_options={"num_cpus": 1},
)
class VAEDecoder:
    """Tiled VAE decode, then H.264 mp4 and a JPEG thumbnail."""

    def __init__(self, spec: ModelSpec, device: str = "cpu", dtype: str | None = None,
                 torch_threads: int | None = None):
        _threads(torch_threads)
        self.stage = DecodeStage(spec, device, dtype)

    async def decode(self, denoised: dict[str, Any], fps: int) -> dict[str, Any]:
        latents = denoised["latents"]
        if isinstance(latents, Exception):
            raise latents
        t0 = time.perf_counter()
        video = await asyncio.to_thread(self.stage, latents, fps)
        seconds = time.perf_counter() - t0
        metrics.generation_latency("VAEDecoder", metrics.resolution(
            {"width": video.width, "height": video.height, "num_frames": video.frames}), seconds)
        timings = {**denoised["timings_s"], "VAEDecoder": round(seconds, 4)}
        return {"mp4": video.mp4, "thumbnail": video.thumbnail, "frames": video.frames, "height": video.height,
                "width": video.width, "batch_size": denoised["batch_size"], "timings_s": timings}
