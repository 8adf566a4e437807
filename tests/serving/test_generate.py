"""`vidloom generate` and the model checks at start, in this process (no Ray)."""

from __future__ import annotations

import pytest
import torch

from tests.serving.conftest import decode, save_tiny_export


def test_generate_writes_the_requested_video(tmp_path, capsys):
    from vidloom.jobs.generate import main

    model = save_tiny_export(tmp_path / "run" / "final")
    args = ["a boat on a calm lake, camera pans left", "--model", str(model), "--width", "64", "--height", "32",
            "--frames", "9", "--steps", "2", "--seed", "5"]
    assert main([*args, "--out", str(tmp_path / "a.mp4")]) == 0
    out = capsys.readouterr().out
    assert "64x32, 9 frames" in out and "Camera movement: pan left" in out
    frames = decode((tmp_path / "a.mp4").read_bytes())
    assert frames.shape == (9, 32, 64, 3)
    assert main([*args, "--out", str(tmp_path / "b.mp4"), "--dtype", "bfloat16"]) == 0
    assert decode((tmp_path / "b.mp4").read_bytes()).shape == (9, 32, 64, 3)
    # The second-order solver's first two steps (from pure noise, where λ = -inf) and its last are
    # Euler's; at four steps the third is corrected: the same video geometry, other pixels.
    four = [*args[:-4], "--steps", "4", "--seed", "5"]
    for solver in ("euler", "dpm++2m"):
        assert main([*four, "--out", str(tmp_path / f"{solver}.mp4"), "--solver", solver]) == 0
    euler, second = (decode((tmp_path / f"{s}.mp4").read_bytes()) for s in ("euler", "dpm++2m"))
    assert second.shape == euler.shape == (9, 32, 64, 3) and not (second == euler).all()
    # The API's checks, named by their flag.
    assert main([*args[:-6], "--width", "60", "--out", str(tmp_path / "c.mp4")]) == 2
    assert "--width: width must be a multiple of 16" in capsys.readouterr().err
    assert main([*args[:-4], "--frames", "8", "--out", str(tmp_path / "c.mp4")]) == 2
    assert "--frames: num_frames must be 4k+1" in capsys.readouterr().err


def test_a_request_joining_a_running_batch_gets_its_own_video(tmp_path):
    """The DiT's continuous batching steps requests at different noise levels with one model
    call, each on its own schedule: one that joins two steps late with fewer steps ends where it
    would alone, and so does the other."""
    from vidloom.serving.model import resolve_model
    from vidloom.serving.params import VideoCreateRequest, resolve_params
    from vidloom.serving.pipeline import TextToVideoPipeline

    spec = resolve_model(str(save_tiny_export(tmp_path / "run" / "final")))
    pipe = TextToVideoPipeline(spec)

    def item(seed: int, solver: str, steps: int):
        params = resolve_params(VideoCreateRequest(prompt=f"a boat {seed}", size="64x32", num_frames=5, seed=seed,
                                                   num_inference_steps=steps, solver=solver), spec)
        return pipe.denoise.item(spec, params, pipe.text([params.prompt]), pipe.text([""]))

    for solver in ("euler", "dpm++2m"):
        first, late = pipe.denoise.begin(item(0, solver, 6)), pipe.denoise.begin(item(1, solver, 5))
        pipe.denoise.step([first])
        pipe.denoise.step([first])
        while not late.done:
            pipe.denoise.step([d for d in (first, late) if not d.done])
        assert first.done and (first.index, late.index) == (6, 5)
        for state, seed, steps in ((first, 0, 6), (late, 1, 5)):
            alone = pipe.denoise([item(seed, solver, steps)])[0]
            assert (state.x - alone).abs().max().item() < 1e-5, solver


def test_model_checks_at_start(tmp_path):
    from vidloom.models.dit.loading import build_dit, save_dit
    from vidloom.models.dit.config import get_config
    from vidloom.serving.model import RANDOM_MODEL_ID, ModelSpecError, resolve_model
    from vidloom.serving.pipeline import TextStage

    # Without a model: a random tiny DiT sized for the offline MiniLM encoder, said so.
    spec = resolve_model(None)
    assert spec.model_id == RANDOM_MODEL_ID and spec.random_init and "random" in spec.describe()["origin"]
    assert (spec.dit().text_dim, spec.dit().pooled_dim) == (384, 384) and spec.text_encoder == "minilm"
    # A recorded text encoder whose widths differ from the DiT's is refused before loading.
    save_dit(build_dit(get_config("tiny")), tmp_path / "bad", meta={"text_encoder": {"spec": "minilm", "state_dim": 384}})
    with pytest.raises(ModelSpecError, match="state_dim 384 does not match the DiT's text_dim 32"):
        resolve_model(str(tmp_path / "bad"))
    # Without recorded widths the encoder itself is checked when it loads.
    save_dit(build_dit(get_config("tiny")), tmp_path / "plain")
    with pytest.raises(ModelSpecError, match=r"\(384, 384\) but the DiT was built for \(32, 24\)"):
        TextStage(resolve_model(str(tmp_path / "plain")))
    # A pickle that needs more than weights_only=True is refused with the reason.
    torch.save({"weights": torch.zeros(1), "code": ModelSpecError}, tmp_path / "mp_rank_00_model_states.pt")
    with pytest.raises(ModelSpecError, match="weights_only"):
        resolve_model(str(tmp_path / "mp_rank_00_model_states.pt"))
    with pytest.raises(ModelSpecError, match="no such file"):
        resolve_model(str(tmp_path / "missing"))


