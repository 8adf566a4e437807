"""The flow-matching training objective (rectified flow, as in the HunyuanVideo report).

Sign convention, used everywhere in vidloom:

* ``x0`` is **data** (VAE latents), ``x1`` is **noise** ``~ N(0, I)``.
* ``t ∈ [0, 1]`` is the noise level σ; ``x_t = (1 - t)·x0 + t·x1`` (straight line).
* The training target is the velocity ``v = dx_t/dt = x1 - x0`` (noise minus data).
* The model sees the timestep ``1000·t``, the DiT's timestep range.

Sampling integrates ``dx/dt = v`` from t = 1 (noise) down to t = 0 (data) with Euler steps
``x ← x + (σ_next - σ)·v``; since σ_next < σ this moves *against* v, i.e. from noise to data.
This is exactly diffusers' ``FlowMatchEulerDiscreteScheduler.step`` as used by its
HunyuanVideo pipeline, so a model trained with this loss samples with either.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from vidloom.models.sampling.schedule import NUM_TRAIN_TIMESTEPS, shift_sigmas

#: ``model(x_t, timestep, text_states, text_mask, pooled, guidance) -> velocity``.
VelocityModel = Callable[..., torch.Tensor]


@dataclass(frozen=True)
class FlowMatchingConfig:
    """How training noise levels are drawn.

    ``t_sampling="logit_normal"`` draws ``t = sigmoid(n)``, ``n ~ N(logit_mean, logit_std²)``,
    which concentrates training on mid noise levels; ``"uniform"`` draws ``t ~ U(0, 1)``.
    ``shift`` (1 = off) optionally applies the same time shift as the sampler to the draws.
    """

    t_sampling: Literal["logit_normal", "uniform"] = "logit_normal"
    logit_mean: float = 0.0
    logit_std: float = 1.0
    shift: float = 1.0

    def __post_init__(self) -> None:
        if self.t_sampling not in ("logit_normal", "uniform"):
            raise ValueError(f"t_sampling must be 'logit_normal' or 'uniform', got {self.t_sampling!r}")
        if self.logit_std <= 0:
            raise ValueError("logit_std must be > 0")
        if self.shift <= 0:
            raise ValueError("shift must be > 0")


def sample_t(
    batch_size: int,
    config: FlowMatchingConfig = FlowMatchingConfig(),
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Draw ``batch_size`` noise levels in (0, 1) per `config` (float32)."""
    if config.t_sampling == "uniform":
        t = torch.rand(batch_size, generator=generator, device=device, dtype=torch.float32)
    else:
        n = torch.randn(batch_size, generator=generator, device=device, dtype=torch.float32)
        t = torch.sigmoid(config.logit_mean + config.logit_std * n)
    if config.shift != 1.0:
        t = shift_sigmas(t, config.shift)
    return t


def _bcast(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape per-sample ``t`` (B,) to broadcast over ``like`` (B, ...)."""
    return t.reshape(t.shape[0], *([1] * (like.ndim - 1))).to(like.dtype)


def interpolate(x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The point on the straight path: ``x_t = (1 - t)·x0 + t·x1`` (x0 data, x1 noise)."""
    tb = _bcast(t, x0)
    return (1.0 - tb) * x0 + tb * x1


def velocity_target(x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
    """The regression target ``v = x1 - x0`` (noise minus data)."""
    return x1 - x0


def predict_data(x_t: torch.Tensor, v: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Data estimate from a velocity: ``x0 = x_t - t·v`` (exact for the true velocity)."""
    return x_t - _bcast(t, x_t) * v


@dataclass
class FlowMatchingLoss:
    """Result of `flow_matching_loss`: the scalar loss plus what produced it."""

    loss: torch.Tensor  # scalar, mean over all elements
    per_sample: torch.Tensor  # (B,) mean squared error of each sample
    t: torch.Tensor  # (B,) noise levels used
    prediction: torch.Tensor  # model output
    target: torch.Tensor  # x1 - x0


def flow_matching_loss(
    model: VelocityModel,
    x0: torch.Tensor,
    text_states: torch.Tensor,
    text_mask: torch.Tensor,
    pooled: torch.Tensor,
    *,
    guidance: torch.Tensor | float | None = None,
    config: FlowMatchingConfig = FlowMatchingConfig(),
    t: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> FlowMatchingLoss:
    """Mean-squared velocity regression for one batch of data latents `x0` (B×C×T×H×W).

    Calls ``model(x_t, 1000·t, text_states, text_mask, pooled, guidance)``. `t` and `noise` may
    be given (e.g. for reproducibility); otherwise they are drawn with `generator`. A float
    `guidance` (the raw scale, e.g. 6.0, for guidance-distilled training) is expanded to a (B,)
    tensor and passed through unchanged; the DiT embeds ``1000·scale`` itself.
    """
    b = x0.shape[0]
    if t is None:
        t = sample_t(b, config, generator=generator, device=x0.device)
    t = t.to(device=x0.device, dtype=torch.float32)
    if t.shape != (b,):
        raise ValueError(f"t must have shape ({b},), got {tuple(t.shape)}")
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    if noise.shape != x0.shape:
        raise ValueError(f"noise shape {tuple(noise.shape)} != data shape {tuple(x0.shape)}")
    if isinstance(guidance, (int, float)):
        guidance = torch.full((b,), float(guidance), device=x0.device, dtype=torch.float32)

    x_t = interpolate(x0, noise, t)
    target = velocity_target(x0, noise)
    pred = model(x_t, t * NUM_TRAIN_TIMESTEPS, text_states, text_mask, pooled, guidance)
    if pred.shape != target.shape:
        raise ValueError(f"model returned shape {tuple(pred.shape)}, expected {tuple(target.shape)}")
    err = (pred.float() - target.float()) ** 2
    per_sample = err.reshape(b, -1).mean(dim=1)
    return FlowMatchingLoss(loss=err.mean(), per_sample=per_sample, t=t, prediction=pred, target=target)
