"""The Serve application: four model deployments composed behind the `VideoAPI` ingress.

`build_app(args)` is the application builder behind ``serve run vidloom.jobs.serve:app
model=DIR`` and the ``args`` of cluster/serve/serve_config.yaml. The arguments are typed
(`ServeAppConfig`): a wrong one stops the build, naming the field, before a replica starts.
"""

from __future__ import annotations

import hashlib
import os
from typing import Annotated, Any, Literal, get_args

from pydantic import Field

from vidloom.models.fast_path import SERVE_FAST_PATH, FastPathSetting
from vidloom.platform.config import ConfigError, StrictModel, validate
from vidloom.serving.jobs import JobSettings
from vidloom.serving.model import ModelSpecError, resolve_model

Deployment = Literal["PromptRewriter", "TextEncoder", "DiT", "VAEDecoder", "VideoAPI"]
DEPLOYMENTS: tuple[str, ...] = get_args(Deployment)
Threads = Annotated[int, Field(ge=1, le=256)]


class ServeAppConfig(StrictModel):
    """Arguments of the application (all optional)."""

    model: str | None = None  # training export, diffusers folder, official checkpoint; None: random tiny
    vae: str | None = None  # overrides the export's VAE
    text_encoder: str | dict[str, Any] | None = None  # overrides the export's text encoder
    rewriter: str | dict[str, Any] | None = None  # keyword (default), openai, local
    storage: str = "/tmp/vidloom-serve"  # job records and results (shared storage on a cluster)
    api_key_env: str | None = None  # environment variable holding the API key (builder's environment)
    device: str = "cpu"
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    expire_after_s: float = Field(3600.0, gt=0)
    max_queue: int = Field(16, ge=1, le=10000)
    timeout_s: float = Field(600.0, gt=0)
    max_prompt_chars: int = Field(2000, ge=1, le=100000)
    poll_after_ms: int = Field(1000, ge=50, le=60000)
    sync_max_voxels: int = Field(256 * 256 * 33, ge=1)
    max_batch_size: int = Field(8, ge=1, le=64)
    batch_wait_timeout_s: float = Field(0.1, ge=0, le=10)
    # Torch CPU threads per replica: one number for every model deployment, or per deployment
    # ({DiT: 2, VAEDecoder: 1}; the ones not named keep Ray's default, one per reserved CPU).
    torch_threads: Threads | dict[Deployment, Threads] | None = None
    num_cpus: float | None = Field(None, ge=0)  # every replica's CPUs (small local clusters, tests)
    # Ulysses ranks per DiT replica (docs/parallelism.md): must divide the DiT's attention heads.
    sequence_parallel: int = Field(1, ge=1, le=64)
    # The DiT's fast path, as in training: off | on | compile (vidloom/models/fast_path.py).
    fast_path: FastPathSetting = SERVE_FAST_PATH
    replicas: dict[Deployment, int] = {}

    def threads(self, deployment: str) -> int | None:
        """The torch threads of `deployment`'s replicas (None: Ray's default)."""
        if isinstance(self.torch_threads, dict):
            return self.torch_threads.get(deployment)
        return self.torch_threads


def _api_key_sha256(env: str | None) -> str | None:
    """Only the key's digest leaves the builder; replicas compare digests in constant time."""
    if env is None:
        return None
    key = os.environ.get(env, "")
    if not key.strip():
        raise ConfigError(f"api_key_env: environment variable {env} is not set or empty (got api_key_env={env!r})")
    return hashlib.sha256(key.strip().encode()).hexdigest()


def _parallel_options(cfg: ServeAppConfig) -> dict[str, Any]:
    """A DiT replica of P ranks: P equal bundles, the replica (rank 0) in the first.

    One rank's share is the replica's CPUs (1 by default) and one GPU on CUDA. Ray refuses
    all-zero bundles, so ``num_cpus: 0`` (small local clusters) reserves a token 0.01 CPU each.
    PACK keeps the ranks on one node when they fit: the all-to-all runs every attention."""
    cpus = 1.0 if cfg.num_cpus is None else cfg.num_cpus
    bundle: dict[str, float] = {"CPU": cpus or 0.01}
    actor: dict[str, float] = {"num_cpus": cpus}
    if cfg.device.startswith("cuda"):
        bundle["GPU"], actor["num_gpus"] = 1, 1
    return {"ray_actor_options": actor, "placement_group_bundles": [bundle] * cfg.sequence_parallel,
            "placement_group_strategy": "PACK"}


def build_app(args: dict[str, Any] | None = None):
    """The application for `serve.run` / `serve run` / `serve deploy`."""
    from vidloom.serving.deployments import DiT, PromptRewriter, TextEncoder, VAEDecoder
    from vidloom.serving.ingress import VideoAPI

    cfg = args if isinstance(args, ServeAppConfig) else validate(ServeAppConfig, dict(args or {}))
    try:
        spec = resolve_model(cfg.model, cfg.vae, cfg.text_encoder)
    except ModelSpecError as exc:
        raise ConfigError(f"model: {exc}") from None
    key_digest = _api_key_sha256(cfg.api_key_env)
    heads = spec.dit().heads
    if heads % cfg.sequence_parallel:
        raise ConfigError(f"sequence_parallel: {cfg.sequence_parallel} does not divide the DiT's {heads} attention "
                          f"heads; allowed: {[p for p in range(1, heads + 1) if heads % p == 0]}")

    def options(name: str) -> dict[str, Any]:
        opts: dict[str, Any] = {}
        if cfg.num_cpus is not None:
            opts["ray_actor_options"] = {"num_cpus": cfg.num_cpus}
        if name in cfg.replicas:
            opts.update(num_replicas=cfg.replicas[name], autoscaling_config=None)
        if name == "DiT" and cfg.sequence_parallel > 1:
            opts.update(_parallel_options(cfg))
        return opts

    rewriter = PromptRewriter.options(**options("PromptRewriter")).bind(cfg.rewriter)
    text = TextEncoder.options(**options("TextEncoder")).bind(spec, torch_threads=cfg.threads("TextEncoder"))
    dit = DiT.options(**options("DiT")).bind(spec, max_batch_size=cfg.max_batch_size,
                                             batch_wait_timeout_s=cfg.batch_wait_timeout_s,
                                             sequence_parallel=cfg.sequence_parallel, fast_path=cfg.fast_path,
                                             device=cfg.device, dtype=cfg.dtype, torch_threads=cfg.threads("DiT"))
    vae = VAEDecoder.options(**options("VAEDecoder")).bind(spec, device=cfg.device, dtype=cfg.dtype,
                                                           torch_threads=cfg.threads("VAEDecoder"))
    jobs = JobSettings(storage=cfg.storage, expire_after_s=cfg.expire_after_s, max_queue=cfg.max_queue,
                       timeout_s=cfg.timeout_s)
    return VideoAPI.options(**options("VideoAPI")).bind(
        rewriter, text, dit, vae, spec, jobs, api_key_sha256=key_digest, max_prompt_chars=cfg.max_prompt_chars,
        poll_after_ms=cfg.poll_after_ms, sync_max_voxels=cfg.sync_max_voxels)
