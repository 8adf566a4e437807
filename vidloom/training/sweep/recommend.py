"""`vidloom sweep recommend`: from a fit to a model and a token count for a compute budget."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from vidloom.platform.config import ConfigError
from vidloom.training.sweep.fit import FIT_FORMAT, predict


def read_fit(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        fit = json.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"--fit: cannot read {path} ({exc.strerror}); it is DIR/fit.json of a finished sweep") from None
    except ValueError as exc:
        raise ConfigError(f"--fit: {path} is not JSON ({exc})") from None
    if fit.get("format") != FIT_FORMAT:
        raise ConfigError(f"--fit: {path} is not a sweep fit (format {fit.get('format')!r}, expected {FIT_FORMAT!r})")
    return fit


def recommend(fit: dict[str, Any], budget: float) -> dict[str, Any]:
    """The compute-optimal size and tokens at `budget` FLOPs, the family member nearest that
    size (a generated DiT config), the nearest shipped tier and the steps at the sweep's batch."""
    from vidloom.training.config import TrainConfig
    from vidloom.training.sweep.config import (FamilySettings, describe_size, member_config, nearest_width,
                                               parameter_count, shipped_sizes)

    if not 0 < budget < 1e40:
        raise ConfigError(f"--budget: must lie in (0, 1e40) FLOPs, got {budget:g}")
    out = predict(fit, budget)
    train = TrainConfig.model_validate(fit["train"])
    family = FamilySettings.model_validate(fit["sweep"]["family"])
    width = nearest_width(family, train, out["params"])
    member = member_config(train, width, family)
    shipped = shipped_sizes(train)
    tier = min(shipped, key=lambda k: abs(math.log(shipped[k] / out["params"])))
    tokens_per_step = float(fit.get("tokens_per_step") or 0.0)
    stage = train.stages[0].name
    overrides = {k: v for k, v in {**train.model.dit_overrides, **family.shape(width)}.items()}
    steps = math.ceil(out["tokens"] / tokens_per_step) if tokens_per_step else None
    out.update(
        generated={**describe_size(member), "params": parameter_count(member)},
        shipped={"name": tier, "params": shipped[tier]},
        tokens_per_step=tokens_per_step, steps=steps,
        command=(f"vidloom train dit --config {fit['sweep']['train']} "
                 + "".join(f"--set {o} " for o in fit["sweep"]["train_overrides"])
                 + f"--set model.dit={train.model.dit} "
                 f"--set 'model.dit_overrides={json.dumps(overrides, separators=(',', ':'))}'"
                 + (f" --set stages.{stage}.steps={steps}" if steps else "")),
    )
    return out


def to_text(r: dict[str, Any]) -> str:
    conf = f"{r['confidence']:.0%}"
    lines = [f"budget {r['budget']:.3g} FLOPs"]
    if r["extrapolation"] > 1.0:
        lines[0] += f"  ({r['extrapolation']:.3g}x outside the swept budgets: an extrapolation)"
    lo, hi = r["params_interval"]
    lines.append(f"  model size  N_opt {r['params']:.4g} parameters   [{lo:.3g}, {hi:.3g}] ({conf} bootstrap)")
    lo, hi = r["tokens_interval"]
    steps = f"  -> about {r['steps']:,} steps at the sweep's {r['tokens_per_step']:.4g} tokens/step" if r["steps"] else ""
    lines.append(f"  tokens      D_opt {r['tokens']:.4g}   [{lo:.3g}, {hi:.3g}]{steps}")
    g = r["generated"]
    lines.append(f"  generated DiT: hidden_size {g['hidden_size']}, heads {g['heads']}, depth_double {g['depth_double']}, "
                 f"depth_single {g['depth_single']} = {g['params']:,} parameters")
    lines.append(f"  nearest shipped DiT: {r['shipped']['name']} ({r['shipped']['params']:,} parameters)")
    lines.append(f"  train it:  {r['command']}")
    return "\n".join(lines)
