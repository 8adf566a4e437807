"""A real Ray Tune sweep on the session's latent cache: the reduced family (3 widths x 2
budgets) started as a job, killed after a finished trial, resumed; then its losses, fit,
page and the recommendation drawn from it."""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from vidloom.training.sweep import load_sweep_config

# The first test also builds the resumed sweep (and the session's latent cache if no test has yet).
pytestmark = pytest.mark.timeout(2400)

REDUCED = """
name: reduced
train: dit-tiny
stage: image
train_overrides: [stages.image.schedule=cosine, stages.image.warmup_steps=2, eval.holdout=6]
family: {widths: [16, 32, 48], head_dim: 16, width_per_block: 16}
budgets: [1.0e10, 3.0e10]
reports: 4
first_report: 0.2
fit: {bootstrap: 50}
"""


def _terminated(out: Path) -> set[str]:
    """Trial ids Tune's own saved experiment state holds as finished."""
    done = set()
    for path in glob.glob(str(out / "tune" / "reduced" / "experiment_state-*.json")):
        try:
            state = json.loads(Path(path).read_text())
        except ValueError:  # being rewritten
            continue
        for trial_json, _ in state["trial_data"]:
            t = json.loads(trial_json)
            if t.get("status") == "TERMINATED":
                done.add(t["trial_id"])
    return done


