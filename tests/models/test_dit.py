"""HunyuanVideo DiT: shapes, 3D RoPE, training, checkpointing, attention hook, exports, FLOPs."""

from __future__ import annotations


import pytest
import torch

from vidloom.models import load_dit as package_load_dit
from vidloom.models.dit import (
    CONFIGS,
    HunyuanVideoDiT,
    count_flops_per_token,
    forward_flops,
    get_config,
    load_dit,
    save_dit,
    sdpa_attention,
)
from vidloom.models.dit.rope import apply_rope, rope_3d
from vidloom.models.weights_io import is_vidloom_export
from dit_inputs import make_inputs, randomize


def test_tier_parameter_counts():
    counts = {}
    for name in CONFIGS:
        with torch.device("meta"):
            counts[name] = HunyuanVideoDiT(get_config(name)).num_parameters()
    assert counts["tiny"] < 5_000_000
    assert 80e6 < counts["small"] < 120e6
    assert 0.9e9 < counts["1B"] < 1.2e9
    assert 12.5e9 < counts["13B"] < 13.5e9  # the report's 13B


def test_13b_config_matches_report():
    c = get_config("13B")
    assert (c.hidden_size, c.heads, c.depth_double, c.depth_single) == (3072, 24, 20, 40)
    assert (c.mlp_ratio, c.text_dim, c.pooled_dim, c.refiner_depth) == (4.0, 4096, 768, 2)
    assert c.rope_dims == (16, 56, 56) and c.rope_theta == 256.0 and c.patch_size == (1, 2, 2)
    assert c.guidance_embed and c.in_channels == c.out_channels == 16


def test_forward_shape_and_padding_invariance():
    model = load_dit("tiny")
    randomize(model)
    x, t, text, mask, pooled = make_inputs(model.config)
    out = model(x, t, text, mask, pooled)
    assert out.shape == x.shape and torch.isfinite(out).all()
    # Padded text tokens must not influence the video: change them, output stays identical.
    text2 = text.clone()
    text2[1, 4:] = torch.randn_like(text2[1, 4:]) * 100
    assert torch.equal(model(x, t, text2, mask, pooled), out)
    # ...while real tokens do.
    text2[1, 0] += 1
    assert not torch.allclose(model(x, t, text2, mask, pooled)[1], out[1])


def test_tiny_forward_at_256p_65_frames():
    # 65 frames -> 17 latent frames (4x causal temporal VAE), 256x448 px -> 32x56 latents (8x spatial).
    model = load_dit("tiny")
    randomize(model)
    latent = (17, 32, 56)
    # All text valid: no mask, so CPU SDPA takes its fused path over the 4.4k tokens.
    x, t, text, mask, pooled = make_inputs(model.config, batch=1, latent=latent, text_len=16, valid=(16,))
    with torch.no_grad():
        out = model(x, t, text, mask, pooled)
    assert out.shape == (1, 16, *latent) and torch.isfinite(out).all()


# Latent (T, H, W) of tier resolutions and aspect buckets: 129 frames -> 33, 65 frames -> 17.
BUCKETS = {
    "720p-16:9": (33, 90, 160), "720p-9:16": (33, 160, 90), "720p-1:1": (33, 120, 120),
    "540p-16:9": (33, 68, 120), "256p-16:9": (17, 32, 56), "256p-1:1": (17, 32, 32),
}


def test_13b_forward_shapes_on_meta_for_tier_buckets():
    # 13B widths, heads, RoPE and patching; one block of each kind (shapes are per-block
    # invariant, and every meta op costs ~1 ms of Python on this CPU).
    cfg = get_config("13B", depth_double=1, depth_single=1)
    with torch.device("meta"):
        model = HunyuanVideoDiT(cfg)
        text = torch.empty(1, 256, 4096)
        mask = torch.ones(1, 256, dtype=torch.long)
        for name, latent in BUCKETS.items():
            out = model(torch.empty(1, 16, *latent), torch.empty(1), text, mask, torch.empty(1, 768), guidance=6.0)
            assert out.shape == (1, 16, *latent), name


def test_rope_relative_position_invariance():
    dims = (4, 6, 6)
    cos, sin = rope_3d((6, 5, 7), dims, theta=256.0)
    grid = torch.stack(torch.meshgrid(*(torch.arange(n) for n in (6, 5, 7)), indexing="ij"), -1).reshape(-1, 3)
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(16, generator=g, dtype=torch.float64), torch.randn(16, generator=g, dtype=torch.float64)
    rq = apply_rope(q.expand(len(grid), 16), cos.double(), sin.double())
    rk = apply_rope(k.expand(len(grid), 16), cos.double(), sin.double())
    scores = rq @ rk.T  # scores[i, j] = <R(p_i) q, R(p_j) k>

    def index(p):
        return int(((p[0] * 5) + p[1]) * 7 + p[2])

    # Same (dt, dh, dw) offset from different anchors gives the same score.
    pairs = [((0, 0, 0), (2, 1, 3)), ((3, 2, 1), (5, 3, 4)), ((1, 3, 2), (3, 4, 5))]
    ref = scores[index(pairs[0][0]), index(pairs[0][1])]
    for a, b in pairs[1:]:
        assert torch.allclose(scores[index(a), index(b)], ref, atol=1e-10)
    # Rotation preserves norms and differs for different offsets.
    assert torch.allclose(rq.norm(dim=-1), q.norm().expand(len(grid)))
    assert not torch.allclose(scores[index((0, 0, 0)), index((0, 0, 1))], ref)
    # The three axes use disjoint channel groups: time only moves the first 4 channels.
    moved = (cos[index((1, 0, 0))] != cos[0]).nonzero().flatten()
    assert moved.tolist() == [0, 1, 2, 3]


