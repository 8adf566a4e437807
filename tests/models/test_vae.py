"""Causal 3D VAE: parity with diffusers, causality, shapes, key map and loader round trips."""

from __future__ import annotations

import importlib

import copy
import json

import pytest
import torch

from vidloom.models import load_vae
from vidloom.models.vae import CausalVAE3D, VAEConfig, get_vae_config, save_vae, to_diffusers
from vidloom.models.vae.blocks import FrameCausalAttention, UpsampleCausal3D
from vidloom.models.vae.causal_conv import CausalConv3d
from vidloom.models.vae.key_map import (
    from_diffusers_key,
    to_diffusers_key,
    to_diffusers_state_dict,
    unwrap_official_state_dict,
)
from vidloom.platform.weights import MissingWeightsError

TOL = 1e-5


def _video(frames: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, frames, height, width, generator=g) * 2 - 1


def _latent(model: CausalVAE3D, frames: int, height: int, width: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, model.latent_channels, frames, height, width, generator=g)


@pytest.fixture(scope="module")
def tiny() -> CausalVAE3D:
    model = load_vae("tiny")
    # Perturb every tensor so identical-at-init norms cannot hide a swapped key.
    g = torch.Generator().manual_seed(123)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model


@pytest.fixture(scope="module")
def reference(tiny, tmp_path_factory):
    """diffusers' AutoencoderKLHunyuanVideo loaded from our `to_diffusers` export."""
    diffusers = importlib.import_module("diffusers")
    folder = to_diffusers(tiny, tmp_path_factory.mktemp("diffusers_vae"))
    return diffusers.AutoencoderKLHunyuanVideo.from_pretrained(folder).eval()


# ---------------------------------------------------------------------- parity
def test_encode_decode_match_diffusers_without_tiling(tiny, reference):
    x = _video(9, 32, 48)
    z = _latent(tiny, 3, 4, 6)
    tiny.disable_tiling()
    reference.disable_tiling()
    # The same convolution kernels on both sides (ours would pick oneDNN for small batch-1 CPU
    # inputs where PyTorch picks its im2col fallback: the test below checks that choice).
    with torch.no_grad(), torch.backends.mkldnn.flags(enabled=False):
        ours, theirs = tiny.encode(x), reference.encode(x).latent_dist
        assert ours.mean.shape == (1, 16, 3, 4, 6)
        assert (ours.mean - theirs.mean).abs().max() <= TOL
        assert (ours.logvar - theirs.logvar).abs().max() <= TOL
        a = ours.sample(torch.Generator().manual_seed(7))
        b = theirs.sample(torch.Generator().manual_seed(7))
        assert (a - b).abs().max() <= TOL
        dec, ref = tiny.decode(z), reference.decode(z).sample
    assert dec.shape == (1, 3, 9, 32, 48)
    assert (dec - ref).abs().max() <= TOL


def test_tiled_encode_decode_match_diffusers_tiled(tiny, reference):
    # 9 frames x 32 px with 24 px / 8 frame tiles every 16 px / 4 frames: 2x2 spatial tiles and
    # 3 temporal windows, every blend extent > 0 in both latent and pixel space.
    tiles = dict(
        tile_sample_min_height=24, tile_sample_min_width=24, tile_sample_min_num_frames=8,
        tile_sample_stride_height=16, tile_sample_stride_width=16, tile_sample_stride_num_frames=4,
    )
    x = _video(9, 32, 32, seed=3)
    z = _latent(tiny, 3, 4, 4, seed=4)
    tiny.enable_tiling(**tiles)
    reference.enable_tiling(**tiles)
    try:
        with torch.no_grad(), torch.backends.mkldnn.flags(enabled=False):  # same kernels on both sides
            enc, ref_enc = tiny.encode(x).mean, reference.encode(x).latent_dist.mean
            dec, ref_dec = tiny.decode(z), reference.decode(z).sample
            tiny.disable_tiling()
            untiled = tiny.decode(z)
    finally:
        tiny.disable_tiling()
        reference.disable_tiling()
    assert enc.shape == (1, 16, 3, 4, 4) and dec.shape == (1, 3, 9, 32, 32)
    assert (enc - ref_enc).abs().max() <= TOL
    assert (dec - ref_dec).abs().max() <= TOL
    assert (dec - untiled).abs().max() > 1e-3  # tiling really happened


# ---------------------------------------------------------------------- causality
def _changed_after(x: torch.Tensor, frame: int, seed: int) -> torch.Tensor:
    out = x.clone()
    g = torch.Generator().manual_seed(seed)
    out[:, :, frame:] = torch.randn(out[:, :, frame:].shape, generator=g)
    return out


