"""The text-to-video pipeline: rewrite -> encode text -> denoise -> decode -> mp4.

One code path for `vidloom generate` (all four stages in this process) and the Serve app (one
stage per deployment), as diffusers' pipelines are one object for a script and a server. Each
stage loads only its own model, so a deployment holds one model and scales on its own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import torch

from vidloom.models.sampling import SamplerConfig, advance, make_noise, sigma_schedule, sigmas_to_timesteps, velocity
from vidloom.models.text.base import TextEmbeddings
from vidloom.platform.video_out import mp4_bytes, to_uint8_frames
from vidloom.serving.model import ModelSpec, ModelSpecError
from vidloom.serving.params import GenerationParams

log = logging.getLogger(__name__)

#: (temporal, spatial) compression of the HunyuanVideo VAE family: the DiT's latent grid is
#: known without loading the VAE; `DecodeStage` refuses a VAE with other ratios.
LATENT_RATIOS = (4, 8)

#: ``on_step(step, num_steps)`` after each denoising step; raising stops the batch.
StepCallback = Callable[[int, int], None]


class GenerationStopped(RuntimeError):
    """A generation was cancelled or ran past its deadline (raised from a step callback)."""


def _dtype(name: str | None) -> torch.dtype | None:
    return {None: None, "float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


class RewriteStage:
    """The report's prompt rewriter (Normal / Master) with a models-package backend."""

    def __init__(self, backend: Any = None):
        from vidloom.models.rewriter import build_rewriter

        self.rewriter = build_rewriter(backend)

    def __call__(self, prompt: str, mode: str) -> str:
        if mode == "none":
            return prompt
        return self.rewriter.rewrite(prompt, mode).text


class TextStage:
    """The text encoder the DiT was trained with; its widths are checked against the DiT."""

    def __init__(self, spec: ModelSpec):
        from vidloom.models.text import build_text_encoder

        self.encoder = build_text_encoder(spec.text_encoder).eval()
        dit = spec.dit()
        got = (self.encoder.state_dim, self.encoder.pooled_dim)
        if got != (dit.text_dim, dit.pooled_dim):
            raise ModelSpecError(
                f"text encoder {self.encoder.encoder_id} gives (state_dim, pooled_dim) = {got} but the DiT "
                f"was built for ({dit.text_dim}, {dit.pooled_dim}): serve it with the encoder it was trained with")
        if spec.text_encoder_id and spec.text_encoder_id != self.encoder.encoder_id:
            log.warning("text encoder %s differs from the one recorded at training (%s)",
                        self.encoder.encoder_id, spec.text_encoder_id)

    @torch.no_grad()
    def __call__(self, prompts: list[str]) -> TextEmbeddings:
        return self.encoder.encode(prompts).to("cpu", torch.float32)


@dataclass
class DenoiseItem:
    """One request's input to the DiT. Items with equal `key` can share a model call: one
    latent shape, text length and guidance. Their step counts, shifts and solvers may differ,
    since every item keeps its own schedule and solver state (`Denoising`)."""

    cond: TextEmbeddings  # batch of one
    negative: TextEmbeddings | None  # for true CFG
    latent_shape: tuple[int, int, int, int]  # C, T, h, w
    seed: int
    steps: int
    shift: float
    guidance: str  # "embedded" | "cfg"
    guidance_scale: float
    solver: str = "euler"
    job_id: str = ""

    @property
    def key(self) -> tuple:
        return (self.latent_shape, self.guidance, self.guidance_scale, self.negative is not None,
                self.cond.states.shape[1])

    @cached_property
    def sampler(self) -> SamplerConfig:
        return SamplerConfig(
            num_steps=self.steps, shift=self.shift,
            embedded_guidance_scale=self.guidance_scale if self.guidance == "embedded" else None,
            cfg_scale=self.guidance_scale if self.guidance == "cfg" else 1.0, solver=self.solver)


