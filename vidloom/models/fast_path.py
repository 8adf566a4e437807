"""The DiT's fast-path switch as training and serving configure it (`fast_path:`), importable
without torch so configs validate before any worker starts.

- "off": the reference path, bit-identical to diffusers;
- "on": fused elementwise kernels and unmasked attention where no sample needs a mask (same
  function, float rounding apart);
- "compile": "on" plus `torch.compile` of every block (a warm-up per new shape,
  docs/benchmarks.md).
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import BeforeValidator

FastPathMode = Literal["off", "on", "compile"]
FAST_PATH_MODES: tuple[str, ...] = get_args(FastPathMode)


def fast_path_mode(value: object) -> object:
    """Config values as people write them: true/false mean "on"/"off"."""
    return ("on" if value else "off") if isinstance(value, bool) else value


#: Serving's default (`vidloom serve`, `vidloom generate`, the app's `fast_path`): the fused kernels
#: are the same function to float rounding and 10-20 % faster per step, more in a batch
#: (docs/benchmarks.md, "Serving"). Training keeps "off", bit-identical to diffusers.
SERVE_FAST_PATH: FastPathMode = "on"

#: A config field's type: `fast_path: FastPathSetting = "off"`.
FastPathSetting = Annotated[FastPathMode, BeforeValidator(fast_path_mode)]
