"""Job state: one named, detached Ray actor per application that every ingress replica talks to.

Why an actor: a job must be answered by any ingress replica and outlive the replica that
accepted it. The actor holds the job table in memory, drives each job through the model
deployments' handles (so a job keeps running when an ingress replica dies), and writes every
state change and every result to the configured storage folder (``jobs/<id>.json``,
``videos/<id>.mp4``, ``videos/<id>.jpg``). Limits, documented in docs/serving.md: one actor is a
single point of coordination (it only moves small records; the tensors go from deployment to
deployment directly); when it restarts it reloads finished jobs from storage and marks the jobs
it was running as failed; the storage folder must be on the actor's node (or shared).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vidloom.serving import metrics

log = logging.getLogger(__name__)

NAMESPACE = "vidloom-serve"
ACTIVE = ("queued", "in_progress")


def store_name(app_name: str) -> str:
    return f"vidloom-jobs-{app_name}"


@dataclass(frozen=True)
class JobSettings:
    """How jobs are kept: where results go, how long they live, how many may wait."""

    storage: str
    expire_after_s: float = 3600.0
    max_queue: int = 16  # active (queued + in progress) jobs; more are refused with 429
    timeout_s: float = 600.0  # per generation
    retry_after_s: int = 5


def _error(code: str, message: str) -> dict[str, str]:
    return {"code": code, "message": message}


class JobStore:
    """The job table and the jobs' driver (a Ray actor; see `start_store`)."""

    def __init__(self, settings: dict[str, Any], handles: dict[str, Any]):
        self.settings = JobSettings(**settings)
        self.handles = handles
        self.root = Path(self.settings.storage).expanduser()
        (self.root / "jobs").mkdir(parents=True, exist_ok=True)
        (self.root / "videos").mkdir(parents=True, exist_ok=True)
        self.jobs: dict[str, dict[str, Any]] = {}
        self.tasks: dict[str, asyncio.Task] = {}
        self.stopped_early = 0  # generations the DiT stopped for a cancel or a timeout
        self._reload()
        self._sweeper: asyncio.Task | None = None

    # -- persistence ---------------------------------------------------------------------------

    def _reload(self) -> None:
        for path in sorted((self.root / "jobs").glob("*.json")):
            try:
                job = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if job["status"] in ACTIVE:  # this actor restarted while running it
                job.update(status="failed", error=_error("interrupted", "the job store restarted during the "
                                                                        "generation; submit it again"))
                self._save(job)
            self.jobs[job["id"]] = job

    def _save(self, job: dict[str, Any]) -> None:
        path = self.root / "jobs" / f"{job['id']}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(job))
        os.replace(tmp, path)

    def _files(self, job_id: str) -> list[Path]:
        return [self.root / "videos" / f"{job_id}.mp4", self.root / "videos" / f"{job_id}.jpg",
                self.root / "jobs" / f"{job_id}.json"]

    def _forget(self, job_id: str) -> None:
        self.jobs.pop(job_id, None)
        for path in self._files(job_id):
            path.unlink(missing_ok=True)

    async def _sweep(self) -> None:
        """Delete expired results (their `expires_at` has passed)."""
        while True:
            now = time.time()
            for job_id in [j["id"] for j in self.jobs.values() if j.get("expires_at") and j["expires_at"] <= now]:
                self._forget(job_id)
            await asyncio.sleep(max(1.0, min(30.0, self.settings.expire_after_s / 4)))

    # -- the API's operations ------------------------------------------------------------------

    def _active(self) -> int:
        return sum(j["status"] in ACTIVE for j in self.jobs.values())

    async def submit(self, job: dict[str, Any]) -> dict[str, Any]:
        """Accept a job (``{"job": record}``) or refuse it when the queue is full
        (``{"retry_after": s}``); the check and the insert are one step of this actor."""
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())
        if self._active() >= self.settings.max_queue:
            return {"retry_after": self.settings.retry_after_s, "active": self._active()}
        job = {**job, "id": f"video_{uuid.uuid4().hex}", "object": "video", "status": "queued", "progress": 0,
               "created_at": int(time.time()), "completed_at": None, "expires_at": None, "error": None}
        self.jobs[job["id"]] = job
        self._save(job)
        self.tasks[job["id"]] = asyncio.get_running_loop().create_task(self._drive(job["id"]))
        metrics.queue_depth("JobStore", self._active())
        return {"job": job}

    async def get(self, job_id: str) -> dict[str, Any] | None:
        return self.jobs.get(job_id)

    async def list(self, after: str | None, limit: int, order: str) -> dict[str, Any]:
        jobs = sorted(self.jobs.values(), key=lambda j: (j["created_at"], j["id"]), reverse=order == "desc")
        if after:
            ids = [j["id"] for j in jobs]
            jobs = jobs[ids.index(after) + 1:] if after in ids else []
        page = jobs[:limit]
        return {"data": page, "has_more": len(jobs) > limit}

    async def delete(self, job_id: str) -> bool:
        """Cancel a running job (its generation stops at the next step) and delete its files."""
        if job_id not in self.jobs:
            return False
        task = self.tasks.pop(job_id, None)
        self._forget(job_id)
        if task is not None and not task.done():
            task.cancel()
        return True

    async def content(self, job_id: str, variant: str) -> dict[str, Any]:
        job = self.jobs.get(job_id)
        if job is None:
            return {"status": "missing"}
        if job["status"] != "completed":
            return {"status": job["status"], "error": job.get("error")}
        path = self.root / "videos" / f"{job_id}.{'jpg' if variant == 'thumbnail' else 'mp4'}"
        return {"status": "completed", "data": path.read_bytes()}

    async def wait(self, job_id: str, timeout_s: float, variant: str | None = None) -> dict[str, Any] | None:
        """The job's record once it has ended (or after `timeout_s`); with `variant`, the record
        and that file of a completed job (``{"job", "data"}``), in the same round trip."""
        task = self.tasks.get(job_id)
        if task is not None:
            await asyncio.wait([task], timeout=timeout_s)
        job = self.jobs.get(job_id)
        if variant is None or job is None:
            return job
        answer = await self.content(job_id, variant)
        return {"job": job, "data": answer.get("data")}

    async def stats(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for j in self.jobs.values():
            counts[j["status"]] = counts.get(j["status"], 0) + 1
        return {"jobs": counts, "active": self._active(), "max_queue": self.settings.max_queue,
                "stopped_early": self.stopped_early}

    # -- called by the DiT replicas ------------------------------------------------------------

    async def step(self, progress: dict[str, list[int]]) -> list[str]:
        """Progress of the DiT's running requests, ``{job id: [steps done, steps]}``; returns the
        jobs that should stop (cancelled, failed, deleted), so a cancel or a timeout frees the
        DiT at the next step."""
        stop = []
        for job_id, (done, num_steps) in progress.items():
            job = self.jobs.get(job_id)
            if job is None or job["status"] not in ACTIVE:
                stop.append(job_id)
                continue
            job["status"] = "in_progress"
            # Denoising is most of the work: steps map to 5..95 %, decoding to the rest.
            job["progress"] = int(5 + 90 * done / num_steps)
        self.stopped_early += len(stop)
        return stop

    # -- driving one job -----------------------------------------------------------------------

    async def _drive(self, job_id: str) -> None:
        job = self.jobs[job_id]
        started = time.perf_counter()
        try:
            result = await asyncio.wait_for(self._generate(job), timeout=self.settings.timeout_s)
        except asyncio.TimeoutError:
            self._fail(job, "timeout", f"the generation took longer than the server's limit of "
                                       f"{self.settings.timeout_s:g} s (timeout_s); ask for fewer frames, a "
                                       "smaller size or fewer steps")
            return
        except asyncio.CancelledError:
            return  # deleted: its record and files are already gone
        except Exception as exc:  # noqa: BLE001 - any deployment error fails this job only
            self._fail(job, "generation_error", f"{type(exc).__name__}: {str(exc).strip()[:500]}")
            return
        finally:
            self.tasks.pop(job_id, None)
            metrics.queue_depth("JobStore", self._active())
        if job_id not in self.jobs:
            return
        (self.root / "videos" / f"{job_id}.mp4").write_bytes(result["mp4"])
        (self.root / "videos" / f"{job_id}.jpg").write_bytes(result["thumbnail"])
        now = time.time()
        elapsed = time.perf_counter() - started
        job["extras"].update(timings_s={**job["extras"].get("timings_s", {}), **result["timings_s"]},
                             total_s=round(elapsed, 3), batch_size=result["batch_size"],
                             output={"frames": result["frames"], "height": result["height"],
                                     "width": result["width"], "bytes": len(result["mp4"])})
        job.update(status="completed", progress=100, completed_at=int(now),
                   expires_at=int(now + self.settings.expire_after_s))
        self._save(job)
        metrics.generation_latency("all", metrics.resolution(job["extras"]["params"]), elapsed)

    def _fail(self, job: dict[str, Any], code: str, message: str) -> None:
        if job["id"] not in self.jobs:
            return
        now = time.time()
        job.update(status="failed", error=_error(code, message), completed_at=int(now),
                   expires_at=int(now + self.settings.expire_after_s))
        self._save(job)

    async def _generate(self, job: dict[str, Any]) -> dict[str, Any]:
        params, extras = job["extras"]["params"], job["extras"]
        t0 = time.perf_counter()
        rewritten = await self.handles["PromptRewriter"].rewrite.remote(params["prompt"], params["rewrite"])
        extras["rewritten_prompt"] = rewritten
        extras["timings_s"] = {"PromptRewriter": round(time.perf_counter() - t0, 4)}
        negative = params["negative_prompt"] if params["guidance_mode"] == "cfg" else None
        # The responses are passed on, not awaited: text features and latents go from deployment
        # to deployment without passing through this actor.
        text = self.handles["TextEncoder"].encode.remote(rewritten, negative)
        # Jobs that have not started denoising yet: with none, the DiT does not hold this one
        # back waiting for a batch to fill.
        company = sum(1 for j in self.jobs.values() if j is not job and j["status"] == "queued")
        latents = self.handles["DiT"].remote(job["id"], params, text, company)
        return await self.handles["VAEDecoder"].decode.remote(latents, params["fps"])


def start_store(app_name: str, settings: JobSettings, handles: dict[str, Any]):
    """The application's store: created by the first ingress replica, found by the others.
    Detached and restartable, so it outlives any replica; `stop_store` removes it."""
    import ray

    actor = ray.remote(JobStore).options(
        name=store_name(app_name), namespace=NAMESPACE, lifetime="detached", get_if_exists=True,
        num_cpus=0, max_restarts=-1, max_concurrency=1000)
    return actor.remote(asdict(settings), handles)


def stop_store(app_name: str) -> bool:
    """Kill the application's store (after `serve.delete`); False when there is none."""
    import ray

    try:
        ray.kill(ray.get_actor(store_name(app_name), namespace=NAMESPACE), no_restart=True)
    except ValueError:
        return False
    return True
