"""A sequence-parallel DiT replica (two ranks on CPU, gloo) generates what one rank does."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from tests.serving.conftest import API_KEY_ENV, Served, decode, save_tiny_export

SP_APP = "vidloom-test-sp"


def _sp_latents_and_stop(model: str) -> tuple:
    """In a Ray task (its own process, which then exits): a two-rank denoiser's latents, and
    what a stop asked at step 2 does to both ranks."""
    from vidloom.serving.model import resolve_model
    from vidloom.serving.parallel import SequenceParallelDenoiser
    from vidloom.serving.pipeline import GenerationStopped

    spec = resolve_model(model)
    denoiser = SequenceParallelDenoiser(spec, 2, torch_threads=1)
    latents = denoiser(_items(spec))[0]

    def stop_at_step_2(step: int, num_steps: int) -> None:
        if step == 1:
            raise GenerationStopped("cancelled")

    try:
        denoiser(_items(spec), stop_at_step_2)
        stopped = "not stopped"
    except GenerationStopped as exc:
        stopped = str(exc)
    # Both ranks left the loop at the same step: the group still denoises.
    again = denoiser(_items(spec))[0]
    denoiser.close()
    return latents, stopped, again


def _items(spec):
    from vidloom.serving.params import VideoCreateRequest, resolve_params
    from vidloom.serving.pipeline import DenoiseStage, TextStage

    request = VideoCreateRequest(prompt="a lighthouse at dusk", size="64x48", num_frames=5, num_inference_steps=3,
                                 seed=11)
    params = resolve_params(request, spec)  # the served model's defaults: true CFG, two calls a step
    text = TextStage(spec)
    return [DenoiseStage.item(spec, params, text([params.prompt]), text([params.negative_prompt]))]


def test_two_rank_replica_returns_the_single_rank_video(served, tmp_path):
    import ray
    from ray import serve

    from vidloom.serving.app import build_app
    from vidloom.serving.jobs import stop_store
    from vidloom.serving.model import resolve_model
    from vidloom.serving.pipeline import DenoiseStage

    model = str(save_tiny_export(tmp_path / "run" / "final"))  # seed 0: the weights `served` has

    # The latents: two ranks equal one within fp32 rounding; a stop reaches both ranks.
    # pytest imports this file under a module name Ray's workers cannot import: ship it by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    task = ray.remote(num_cpus=0, max_calls=1)(_sp_latents_and_stop)  # max_calls: the gloo group dies with it
    sp, stopped, again = ray.get(task.remote(model), timeout=300)
    spec = resolve_model(model)
    one = DenoiseStage(spec)(_items(spec))[0]
    assert sp.shape == one.shape == (1, 16, 2, 6, 8)
    assert float((sp - one).abs().max()) < 1e-5
    assert stopped == "stopped at step 2 of 3: cancelled or timed out"
    assert float((again - one).abs().max()) < 1e-5

    # The served app: a DiT replica of two ranks in a placement group of two bundles, same API.
    app = build_app({
        "model": model, "storage": str(tmp_path / "store"), "api_key_env": API_KEY_ENV, "num_cpus": 0,
        "torch_threads": 1, "sequence_parallel": 2, "poll_after_ms": 200,
        "replicas": {"VideoAPI": 1, "PromptRewriter": 1, "TextEncoder": 1, "DiT": 1, "VAEDecoder": 1},
    })
    serve.run(app, name=SP_APP, route_prefix="/sp")
    try:
        groups = [g["bundles"] for g in ray.util.placement_group_table().values() if g["state"] == "CREATED"]
        assert {0: {"CPU": 0.01}, 1: {"CPU": 0.01}} in groups  # num_cpus 0: a token share per rank
        sp_served = Served(url=served.url + "/sp", storage=tmp_path / "store", model_id="run")
        body = {"prompt": "A red fox runs through fresh snow", "size": "64x48", "num_frames": 5,
                "num_inference_steps": 3, "seed": 7}
        videos = []
        for server, seed in ((served, 7), (sp_served, 7), (sp_served, 8)):
            job = server.wait(server.post({**body, "seed": seed}).json()["id"])
            assert job["status"] == "completed", job
            videos.append(decode(server.get(f"/v1/videos/{job['id']}/content").content).astype(np.int16))
        single, parallel, other_seed = videos
        assert parallel.shape == single.shape == (5, 48, 64, 3)
        # Latents equal to ~1e-7 can still flip a pixel's rounding before H.264: allow one level.
        assert np.abs(parallel - single).max() <= 1
        assert np.abs(other_seed - single).max() > 1
    finally:
        serve.delete(SP_APP)
        stop_store(SP_APP)


def test_sequence_parallel_must_divide_the_heads(tmp_path):
    from vidloom.platform.config import ConfigError
    from vidloom.serving.app import build_app

    model = str(save_tiny_export(tmp_path / "run" / "final"))  # tiny: 2 heads
    with pytest.raises(ConfigError, match=r"sequence_parallel: 3 does not divide the DiT's 2 attention heads; "
                                          r"allowed: \[1, 2\]"):
        build_app({"model": model, "sequence_parallel": 3, "storage": str(tmp_path / "store")})
    # The fast-path switch takes training's values, checked before any replica starts.
    with pytest.raises(ConfigError, match=r"fast_path: must be one of 'off', 'on' or 'compile' \(got 'fastest'\)"):
        build_app({"model": model, "fast_path": "fastest", "storage": str(tmp_path / "store")})