def _events(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def resumed_sweep(ray_session, latent_cache, tmp_path_factory):
    """The reduced sweep started as a job (a driver of the session's Ray, as `ray job submit`
    runs one), killed once Tune has recorded a finished trial (Ray ends the dead driver's trial
    actors), then resumed in this process."""
    from vidloom.training.sweep import plan_sweep, run_sweep

    root = tmp_path_factory.mktemp("sweep")
    config, out = root / "reduced.yaml", root / "out"
    config.write_text(REDUCED)
    log = open(root / "first.log", "w")
    address = ray_session.get_runtime_context().gcs_address
    proc = subprocess.Popen([sys.executable, "-m", "vidloom.jobs.sweep", "--config", str(config), "--data",
                             str(latent_cache.path), "--out", str(out), "--address", address],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 600
    try:
        while not _terminated(out):
            assert proc.poll() is None, (root / "first.log").read_text()[-3000:]
            assert time.time() < deadline, "no trial finished in 10 minutes"
            time.sleep(0.5)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        log.close()
    finished_before = _terminated(out)
    results_before = {p.parent.name: p.read_text() for p in (out / "tune" / "reduced").glob("*/result.json")}
    events_before = len(_events(out))
    cfg, train = load_sweep_config(str(config))
    summary = run_sweep(plan_sweep(cfg, train, str(latent_cache.path)), out)
    return {"out": out, "summary": summary, "finished_before": finished_before, "results_before": results_before,
            "events_before": events_before}


def test_killed_sweep_resumes_without_rerunning_finished_trials(resumed_sweep):
    out, finished = resumed_sweep["out"], resumed_sweep["finished_before"]
    events = _events(out)
    before, after = events[:resumed_sweep["events_before"]], events[resumed_sweep["events_before"]:]
    names = {e["trial_id"]: e["trial"] for e in events}
    done_first = {names[i] for i in finished}
    assert done_first and len(done_first) < 6  # the kill came after some trials, before all
    # the resumed run started every trial but the finished ones, and nothing was trained twice
    started_again = {e["trial"] for e in after if e["event"] == "start"}
    assert started_again and not started_again & done_first, (started_again, done_first)
    assert {e["trial"] for e in events if e["event"] == "complete"} == set(names.values())
    for name in done_first:
        assert (out / "tune" / "reduced" / name / "result.json").read_text() == resumed_sweep["results_before"][name]
    assert any(e["event"] == "start" for e in before)
    assert resumed_sweep["summary"].finished == 6


def test_sweep_reports_losses_that_fall_with_compute_and_writes_the_fit(resumed_sweep):
    out, summary = resumed_sweep["out"], resumed_sweep["summary"]
    fit = json.loads((out / "fit.json").read_text())
    assert fit["format"] == "vidloom-sweep-fit/1" and len(fit["trials"]) == 6
    by_key = {(t["width"], t["budget"]): t for t in fit["trials"]}
    for t in fit["trials"]:
        assert len(t["loss"]) >= 4  # every trial reported at its planned points
        assert all(np.diff(t["flops"]) > 0) and t["flops"][-1] >= t["budget"]
        assert t["flops"][-1] < 1.2 * t["budget"]  # stopped at its budget (the last step rounds up)
        assert t["loss"][-1] < t["loss"][0], t  # training lowered the held-out loss
        assert Path(t["checkpoint"], "model", "model.safetensors").is_file()
    for w in (16, 32, 48):  # three times the compute gives every size a lower loss
        assert by_key[(w, 3e10)]["loss"][-1] < by_key[(w, 1e10)]["loss"][-1], w
    params = [by_key[(w, 1e10)]["params"] for w in (16, 32, 48)]
    assert params == sorted(params) and params[-1] > 4 * params[0]  # width and depth grow together
    assert len(fit["optima"]) == 2 and fit["n_opt"]["b_interval"][0] <= fit["n_opt"]["b"] <= fit["n_opt"]["b_interval"][1]
    assert summary.fit is not None and "N_opt" in summary.to_text()


def test_sweep_page_renders_in_chromium(resumed_sweep, tmp_path):
    from vidloom.pipelines.report.browser import find_chromium, open_in_chromium
    from vidloom.training.sweep.page import SECTIONS

    assert find_chromium() is not None, "Chromium not found: install Debian's `chromium` (see .ci/run)"
    result = open_in_chromium(resumed_sweep["out"] / "index.html", tmp_path / "page.png", width=1280, height=1600,
                              full_page=True)
    assert result.problems() == []
    assert result.sections == [k for k, _ in SECTIONS]
    assert result.images == 3 and result.broken_images == [] and result.page_height > 1600
    import cv2

    img = cv2.imread(str(tmp_path / "page.png"))
    assert float(img.std()) > 20.0  # not a blank page


def test_recommend_names_a_model_and_tokens(resumed_sweep, capsys):
    from vidloom.jobs.sweep import main

    fit = resumed_sweep["out"] / "fit.json"
    assert main(["recommend", "--fit", str(fit), "--budget", "1e11", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["params"] > 0 and r["tokens"] > 0 and r["steps"] >= 1
    assert r["extrapolation"] > 1  # 1e11 lies beyond the swept 3e10
    g = r["generated"]
    assert g["hidden_size"] % 16 == 0 and g["heads"] == g["hidden_size"] // 16
    assert 0.5 < g["params"] / r["params"] < 2.0  # the nearest family member is close to N_opt
    assert r["shipped"]["name"] in {"tiny", "small", "1B", "13B"}
    assert "--set model.dit=tiny" in r["command"]
    assert main(["recommend", "--fit", str(fit), "--budget", "1e11"]) == 0
    assert "generated DiT: hidden_size" in capsys.readouterr().out


def test_video_sweep_starts_from_the_image_sweeps_weights(resumed_sweep, latent_cache, tmp_path):
    """The report's two-step: a video (joint) sweep whose sizes start from the image sweep's
    trained weights of the same width; its trials end near those weights, far from a fresh init."""
    from safetensors.torch import load_file

    from vidloom.platform.config import ConfigError
    from vidloom.training.sweep import plan_sweep, run_sweep

    image = resumed_sweep["out"]
    config = tmp_path / "video.yaml"
    config.write_text(REDUCED.replace("name: reduced", "name: video").replace("stage: image", "stage: joint")
                      + f"init_from_sweep: {image}\n")
    cfg, train = load_sweep_config(str(config))
    plan = plan_sweep(cfg, train, str(latent_cache.path))
    fit = json.loads((image / "fit.json").read_text())
    largest = {t["width"]: t["checkpoint"] for t in fit["trials"] if t["budget"] == 3e10}
    assert {w: str(Path(p)) for w, p in plan.context.init_weights.items()} == \
        {w: str(Path(largest[w], "model")) for w in (16, 32, 48)}
    summary = run_sweep(plan, tmp_path / "video")
    assert summary.finished == 6
    video = json.loads((tmp_path / "video" / "fit.json").read_text())
    from vidloom.models.dit import load_dit

    for t in video["trials"]:
        start = load_file(str(Path(largest[t["width"]], "model", "model.safetensors")))
        end = load_file(str(Path(t["checkpoint"], "model", "model.safetensors")))
        # an independent random init of the same architecture (not the image trial's own seed)
        fresh = load_dit(load_dit(Path(largest[t["width"]], "model")).config, seed=12345).state_dict()
        moved = sum(float((end[k] - start[k]).pow(2).sum()) for k in end) ** 0.5
        from_fresh = sum(float((end[k] - fresh[k]).pow(2).sum()) for k in end) ** 0.5
        assert moved < 0.5 * from_fresh, (t["width"], moved, from_fresh)
    # widths the image sweep did not train are refused before anything runs
    with pytest.raises(ConfigError, match="family.widths"):
        bad, train = load_sweep_config(str(config), ["family.widths=[16, 32, 64]"])
        plan_sweep(bad, train, str(latent_cache.path))
