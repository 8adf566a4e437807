"""Flow matching: the training objective (v = noise − data) and the sampler (Euler, DPM-Solver++(2M))."""

from vidloom.models.sampling.euler import (
    SOLVERS,
    SamplerConfig,
    advance,
    cfg_combine,
    euler_sample,
    make_noise,
    velocity,
)
from vidloom.models.sampling.flow_matching import (
    FlowMatchingConfig,
    FlowMatchingLoss,
    flow_matching_loss,
    interpolate,
    predict_data,
    sample_t,
    velocity_target,
)
from vidloom.models.sampling.schedule import default_shift, shift_sigmas, sigma_schedule, sigmas_to_timesteps

__all__ = [
    "SOLVERS",
    "FlowMatchingConfig",
    "FlowMatchingLoss",
    "SamplerConfig",
    "advance",
    "cfg_combine",
    "default_shift",
    "euler_sample",
    "flow_matching_loss",
    "interpolate",
    "make_noise",
    "predict_data",
    "sample_t",
    "shift_sigmas",
    "sigma_schedule",
    "sigmas_to_timesteps",
    "velocity",
    "velocity_target",
]
