"""DiT weight layouts: parity with diffusers, key maps both ways, official checkpoints, 13B shapes."""

from __future__ import annotations

import importlib


import pytest
import torch

from vidloom.models.dit import HunyuanVideoDiT, get_config, load_dit, to_diffusers
from vidloom.models.dit.key_maps import (
    config_from_official,
    config_to_diffusers,
    diffusers_to_ours,
    official_to_ours,
    ours_to_diffusers,
    ours_to_official,
)
from vidloom.models.dit.loading import dit_from_state

diffusers = importlib.import_module("diffusers")
from diffusers import HunyuanVideoTransformer3DModel  # noqa: E402
from dit_inputs import make_inputs, randomize


def diffusers_twin(model: HunyuanVideoDiT) -> HunyuanVideoTransformer3DModel:
    ref = HunyuanVideoTransformer3DModel(**config_to_diffusers(model.config)).eval()
    ref.load_state_dict(ours_to_diffusers(model.state_dict(), model.config.hidden_size), strict=True)
    return ref


@pytest.mark.parametrize("guidance", [False, True], ids=["no-guidance", "guidance-distilled"])
def test_parity_with_diffusers_padded_text(guidance):
    model = load_dit("tiny", guidance_embed=guidance).eval()
    randomize(model)
    ref = diffusers_twin(model)
    x, t, text, mask, pooled = make_inputs(model.config)
    with torch.no_grad():
        ours = model(x, t, text, mask, pooled, guidance=6.0 if guidance else None)
        theirs = ref(
            hidden_states=x, timestep=t, encoder_hidden_states=text, encoder_attention_mask=mask,
            pooled_projections=pooled, guidance=torch.full((2,), 6000.0) if guidance else None,
        ).sample
    assert ours.abs().max() > 0.1  # a real signal, not two zero outputs
    assert (ours - theirs).abs().max().item() <= 1e-5


def test_to_diffusers_folder_loads_in_diffusers_and_back(tmp_path):
    model = load_dit("tiny", guidance_embed=True).eval()
    randomize(model, seed=1)
    folder = to_diffusers(model, tmp_path / "transformer")
    ref = HunyuanVideoTransformer3DModel.from_pretrained(folder).eval()
    x, t, text, mask, pooled = make_inputs(model.config, seed=2)
    with torch.no_grad():
        ours = model(x, t, text, mask, pooled, guidance=4.5)
        theirs = ref(hidden_states=x, timestep=t, encoder_hidden_states=text, encoder_attention_mask=mask,
                     pooled_projections=pooled, guidance=torch.full((2,), 4500.0)).sample
    assert (ours - theirs).abs().max().item() <= 1e-5
    # A diffusers save_pretrained folder (and a pipeline folder containing it) loads back exactly.
    ref.save_pretrained(tmp_path / "pipe" / "transformer")
    for source in (tmp_path / "pipe" / "transformer", tmp_path / "pipe"):
        back = load_dit(source)
        assert back.config == model.config
        for (name, p), q in zip(model.state_dict().items(), back.state_dict().values()):
            assert torch.equal(p, q), name


def test_diffusers_ours_diffusers_round_trip():
    ref = HunyuanVideoTransformer3DModel(**config_to_diffusers(get_config("tiny", guidance_embed=True)))
    dstate = ref.state_dict()
    ours = diffusers_to_ours(dstate, get_config("tiny", guidance_embed=True))
    back = ours_to_diffusers(ours, 64)
    assert back.keys() == dstate.keys()
    assert all(torch.equal(back[k], dstate[k]) for k in dstate)
    # Final-layer halves really are swapped between the layouts.
    h = 64
    assert torch.equal(ours["final_layer.adaLN_modulation.1.weight"][:h], dstate["norm_out.linear.weight"][h:])
    # A missing tensor is reported by its diffusers name.
    del dstate["transformer_blocks.0.attn.add_k_proj.weight"]
    with pytest.raises(KeyError, match="add_k_proj"):
        diffusers_to_ours(dstate, get_config("tiny", guidance_embed=True))


