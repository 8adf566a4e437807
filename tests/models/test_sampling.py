"""Flow-matching objective and Euler sampler: convention, schedule and diffusers parity."""

from __future__ import annotations

import importlib

import pytest
import torch

from vidloom.models.sampling import (
    FlowMatchingConfig,
    SamplerConfig,
    cfg_combine,
    default_shift,
    euler_sample,
    flow_matching_loss,
    interpolate,
    predict_data,
    sample_t,
    sigma_schedule,
)
from vidloom.models.text import TextEmbeddings

SHAPE = (2, 16, 3, 4, 4)  # B×C×T×H×W latents


def _cond(b: int = 2, value: float = 0.0) -> TextEmbeddings:
    return TextEmbeddings(
        states=torch.full((b, 5, 8), value), mask=torch.ones(b, 5, dtype=torch.long), pooled=torch.full((b, 4), value)
    )


def _field(x: torch.Tensor, t: torch.Tensor, *_args) -> torch.Tensor:
    """A fixed, nonlinear velocity field of (x, t) for trajectory comparisons."""
    tb = t.reshape(-1, *([1] * (x.ndim - 1))) / 1000.0
    return torch.sin(x) * (0.5 + tb) - 0.3 * x + tb


def test_default_shift_follows_report() -> None:
    assert default_shift(50) == 7.0
    assert default_shift(20) == 17.0
    assert default_shift(8) == 17.0
    assert default_shift(21) == 7.0


def test_sigma_schedule_endpoints_and_monotone() -> None:
    s = sigma_schedule(50)
    assert s.shape == (51,) and s.dtype == torch.float32
    assert s[0] == 1.0 and s[-1] == 0.0
    assert torch.all(s[1:] < s[:-1])
    # shift > 1 keeps more steps at high noise than the unshifted schedule
    assert torch.all(s[1:-1] > torch.linspace(1, 0, 51)[1:-1])


@pytest.mark.parametrize("num_steps,shift", [(50, 7.0), (20, 17.0), (7, 3.0)])
def test_parity_with_diffusers_flow_match_euler(num_steps: int, shift: float) -> None:
    # The submodule import skips diffusers' top-level lazy machinery (half the import time).
    mod = importlib.import_module("diffusers.schedulers.scheduling_flow_match_euler_discrete")
    import numpy as np

    sched = mod.FlowMatchEulerDiscreteScheduler(shift=shift)
    # As diffusers' HunyuanVideoPipeline: unshifted sigmas in, the scheduler applies the shift.
    sched.set_timesteps(sigmas=np.linspace(1.0, 0.0, num_steps + 1)[:-1].tolist(), device="cpu")
    ours = sigma_schedule(num_steps, shift)
    assert torch.allclose(sched.sigmas, ours, atol=1e-6, rtol=0)
    assert torch.allclose(sched.timesteps, ours[:-1] * 1000, atol=1e-3, rtol=0)

    noise = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0))
    ref = noise.clone()
    ref_traj = []
    for t in sched.timesteps:
        v = _field(ref, t.expand(SHAPE[0]))
        ref = sched.step(v, t, ref, return_dict=False)[0]
        ref_traj.append(ref.clone())

    traj: list[torch.Tensor] = []
    out = euler_sample(
        lambda x, t, *a: _field(x, t),
        noise,
        _cond(),
        config=SamplerConfig(num_steps=num_steps, shift=shift, embedded_guidance_scale=None),
        callback=lambda i, n, s, s_next, x: traj.append(x.clone()),
    )
    assert len(traj) == len(ref_traj) == num_steps
    err = max((a - b).abs().max().item() for a, b in zip(traj, ref_traj))
    assert err <= 1e-5, err
    assert (out - ref).abs().max().item() <= 1e-5


