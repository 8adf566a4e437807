"""Compute-optimal model and data size from a sweep's losses (Chinchilla's approaches 1 and 2).

* **IsoFLOP slices** (approach 2): the trials of one budget C trained models of different sizes
  N on the same compute. Their final validation losses against ln N are fitted with a parabola;
  its vertex is the loss-optimal N for C, and the matching D (tokens) comes from the slice's own
  ln D - ln N line (D shrinks as N grows at fixed compute: exactly, not through 6·N·D).
* **Power laws**: N_opt = a1·C^b1 and D_opt = a2·C^b2 by least squares in log-log space over the
  budgets. Intervals: the same fit on bootstrap resamples of the trials (within each budget,
  so every slice keeps at least three distinct sizes), central `confidence` percentiles.
* **Envelope** (approach 1): every trial's loss curve against consumed FLOPs; the lowest loss
  reached at each compute C over all sizes is L(C), fitted as a power law, and the size that
  reaches it is a second estimate of N_opt(C).

Everything here is numpy on plain lists, so it is tested on synthetic tables without training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

FIT_FORMAT = "vidloom-sweep-fit/1"


@dataclass
class TrialCurve:
    """One trial: a size trained on a budget, its loss against consumed compute."""

    name: str
    width: int
    params: float
    budget: float
    flops: list[float]  # consumed at each report
    tokens: list[float]
    loss: list[float]  # validation loss at each report
    checkpoint: str = ""  # the final weights (a vidloom DiT export) where kept

    @property
    def final(self) -> tuple[float, float, float]:
        """(FLOPs, tokens, loss) at the end of the trial."""
        return self.flops[-1], self.tokens[-1], self.loss[-1]


@dataclass
class SliceOptimum:
    budget: float
    params: float  # loss-optimal N
    tokens: float  # the matching D
    loss: float  # the parabola's minimum
    sizes: int  # distinct sizes in the slice
    parabola: bool  # False: the slice was not convex, the best trial was taken
    inside: bool  # the optimum lies within the slice's sizes (not extrapolated)
    coefficients: list[float] = field(default_factory=list)  # loss = c0·x² + c1·x + c2, x = ln N


def slice_optimum(budget: float, params: Sequence[float], tokens: Sequence[float],
                  losses: Sequence[float]) -> SliceOptimum:
    """The loss-optimal N (and D) of one isoFLOP slice; needs at least three distinct sizes."""
    x, y = np.log(np.asarray(params, float)), np.asarray(losses, float)
    lt = np.log(np.asarray(tokens, float))
    sizes = len(set(np.round(x, 9)))
    if sizes < 3:
        raise ValueError(f"budget {budget:.3g}: {sizes} distinct sizes; a parabola needs at least 3")
    c = np.polyfit(x, y, 2)
    slope, icept = np.polyfit(x, lt, 1)
    parabola = bool(c[0] > 0)
    xo = -c[1] / (2 * c[0]) if parabola else x[int(np.argmin(y))]  # not convex: the best trial
    inside = bool(x.min() <= xo <= x.max())
    # A vertex beyond the sizes tried is the parabola extrapolated, not a measurement: the
    # optimum is only known to lie at or past that edge, so it is kept at the edge.
    xo = float(np.clip(xo, x.min(), x.max()))
    lo = float(np.polyval(c, xo)) if parabola else float(y.min())
    return SliceOptimum(float(budget), float(math.exp(xo)), float(math.exp(icept + slope * xo)), lo, sizes,
                        parabola, inside, [float(v) for v in c])


def power_law(c: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """(a, b) of y = a·c^b by least squares on ln y = ln a + b·ln c."""
    if len(c) < 2:
        raise ValueError("a power law needs at least two budgets")
    b, ln_a = np.polyfit(np.log(np.asarray(c, float)), np.log(np.asarray(y, float)), 1)
    return float(math.exp(ln_a)), float(b)


def _slices(trials: Sequence[TrialCurve]) -> dict[float, list[TrialCurve]]:
    out: dict[float, list[TrialCurve]] = {}
    for t in trials:
        out.setdefault(t.budget, []).append(t)
    return dict(sorted(out.items()))


def _optima(slices: dict[float, list[TrialCurve]]) -> list[SliceOptimum]:
    # Each slice sits at the compute its trials really spent (the budget rounded up to a step).
    return [slice_optimum(float(np.exp(np.mean([math.log(t.final[0]) for t in ts]))), [t.params for t in ts],
                          [t.final[1] for t in ts], [t.final[2] for t in ts]) for ts in slices.values()]


def _laws(optima: Sequence[SliceOptimum], keep: Sequence[bool]) -> tuple[float, float, float, float]:
    """The two power laws over the slices marked in `keep`."""
    use = [o for o, k in zip(optima, keep) if k]
    a1, b1 = power_law([o.budget for o in use], [o.params for o in use])
    a2, b2 = power_law([o.budget for o in use], [o.tokens for o in use])
    return a1, b1, a2, b2


def _bracketed(slices: dict[float, list[TrialCurve]], optima: Sequence[SliceOptimum]) -> tuple[set[float], str]:
    """The budgets the laws are fitted on: those whose optimum lies inside the sizes tried
    when at least two do, else all of them (then the laws only bound the truth)."""
    inside = {c for c, o in zip(slices, optima) if o.inside and o.parabola}
    if len(inside) >= 2:
        return inside, "" if len(inside) == len(optima) else (
            f"fitted on the {len(inside)} budgets whose optimum lies inside the sizes tried; widen the family "
            f"for the others")
    return set(slices), ("most budgets have their optimum at or past the edge of the sizes tried: the laws are "
                         "bounds, not estimates; widen the family (bigger widths for big budgets)")


def envelope(trials: Sequence[TrialCurve], points: int = 24) -> list[dict[str, float]]:
    """The lowest loss any trial reached at each compute C (log-spaced), with the size that
    reached it; curves are interpolated linearly in log C between their reports."""
    lo = min(t.flops[0] for t in trials)
    hi = max(t.flops[-1] for t in trials)
    out = []
    for c in np.geomspace(lo, hi, points):
        best = None
        for t in trials:
            f = np.log(np.asarray(t.flops, float))
            if not f[0] - 1e-9 <= math.log(c) <= f[-1] + 1e-9:
                continue
            loss = float(np.interp(math.log(c), f, np.asarray(t.loss, float)))
            if best is None or loss < best[0]:
                best = (loss, t)
        if best is not None:
            out.append({"flops": float(c), "loss": best[0], "params": best[1].params, "width": best[1].width})
    return out


def fit_sweep(trials: Sequence[TrialCurve], bootstrap: int = 400, confidence: float = 0.9,
              seed: int = 0) -> dict[str, Any]:
    """Fit a sweep's trials; returns the body of ``fit.json`` (see the module docstring)."""
    slices = _slices(trials)
    usable = {c: ts for c, ts in slices.items() if len({t.params for t in ts}) >= 3}
    if len(usable) < 2:
        raise ValueError(f"the fit needs at least two budgets with three or more sizes each "
                         f"(have {[(f'{c:.3g}', len(ts)) for c, ts in slices.items()]})")
    optima = _optima(usable)
    budgets, note = _bracketed(usable, optima)
    keep = [c in budgets for c in usable]
    a1, b1, a2, b2 = _laws(optima, keep)

    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(bootstrap):
        resampled = {}
        for c, ts in usable.items():
            for _attempt in range(100):
                pick = [ts[i] for i in rng.integers(0, len(ts), len(ts))]
                if len({t.params for t in pick}) >= 3:
                    break
            else:
                pick = ts
            resampled[c] = pick
        draws.append(_laws(_optima(resampled), keep))
    draws_arr = np.asarray(draws)
    tail = (1 - confidence) / 2 * 100
    interval = lambda k: [float(np.percentile(draws_arr[:, k], tail)), float(np.percentile(draws_arr[:, k], 100 - tail))]  # noqa: E731

    env = envelope(trials)
    aL, bL = power_law([e["flops"] for e in env], [e["loss"] for e in env]) if len(env) >= 2 else (float("nan"),) * 2
    return {
        "format": FIT_FORMAT,
        "n_opt": {"a": a1, "b": b1, "a_interval": interval(0), "b_interval": interval(1)},
        "d_opt": {"a": a2, "b": b2, "a_interval": interval(2), "b_interval": interval(3)},
        "loss_envelope": {"a": aL, "b": bL, "points": env},
        "optima": [{**o.__dict__, "fitted": k} for o, k in zip(optima, keep)],
        "note": note,
        "bootstrap": {"resamples": bootstrap, "confidence": confidence, "seed": seed,
                      "draws": [[float(v) for v in d] for d in draws]},
        "trials": [t.__dict__ for t in trials],
    }


def predict(fit: dict[str, Any], budget: float) -> dict[str, Any]:
    """N_opt and D_opt at `budget` FLOPs with their bootstrap intervals."""
    draws = np.asarray(fit["bootstrap"]["draws"], float)
    conf = fit["bootstrap"]["confidence"]
    tail = (1 - conf) / 2 * 100
    n = fit["n_opt"]["a"] * budget ** fit["n_opt"]["b"]
    d = fit["d_opt"]["a"] * budget ** fit["d_opt"]["b"]
    n_draws = draws[:, 0] * budget ** draws[:, 1]
    d_draws = draws[:, 2] * budget ** draws[:, 3]
    within = [o["budget"] for o in fit["optima"] if o.get("fitted", True)]
    return {"budget": budget, "params": n, "tokens": d, "confidence": conf,
            "params_interval": [float(np.percentile(n_draws, tail)), float(np.percentile(n_draws, 100 - tail))],
            "tokens_interval": [float(np.percentile(d_draws, tail)), float(np.percentile(d_draws, 100 - tail))],
            "extrapolation": budget / max(within) if budget > max(within) else min(within) / budget
            if budget < min(within) else 1.0}
