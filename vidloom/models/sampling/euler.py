"""The flow-matching sampler for video models (model-agnostic): Euler, or DPM-Solver++(2M).

The model is any callable with the DiT's signature
``model(x, t, text_states, text_mask, pooled, guidance=None) -> velocity`` where x is
B×16×T×H×W latents, t is the timestep ``1000·σ`` (B,) and the velocity follows the convention
in `vidloom.models.sampling.flow_matching` (v = noise − data). Starting from pure noise at
σ = 1, each step does ``x ← x + (σ_next − σ)·v`` down to σ = 0.

Two solvers of that ODE, both one velocity (one or two model calls with true CFG) per step:

* ``"euler"`` (default): first order, the report's sampler and diffusers'
  ``FlowMatchEulerDiscreteScheduler``.
* ``"dpm++2m"``: DPM-Solver++(2M) in the data-prediction form, for the flow path
  ``x = (1 − σ)·x0 + σ·noise`` (α = 1 − σ, λ = log(α/σ)). Each step predicts the data
  ``x0 = x − σ·v`` and extrapolates it linearly in λ from the previous step's prediction, the way
  diffusers' ``DPMSolverMultistepScheduler`` does with flow sigmas. Its first-order step is
  exactly the Euler step, so it differs from Euler only by that correction; the first two steps
  (no previous prediction, then one made at pure noise, λ = −∞, which gives no slope) and the
  last (σ = 0, λ = ∞) are first order. Few-step sampling is where
  it pays: benchmarks/generation.py measures it against Euler.

Two kinds of guidance:

* *embedded guidance* (guidance-distilled DiT): the raw scale (e.g. 6.0) goes into the model
  as its ``guidance`` input, a (B,) tensor; the DiT embeds ``scale·1000`` itself (see
  `vidloom.models.dit.model.GUIDANCE_MULTIPLIER`), like the official and diffusers pipelines
  do before calling their transformer. One model call per step.
* *true CFG*: with a negative/unconditional text, two calls per step combined as
  ``v = v_neg + w·(v_pos − v_neg)``, optionally rescaled toward the conditional std.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from vidloom.models.sampling.flow_matching import VelocityModel
from vidloom.models.sampling.schedule import sigma_schedule, sigmas_to_timesteps
from vidloom.models.text.base import TextEmbeddings

#: ``callback(step, num_steps, sigma, sigma_next, x_next)`` after every step.
ProgressCallback = Callable[[int, int, float, float, torch.Tensor], None]

#: ODE solvers `SamplerConfig.solver` accepts (see the module docstring).
SOLVERS: tuple[str, ...] = ("euler", "dpm++2m")


@dataclass(frozen=True)
class SamplerConfig:
    """Sampling settings. ``shift=None`` picks 7 (or 17 for ≤ 20 steps).

    ``embedded_guidance_scale=None`` passes no guidance to the model (non-distilled DiT).
    ``cfg_scale > 1`` with a negative prompt enables true classifier-free guidance;
    ``cfg_rescale`` (0 = off) blends the guided velocity toward the conditional one's std.
    ``solver``: one of `SOLVERS`.
    """

    num_steps: int = 50
    shift: float | None = None
    embedded_guidance_scale: float | None = 6.0
    cfg_scale: float = 1.0
    cfg_rescale: float = 0.0
    solver: str = "euler"

    def __post_init__(self) -> None:
        if self.num_steps < 1:
            raise ValueError("num_steps must be >= 1")
        if self.solver not in SOLVERS:
            raise ValueError(f"solver must be one of {', '.join(SOLVERS)}, got {self.solver!r}")
        if not 0.0 <= self.cfg_rescale <= 1.0:
            raise ValueError("cfg_rescale must be in [0, 1]")


def cfg_combine(v_pos: torch.Tensor, v_neg: torch.Tensor, scale: float, rescale: float = 0.0) -> torch.Tensor:
    """Classifier-free guidance: ``v_neg + scale·(v_pos − v_neg)``.

    With ``rescale > 0`` the result's per-sample std is pulled toward ``v_pos``'s std (guards
    against over-saturation at large scales), mixing ``rescale`` of the rescaled result.
    """
    guided = v_neg + scale * (v_pos - v_neg)
    if rescale <= 0.0:
        return guided
    dims = list(range(1, v_pos.ndim))
    ratio = v_pos.std(dim=dims, keepdim=True) / guided.std(dim=dims, keepdim=True).clamp_min(1e-12)
    return rescale * (guided * ratio) + (1.0 - rescale) * guided


def make_noise(
    shape: tuple[int, ...],
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Standard-normal starting latents (float32), σ = 1 end of the path."""
    return torch.randn(shape, generator=generator, device=device, dtype=torch.float32)


def _call(
    model: VelocityModel,
    x: torch.Tensor,
    t: torch.Tensor,
    cond: TextEmbeddings,
    guidance: torch.Tensor | None,
    model_dtype: torch.dtype | None,
) -> torch.Tensor:
    xin = x if model_dtype is None else x.to(model_dtype)
    states = cond.states if model_dtype is None else cond.states.to(model_dtype)
    pooled = cond.pooled if model_dtype is None else cond.pooled.to(model_dtype)
    return model(xin, t, states, cond.mask, pooled, guidance)


