"""Training on real Ray Train with real DeepSpeed (gloo, CPU): the shipped dit-tiny curriculum on
the demo's latent cache, resume after a killed worker, reruns, ZeRO stages, the VAE and the
guidance-distillation stage. Runs are small (tens of steps) but go through every real path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from vidloom.models import load_dit
from vidloom.platform.config import ConfigError
from vidloom.platform.weights import file_digest
from vidloom.training import prepare_run, run_prepared, train
from vidloom.training.config import load_train_config

# A first training test also builds the session's curated corpus, tiers and latent cache.
pytestmark = pytest.mark.timeout(2400)

FAST = ["checkpoint.every=10", "eval.every=10", "eval.sample_steps=2", "eval.sample_prompts=1"]


def dit_config(*overrides: str, steps: int = 20):
    return load_train_config("dit-tiny", [*FAST, f"stages.image.steps={steps}", f"stages.joint.steps={steps}",
                                          *overrides])


def single_stage(*overrides: str, steps: int = 20):
    """The image stage of dit-tiny alone (the cheapest real run)."""
    base = ["stages=[{name: image, kind: image, datasets: [{tier: images_256}], "
            "buckets: {tokens_per_batch: 1024, max_batch_size: 8}, steps: %d, lr: 0.001}]" % steps]
    return load_train_config("dit-tiny", [*FAST, *base, *overrides])


@pytest.fixture(scope="module")
def curriculum(latent_cache, tmp_path_factory):
    """The two-stage dit-tiny curriculum trained on the demo's latent cache."""
    out = tmp_path_factory.mktemp("dit-tiny")
    # with the two trackers beside TensorBoard, as a user would log to them (offline here)
    tracking = [f"tracking.mlflow_uri=file://{out}/mlruns", "tracking.wandb_project=vidloom-tests",
                "tracking.wandb_mode=offline"]
    summary = train(dit_config(*tracking, steps=30), str(latent_cache.path), out, export_format="diffusers")
    return out, summary


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def _distance(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return sum(float((a[k].float() - b[k].float()).pow(2).sum()) for k in a) ** 0.5


def test_curriculum_trains_both_stages_and_exports(curriculum, latent_cache, monkeypatch):
    out, summary = curriculum
    assert [s.status for s in summary.stages] == ["trained", "trained"]
    image, joint = (json.loads((out / n / "final" / "config.json").read_text())["_vidloom_meta"] for n in ("image", "joint"))
    # the joint stage started from the image stage's trained weights (recorded digest = the file)
    assert joint["training"]["init"]["digest"] == file_digest(out / "image" / "weights" / "model.safetensors")
    assert image["training"]["init"] is None
    fresh = load_dit("tiny", text_dim=384, pooled_dim=384).state_dict()
    after_image, after_joint = _weights(out / "image" / "weights"), _weights(out / "joint" / "weights")
    assert _distance(after_joint, after_image) < _distance(after_joint, fresh)
    # validation at fixed t on held-out latents falls clearly below the untrained model's
    for stage in summary.stages:
        m = stage.metrics
        assert m["val_loss"] < 0.88 * m["val_loss_initial"], (stage.name, m)
    # the export is what training produced, loadable by load_dit, with provenance
    final = out / "final"
    assert _weights(final).keys() == after_joint.keys()
    model = load_dit(final)
    assert joint["text_encoder"]["encoder_id"] == latent_cache.meta["text_encoder"]["encoder_id"]
    assert joint["vae"]["digest"] == latent_cache.meta["vae"]["digest"]
    x = torch.randn(1, 16, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    txt = torch.randn(1, 5, 384, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = model(x, 500.0, txt, None, txt.mean(1))
        ref = load_dit("tiny", text_dim=384, pooled_dim=384)
        ref.load_state_dict(_weights(out / "joint" / "final"))
        assert torch.equal(ours, ref(x, 500.0, txt, None, txt.mean(1)))
    # the diffusers layout loads in diffusers and gives the same velocity
    from diffusers import HunyuanVideoTransformer3DModel

    theirs = HunyuanVideoTransformer3DModel.from_pretrained(str(final / "diffusers")).eval()
    x2 = torch.randn(1, 16, 2, 8, 8, generator=torch.Generator().manual_seed(2))
    mask = torch.ones(1, 5, dtype=torch.long)
    with torch.no_grad():
        a = model(x2, 500.0, txt, mask, txt.mean(1))
        b = theirs(hidden_states=x2, timestep=torch.tensor([500.0]), encoder_hidden_states=txt,
                   encoder_attention_mask=mask, pooled_projections=txt.mean(1), return_dict=False)[0]
    assert torch.allclose(a, b, atol=1e-5), float((a - b).abs().max())
    # pictures and event files a user looks at
    assert list((out / "joint" / "samples").glob("*.png")) and list((out / "joint" / "samples").glob("*.mp4"))
    assert list((out / "tensorboard" / "joint").glob("events.out.tfevents.*"))
    progress = json.loads((out / "joint" / "progress.json").read_text())
    assert progress["step"] == progress["steps"] == 30
    # MLflow: one run per stage with the loss curve and the stage's settings (reading a file
    # store back needs MLflow 3's opt-in too; the run set it for its own workers)
    import mlflow

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    client = mlflow.MlflowClient(tracking_uri=f"file://{out}/mlruns")
    runs = {r.info.run_name: r for r in client.search_runs([client.get_experiment_by_name("dit-tiny").experiment_id])}
    assert set(runs) == {"dit-tiny-image", "dit-tiny-joint"}
    history = client.get_metric_history(runs["dit-tiny-joint"].info.run_id, "loss")
    assert sorted(m.step for m in history) == list(range(1, 31))
    assert runs["dit-tiny-joint"].data.params["stage.kind"] == "joint"
    assert "val_loss" in runs["dit-tiny-joint"].data.metrics
    # W&B (offline): one run file per stage, named after it, holding the logged loss
    files = sorted((out / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 2
    blobs = b"".join(f.read_bytes() for f in files)
    assert b"dit-tiny-image" in blobs and b"dit-tiny-joint" in blobs and b"loss" in blobs


def test_rerun_skips_finished_stages_and_retrains_only_a_changed_one(curriculum, latent_cache):
    out, _ = curriculum
    before = file_digest(out / "image" / "final" / "model.safetensors")
    again = train(dit_config(steps=30), str(latent_cache.path), out)
    assert [s.status for s in again.stages] == ["skipped", "skipped"]
    changed = train(dit_config("stages.joint.steps=10", steps=30), str(latent_cache.path), out)
    assert [s.status for s in changed.stages] == ["skipped", "trained"]
    assert file_digest(out / "image" / "final" / "model.safetensors") == before
    assert json.loads((out / "joint" / "progress.json").read_text())["step"] == 10


def test_killed_worker_resumes_from_checkpoint_with_the_same_result(latent_cache, tmp_path):
    clean = train(single_stage(), str(latent_cache.path), tmp_path / "clean")
    faulty = train(single_stage("fault.stage=image", "fault.step=15", "fault.rank=1"), str(latent_cache.path),
                   tmp_path / "faulty")
    assert (tmp_path / "faulty" / "image" / "fault-injected-image").exists()  # the worker really died
    assert clean.stages[0].metrics["step"] == faulty.stages[0].metrics["step"] == 20
    a, b = _weights(tmp_path / "clean" / "final"), _weights(tmp_path / "faulty" / "final")
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5, rtol=1e-4), k


def test_zero_stages_reach_the_same_loss(latent_cache, tmp_path):
    losses = {}
    for stage in (0, 2, 3):
        summary = train(single_stage(f"deepspeed.zero_stage={stage}", steps=10), str(latent_cache.path),
                        tmp_path / f"zero{stage}")
        losses[stage] = summary.stages[0].metrics["val_loss"]
    assert max(losses.values()) - min(losses.values()) < 1e-3 * max(losses.values()), losses


def _teacher_with_guidance_to_learn(folder: Path) -> Path:
    """A teacher whose conditional and unconditional predictions differ clearly: every weight
    perturbed, so the zero-initialised modulations carry the text too (a few steps of tiny
    training barely use the text, which leaves nothing to distil)."""
    from vidloom.models.dit import save_dit

    teacher = load_dit("tiny", text_dim=384, pooled_dim=384, seed=3)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in teacher.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return save_dit(teacher, folder)


def test_distill_stage_student_approaches_the_teacher(latent_cache, tmp_path):
    teacher = _teacher_with_guidance_to_learn(tmp_path / "teacher")
    cfg = load_train_config("dit-tiny", [*FAST, "stages=[{name: distill, kind: distill, datasets: [{tier: images_256}], "
                                         "buckets: {tokens_per_batch: 1024, max_batch_size: 8}, steps: 30, lr: 0.0003, "
                                         f"init_from: {teacher}}}]"])
    summary = train(cfg, str(latent_cache.path), tmp_path / "distill")
    m = summary.stages[0].metrics  # the student's one-pass vs the teacher's CFG output, at w = 4
    assert m["val_loss"] < 0.8 * m["val_loss_initial"], m
    student = load_dit(tmp_path / "distill" / "final")
    assert student.config.guidance_embed  # one pass per step with the guidance embedding
    meta = json.loads((tmp_path / "distill" / "final" / "config.json").read_text())["_vidloom_meta"]
    assert meta["sampling"]["guidance"] == "embedded"
    # the serve defaults benchmarks/generation.py measured for a distilled model
    assert (meta["sampling"]["num_inference_steps"], meta["sampling"]["flow_shift"]) == (20, 17.0)
    assert meta["sampling"]["solver"] == "euler"


def test_vae_tiny_reconstruction_improves(demo_tiers, tmp_path):
    # The GAN term switches on late, as in the shipped config (120 of 150 steps): 40 of 50 here.
    cfg = load_train_config("vae-tiny", ["checkpoint.every=25", "eval.every=25", "stages.vae.steps=50",
                                         "stages.vae.vae_loss.adversarial_start=40"])
    summary = train(cfg, str(demo_tiers), tmp_path / "vae")
    m = summary.stages[0].metrics
    assert m["val_psnr"] > m["val_psnr_initial"] + 1.5, m  # dB on held-out tier clips
    assert m["adversarial"] != 0 and m["discriminator"] > 0, m  # both sides of the GAN trained
    assert any("MS-SSIM" in note for note in summary.notes)  # the perceptual term is named, not dropped
    from vidloom.models import load_vae

    vae = load_vae(tmp_path / "vae" / "final")
    meta = json.loads((tmp_path / "vae" / "final" / "config.json").read_text())["_vidloom_meta"]
    assert meta["training"]["perceptual"] == "ms_ssim"
    assert vae.config.latent_channels == 16


@pytest.mark.parametrize("override, field", [
    ("stages.joint.datasets=[{tier: 720p}]", "stages[1].datasets[0].tier"),
    ("stages.image.buckets.table=[{frames: 1, height: 72, width: 72, batch_size: 2}]", "stages[0].buckets.table[0]"),
    ("stages.image.buckets.table=[{frames: 8, height: 64, width: 64, batch_size: 2}]", "stages[0].buckets.table[0].frames"),
    ("model.dit_overrides.text_dim=256", "model.dit_overrides"),
    ("model.vae=hunyuan", "model.vae"),
    ("fast_path=fastest", "fast_path"),
])
def test_bad_configs_fail_before_any_worker_naming_the_field(latent_cache, override, field):
    with pytest.raises(ConfigError, match=field.replace("[", r"\[").replace("]", r"\]")):
        prepare_run(dit_config(override), str(latent_cache.path))


def test_sequence_parallel_run_reaches_the_single_worker_loss(latent_cache, tmp_path):
    """Two workers in one Ulysses group (each holds half of every sample's video tokens) train
    on the same batches as one worker, and end at the same validation loss and weights."""
    one = train(single_stage("workers.num_workers=1", steps=10), str(latent_cache.path), tmp_path / "one")
    sp = train(single_stage("sequence_parallel=2", steps=10), str(latent_cache.path), tmp_path / "sp")
    a, b = one.stages[0].metrics["val_loss"], sp.stages[0].metrics["val_loss"]
    assert abs(a - b) < 1e-4 * a, (a, b)
    wa, wb = _weights(tmp_path / "one" / "final"), _weights(tmp_path / "sp" / "final")
    for k in wa:
        assert torch.allclose(wa[k], wb[k], atol=1e-5, rtol=1e-4), k


def test_dit_trains_from_pixels_without_a_latent_cache(demo_tiers, tmp_path):
    """data_mode: pixels: the worker encodes tier clips with the VAE and captions with the text
    encoder on the fly (for users without a latent cache)."""
    cfg = load_train_config("dit-tiny", [
        *FAST, "data_mode=pixels", "eval.holdout=2",
        "stages=[{name: joint, kind: joint, datasets: [{tier: 256p}], crop: [9, 64, 64], "
        "buckets: {tokens_per_batch: 1024, max_batch_size: 4}, steps: 8, lr: 0.001}]"])
    summary = train(cfg, str(demo_tiers), tmp_path / "px")
    m = summary.stages[0].metrics
    assert m["val_loss"] < m["val_loss_initial"], m
    meta = json.loads((tmp_path / "px" / "final" / "config.json").read_text())["_vidloom_meta"]
    assert meta["text_encoder"]["spec"] == "minilm" and meta["vae"]["source"] == "tiny"
    assert "data: pixels" in summary.notes
