"""`vidloom convert`: DiT / VAE weights through vidloom, diffusers and official layouts, outputs unchanged."""

from __future__ import annotations

import importlib

import json

import pytest
import torch

from vidloom.jobs.cli import main as cli_main
from vidloom.jobs.convert import main as convert_main
from vidloom.models import load_dit, load_vae
from vidloom.models.vae.key_map import to_diffusers_state_dict
from vidloom.models.weights_io import is_vidloom_export
from dit_inputs import randomize

TOL = 1e-5


def _dit_inputs(cfg, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, cfg.in_channels, 3, 8, 8, generator=g)
    text = torch.randn(2, 7, cfg.text_dim, generator=g)
    mask = torch.zeros(2, 7, dtype=torch.long)
    mask[0, :7], mask[1, :4] = 1, 1  # right padding, as tokenizers produce
    pooled = torch.randn(2, cfg.pooled_dim, generator=g)
    return x, torch.tensor([500.0, 250.0]), text, mask, pooled


@pytest.fixture(scope="module")
def tiny_dit(tmp_path_factory):
    """A fully random tiny DiT saved as a vidloom export (the source of the conversions)."""
    model = load_dit("tiny").eval()
    randomize(model)
    folder = tmp_path_factory.mktemp("dit_src") / "export"
    from vidloom.models.dit import save_dit

    save_dit(model, folder)
    return model, folder


def _diffusers_forward(model, x, t, text, mask, pooled):
    with torch.no_grad():
        return model(hidden_states=x, timestep=t, encoder_hidden_states=text, encoder_attention_mask=mask,
                     pooled_projections=pooled, return_dict=False)[0]


def test_dit_vidloom_to_diffusers_loads_in_diffusers_with_same_outputs(tiny_dit, tmp_path):
    diffusers = importlib.import_module("diffusers")
    model, export = tiny_dit
    inputs = _dit_inputs(model.config)
    with torch.no_grad():
        expected = model(*inputs)

    # config name -> vidloom export, via the `vidloom` dispatcher
    assert cli_main(["convert", "dit", "tiny", str(tmp_path / "from_name")]) == 0
    assert is_vidloom_export(tmp_path / "from_name")
    fresh = load_dit("tiny")
    assert all(torch.equal(a, b) for a, b in zip(load_dit(tmp_path / "from_name").state_dict().values(),
                                                 fresh.state_dict().values()))

    out = tmp_path / "diffusers"
    assert convert_main(["dit", str(export), str(out), "--to", "diffusers"]) == 0
    theirs = diffusers.HunyuanVideoTransformer3DModel.from_pretrained(out).eval()
    got = _diffusers_forward(theirs, *inputs)
    assert got.shape == expected.shape
    assert (got - expected).abs().max() <= TOL

    # ...and back: diffusers folder -> vidloom export gives the identical model.
    back = tmp_path / "back"
    assert convert_main(["dit", str(out), str(back)]) == 0
    with torch.no_grad():
        assert (load_dit(back)(*inputs) - expected).abs().max() <= TOL


def test_dit_official_checkpoint_to_vidloom_export(tiny_dit, tmp_path):
    model, _ = tiny_dit
    ckpt = tmp_path / "transformers" / "mp_rank_00_model_states.pt"
    ckpt.parent.mkdir()
    torch.save({"module": model.state_dict()}, ckpt)  # official keys == ours, DeepSpeed wrapper
    inputs = _dit_inputs(model.config)
    with torch.no_grad():
        expected = model(*inputs)
    for source, out in ((ckpt, tmp_path / "a"), (tmp_path, tmp_path / "b")):  # the file, or its folder
        assert convert_main(["dit", str(source), str(out)]) == 0
        loaded = load_dit(out)
        assert loaded.config == model.config
        with torch.no_grad():
            assert torch.equal(loaded(*inputs), expected)