def test_rope_tables_are_float32_and_interleaved():
    cos, sin = rope_3d((2, 2, 2), (16, 56, 56), device="cpu")
    assert cos.dtype == torch.float32 and cos.shape == (8, 128)
    assert torch.equal(cos[:, 0::2], cos[:, 1::2])  # GPT-J pairs share one angle
    x = torch.randn(8, 128, dtype=torch.bfloat16)
    assert apply_rope(x, cos, sin).dtype == torch.bfloat16


def test_training_step_decreases_flow_matching_loss():
    torch.manual_seed(0)
    model = load_dit("tiny", seed=0)
    data, _, text, mask, pooled = make_inputs(model.config)
    noise = torch.randn(data.shape, generator=torch.Generator().manual_seed(123))
    sigma = torch.tensor([0.7, 0.3])
    x_t = (1 - sigma.view(-1, 1, 1, 1, 1)) * data + sigma.view(-1, 1, 1, 1, 1) * noise
    target = noise - data  # rectified-flow velocity
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def loss_fn():
        return torch.nn.functional.mse_loss(model(x_t, sigma * 1000, text, mask, pooled), target)

    before = loss_fn()
    before.backward()
    opt.step()
    opt.zero_grad()
    with torch.no_grad():
        after = loss_fn()
    assert after < before


def test_gradient_checkpointing_gives_same_gradients():
    model = load_dit("tiny")
    randomize(model)
    x, t, text, mask, pooled = make_inputs(model.config)

    def grads():
        model.zero_grad()
        model(x, t, text, mask, pooled).square().mean().backward()
        return {n: p.grad.clone() for n, p in model.named_parameters()}

    plain = grads()
    model.set_gradient_checkpointing(True, double=[1], single=None)
    assert [b.gradient_checkpointing for b in model.double_blocks] == [False, True]
    assert all(b.gradient_checkpointing for b in model.single_blocks)
    ckpt = grads()
    for name in plain:
        torch.testing.assert_close(ckpt[name], plain[name], rtol=1e-5, atol=1e-6)


def test_attention_hook_is_used_by_every_joint_attention():
    model = load_dit("tiny")
    randomize(model)
    x, t, text, mask, pooled = make_inputs(model.config)
    ref = model(x, t, text, mask, pooled)
    calls = []

    def hook(q, k, v, key_mask):
        calls.append((q.shape, None if key_mask is None else key_mask.shape))
        return sdpa_attention(q, k, v, key_mask)

    model.set_attention_fn(hook)
    out = model(x, t, text, mask, pooled)
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    cfg = model.config
    assert len(calls) == cfg.depth_double + cfg.depth_single
    tokens = 3 * 4 * 4 + 7
    assert calls[0] == ((2, cfg.heads, tokens, cfg.head_dim), (2, tokens))


def test_seeded_random_init_and_vidloom_export_round_trip(tmp_path):
    a, b = load_dit("tiny", seed=3), package_load_dit("tiny", seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.img_in.proj.weight, load_dit("tiny", seed=4).img_in.proj.weight)
    randomize(a)
    folder = save_dit(a, tmp_path / "export")
    assert is_vidloom_export(folder)
    loaded = load_dit(folder)
    assert loaded.config == a.config
    x, t, text, mask, pooled = make_inputs(a.config)
    torch.testing.assert_close(loaded(x, t, text, mask, pooled), a(x, t, text, mask, pooled), rtol=0, atol=0)
    assert load_dit(folder, dtype=torch.bfloat16).img_in.proj.weight.dtype == torch.bfloat16


def test_guidance_distilled_model_requires_guidance():
    model = load_dit("tiny", guidance_embed=True)
    randomize(model)
    x, t, text, mask, pooled = make_inputs(model.config)
    with pytest.raises(ValueError, match="guidance"):
        model(x, t, text, mask, pooled)
    assert not torch.allclose(model(x, t, text, mask, pooled, guidance=6.0),
                              model(x, t, text, mask, pooled, guidance=1.0))


def test_flop_count_matches_measured_matmul_flops():
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    # The math SDPA backend runs attention as plain matmuls, which the counter sees.
    for guidance in (False, True):
        model = load_dit("tiny", guidance_embed=guidance)
        x, t, text, _, pooled = make_inputs(model.config, batch=1, latent=(2, 6, 8), text_len=5)
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), sdpa_kernel([SDPBackend.MATH]), counter:
            model(x, t, text, None, pooled, guidance=5.0 if guidance else None)
        video = 2 * 3 * 4
        assert counter.get_total_flops() == forward_flops(model.config, video, 5)
        assert count_flops_per_token(model.config, video + 5, 5) == forward_flops(model.config, video, 5) / (video + 5)


def test_13b_flops_per_token_720p():
    cfg = get_config("13B")
    seq = 33 * 45 * 80 + 256
    per_token = count_flops_per_token(cfg, seq)
    # Dense-parameter term alone is 2 * params per token; attention adds roughly as much at 720p.
    assert 2 * 12.5e9 < per_token < 8 * 13.5e9
