"""Scaling-law sweeps: a family of DiT sizes trained on a grid of compute budgets as a Ray Tune
experiment, and the compute-optimal model and data sizes fitted from their losses
(`vidloom sweep`, docs/scaling.md)."""

from vidloom.training.sweep.config import SweepConfig, load_sweep_config, shipped_sweeps
from vidloom.training.sweep.experiment import SweepPlan, SweepSummary, plan_sweep, run_sweep
from vidloom.training.sweep.fit import TrialCurve, fit_sweep, predict

__all__ = ["SweepConfig", "SweepPlan", "SweepSummary", "TrialCurve", "fit_sweep", "load_sweep_config", "plan_sweep",
           "predict", "run_sweep", "shipped_sweeps"]
