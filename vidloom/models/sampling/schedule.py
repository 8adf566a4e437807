"""Noise-level schedules for flow-matching sampling.

σ runs from 1 (pure noise) to 0 (data). The sampler visits ``shift(linspace(1, 0, N+1))``;
the shift ``σ' = sσ / (1 + (s-1)σ)`` keeps σ near 1 for longer when s > 1, spending more
steps at high noise where the global layout of the video is decided. The HunyuanVideo report
uses s = 7 at 50 steps and a larger shift (17) when sampling with few (≤ 20) steps.
"""

from __future__ import annotations

import torch

#: Shift used with the full step budget (report: 50 steps).
DEFAULT_SHIFT = 7.0
#: Shift used for short schedules (report: ≤ 20 steps).
FEW_STEP_SHIFT = 17.0
#: Step count at or below which `default_shift` picks `FEW_STEP_SHIFT`.
FEW_STEP_THRESHOLD = 20
#: Model timesteps are σ scaled to the training range [0, 1000].
NUM_TRAIN_TIMESTEPS = 1000


def default_shift(num_steps: int) -> float:
    """Shift factor for a step count: 17 for ≤ 20 steps, otherwise 7."""
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    return FEW_STEP_SHIFT if num_steps <= FEW_STEP_THRESHOLD else DEFAULT_SHIFT


def shift_sigmas(sigmas: torch.Tensor, shift: float) -> torch.Tensor:
    """Apply the time shift ``σ' = sσ / (1 + (s-1)σ)``; fixes 0 and 1, monotone for s > 0."""
    if shift <= 0:
        raise ValueError(f"shift must be > 0, got {shift}")
    return shift * sigmas / (1.0 + (shift - 1.0) * sigmas)


def sigma_schedule(num_steps: int, shift: float | None = None) -> torch.Tensor:
    """The N+1 noise levels ``shift(linspace(1, 0, N+1))`` as float32, from 1 down to 0.

    Computed in float64 and rounded once, so the values match a float32 reference to the ulp.
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    s = default_shift(num_steps) if shift is None else float(shift)
    base = torch.linspace(1.0, 0.0, num_steps + 1, dtype=torch.float64)
    return shift_sigmas(base, s).to(torch.float32)


def sigmas_to_timesteps(sigmas: torch.Tensor) -> torch.Tensor:
    """Model timesteps for noise levels: ``t = 1000·σ`` (the DiT's timestep range)."""
    return sigmas * NUM_TRAIN_TIMESTEPS