def test_dit_dtype_cast(tiny_dit, tmp_path):
    _, export = tiny_dit
    assert convert_main(["dit", str(export), str(tmp_path / "bf16"), "--dtype", "bfloat16"]) == 0
    assert {p.dtype for p in load_dit(tmp_path / "bf16").parameters()} == {torch.bfloat16}
    assert convert_main(["dit", str(export), str(tmp_path / "fp16"), "--dtype", "float16", "--to", "diffusers"]) == 0
    from safetensors import safe_open

    with safe_open(str(tmp_path / "fp16" / "diffusion_pytorch_model.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}


@pytest.fixture(scope="module")
def tiny_vae(tmp_path_factory):
    model = load_vae("tiny")
    g = torch.Generator().manual_seed(123)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    from vidloom.models.vae import save_vae

    folder = save_vae(model, tmp_path_factory.mktemp("vae_src") / "export")
    return model, folder


def _vae_inputs():
    g = torch.Generator().manual_seed(0)
    video = torch.rand(1, 3, 5, 16, 16, generator=g) * 2 - 1
    z = torch.randn(1, 16, 2, 2, 2, generator=g)
    return video, z


def test_vae_vidloom_to_diffusers_loads_in_diffusers_with_same_outputs(tiny_vae, tmp_path):
    diffusers = importlib.import_module("diffusers")
    model, export = tiny_vae
    video, z = _vae_inputs()
    model.disable_tiling()
    with torch.no_grad():
        mean, dec = model.encode(video).mean, model.decode(z)

    out = tmp_path / "vae"
    assert convert_main(["vae", str(export), str(out), "--to", "diffusers"]) == 0
    theirs = diffusers.AutoencoderKLHunyuanVideo.from_pretrained(out).eval()
    theirs.disable_tiling()
    with torch.no_grad():
        assert (theirs.encode(video).latent_dist.mean - mean).abs().max() <= TOL
        # Random weights decode to values far outside [-1, 1]; compare at the output's scale.
        assert (theirs.decode(z).sample - dec).abs().max() <= TOL * max(1.0, float(dec.abs().max()))

    back = tmp_path / "back"
    assert convert_main(["vae", str(tmp_path), str(back)]) == 0  # a pipeline folder with vae/ inside
    with torch.no_grad():
        assert torch.equal(load_vae(back).decode(z), dec)


def test_vae_official_checkpoint_to_vidloom_export(tiny_vae, tmp_path):
    model, _ = tiny_vae
    _, z = _vae_inputs()
    with torch.no_grad():
        expected = model.decode(z)
    ckpt = tmp_path / "vae" / "pytorch_model.pt"
    ckpt.parent.mkdir()
    torch.save({"module": to_diffusers_state_dict(model.state_dict())}, ckpt)  # official names = diffusers'
    assert convert_main(["vae", str(ckpt), str(tmp_path / "a"), "--config", "tiny"]) == 0
    cfg = tmp_path / "tiny_config.json"
    cfg.write_text(json.dumps({"block_out_channels": [8, 8, 16, 16], "norm_num_groups": 4}))
    assert convert_main(["vae", str(ckpt), str(tmp_path / "b"), "--config", str(cfg)]) == 0
    for out in ("a", "b"):
        loaded = load_vae(tmp_path / out)
        assert loaded.config == model.config
        with torch.no_grad():
            assert torch.equal(loaded.decode(z), expected)


def test_clear_errors(tmp_path, capsys):
    assert convert_main(["dit", "tinyy", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "'tinyy' not found" in err and "tiny" in err and "13B" in err
    assert convert_main(["vae", str(tmp_path / "missing.pt"), str(tmp_path / "x")]) == 2
    assert "not found" in capsys.readouterr().err

    (tmp_path / "empty").mkdir()
    assert convert_main(["dit", str(tmp_path / "empty"), str(tmp_path / "y")]) == 1
    assert "no vidloom export, diffusers transformer" in capsys.readouterr().err
    assert convert_main(["vae", str(tmp_path / "empty"), str(tmp_path / "y")]) == 1
    assert "neither a vidloom VAE export nor a diffusers VAE folder" in capsys.readouterr().err
    # a repo id that is not in the local Hugging Face cache: never downloaded
    assert convert_main(["dit", "nobody/not-cached-model", str(tmp_path / "y")]) == 1
    assert "models.dit.weights" in capsys.readouterr().err

    assert convert_main(["dit", "tiny", str(tmp_path / "z")]) == 0
    assert convert_main(["dit", "tiny", str(tmp_path / "z")]) == 2  # non-empty OUT needs --force
    assert "not empty" in capsys.readouterr().err
    assert convert_main(["dit", "tiny", str(tmp_path / "z"), "--force"]) == 0
    assert not (tmp_path / "y").exists()
    with pytest.raises(SystemExit):
        convert_main(["unet", "tiny", str(tmp_path / "w")])
