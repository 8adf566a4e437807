"""`vidloom demo --train`: from the demo's tiers to a trained text-to-video model, on this machine.

1. trains the causal VAE (`vae-tiny`) from scratch on the 256p clips and 256 px stills;
2. precomputes latents of those tiers with the trained VAE and MiniLM (short side 128 px);
3. trains the DiT curriculum (`dit-tiny`: images, then video + images) on the latents,
   writing sample videos of held-out captions into ``DIR/dit/<stage>/samples/``.

Each step resumes when the demo is run again on the same folder.
"""

from __future__ import annotations

from pathlib import Path

#: Latent cache resolution of the demo: 128 px short side (a 16:9 clip is 224x128 -> 28x16 latents).
DEMO_RESIZE = 128
DEMO_FRAMES = 17
DEMO_TIERS = ["256p", "images_256"]


def run_demo_training(work: Path, curated: Path, overrides: list[str] = ()) -> dict[str, Path]:
    """Steps 5-7 of the demo; Ray must be initialised. Returns the folders it wrote."""
    from vidloom.pipelines.curation.progress import ray_output_to
    from vidloom.training import train
    from vidloom.training.config import load_train_config
    from vidloom.training.latents import run_precompute

    vae_dir, latents, dit_dir = work / "vae", work / "latents", work / "dit"
    print("[5/7] training the VAE (vae-tiny) ...", flush=True)
    print(train(load_train_config("vae-tiny"), str(curated), vae_dir).to_text(), flush=True)
    vae = str(vae_dir / "final")
    print("[6/7] precomputing latents with the trained VAE ...", flush=True)
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    # Ray Data's execution-plan lines go to a log file, as in `vidloom curate`: the demo shows steps.
    with ray_output_to(logs / "precompute-ray.log"):
        summary = run_precompute([str(curated)], str(latents), vae, "minilm", tiers=DEMO_TIERS,
                                 resize=DEMO_RESIZE, frames=DEMO_FRAMES)
    print(summary.to_text(), flush=True)
    print("[7/7] training the DiT curriculum (dit-tiny) ...", flush=True)
    cfg = load_train_config("dit-tiny", [f"model.vae={vae}", *overrides])
    print(train(cfg, str(latents), dit_dir).to_text(), flush=True)
    samples = sorted((dit_dir / cfg.stages[-1].name / "samples").glob("*.mp4"))
    print(f"\nmodel:    {dit_dir / 'final'}  (serve it: vidloom serve --model {dit_dir / 'final'} --vae {vae})")
    print(f"samples:  {samples[-1].parent if samples else dit_dir}")
    return {"vae": vae_dir, "latents": latents, "dit": dit_dir}
