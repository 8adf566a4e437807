"""Scaling-law sweeps: the fit on synthetic tables from known power laws (no training), and a
reduced sweep-tiny on the demo's latent cache run as a user runs it: `python -m
vidloom.jobs.sweep` killed once a trial has finished, then resumed on real Ray Tune; its
curves, fit.json, page (in headless Chromium) and `vidloom sweep recommend`."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vidloom.platform.config import ConfigError
from vidloom.training.sweep import TrialCurve, fit_sweep, load_sweep_config, predict

# Chinchilla's fitted loss L(N, D) = E + A/N^alpha + B/D^beta (Hoffmann et al. 2022, approach 3).
E, A, B, ALPHA, BETA = 1.69, 406.4, 410.7, 0.34, 0.28


def synthetic_table(seed: int, noise: float = 0.005) -> list[TrialCurve]:
    """IsoFLOP trials on 5 budgets, 7 sizes each around a jittered guess of the optimum (as a
    real sweep centres its sizes), at C = 6·N·D, losses with multiplicative noise."""
    rng = np.random.default_rng(seed)
    g = (ALPHA * A / (BETA * B)) ** (1 / (ALPHA + BETA))
    trials = []
    for c in np.geomspace(1e18, 1e21, 5):
        centre = g * (c / 6) ** (BETA / (ALPHA + BETA)) * math.exp(rng.normal(0, 0.3))
        for n in centre * np.geomspace(0.1, 10, 7):
            d = c / (6 * n)
            loss = (E + A / n ** ALPHA + B / d ** BETA) * (1 + rng.normal(0, noise))
            trials.append(TrialCurve(f"n{n:.3g}-c{c:.3g}", 0, float(n), float(c), [float(c)], [float(d)], [loss]))
    return trials


@pytest.mark.parametrize("seed", [0, 1])
def test_fit_recovers_known_exponents_within_their_intervals(seed):
    fit = fit_sweep(synthetic_table(seed), bootstrap=300, confidence=0.9, seed=seed)
    b1, b2 = BETA / (ALPHA + BETA), ALPHA / (ALPHA + BETA)  # 0.452 and 0.548
    lo, hi = fit["n_opt"]["b_interval"]
    assert lo <= b1 <= hi and hi - lo < 0.1, (b1, fit["n_opt"])
    lo, hi = fit["d_opt"]["b_interval"]
    assert lo <= b2 <= hi and hi - lo < 0.1, (b2, fit["d_opt"])
    assert abs(fit["n_opt"]["b"] + fit["d_opt"]["b"] - 1) < 1e-6  # C = 6ND on every trial
    # every slice found an interior minimum, and the prediction at a swept budget is the truth
    assert all(o["parabola"] and o["inside"] for o in fit["optima"])
    g = (ALPHA * A / (BETA * B)) ** (1 / (ALPHA + BETA))
    truth = g * (1e20 / 6) ** b1
    pred = predict(fit, 1e20)
    assert pred["params_interval"][0] < truth < pred["params_interval"][1], (truth, pred)
    assert pred["extrapolation"] == 1.0 and predict(fit, 1e23)["extrapolation"] == pytest.approx(100.0)
    # the envelope falls with compute and is fitted as a power law with a negative exponent
    env = fit["loss_envelope"]
    assert env["b"] < 0 and env["points"][-1]["loss"] < env["points"][0]["loss"]


def test_fit_refuses_a_table_it_cannot_fit():
    one_budget = [t for t in synthetic_table(0) if t.budget == 1e18]
    with pytest.raises(ValueError, match="at least two budgets with three or more sizes"):
        fit_sweep(one_budget)


def test_bad_sweep_configs_name_the_field_before_anything_runs(tmp_path, capsys):
    with pytest.raises(ConfigError, match=r"budgets: .*-1"):
        load_sweep_config("sweep-tiny", ["budgets=[-1, 1e12]"])
    with pytest.raises(ConfigError, match=r"family.widths: 40 is not a multiple of family.head_dim \(16\)"):
        load_sweep_config("sweep-tiny", ["family.widths=[32, 40, 64]"])
    with pytest.raises(ConfigError, match=r"stage: 'video' is not a stage of 'dit-tiny'"):
        load_sweep_config("sweep-tiny", ["stage=video"])
    with pytest.raises(ConfigError, match=r"(?s)train / train_overrides: .*stages.0.lr: must be > 0"):
        load_sweep_config("sweep-tiny", ["train_overrides=[stages.image.lr=-1]"])
    # --train-set comes after the sweep's own train_overrides (here: the demo cache's VAE)
    _, train = load_sweep_config("sweep-tiny", [], ["model.vae=runs/vae/final", "eval.holdout=3"])
    assert train.model.vae == "runs/vae/final" and train.eval.holdout == 3
    from vidloom.jobs.sweep import main

    assert main(["--config", "sweep-tiny", "--data", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "--data" in capsys.readouterr().err  # not a latent cache: refused before Ray starts
    assert main(["recommend", "--fit", str(tmp_path / "none.json"), "--budget", "1e12"]) == 2
    assert "--fit: cannot read" in capsys.readouterr().err


def test_shipped_sweeps_load():
    from vidloom.training.config import shipped_configs
    from vidloom.training.sweep import shipped_sweeps

    assert {"sweep-tiny", "sweep-gpu"} <= set(shipped_sweeps())
    for name in shipped_sweeps():
        cfg, train = load_sweep_config(name)
        assert len(cfg.family.widths) >= 3 and len(cfg.budgets) >= 2 and train.target == "dit"
    assert not any(n.startswith("sweep") for n in shipped_configs())  # training configs stay TrainConfigs


# -- a real sweep: killed, resumed, fitted ---------------------------------------------------------


def test_resume_takes_the_newest_whole_checkpoint_when_the_named_one_was_pruned(tmp_path):
    """A sweep killed between two of Tune's experiment snapshots is resumed from a checkpoint that
    `num_to_keep=1` has since deleted: the trial resumes from its newest whole one instead (seen
    as an errored trial after a resume before this), or from scratch when there is none."""
    from vidloom.training.sweep.trial import STATE_FILE, complete_checkpoint

    trial = tmp_path / "w48-c1.00e10"
    named = trial / "checkpoint_000000"  # what the stale snapshot names: gone
    assert complete_checkpoint(named) is None
    for name, whole in (("checkpoint_000001", True), ("checkpoint_000002", True), ("checkpoint_000003", False)):
        (trial / name).mkdir(parents=True)
        if whole:  # the state file is written last: checkpoint_000003 was cut off mid-write
            (trial / name / STATE_FILE).write_text("{}")
    assert complete_checkpoint(named) == trial / "checkpoint_000002"
    assert complete_checkpoint(trial / "checkpoint_000001") == trial / "checkpoint_000001"
