"""A DiT replica that denoises on P workers with Ulysses sequence parallelism.

With ``sequence_parallel: P`` (`ServeAppConfig`) a DiT replica owns a placement group of P
bundles (`vidloom.serving.app` sets the deployment's ``placement_group_bundles``). The replica
itself is rank 0, in bundle 0, as vLLM's driver worker is; it starts P-1 `SequenceParallelWorker`
actors, rank r in bundle r. All P ranks load the DiT, join one torch.distributed group (NCCL on
GPUs, gloo on CPU) and run the same sampler on the same items, each holding 1/P of the video
tokens (`vidloom.models.dit.parallel`); every rank ends with the full latents and rank 0's are
returned. `SequenceParallelDenoiser` is called like `DenoiseStage`, so the DiT deployment, the
ingress and the API do not change.

Cancellation: only rank 0 reports progress to the job store; after every step it broadcasts
whether to stop, so all ranks leave the loop at the same step and none waits in a collective.
A helper that dies makes the replica unhealthy (`check`); Serve then replaces the replica, and
the helpers, owned by it, go with it.
"""

from __future__ import annotations

import socket
import threading
from typing import Any

import torch

from vidloom.serving.model import ModelSpec
from vidloom.serving.pipeline import DenoiseItem, DenoiseStage, GenerationStopped, StepCallback


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


class _Rank:
    """One rank of the group: the DiT with its video tokens split over the group's ranks."""

    def __init__(self, spec: ModelSpec, rank: int, size: int, address: str, device: str = "cpu",
                 dtype: str | None = None, torch_threads: int | None = None, fast_path: str = "off"):
        import torch.distributed as dist

        from vidloom.models.dit.parallel import enable_sequence_parallel

        if torch_threads:
            torch.set_num_threads(torch_threads)
        # Load before joining, so a model that does not load fails with its own error.
        self.stage = DenoiseStage(spec, device, dtype, fast_path)
        self.rank = rank
        dist.init_process_group("nccl" if self.stage.device.type == "cuda" else "gloo",
                                init_method=f"tcp://{address}", rank=rank, world_size=size)
        enable_sequence_parallel(self.stage.model, dist.group.WORLD)

    def denoise(self, items: list[DenoiseItem], on_step: StepCallback | None = None) -> list[torch.Tensor] | None:
        import torch.distributed as dist

        stop = torch.zeros(1, dtype=torch.int32, device=self.stage.device)

        def step(i: int, n: int) -> None:
            # Rank 0 asks; everyone learns the answer in the same step (a 4-byte broadcast).
            if self.rank == 0 and on_step is not None:
                try:
                    on_step(i, n)
                except GenerationStopped:
                    stop.fill_(1)
            dist.broadcast(stop, src=0)
            if stop.item():
                raise GenerationStopped(f"stopped at step {i + 1} of {n}: cancelled or timed out")

        out = self.stage(items, step)
        return out if self.rank == 0 else None  # identical on every rank: only rank 0's travels

    def ping(self) -> bool:
        return True

    def close(self) -> None:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


class SequenceParallelDenoiser:
    """`DenoiseStage`'s interface over P ranks: this process is rank 0, P-1 actors the rest.

    Inside a Serve replica with placement group bundles, helper r is placed in bundle r with that
    bundle's resources; elsewhere (a plain Ray task) the helpers take no reserved resources."""

    def __init__(self, spec: ModelSpec, size: int, device: str = "cpu", dtype: str | None = None,
                 torch_threads: int | None = None, fast_path: str = "off"):
        import ray
        from ray.util import get_current_placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        if size < 2:
            raise ValueError(f"sequence_parallel={size}: a parallel replica needs at least 2 ranks")
        address = f"{ray.util.get_node_ip_address()}:{_free_port()}"
        pg = get_current_placement_group()
        worker = ray.remote(SequenceParallelWorker)
        self.helpers = []
        for rank in range(1, size):
            opts: dict[str, Any] = {"num_cpus": 0}
            if pg is not None:
                bundle = pg.bundle_specs[rank]
                opts = {"num_cpus": bundle.get("CPU", 0), "num_gpus": bundle.get("GPU", 0),
                        "scheduling_strategy": PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=rank)}
            self.helpers.append(worker.options(**opts).remote(spec, rank, size, address, device, dtype, torch_threads,
                                                                     fast_path))
        # Rank 0's join waits for the helpers (they start concurrently); their errors surface below.
        self.local = _Rank(spec, 0, size, address, device, dtype, torch_threads, fast_path)
        ray.get([h.ping.remote() for h in self.helpers])
        self.size = size
        self.broken: str | None = None
        self._lock = threading.Lock()  # one collective sequence at a time
        self._running: list = []

    @property
    def model(self):
        return self.local.stage.model

    def __call__(self, items: list[DenoiseItem], on_step: StepCallback | None = None) -> list[torch.Tensor]:
        import ray

        with self._lock:
            if self.broken:
                raise RuntimeError(self.broken)
            self._running = [h.denoise.remote(items) for h in self.helpers]
            try:
                out = self.local.denoise(items, on_step)
            except GenerationStopped:
                self._collect(stopped=True)  # the helpers left at the same step
                raise
            except BaseException as exc:
                # The helpers may wait in a collective rank 0 never reaches: replace the replica.
                self.broken = f"sequence-parallel rank 0 failed mid-generation: {exc!r}"
                raise
            self._collect(stopped=False)
            return out

    def _collect(self, stopped: bool) -> None:
        import ray

        try:
            for ref in self._running:
                try:
                    ray.get(ref)
                except ray.exceptions.RayTaskError as exc:
                    if not (stopped and isinstance(exc.cause, GenerationStopped)):
                        raise
        except Exception as exc:
            self.broken = f"a sequence-parallel worker failed: {exc}"
            raise RuntimeError(self.broken) from None
        finally:
            self._running = []

    def check(self) -> None:
        """Raise when the group cannot serve any more (Serve's health check calls this)."""
        import ray

        if self.broken:
            raise RuntimeError(self.broken)
        running = list(self._running)
        if running:  # busy helpers cannot answer a ping: look for one that died instead
            for ref in ray.wait(running, num_returns=len(running), timeout=0)[0]:
                try:
                    ray.get(ref, timeout=0)
                except ray.exceptions.RayActorError as exc:
                    self.broken = f"a sequence-parallel worker died: {exc}"
                    raise RuntimeError(self.broken) from None
                except Exception:  # noqa: BLE001 - task errors are reported by the call itself
                    pass
        elif not self._lock.locked():
            try:
                ray.get([h.ping.remote() for h in self.helpers], timeout=30)
            except Exception as exc:  # noqa: BLE001 - any failure to answer means the group is gone
                self.broken = f"a sequence-parallel worker does not answer: {exc}"
                raise RuntimeError(self.broken) from None

    def close(self) -> None:
        import ray

        for h in self.helpers:
            ray.kill(h)
        self.local.close()


class SequenceParallelWorker(_Rank):
    """Rank 1..P-1 of a sequence-parallel DiT replica (a Ray actor the replica owns)."""