def test_onednn_choice_for_batch_one_decodes_agrees_with_pytorch(tiny):
    """CausalConv3d sends small batch-1 CPU inputs to oneDNN (PyTorch's own dispatch takes its
    im2col fallback there, several times slower): the decoded video is the same to rounding."""
    z = _latent(tiny, 3, 4, 6)
    tiny.disable_tiling()
    with torch.no_grad():
        fast = tiny.decode(z)
        with torch.backends.mkldnn.flags(enabled=False):
            plain = tiny.decode(z)
    assert (fast - plain).abs().max() <= 1e-4 * max(1.0, float(plain.abs().max()))


def test_causal_layers_are_exactly_causal():
    torch.manual_seed(0)
    x = torch.randn(1, 8, 9, 8, 8)
    later = _changed_after(x, 5, seed=1)
    with torch.no_grad():
        conv = CausalConv3d(8, 8, 3)
        assert torch.equal(conv(x)[:, :, :5], conv(later)[:, :, :5])
        down = CausalConv3d(8, 8, 3, stride=(2, 2, 2))  # 9 frames -> 5; output t sees inputs <= 2t
        assert down(x).shape[2] == 5 and torch.equal(down(x)[:, :, :3], down(later)[:, :, :3])
        up = UpsampleCausal3D(8, (2, 2, 2))  # 9 frames -> 17; output t sees inputs <= ceil(t / 2)
        assert up(x).shape[2:] == (17, 16, 16) and torch.equal(up(x)[:, :, :9], up(later)[:, :, :9])
        attn = FrameCausalAttention(8, groups=4)
        assert torch.allclose(attn.attend(x)[:, :, :5], attn.attend(later)[:, :, :5], atol=1e-6)
        assert not torch.allclose(attn.attend(x)[:, :, 5:], attn.attend(later)[:, :, 5:], atol=1e-3)


@pytest.mark.parametrize("tiled", [False, True])
def test_encoder_decoder_wiring_is_causal_apart_from_norm_statistics(tiny, tiled):
    """Changing pixel frames after 4k+1 leaves latent frames <= k unchanged, and vice versa.

    GroupNorm statistics span the whole clip (as in the released model and diffusers), which
    is the only non-causal path; with the norms taken out the full graph must be exactly causal.
    """
    model = copy.deepcopy(tiny)
    for name, module in list(model.named_modules()):
        if isinstance(module, torch.nn.GroupNorm):
            parent, _, attr = name.rpartition(".")
            setattr(model.get_submodule(parent), attr, torch.nn.Identity())
    k = 1
    x = _video(9, 16, 16, seed=5)
    if tiled:
        model.enable_tiling(16, 16, 4, 16, 16, 4)  # temporal windows of 5 frames every 4
    with torch.no_grad():
        a, b = model.encode(x).mean, model.encode(_changed_after(x, 4 * k + 1, seed=6)).mean
        da, db = model.decode(a), model.decode(_changed_after(a, k + 1, seed=7))
    assert torch.allclose(a[:, :, : k + 1], b[:, :, : k + 1], atol=1e-6)
    assert not torch.allclose(a[:, :, k + 1 :], b[:, :, k + 1 :], atol=1e-3)
    assert torch.allclose(da[:, :, : 4 * k + 1], db[:, :, : 4 * k + 1], atol=1e-6)
    assert not torch.allclose(da[:, :, 4 * k + 1 :], db[:, :, 4 * k + 1 :], atol=1e-3)