@pytest.mark.parametrize("num_steps,shift", [(50, 7.0), (20, 17.0), (7, 3.0)])
def test_dpm_solver_2m_matches_diffusers_multistep_scheduler(num_steps: int, shift: float) -> None:
    """`solver="dpm++2m"` is diffusers' DPMSolverMultistepScheduler (dpmsolver++, order 2, flow
    sigmas) step for step on the same noise levels. The field ignores t: diffusers calls the model
    at integer timesteps, we at 1000·σ, and only the solver's arithmetic is compared here."""
    mod = importlib.import_module("diffusers.schedulers.scheduling_dpmsolver_multistep")
    sched = mod.DPMSolverMultistepScheduler(use_flow_sigmas=True, flow_shift=shift, prediction_type="flow_prediction",
                                            solver_order=2, algorithm_type="dpmsolver++")
    sched.set_timesteps(num_steps)

    def field(x: torch.Tensor, *_args) -> torch.Tensor:
        return torch.sin(x) * 0.9 - 0.3 * x + 0.4

    noise = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0))
    ref, ref_traj = noise.clone(), []
    for t in sched.timesteps:
        ref = sched.step(field(ref), t, ref, return_dict=False)[0]
        ref_traj.append(ref.clone())
    traj: list[torch.Tensor] = []
    euler_sample(field, noise, _cond(), sigmas=sched.sigmas.float(),
                 config=SamplerConfig(num_steps=num_steps, embedded_guidance_scale=None, solver="dpm++2m"),
                 callback=lambda i, n, s, s_next, x: traj.append(x.clone()))
    assert len(traj) == len(ref_traj) == num_steps
    err = max((a - b).abs().max().item() for a, b in zip(traj, ref_traj))
    assert err <= 2e-5, err


def _gaussian_data_velocity(mean: float, std: float):
    """The exact flow-matching velocity E[noise − x0 | x_σ] when the data is N(mean, std²) per
    element. Its ODE carries noise z to mean + std·z, so a sampler's error is known exactly."""
    def velocity(x: torch.Tensor, t: torch.Tensor, *_args) -> torch.Tensor:
        sigma = (t / 1000.0).reshape(-1, *([1] * (x.ndim - 1))).double()
        var = (1 - sigma) ** 2 * std**2 + sigma**2
        centred = x.double() - (1 - sigma) * mean
        x0 = mean + (1 - sigma) * std**2 / var * centred
        return (sigma / var * centred - x0).float()
    return velocity


def test_dpm_solver_2m_is_more_accurate_than_euler_at_few_steps() -> None:
    noise = torch.randn(SHAPE, generator=torch.Generator().manual_seed(1))
    model, exact = _gaussian_data_velocity(0.5, 0.8), 0.5 + 0.8 * noise

    def error(solver: str, steps: int) -> float:
        config = SamplerConfig(num_steps=steps, shift=1.0, embedded_guidance_scale=None, solver=solver)
        return (euler_sample(model, noise, _cond(), config=config) - exact).abs().max().item()

    for steps in (10, 20):
        assert error("dpm++2m", steps) < 0.5 * error("euler", steps), steps
    assert error("dpm++2m", 80) < 0.5 * error("dpm++2m", 10)  # and it converges
    # One step has no previous prediction: the first-order step, which is Euler's.
    one = SamplerConfig(num_steps=1, embedded_guidance_scale=None, solver="dpm++2m")
    euler = SamplerConfig(num_steps=1, embedded_guidance_scale=None)
    assert torch.allclose(euler_sample(model, noise, _cond(), config=one),
                          euler_sample(model, noise, _cond(), config=euler), atol=1e-6)
    with pytest.raises(ValueError, match="solver must be one of euler, dpm\\+\\+2m"):
        SamplerConfig(solver="heun")


def test_true_velocity_gives_zero_loss() -> None:
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(SHAPE, generator=g)
    noise = torch.randn(SHAPE, generator=g)
    t = torch.tensor([0.25, 0.8])
    seen = {}

    def oracle(x_t, timestep, states, mask, pooled, guidance):
        seen["timestep"], seen["guidance"] = timestep, guidance
        # recover the pair from x_t is impossible in general; the oracle knows noise and data
        return noise - x0

    res = flow_matching_loss(oracle, x0, *_cond().__dict__.values(), t=t, noise=noise, guidance=6.0)
    assert res.loss.item() == 0.0
    assert torch.allclose(seen["timestep"], t * 1000)
    assert torch.allclose(seen["guidance"], torch.full((2,), 6.0))
    # the wrong sign is penalised
    wrong = flow_matching_loss(lambda *a: x0 - noise, x0, *_cond().__dict__.values(), t=t, noise=noise)
    assert wrong.loss.item() > 1.0