def official_keys(depth_double: int, depth_single: int, depth_refiner: int, guidance: bool) -> set[str]:
    """The official HYVideoDiffusionTransformer parameter names, written out from its modules."""
    wb = lambda m: {f"{m}.weight", f"{m}.bias"}  # noqa: E731
    keys = wb("img_in.proj") | wb("txt_in.input_embedder") | wb("txt_in.t_embedder.mlp.0")
    keys |= wb("txt_in.t_embedder.mlp.2") | wb("txt_in.c_embedder.linear_1") | wb("txt_in.c_embedder.linear_2")
    for i in range(depth_refiner):
        p = f"txt_in.individual_token_refiner.blocks.{i}."
        for m in ("norm1", "self_attn_qkv", "self_attn_proj", "norm2", "mlp.fc1", "mlp.fc2", "adaLN_modulation.1"):
            keys |= wb(p + m)
    keys |= wb("time_in.mlp.0") | wb("time_in.mlp.2") | wb("vector_in.in_layer") | wb("vector_in.out_layer")
    if guidance:
        keys |= wb("guidance_in.mlp.0") | wb("guidance_in.mlp.2")
    for i in range(depth_double):
        for s in ("img", "txt"):
            p = f"double_blocks.{i}.{s}_"
            for m in ("mod.linear", "attn_qkv", "attn_proj", "mlp.fc1", "mlp.fc2"):
                keys |= wb(p + m)
            keys |= {p + "attn_q_norm.weight", p + "attn_k_norm.weight"}
    for i in range(depth_single):
        p = f"single_blocks.{i}."
        keys |= wb(p + "linear1") | wb(p + "linear2") | wb(p + "modulation.linear")
        keys |= {p + "q_norm.weight", p + "k_norm.weight"}
    return keys | wb("final_layer.linear") | wb("final_layer.adaLN_modulation.1")


def test_official_checkpoint_file_round_trip(tmp_path):
    model = load_dit("tiny")
    randomize(model, seed=5)
    official = ours_to_official(model.state_dict())
    assert set(official) == official_keys(2, 2, 2, guidance=False)
    assert official_to_ours({"module": official}).keys() == model.state_dict().keys()
    path = tmp_path / "mp_rank_00_model_states.pt"
    torch.save({"module": official}, path)
    loaded = load_dit(path, rope_dims=model.config.rope_dims)  # RoPE split is not stored in checkpoints
    assert loaded.config == model.config
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    # Folder layout of the release: <root>/transformers/mp_rank_00_model_states.pt
    (tmp_path / "ckpt" / "transformers").mkdir(parents=True)
    path.rename(tmp_path / "ckpt" / "transformers" / path.name)
    assert load_dit(tmp_path / "ckpt", rope_dims=model.config.rope_dims).config == model.config


@pytest.fixture(scope="module")
def meta_13b() -> HunyuanVideoDiT:
    with torch.device("meta"):
        return HunyuanVideoDiT(get_config("13B"))


def test_13b_official_layout_on_meta_device(meta_13b):
    cfg, model = get_config("13B"), meta_13b
    state = model.state_dict()
    official = ours_to_official(state)
    assert set(official) == official_keys(20, 40, 2, guidance=True)
    assert config_from_official(official) == cfg  # every shape-derived field recovered
    back = official_to_ours({"module": official})
    assert back.keys() == state.keys()
    assert all(back[k].shape == state[k].shape for k in state)
    assert official["single_blocks.0.linear1.weight"].shape == (3 * 3072 + 4 * 3072, 3072)
    assert official["img_in.proj.weight"].shape == (3072, 16, 1, 2, 2)
    loaded = dit_from_state(cfg, back)  # strict assign: exact key and shape match
    assert loaded.num_parameters() == model.num_parameters()


def test_13b_diffusers_layout_on_meta_device(meta_13b):
    cfg, ours = get_config("13B"), meta_13b.state_dict()
    with torch.device("meta"):
        ref = HunyuanVideoTransformer3DModel().state_dict()  # diffusers' defaults are the 13B release
    mapped = ours_to_diffusers(ours, cfg.hidden_size)
    assert mapped.keys() == ref.keys()
    assert all(mapped[k].shape == ref[k].shape for k in ref)
    back = diffusers_to_ours(ref, cfg)
    assert back.keys() == ours.keys() and all(back[k].shape == ours[k].shape for k in ours)
