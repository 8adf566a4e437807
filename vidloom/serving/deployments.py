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
from dataclasses import dataclass
from typing import Any

from ray import serve

from vidloom.serving import metrics
from vidloom.serving.model import ModelSpec
from vidloom.serving.params import GenerationParams
from vidloom.serving.pipeline import DecodeStage, DenoiseItem, DenoiseStage, GenerationStopped, RewriteStage, TextStage

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
class _Pending:
    job_id: str
    params: dict[str, Any]
    text: dict[str, Any]
    arrived: float


@serve.deployment(
    max_ongoing_requests=16,
    autoscaling_config={"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 8},
    ray_actor_options={"num_cpus": 1},
)
class DiT:
    """Denoising with the flow-matching sampler. `@serve.batch` collects concurrent requests;
    those of one shape and sampler setting are denoised as one batch."""

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
        self.denoise.set_max_batch_size(max_batch_size)
        self.batch_wait_timeout_s = batch_wait_timeout_s
        self.waiting = 0
        self._store = None

    async def check_health(self) -> None:
        # A sequence-parallel replica is only as healthy as its workers: Serve replaces it otherwise.
        check = getattr(self.stage, "check", None)
        if check is not None:
            await asyncio.to_thread(check)

    def _job_store(self):
        if self._store is None:
            import ray

            from vidloom.serving.jobs import NAMESPACE, store_name

            self._store = ray.get_actor(store_name(serve.get_replica_context().app_name), namespace=NAMESPACE)
        return self._store

    async def __call__(self, job_id: str, params: dict[str, Any], text: dict[str, Any],
                       company: int = 0) -> dict[str, Any]:
        """`company`: how many other jobs are on their way to the DiT (the job store counts them).
        A request with none starts at once: waiting `batch_wait_timeout_s` for a batch that cannot
        fill would only add that wait to its latency."""
        # Read when the batch loop takes the first request of a batch, i.e. right after this call.
        self.denoise.set_batch_wait_timeout_s(self.batch_wait_timeout_s if company or self.waiting else 0.0)
        self.waiting += 1
        metrics.queue_depth("DiT", self.waiting)
        return await self.denoise(_Pending(job_id, params, text, time.perf_counter()))

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.1)
    async def denoise(self, batch: list[_Pending]) -> list[dict[str, Any]]:
        self.waiting -= len(batch)
        metrics.queue_depth("DiT", self.waiting)
        items = [DenoiseStage.item(self.spec, GenerationParams(**p.params), p.text["cond"], p.text["negative"],
                                   job_id=p.job_id) for p in batch]
        groups: dict[tuple, list[int]] = {}
        for n, item in enumerate(items):
            groups.setdefault(item.key, []).append(n)
        results: list[dict[str, Any]] = [{} for _ in batch]
        for members in groups.values():
            group = [items[n] for n in members]
            metrics.batch_size("DiT", len(group))
            t0 = time.perf_counter()
            try:
                latents = await asyncio.to_thread(self._run, group)
            except GenerationStopped as exc:
                latents = [exc] * len(group)
            seconds = time.perf_counter() - t0
            for n, out in zip(members, latents):
                timings = {**batch[n].text["timings_s"], "DiT": round(seconds, 4)}
                results[n] = {"latents": out, "batch_size": len(group), "timings_s": timings}
                metrics.generation_latency("DiT", metrics.resolution(batch[n].params),
                                           time.perf_counter() - batch[n].arrived)
        return results

    def _run(self, group: list[DenoiseItem]):
        import ray

        ids = [i.job_id for i in group]
        pending: list = []
        last_report = 0.0

        def on_step(step: int, num_steps: int) -> None:
            nonlocal last_report
            # Progress to the job store, which answers which jobs no longer want a result. The
            # answer is read one step later, so the sampler never waits for the round trip; and
            # at most every PROGRESS_INTERVAL_S (and at the last step), so short steps do not
            # pay a store call each.
            if pending and ray.wait(pending, timeout=0)[0]:
                stop = ray.get(pending.pop())
                if len(stop) == len(ids):
                    raise GenerationStopped(f"stopped at step {step + 1} of {num_steps}: cancelled or timed out")
            now = time.perf_counter()
            if not pending and (now - last_report >= PROGRESS_INTERVAL_S or step + 1 == num_steps):
                last_report = now
                pending.append(self._job_store().step.remote(ids, step, num_steps))

        return self.stage(group, on_step)


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
