"""Clip quality (curation part 2, the report's DOVER step): a DOVER-compatible model and
loader, and an offline technical-quality proxy over part-1 signals. See docs/quality.md."""

from importlib import import_module
from typing import Any

# Names are imported on first use (PEP 562): the DOVER model pulls in torch, about a second of
# start-up that every curation actor would otherwise pay just for reading the quality config.
_SUBMODULE = {
    "QualityConfig": "config",
    "DOVER": "dover", "DoverScores": "dover", "fuse": "dover",
    "CHECKPOINT_SETTING": "loading", "DoverCheckpointError": "loading", "load_dover": "loading",
    "load_dover_state": "loading", "unwrap_state_dict": "loading",
    "CALIBRATION": "proxy", "PROXY_BACKEND": "proxy", "ProxyCalibration": "proxy",
    "ProxyFactors": "proxy", "proxy_factors": "proxy", "proxy_quality": "proxy",
    "DoverScorer": "scorer", "check_quality_weights": "scorer",
    "aesthetic_view": "views", "fragment_mosaic": "views", "technical_view": "views",
}


def __getattr__(name: str) -> Any:
    if name not in _SUBMODULE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{_SUBMODULE[name]}"), name)
    globals()[name] = value
    return value


__all__ = sorted(_SUBMODULE)
