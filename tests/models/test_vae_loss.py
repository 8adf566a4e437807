"""VAE training loss: one optimisation step lowers it; without LPIPS weights the perceptual term
is the named offline MS-SSIM term (never dropped); LPIPS asked for without weights fails."""

from __future__ import annotations

import pytest
import torch

from vidloom.models import load_vae
from vidloom.models.vae.discriminator import PatchDiscriminator3D
from vidloom.models.vae.loss import LPIPS_SETTING, VAELoss
from vidloom.models.vae.lpips import LPIPS
from vidloom.models.vae.ms_ssim import ms_ssim
from vidloom.platform.weights import MissingWeightsError


def _batch(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, 5, 16, 16, generator=g) * 2 - 1


def _small_discriminator() -> PatchDiscriminator3D:
    torch.manual_seed(0)
    return PatchDiscriminator3D(base_channels=8, num_layers=2)


def test_training_step_lowers_loss_with_the_offline_perceptual_term():
    vae = load_vae("tiny").train()
    criterion = VAELoss(discriminator=_small_discriminator())
    assert not criterion.lpips_active and criterion.perceptual_kind == "ms_ssim"

    video = _batch()
    optimizer = torch.optim.Adam(vae.parameters(), lr=1e-3)

    def generator_loss() -> dict[str, torch.Tensor]:
        recon, posterior = vae(video, generator=torch.Generator().manual_seed(0))
        return criterion(video, recon, posterior, step=0)

    before = generator_loss()
    assert before["lpips_active"].item() == 0.0 and 0.0 < before["lpips"].item() <= 1.0
    assert before["adversarial"].item() != 0.0 and before["kl"].item() > 0
    optimizer.zero_grad()
    before["loss"].backward()
    optimizer.step()
    with torch.no_grad():
        after = generator_loss()
    assert after["loss"].item() < before["loss"].item()

    # Discriminator side: hinge loss on real vs detached reconstruction gives it gradients only.
    d_opt = torch.optim.Adam(criterion.discriminator.parameters(), lr=1e-3)
    d_opt.zero_grad()
    vae.zero_grad()
    recon, _ = vae(video, sample_posterior=False)
    d_loss = criterion.discriminator_loss(video, recon)["loss"]
    d_loss.backward()
    assert torch.isfinite(d_loss) and d_loss.item() > 0
    assert all(p.grad is None or not p.grad.any() for p in vae.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in criterion.discriminator.parameters())


def test_adversarial_term_waits_for_start_step():
    vae = load_vae("tiny")
    criterion = VAELoss(discriminator=_small_discriminator(), discriminator_start_step=100)
    video = _batch(1)
    with torch.no_grad():
        recon, posterior = vae(video, sample_posterior=False)
        assert criterion(video, recon, posterior, step=5)["adversarial"].item() == 0.0
        assert criterion.discriminator_loss(video, recon, step=5)["loss"].item() == 0.0
        assert criterion(video, recon, posterior, step=100)["adversarial"].item() != 0.0


def test_lpips_loads_from_our_file_and_from_upstream_folder(tmp_path):
    torch.manual_seed(0)
    reference = LPIPS()
    with torch.no_grad():
        for head in reference.heads:  # learned heads are non-negative weights
            head.weight.abs_()
    ours_file = tmp_path / "lpips.safetensors"
    reference.save(ours_file)

    # Upstream layout: torchvision VGG16 file + LPIPS v0.1 linear heads file.
    upstream = tmp_path / "upstream"
    upstream.mkdir()
    state = reference.state_dict()
    torch.save({k: v for k, v in state.items() if k.startswith("features.")} | {"classifier.0.weight": torch.zeros(2, 2)},
               upstream / "vgg16-397923af.pth")
    torch.save({f"lin{i}.model.1.weight": state[f"heads.{i}.weight"] for i in range(5)}, upstream / "vgg.pth")

    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    y = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    for source in (ours_file, upstream):
        criterion = VAELoss(lpips_weights=source, discriminator=_small_discriminator())
        assert criterion.lpips_active
        with torch.no_grad():
            d = criterion.lpips(x, y)
            assert torch.allclose(d, reference(x, y))
            assert (d > 0).all() and criterion.lpips(x, x).abs().max() < 1e-6
            video = x[:1].unsqueeze(2).repeat(1, 1, 5, 1, 1)
            assert criterion.perceptual(video, video).item() < 1e-6


def test_lpips_asked_for_without_weights_names_the_setting():
    with pytest.raises(MissingWeightsError, match=LPIPS_SETTING):
        VAELoss(perceptual="lpips", discriminator=_small_discriminator())


def test_ms_ssim_is_one_for_identical_frames_and_falls_with_blur():
    g = torch.Generator().manual_seed(3)
    img = torch.rand(2, 3, 64, 64, generator=g)
    blurred = torch.nn.functional.avg_pool2d(img, 5, stride=1, padding=2)
    assert torch.allclose(ms_ssim(img, img), torch.ones(2), atol=1e-5)
    assert (ms_ssim(img, blurred) < 0.9).all()
    small = torch.rand(1, 3, 16, 16, generator=g)  # fewer scales, still defined
    assert 0.0 < float(ms_ssim(small, small * 0.9)) <= 1.0
