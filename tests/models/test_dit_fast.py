"""The DiT's fast path (`set_fast_path`): same function as diffusers, fewer kernels, no needless mask."""

from __future__ import annotations

import torch

from vidloom.models.dit import load_dit, sdpa_attention
from dit_inputs import make_inputs, randomize
from test_dit_layouts import diffusers_twin


def _velocity_and_grads(model, inputs, guidance):
    model.zero_grad(set_to_none=True)
    out = model(*inputs, guidance=guidance)
    out.float().square().mean().backward()
    return out.detach().float(), {n: p.grad.float() for n, p in model.named_parameters()}


def _diffusers_velocity(ref, inputs, dtype=torch.float32):
    x, t, text, mask, pooled = inputs
    with torch.no_grad():
        return ref.to(dtype)(hidden_states=x.to(dtype), timestep=t, encoder_hidden_states=text.to(dtype),
                             encoder_attention_mask=mask, pooled_projections=pooled.to(dtype),
                             guidance=torch.full((2,), 6000.0)).sample.float()


def test_fast_path_equals_diffusers_in_fp32_and_switches_back_exactly():
    model = load_dit("tiny", guidance_embed=True)
    randomize(model)
    inputs = make_inputs(model.config)  # sample 1 has 3 padded text tokens
    theirs = _diffusers_velocity(diffusers_twin(model), inputs)
    ref_out, ref_grads = _velocity_and_grads(model, inputs, 6.0)

    model.set_fast_path(True)
    out, grads = _velocity_and_grads(model, inputs, 6.0)
    assert theirs.abs().max() > 0.1
    assert (out - theirs).abs().max().item() <= 1e-5
    for name, g in grads.items():
        torch.testing.assert_close(g, ref_grads[name], rtol=1e-5, atol=1e-7, msg=name)

    model.set_fast_path(False)
    again, _ = _velocity_and_grads(model, inputs, 6.0)
    assert torch.equal(again, ref_out)  # off is the reference path, bit for bit


def test_fast_path_in_bf16_is_as_close_to_diffusers_fp32_as_the_reference_path():
    model = load_dit("tiny", guidance_embed=True)
    randomize(model)
    inputs = make_inputs(model.config)
    truth = _diffusers_velocity(diffusers_twin(model), inputs)
    model = model.to(torch.bfloat16)
    with torch.no_grad():
        reference = model(*inputs, guidance=6.0).float()
        model.set_fast_path(True)
        fast = model(*inputs, guidance=6.0).float()
    ref_err = (reference - truth).abs().max().item()
    fast_err = (fast - truth).abs().max().item()
    scale = truth.abs().max().item()
    assert fast_err <= 0.02 * scale  # bf16 has 8 bits of mantissa: ~0.4 % per rounding
    assert fast_err <= 1.5 * ref_err, (fast_err, ref_err)


def test_fast_path_drops_common_text_padding_and_skips_the_mask():
    model = load_dit("tiny")
    randomize(model)
    seen = []

    def spy(q, k, v, key_mask):
        seen.append((k.shape[2], key_mask is None))
        return sdpa_attention(q, k, v, key_mask)

    model.set_attention_fn(spy)
    video = 3 * 4 * 4
    # Both prompts 4 of 7 tokens: the reference path masks 3 keys, the fast path drops them.
    same = make_inputs(model.config, valid=(4, 4))
    with torch.no_grad():
        ref = model(*same)
        model.set_fast_path(True)
        fast = model(*same)
        assert set(seen) == {(video + 7, False), (video + 4, True)}
        assert (fast - ref).abs().max().item() <= 1e-5
        # Prompts of different lengths keep a mask over the longest one.
        seen.clear()
        model(*make_inputs(model.config, valid=(6, 4)))
        assert set(seen) == {(video + 6, False)}


def test_compiled_fast_path_equals_the_reference_in_training_and_serving_use():
    """`fast_path: compile` (torch.compile of every block, inductor's C++ kernels on CPU) as the
    training loop and the DiT replica switch it on: forward and backward within 1e-5 of the
    reference path in fp32, and "off" restores the reference path."""
    from vidloom.models.fast_path import fast_path_mode

    model = load_dit("tiny", guidance_embed=True)
    randomize(model)
    inputs = make_inputs(model.config)
    ref_out, ref_grads = _velocity_and_grads(model, inputs, 6.0)
    model.use_fast_path(fast_path_mode("compile"))
    assert model._compiled and model.fast_path
    out, grads = _velocity_and_grads(model, inputs, 6.0)
    assert (out - ref_out).abs().max().item() <= 1e-5
    for name, g in grads.items():
        torch.testing.assert_close(g, ref_grads[name], rtol=1e-4, atol=1e-6, msg=name)
    model.use_fast_path(fast_path_mode(False))
    again, _ = _velocity_and_grads(model, inputs, 6.0)
    assert torch.equal(again, ref_out) and not model._compiled


def test_compiled_gelu_equals_pytorchs_tanh_gelu_over_the_whole_range():
    """The fast path's GELU (x * sigmoid(2u) under torch.compile) is PyTorch's tanh GELU, forward
    and backward, from values that saturate either way to the ones activations usually take."""
    import torch.nn.functional as F

    from vidloom.models.dit import fused

    x = torch.cat([torch.linspace(-60, 60, 4001), torch.randn(4096) * 3])
    compiled = torch.compile(fused.gelu_tanh)
    # fp32: a few float32 roundings (PyTorch's own kernel is 1e-6 from float64 here); bf16: one ulp
    for dtype, rtol, atol in ((torch.float32, 1e-5, 5e-6), (torch.bfloat16, 2**-7, 1e-2)):
        a, b = (x.to(dtype).clone().requires_grad_() for _ in range(2))
        got, want = compiled(a), F.gelu(b, approximate="tanh")
        assert torch.isfinite(got).all()
        assert torch.allclose(got.float(), want.float(), rtol=rtol, atol=atol)
        got.sum().backward()
        want.sum().backward()
        assert torch.allclose(a.grad.float(), b.grad.float(), rtol=rtol, atol=atol)