@torch.no_grad()
def euler_sample(
    model: VelocityModel,
    noise: torch.Tensor,
    cond: TextEmbeddings,
    *,
    config: SamplerConfig = SamplerConfig(),
    negative: TextEmbeddings | None = None,
    sigmas: torch.Tensor | None = None,
    callback: ProgressCallback | None = None,
    model_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Integrate from `noise` (σ = 1) to data (σ = 0); returns float32 latents.

    `sigmas` overrides the schedule (must start at the noise level of `noise` and end at 0).
    True CFG runs when ``config.cfg_scale > 1`` and `negative` is given (two calls per step).
    `model_dtype` casts the model's latent and text inputs (e.g. bf16) while the state, the
    schedule, the timesteps and the guidance scale stay float32: in bf16 neighbouring high-noise
    timesteps (e.g. 996.6 and 993.1) round to one value, merging steps. The DiT embeds a float32
    t itself (sinusoid in float32, then cast to its weights' dtype).
    """
    if sigmas is None:
        sigmas = sigma_schedule(config.num_steps, config.shift)
    sigmas = sigmas.to(device=noise.device, dtype=torch.float32)
    if sigmas.ndim != 1 or sigmas.numel() < 2:
        raise ValueError("sigmas must be a 1-D tensor with at least two levels")
    timesteps = sigmas_to_timesteps(sigmas[:-1])
    b = noise.shape[0]
    x = noise.to(torch.float32)
    n = timesteps.numel()
    previous: tuple[float, torch.Tensor] | None = None  # dpm++2m: (λ, x0 prediction) of the last step
    for i in range(n):
        v = velocity(model, x, timesteps[i].expand(b), cond, config, negative=negative, model_dtype=model_dtype)
        x, previous = advance(x, v, sigmas[i], sigmas[i + 1], config.solver, previous)
        if callback is not None:
            callback(i, n, float(sigmas[i]), float(sigmas[i + 1]), x)
    return x


def velocity(
    model: VelocityModel,
    x: torch.Tensor,
    t: torch.Tensor,
    cond: TextEmbeddings,
    config: SamplerConfig,
    *,
    negative: TextEmbeddings | None = None,
    model_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """The (guided) float32 velocity at `x` for per-sample timesteps `t` (B,): one model call, or
    two with true CFG. Samples of one batch may sit at different noise levels (a server adds
    requests to a running batch between steps)."""
    guidance = None
    if config.embedded_guidance_scale is not None:
        guidance = torch.full((x.shape[0],), float(config.embedded_guidance_scale), device=x.device,
                              dtype=torch.float32)
    v = _call(model, x, t, cond, guidance, model_dtype).float()
    if negative is not None and config.cfg_scale > 1.0:
        v_neg = _call(model, x, t, negative, guidance, model_dtype).float()
        v = cfg_combine(v, v_neg, config.cfg_scale, config.cfg_rescale)
    return v


def advance(x: torch.Tensor, v: torch.Tensor, sigma: float | torch.Tensor, sigma_next: float | torch.Tensor,
            solver: str = "euler", previous: tuple[float, torch.Tensor] | None = None,
            ) -> tuple[torch.Tensor, tuple[float, torch.Tensor] | None]:
    """One solver step of the samples in `x` (all at noise level σ) to σ_next; returns the new x
    and the state the next step needs (dpm++2m: this step's λ and data prediction)."""
    if solver == "euler":
        return x + (sigma_next - sigma) * v, None
    return _dpm_solver_2m_step(x, v, float(sigma), float(sigma_next), previous)


def _log_snr(sigma: float) -> float:
    """λ = log(α/σ) on the flow path (α = 1 − σ): −∞ at pure noise, +∞ at data."""
    if sigma >= 1.0:
        return -math.inf
    if sigma <= 0.0:
        return math.inf
    return math.log(1.0 - sigma) - math.log(sigma)


def _dpm_solver_2m_step(x: torch.Tensor, v: torch.Tensor, sigma: float, sigma_next: float,
                        previous: tuple[float, torch.Tensor] | None) -> tuple[torch.Tensor, tuple[float, torch.Tensor]]:
    """One DPM-Solver++(2M) step from σ to σ_next; returns the new x and this step's (λ, x0)."""
    x0 = x - sigma * v
    lam, lam_next = _log_snr(sigma), _log_snr(sigma_next)
    # e^{-h} with h = λ_next − λ, written without the infinities of σ = 1 and σ_next = 0.
    decay = 0.0 if sigma >= 1.0 or sigma_next <= 0.0 else ((1.0 - sigma) * sigma_next) / (sigma * (1.0 - sigma_next))
    data = x0
    if previous is not None and math.isfinite(previous[0]) and math.isfinite(lam_next):
        r = (lam - previous[0]) / (lam_next - lam)  # previous step size over this one, in λ
        data = x0 + (x0 - previous[1]) / (2.0 * r)
    ratio = sigma_next / sigma if sigma > 0.0 else 0.0
    x_next = ratio * x + (1.0 - sigma_next) * (1.0 - decay) * data
    return x_next, (lam, x0)
