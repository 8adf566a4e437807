"""The sweep as a Ray Tune experiment: plan the trials on the driver, run them, fit, write.

Output folder::

    OUT/sweep.yaml          the resolved sweep config      OUT/plan.json     every trial's steps and FLOPs
    OUT/tune/<name>/        Tune's experiment (trials, results, checkpoints: the trained weights)
    OUT/events.jsonl        trial starts, reports and ends, as they happen
    OUT/fit.json            the fit (`vidloom.training.sweep.fit`)  OUT/index.html  the page

Rerunning with the same ``--out`` restores the Tune experiment (``Tuner.restore``): finished
trials are kept, unfinished ones continue from their last checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidloom.platform.config import ConfigError, dump_config
from vidloom.training.sweep.config import SweepConfig, member_config, parameter_count
from vidloom.training.sweep.fit import TrialCurve, fit_sweep
from vidloom.training.sweep.trial import SweepContext, budget_steps, sweep_trial, text_lengths

EVENTS_FILE = "events.jsonl"
FIT_FILE = "fit.json"
PAGE_FILE = "index.html"
# Tune saves its experiment state at most this often (seconds): a sweep killed just after a
# trial ends then still knows the trial finished. Tune's own default is 10 s or more.
STATE_PERIOD_S = "2"


@dataclass
class SweepPlan:
    """A sweep checked against its data, with every trial worked out: what `run_sweep` runs."""

    cfg: SweepConfig
    train: Any  # the one-stage TrainConfig
    trials: list[dict[str, Any]]
    context: SweepContext
    fingerprint: str


@dataclass
class SweepSummary:
    out: str
    trials: int
    finished: int
    seconds: float
    fit: dict[str, Any] | None
    page: str
    notes: list[str] = field(default_factory=list)

    def to_text(self) -> str:
        lines = [f"sweep {self.out}: {self.finished}/{self.trials} trials finished in {self.seconds:.0f} s"]
        if self.fit:
            n, d = self.fit["n_opt"], self.fit["d_opt"]
            lines.append(f"  N_opt = {n['a']:.3g} · C^{n['b']:.3f}   (b1 in [{n['b_interval'][0]:.3f}, "
                         f"{n['b_interval'][1]:.3f}])")
            lines.append(f"  D_opt = {d['a']:.3g} · C^{d['b']:.3f}   (b2 in [{d['b_interval'][0]:.3f}, "
                         f"{d['b_interval'][1]:.3f}])")
            for o in self.fit["optima"]:
                lines.append(f"  C {o['budget']:.3g}: N_opt {o['params']:.3g} params, D_opt {o['tokens']:.3g} tokens, "
                             f"loss {o['loss']:.4f}{'' if o['inside'] else '  (outside the sizes tried)'}")
        lines += [f"  note: {n}" for n in self.notes]
        lines.append(f"fit: {Path(self.out) / FIT_FILE}   page: {self.page}")
        return "\n".join(lines)


def trial_name(width: int, budget: float) -> str:
    return f"w{width}-c{budget:.2e}".replace("+", "")


def plan_sweep(cfg: SweepConfig, train, data: str) -> SweepPlan:
    """Validate the sweep against the latent cache and work out every trial (driver, no Ray);
    every problem is a ConfigError naming its field."""
    from vidloom.training.config import TrainConfig
    from vidloom.training.data import build_plan
    from vidloom.training.runner import prepare

    stage = next(s for s in train.stages if s.name == cfg.stage)
    one = TrainConfig.model_validate({**train.model_dump(mode="json"),
                                      "stages": [{**stage.model_dump(mode="json"), "init_from": None}]})
    prep = prepare(one, data)
    init_weights = _init_weights(cfg) if cfg.init_from_sweep else {}
    lengths = text_lengths(sorted({f for rows in prep.index_by_tier.values() for _, _, f, _ in rows}))
    plan = build_plan(one.stages[0], prep.index_by_tier, prep.patch, one.seed, one.eval.holdout)
    if not plan.holdout:
        raise ConfigError("eval.holdout: a sweep compares sizes on held-out samples; set it >= 1 in train_overrides")
    trials = []
    for i, budget in enumerate(cfg.budgets):
        for width in cfg.family.widths:
            dit = member_config(one, width, cfg.family)
            steps, flops, tokens, marks = budget_steps(plan, dit, budget, one.gradient_accumulation, lengths,
                                                       cfg.report_fractions())
            if steps < cfg.reports:
                raise ConfigError(f"budgets[{i}]: {budget:.3g} FLOPs buys width {width} only {steps} steps "
                                  f"(fewer than reports = {cfg.reports}); raise the budget or lower reports")
            trials.append({"name": trial_name(width, budget), "width": width, "budget": budget, "steps": steps,
                           "marks": marks, "planned_flops": flops, "planned_tokens": tokens,
                           "params": parameter_count(dit)})
    context = SweepContext(one.model_dump(mode="json"), prep.index_by_tier, prep.patch, prep.extra["cache"],
                           prep.vae_source, {**prep.meta, "sweep": cfg.name}, init_weights)
    blob = json.dumps({"sweep": cfg.model_dump(mode="json", exclude={"trial"}), "train": context.train,
                       "data": str(Path(data).resolve())}, sort_keys=True)
    return SweepPlan(cfg, one, trials, context, hashlib.sha256(blob.encode()).hexdigest()[:16])


def _init_weights(cfg: SweepConfig) -> dict[int, str]:
    """width -> the image sweep's trained weights of that width (its largest budget's trial)."""
    path = Path(cfg.init_from_sweep) / FIT_FILE
    try:
        fit = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"init_from_sweep: cannot read {path} ({exc}); run that sweep to the end first") from None
    best: dict[int, dict] = {}
    for t in fit["trials"]:
        if t.get("checkpoint") and (t["width"] not in best or t["budget"] > best[t["width"]]["budget"]):
            best[t["width"]] = t
    missing = [w for w in cfg.family.widths if w not in best]
    if missing:
        raise ConfigError(f"family.widths: {missing} have no trained weights in {cfg.init_from_sweep} "
                          f"(it trained widths {sorted(best)}); pick widths from that sweep")
    return {w: str(Path(best[w]["checkpoint"]) / "model") for w in cfg.family.widths}


class _EventLog:
    """A Tune callback: one JSON line per trial start, report and end in OUT/events.jsonl, and
    one printed line per finished trial (Tune's own table is switched off)."""

    def __init__(self, path: Path, total: int):
        self.path, self.total, self.finished = str(path), total, 0

    def _write(self, event: str, trial, **extra) -> None:
        name = trial.config["trial"]["name"]
        with open(self.path, "a") as f:
            f.write(json.dumps({"event": event, "trial": name, "trial_id": trial.trial_id, "time": time.time(),
                                **extra}) + "\n")


def _callback_class():
    from ray.tune import Callback

    class EventLog(_EventLog, Callback):
        def on_trial_start(self, iteration, trials, trial, **info):
            self._write("start", trial)

        def on_trial_result(self, iteration, trials, trial, result, **info):
            keep = ("loss", "flops", "tokens", "step", "steps", "seconds")
            self._write("report", trial, **{k: result[k] for k in keep if k in result})

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.finished += 1
            self._write("complete", trial)
            last = trial.last_result or {}
            print(f"[sweep] {trial.config['trial']['name']} finished ({self.finished} this run, {self.total} in all): "
                  f"loss {last.get('loss', float('nan')):.4f} at {last.get('flops', 0):.3g} FLOPs", flush=True)

        def on_trial_error(self, iteration, trials, trial, **info):
            self._write("error", trial)
            print(f"[sweep] {trial.config['trial']['name']} failed: see {trial.local_path}", file=sys.stderr)

    return EventLog


def run_sweep(plan: SweepPlan, out: str | Path) -> SweepSummary:
    """Run (or resume) every trial of `plan` into `out`, then fit and write the page.
    Ray must be initialised."""
    from ray import tune

    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", STATE_PERIOD_S)  # read when the Tuner starts
    # Every report carries a checkpoint and keeps one, so Tune snapshots the experiment at each
    # report: what makes a resume exact; its warning about the snapshot rate is noise here.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    cfg = plan.cfg
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    stamp = out / "plan.json"
    if stamp.exists() and json.loads(stamp.read_text()).get("fingerprint") != plan.fingerprint:
        raise ConfigError(f"--out: {out} holds a sweep of another config or data; use a new folder")
    (out / "sweep.yaml").write_text(dump_config(cfg))
    stamp.write_text(json.dumps({"fingerprint": plan.fingerprint, "trials": plan.trials}, indent=1))

    resources = {"cpu": cfg.trial.cpus, **({"gpu": cfg.trial.gpus} if cfg.trial.gpus else {})}
    trainable = tune.with_resources(tune.with_parameters(sweep_trial, context=plan.context), resources)
    storage, experiment = out / "tune", out / "tune" / cfg.name
    t0 = time.time()
    if tune.Tuner.can_restore(str(experiment)):
        tuner = tune.Tuner.restore(str(experiment), trainable=trainable, resume_errored=True)
    else:
        # Big budgets first: the longest trials start early and the short ones fill the gaps.
        ordered = sorted(plan.trials, key=lambda t: (-t["budget"], -t["width"]))
        tuner = tune.Tuner(
            trainable,
            param_space={"trial": tune.grid_search(ordered), "family": cfg.family.model_dump(mode="json"),
                         "threads": max(1, int(cfg.trial.cpus)), "gpus": cfg.trial.gpus},
            # reuse_actors: a trial process keeps its imports and the shared context for the next trial.
            tune_config=tune.TuneConfig(max_concurrent_trials=cfg.trial.max_concurrent, reuse_actors=True,
                                        trial_name_creator=lambda t: t.config["trial"]["name"],
                                        trial_dirname_creator=lambda t: t.config["trial"]["name"]),
            run_config=tune.RunConfig(
                name=cfg.name, storage_path=str(storage), verbose=0,
                checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                failure_config=tune.FailureConfig(max_failures=cfg.trial.max_failures),
                callbacks=[_callback_class()(out / EVENTS_FILE, len(plan.trials))],
            ),
        )
    grid = tuner.fit()
    curves, notes = collect(grid, plan)
    summary = SweepSummary(str(out), len(plan.trials), len(curves), time.time() - t0, None, "", notes)
    try:
        fit = fit_sweep(curves, cfg.fit.bootstrap, cfg.fit.confidence, cfg.fit.seed)
    except ValueError as exc:
        summary.notes.append(f"no fit: {exc}")
        return summary
    if fit["note"]:
        summary.notes.append(fit["note"])
    fit.update(sweep=cfg.model_dump(mode="json"), train=plan.context.train, plan=plan.trials,
               tokens_per_step=_tokens_per_step(plan.trials))
    (out / FIT_FILE).write_text(json.dumps(fit, indent=1))
    from vidloom.training.sweep.page import write_page

    summary.fit, summary.page = fit, str(write_page(fit, out / PAGE_FILE))
    return summary


def _tokens_per_step(trials: list[dict[str, Any]]) -> float:
    return sum(t["planned_tokens"] for t in trials) / max(1, sum(t["steps"] for t in trials))


def collect(grid, plan: SweepPlan) -> tuple[list[TrialCurve], list[str]]:
    """Each finished trial's loss curve, read from Tune's results (all reports, across resumes)."""
    by_name = {t["name"]: t for t in plan.trials}
    curves, notes = [], []
    for result in grid:
        name = result.config["trial"]["name"]
        rows = _reports(Path(result.path))
        if result.error or not rows or not rows[-1].get("finished"):
            notes.append(f"{name}: {'failed: ' + str(result.error).splitlines()[0] if result.error else 'unfinished'}")
            continue
        spec = by_name[name]
        checkpoint = result.checkpoint.path if result.checkpoint is not None else ""
        curves.append(TrialCurve(name, spec["width"], float(spec["params"]), spec["budget"],
                                 [r["flops"] for r in rows], [r["tokens"] for r in rows], [r["loss"] for r in rows],
                                 checkpoint))
    return sorted(curves, key=lambda c: (c.budget, c.params)), notes


def _reports(trial_dir: Path) -> list[dict[str, Any]]:
    """The trial's reports from its result.json, one per step (a resumed trial may repeat a
    step it reported before the interruption: the last report of a step wins)."""
    rows: dict[int, dict[str, Any]] = {}
    path = trial_dir / "result.json"
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                if "step" in r and "loss" in r:
                    rows[int(r["step"])] = r
    return [rows[k] for k in sorted(rows)]