class DenoiseStage:
    """The DiT and the flow-matching Euler sampler."""

    def __init__(self, spec: ModelSpec, device: str = "cpu", dtype: str | None = None, fast_path: str = "off"):
        from vidloom.models import load_dit

        try:
            self.model = load_dit(spec.dit_source, **spec.dit_overrides).eval()
        except (RuntimeError, ValueError, KeyError) as exc:
            raise ModelSpecError(f"{spec.origin}: the weights do not fit the DiT config ({exc})") from None
        self.device = torch.device(device)
        self.dtype = _dtype(dtype)
        self.model.to(device=self.device, dtype=self.dtype)
        self.model.use_fast_path(fast_path)  # "off" | "on" | "compile" (vidloom/models/fast_path.py)

    @staticmethod
    def item(spec: ModelSpec, params: GenerationParams, cond: TextEmbeddings, negative: TextEmbeddings | None,
             job_id: str = "") -> DenoiseItem:
        t_ratio, s_ratio = LATENT_RATIOS
        shape = (int(spec.dit_config["in_channels"]), (params.num_frames - 1) // t_ratio + 1, params.height // s_ratio,
                 params.width // s_ratio)
        cfg = params.guidance_mode == "cfg" and params.guidance_scale > 1.0
        return DenoiseItem(cond=cond, negative=negative if cfg else None, latent_shape=shape, seed=params.seed,
                           steps=params.num_inference_steps, shift=params.flow_shift,
                           guidance=params.guidance_mode, guidance_scale=params.guidance_scale,
                           solver=params.solver, job_id=job_id)

    def begin(self, item: DenoiseItem) -> Denoising:
        """An item's starting state: its seed's noise at σ = 1, its schedule, and its text on the
        model's device (moved once here, not at every step)."""
        noise = make_noise((1, *item.latent_shape), generator=torch.Generator().manual_seed(item.seed))
        return Denoising(item, noise.to(self.device), sigma_schedule(item.steps, item.shift).to(self.device),
                         cond=item.cond.to(self.device),
                         negative=item.negative.to(self.device) if item.negative is not None else None)

    @torch.no_grad()
    def step(self, batch: list[Denoising]) -> None:
        """One solver step of every state in `batch` (one `key`, any step index) with one model
        call, each sample at its own noise level: requests may join a batch between steps."""
        if len({d.item.key for d in batch}) != 1:
            raise ValueError("a denoising batch must hold items of one shape, text length and guidance")
        first = batch[0].item
        x = torch.cat([d.x for d in batch])
        t = sigmas_to_timesteps(torch.stack([d.sigmas[d.index] for d in batch]))
        cond = TextEmbeddings.cat([d.cond for d in batch])
        negative = TextEmbeddings.cat([d.negative for d in batch]) if first.negative else None
        v = velocity(self.model, x, t, cond, first.sampler, negative=negative, model_dtype=self.dtype)
        for n, d in enumerate(batch):
            d.x, d.previous = advance(x[n:n + 1], v[n:n + 1], d.sigmas[d.index], d.sigmas[d.index + 1],
                                      d.item.solver, d.previous)
            d.index += 1

    def __call__(self, items: list[DenoiseItem], on_step: StepCallback | None = None) -> list[torch.Tensor]:
        """Denoise items of one `key` together, each for its own steps; returns each item's float32
        latents (1×C×T×h×w). `on_step(i, n)` follows the longest schedule."""
        states = [self.begin(i) for i in items]
        n = max(i.steps for i in items)
        for i in range(n):
            self.step([d for d in states if not d.done])
            if on_step is not None:
                on_step(i, n)
        return [d.x.cpu() for d in states]


@dataclass
class Denoising:
    """One item on its way from noise to latents: its sampler state between steps."""

    item: DenoiseItem
    x: torch.Tensor  # 1×C×T×h×w float32
    sigmas: torch.Tensor  # the schedule, steps + 1 levels
    index: int = 0  # steps done
    previous: Any = None  # the solver's state from the last step (dpm++2m)
    cond: TextEmbeddings | None = None  # the item's text on the model's device
    negative: TextEmbeddings | None = None

    @property
    def done(self) -> bool:
        return self.index >= self.item.steps


@dataclass
class Rendered:
    """A decoded video: the mp4 file, a JPEG thumbnail and the frame geometry."""

    mp4: bytes
    thumbnail: bytes
    frames: int
    height: int
    width: int


class DecodeStage:
    """The causal 3D VAE's tiled decode, then mp4 + thumbnail encoding."""

    def __init__(self, spec: ModelSpec, device: str = "cpu", dtype: str | None = None):
        from vidloom.models import load_vae

        self.vae = load_vae(spec.vae_source, setting="--vae").eval()
        # Tiles bound the decoder's activations, so a large video does not need more memory.
        self.vae.enable_tiling()
        if self.ratios != LATENT_RATIOS:
            raise ModelSpecError(f"VAE {spec.vae_source} compresses (time, space) by {self.ratios}, "
                                 f"the served DiT's latents assume {LATENT_RATIOS}")
        self.device = torch.device(device)
        self.dtype = _dtype(dtype)
        self.vae.to(device=self.device, dtype=self.dtype)

    @property
    def ratios(self) -> tuple[int, int]:
        c = self.vae.config
        return c.temporal_compression_ratio, c.spatial_compression_ratio

    @torch.no_grad()
    def frames(self, latents: torch.Tensor) -> np.ndarray:
        z = latents.to(self.device, self.vae.dtype) / self.vae.scaling_factor
        return to_uint8_frames(self.vae.decode(z)[0].float().cpu().numpy())  # 3×F×H×W in [-1, 1] -> F×H×W×3

    def __call__(self, latents: torch.Tensor, fps: int) -> Rendered:
        from vidloom.platform.media import jpeg_bytes

        frames = self.frames(latents)
        return Rendered(mp4=mp4_bytes(frames, fps), thumbnail=jpeg_bytes(frames[len(frames) // 2]),
                        frames=frames.shape[0], height=frames.shape[1], width=frames.shape[2])


@dataclass
class GenerationResult:
    video: Rendered
    prompt: str  # what was encoded (the rewrite, or the user's prompt)
    timings_s: dict[str, float] = field(default_factory=dict)


class TextToVideoPipeline:
    """All four stages in one process (`vidloom generate`, the benchmark's in-process baseline)."""

    def __init__(self, spec: ModelSpec, rewriter: Any = None, device: str = "cpu", dtype: str | None = None,
                 fast_path: str = "off"):
        self.spec = spec
        self.rewrite = RewriteStage(rewriter)
        self.text = TextStage(spec)
        self.denoise = DenoiseStage(spec, device, dtype, fast_path)
        self.decode = DecodeStage(spec, device, dtype)

    def __call__(self, params: GenerationParams, on_step: StepCallback | None = None) -> GenerationResult:
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        prompt = self.rewrite(params.prompt, params.rewrite)
        timings["PromptRewriter"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        cond = self.text([prompt])
        negative = self.text([params.negative_prompt]) if params.guidance_mode == "cfg" else None
        timings["TextEncoder"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        item = self.denoise.item(self.spec, params, cond, negative)
        latents = self.denoise([item], on_step)[0]
        timings["DiT"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        video = self.decode(latents, params.fps)
        timings["VAEDecoder"] = time.perf_counter() - t0
        return GenerationResult(video=video, prompt=prompt, timings_s=timings)