# ---------------------------------------------------------------------- shapes
@pytest.mark.parametrize("frames,height,width", [(1, 32, 32), (5, 16, 40), (9, 24, 16), (13, 16, 16)])
def test_shapes_follow_4x8x8_compression(tiny, frames, height, width):
    with torch.no_grad():
        posterior = tiny.encode(_video(frames, height, width))
        latent_frames = (frames - 1) // 4 + 1
        assert posterior.mean.shape == (1, 16, latent_frames, height // 8, width // 8)
        assert posterior.mode().shape == posterior.sample().shape == posterior.mean.shape
        assert posterior.kl().shape == (1,)
        assert tiny.decode(posterior.mode()).shape == (1, 3, frames, height, width)


def test_rejects_frame_counts_that_are_not_4k_plus_1(tiny):
    with pytest.raises(ValueError, match="4k\\+1"):
        tiny.encode(_video(8, 32, 32))


def test_hunyuan_config_is_the_released_architecture():
    cfg = get_vae_config("hunyuan")
    assert cfg.block_out_channels == (128, 256, 512, 512) and cfg.latent_channels == 16
    assert cfg.scaling_factor == pytest.approx(0.476986)
    assert cfg.stage_strides() == [(1, 2, 2), (2, 2, 2), (2, 2, 2), (1, 1, 1)]
    assert cfg.latent_shape(129, 720, 1280) == (33, 90, 160)


# ---------------------------------------------------------------------- key map
def test_key_map_is_a_bijection_onto_diffusers_full_size():
    diffusers = importlib.import_module("diffusers")
    with torch.device("meta"):
        ours = CausalVAE3D(get_vae_config("hunyuan")).state_dict()
        theirs = diffusers.AutoencoderKLHunyuanVideo().state_dict()
    mapped = {to_diffusers_key(k): v.shape for k, v in ours.items()}
    assert mapped == {k: v.shape for k, v in theirs.items()}
    assert all(from_diffusers_key(to_diffusers_key(k)) == k for k in ours)
    assert {from_diffusers_key(k) for k in theirs} == set(ours)


def test_key_map_examples_and_unknown_keys():
    assert to_diffusers_key("encoder.down_blocks.1.downsample.weight") == (
        "encoder.down_blocks.1.downsamplers.0.conv.conv.weight"
    )
    assert from_diffusers_key("decoder.mid_block.attentions.0.to_out.0.bias") == "decoder.mid_block.attention.to_out.bias"
    assert from_diffusers_key("encoder.conv_norm_out.weight") == "encoder.norm_out.weight"
    with pytest.raises(KeyError):
        to_diffusers_key("encoder.something_else.weight")


# ---------------------------------------------------------------------- loaders
def test_loader_round_trip_vidloom_diffusers_official(tiny, tmp_path):
    z = _latent(tiny, 2, 2, 2, seed=9)
    with torch.no_grad():
        expected = tiny.decode(z)

    export = save_vae(tiny, tmp_path / "export")
    diffusers_dir = to_diffusers(load_vae(export), tmp_path / "pipeline" / "vae")
    from_pipeline = load_vae(tmp_path / "pipeline")  # a pipeline folder with vae/ inside
    from_diffusers = load_vae(diffusers_dir)

    official = {"state_dict": {f"vae.{k}": v for k, v in to_diffusers_state_dict(from_diffusers.state_dict()).items()}}
    ckpt = tmp_path / "official" / "pytorch_model.pt"
    ckpt.parent.mkdir()
    torch.save(official, ckpt)
    from_official = load_vae(ckpt, config="tiny")
    (ckpt.parent / "config.json").write_text(json.dumps({"block_out_channels": [8, 8, 16, 16], "norm_num_groups": 4, "time_compression_ratio": 4}))
    from_official_sibling_config = load_vae(ckpt)

    back = save_vae(from_official, tmp_path / "export2")
    for model in (load_vae(export), from_pipeline, from_diffusers, from_official, from_official_sibling_config, load_vae(back)):
        assert model.config == tiny.config
        with torch.no_grad():
            assert torch.equal(model.decode(z), expected)


def test_unwrap_official_state_dict_variants():
    t = torch.zeros(1)
    assert unwrap_official_state_dict({"quant_conv.bias": t}) == {"quant_conv.bias": t}
    assert unwrap_official_state_dict({"vae.quant_conv.bias": t, "dit.x": t}) == {"quant_conv.bias": t}
    assert unwrap_official_state_dict({"state_dict": {"vae.quant_conv.bias": t}}) == {"quant_conv.bias": t}


def test_config_names_give_seeded_random_init():
    a, b, c = load_vae("tiny"), load_vae("tiny"), load_vae("tiny", seed=1)
    wa, wb, wc = (m.encoder.conv_in.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)
    assert load_vae(VAEConfig(block_out_channels=(4, 4, 8, 8), norm_num_groups=2)).latent_channels == 16


def test_missing_weights_name_the_setting(tmp_path):
    with pytest.raises(MissingWeightsError, match="model.vae"):
        load_vae(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="neither"):
        load_vae(tmp_path / "empty")


def test_wrong_weights_for_config_fail_loudly(tiny, tmp_path):
    weights = to_diffusers(tiny, tmp_path / "tiny") / "diffusion_pytorch_model.safetensors"
    with pytest.raises(RuntimeError, match="size mismatch"):
        load_vae(weights, config={"block_out_channels": [8, 8, 16, 32], "norm_num_groups": 4})