def test_a_distilled_export_defaults_to_its_measured_few_step_setting(tmp_path):
    """A guidance-distilled export's recorded sampling (20 steps at shift 17, what
    benchmarks/generation.py measured best) is what a request without steps or shift gets; a
    request for another step count gets the report's shift for that count, not the model's."""
    from vidloom.models.dit.config import get_config
    from vidloom.models.dit.loading import build_dit, save_dit
    from vidloom.serving.model import resolve_model
    from vidloom.serving.params import VideoCreateRequest, resolve_params
    from vidloom.training.runner import DISTILLED_SHIFT, DISTILLED_SOLVER, DISTILLED_STEPS

    meta = {"text_encoder": {"spec": "tiny", "state_dim": 32, "pooled_dim": 24},
            "sampling": {"guidance": "embedded", "num_inference_steps": DISTILLED_STEPS, "flow_shift": DISTILLED_SHIFT,
                         "solver": DISTILLED_SOLVER, "guidance_scale": 6.0}}
    save_dit(build_dit(get_config("tiny", guidance_embed=True)), tmp_path / "final", meta=meta)
    spec = resolve_model(str(tmp_path / "final"))
    default = resolve_params(VideoCreateRequest(prompt="a boat", size="64x32", num_frames=5), spec)
    assert (default.num_inference_steps, default.flow_shift) == (20, 17.0)
    fifty = resolve_params(VideoCreateRequest(prompt="a boat", size="64x32", num_frames=5, num_inference_steps=50), spec)
    assert (fifty.num_inference_steps, fifty.flow_shift) == (50, 7.0)
    assert default.solver == "euler"  # what the export records (Euler: measured no worse than DPM-Solver++)
    # An export that records another solver gets it by default; a request may still name one.
    save_dit(build_dit(get_config("tiny", guidance_embed=True)), tmp_path / "dpm",
             meta={**meta, "sampling": {**meta["sampling"], "solver": "dpm++2m"}})
    dpm = resolve_model(str(tmp_path / "dpm"))
    assert resolve_params(VideoCreateRequest(prompt="a boat", size="64x32", num_frames=5), dpm).solver == "dpm++2m"
    assert resolve_params(VideoCreateRequest(prompt="a boat", size="64x32", num_frames=5, solver="euler"),
                          dpm).solver == "euler"


def test_a_stream_of_one_shape_does_not_hold_another_shape_back(tmp_path):
    """The DiT's batching loop admits joiners of the running shape only up to the oldest waiting
    request of another shape; that one starts as soon as the running batch has drained."""
    import asyncio

    from vidloom.serving.deployments import DiT, _Request
    from vidloom.serving.model import resolve_model
    from vidloom.serving.params import VideoCreateRequest, resolve_params
    from vidloom.serving.pipeline import DenoiseStage, TextStage

    spec = resolve_model(str(save_tiny_export(tmp_path / "run" / "final")))
    dit, text, loop = DiT.func_or_class(spec), TextStage(spec), asyncio.new_event_loop()

    def request(name: str, size: str, arrived: float) -> _Request:
        params = resolve_params(VideoCreateRequest(prompt="a boat", size=size, num_frames=5), spec)
        item = DenoiseStage.item(spec, params, text([params.prompt]), text([""]), job_id=name)
        return _Request(name, item, {}, params.model_dump(), 0, loop.create_future(), arrived=arrived)

    running, wide, tall, wide_late = (request("running", "64x32", 0.0), request("wide", "64x32", 1.0),
                                      request("tall", "32x64", 2.0), request("wide-late", "64x32", 3.0))
    dit.waiting = [wide, tall, wide_late]
    key = running.item.key
    assert tall.item.key != key
    assert [r.job_id for r in dit._joiners(key, [running])] == ["wide"]  # not the one after "tall"
    assert [r.job_id for r in dit._joiners(key, [])] == ["wide", "wide-late"]  # a new batch takes all
    loop.close()