def test_interpolation_ends_noise_at_one_data_at_zero() -> None:
    x0, x1 = torch.zeros(SHAPE), torch.ones(SHAPE)
    assert torch.equal(interpolate(x0, x1, torch.zeros(2)), x0)
    assert torch.equal(interpolate(x0, x1, torch.ones(2)), x1)
    x_t = interpolate(x0, x1, torch.tensor([0.3, 0.6]))
    assert torch.allclose(predict_data(x_t, x1 - x0, torch.tensor([0.3, 0.6])), x0)


def test_sampler_with_true_velocity_recovers_data() -> None:
    g = torch.Generator().manual_seed(2)
    data = torch.randn(SHAPE, generator=g)
    noise = torch.randn(SHAPE, generator=g)
    # On the straight path the true velocity is constant, v = noise - data, so Euler is exact.
    out = euler_sample(lambda *a: noise - data, noise, _cond(), config=SamplerConfig(num_steps=9))
    assert (out - data).abs().max().item() < 1e-5


def test_embedded_guidance_passed_as_raw_scale() -> None:
    seen = []

    def model(x, t, states, mask, pooled, guidance):
        seen.append(guidance)
        return torch.zeros_like(x)

    euler_sample(model, torch.zeros(SHAPE), _cond(), config=SamplerConfig(num_steps=3, embedded_guidance_scale=6.0))
    assert len(seen) == 3
    assert torch.equal(seen[0], torch.full((2,), 6.0))
    seen.clear()
    euler_sample(model, torch.zeros(SHAPE), _cond(), config=SamplerConfig(num_steps=2, embedded_guidance_scale=None))
    assert seen == [None, None]


def test_true_cfg_two_passes_and_combine() -> None:
    calls = []

    def model(x, t, states, mask, pooled, guidance):
        calls.append(float(states[0, 0, 0]))
        return torch.full_like(x, float(states[0, 0, 0]))  # v = the prompt's marker value

    pos, neg = _cond(value=1.0), _cond(value=-1.0)
    out = euler_sample(
        model, torch.zeros(SHAPE), pos, negative=neg,
        config=SamplerConfig(num_steps=4, cfg_scale=5.0, embedded_guidance_scale=None),
    )
    assert calls == [1.0, -1.0] * 4
    # combined v = -1 + 5·(1 - (-1)) = 9, integrated over σ from 1 to 0: x = 0 + (0 - 1)·9
    assert torch.allclose(out, torch.full(SHAPE, -9.0))
    # cfg_scale 1 ignores the negative prompt: one pass per step
    calls.clear()
    euler_sample(model, torch.zeros(SHAPE), pos, negative=neg, config=SamplerConfig(num_steps=2, cfg_scale=1.0))
    assert calls == [1.0, 1.0]


def test_cfg_combine_formula_and_rescale() -> None:
    g = torch.Generator().manual_seed(3)
    vp, vn = torch.randn(SHAPE, generator=g), torch.randn(SHAPE, generator=g)
    assert torch.allclose(cfg_combine(vp, vn, 3.0), vn + 3.0 * (vp - vn))
    full = cfg_combine(vp, vn, 7.0, rescale=1.0)
    dims = list(range(1, vp.ndim))
    assert torch.allclose(full.std(dim=dims), vp.std(dim=dims), atol=1e-5)


@pytest.mark.parametrize("mode", ["uniform", "logit_normal"])
def test_t_sampling_range_and_seed(mode: str) -> None:
    cfg = FlowMatchingConfig(t_sampling=mode)
    a = sample_t(4096, cfg, generator=torch.Generator().manual_seed(0))
    b = sample_t(4096, cfg, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    assert a.min() > 0 and a.max() < 1
    if mode == "logit_normal":  # sigmoid(N(0,1)) is symmetric around 0.5 and peaked there
        assert abs(a.median().item() - 0.5) < 0.03
        assert ((a > 0.25) & (a < 0.75)).float().mean() > 0.6
    shifted = sample_t(4096, FlowMatchingConfig(t_sampling=mode, shift=3.0), generator=torch.Generator().manual_seed(0))
    assert torch.all(shifted >= a)


def test_loss_gradients_flow_to_model() -> None:
    layer = torch.nn.Conv3d(16, 16, 1)
    x0 = torch.randn(SHAPE)
    res = flow_matching_loss(
        lambda x, *a: layer(x), x0, *_cond().__dict__.values(), generator=torch.Generator().manual_seed(0)
    )
    res.loss.backward()
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0
    assert res.per_sample.shape == (2,)


def test_with_tiny_dit_and_tiny_text_encoder() -> None:
    """End to end with our real models: encoder -> loss backward -> sampler with CFG."""
    from vidloom.models.dit import HunyuanVideoDiT
    from vidloom.models.dit.config import get_config
    from vidloom.models.text import build_text_encoder

    enc = build_text_encoder("tiny")
    torch.manual_seed(0)
    dit = HunyuanVideoDiT(get_config("tiny", text_dim=enc.state_dim, pooled_dim=enc.pooled_dim))
    cond = enc.encode(["a red fox in snow", "a boat at sea"])
    x0 = torch.randn(2, 16, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    res = flow_matching_loss(dit, x0, cond.states, cond.mask, cond.pooled, generator=torch.Generator().manual_seed(1))
    res.loss.backward()
    assert torch.isfinite(res.loss)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in dit.parameters())
    neg = enc.encode(["", ""])
    steps = []
    out = euler_sample(
        dit, torch.randn(2, 16, 1, 4, 4), cond, negative=neg,
        config=SamplerConfig(num_steps=3, cfg_scale=4.0), callback=lambda i, n, *a: steps.append((i, n)),
    )
    assert out.shape == (2, 16, 1, 4, 4) and torch.isfinite(out).all()
    assert steps == [(0, 3), (1, 3), (2, 3)]


def test_bf16_sampling_keeps_fp32_timesteps_and_distinct_steps() -> None:
    """With a bf16 model the schedule stays float32: 50 shifted steps crowd near t = 1000, where
    bf16 (8 mantissa bits, spacing 4 above 512) would merge neighbours into one timestep."""
    from vidloom.models.dit.loading import build_dit
    from vidloom.models.dit.config import get_config
    from vidloom.models.text import build_text_encoder

    enc = build_text_encoder("tiny")
    dit = build_dit(get_config("tiny", text_dim=enc.state_dim, pooled_dim=enc.pooled_dim)).to(torch.bfloat16)
    seen: list[torch.Tensor] = []

    def spy(x, t, states, mask, pooled, guidance):
        seen.append(t)
        assert x.dtype == states.dtype == pooled.dtype == torch.bfloat16  # model inputs are cast
        return dit(x, t, states, mask, pooled, guidance)

    cond = enc.encode(["a red fox in snow"])
    out = euler_sample(spy, torch.randn(1, 16, 1, 4, 4, generator=torch.Generator().manual_seed(0)), cond,
                       config=SamplerConfig(num_steps=50, embedded_guidance_scale=None), model_dtype=torch.bfloat16)
    steps = torch.stack([t[0] for t in seen])
    assert all(t.dtype == torch.float32 for t in seen)
    assert torch.equal(steps, sigma_schedule(50)[:-1] * 1000)
    assert steps.unique().numel() == 50  # bf16 would merge: its rounding gives fewer values
    assert steps.to(torch.bfloat16).unique().numel() < 50
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    # The DiT's timestep embedding tells neighbouring high-noise steps apart in bf16 too.
    emb = dit.time_in(steps[:2])
    assert not torch.equal(emb[0], emb[1])
