"""Clip quality (curation part 2, the report's DOVER step): a DOVER-compatible model and
loader, and an offline technical-quality proxy over part-1 signals. See docs/quality.md."""

from vidloom.pipelines.curation.quality.config import QualityConfig
from vidloom.pipelines.curation.quality.dover import DOVER, DoverScores, fuse
from vidloom.pipelines.curation.quality.loading import (
    CHECKPOINT_SETTING,
    DoverCheckpointError,
    load_dover,
    load_dover_state,
    unwrap_state_dict,
)
from vidloom.pipelines.curation.quality.proxy import (
    CALIBRATION,
    PROXY_BACKEND,
    ProxyCalibration,
    ProxyFactors,
    proxy_factors,
    proxy_quality,
)
from vidloom.pipelines.curation.quality.scorer import DoverScorer, check_quality_weights
from vidloom.pipelines.curation.quality.views import aesthetic_view, fragment_mosaic, technical_view

__all__ = [
    "CALIBRATION",
    "CHECKPOINT_SETTING",
    "DOVER",
    "DoverCheckpointError",
    "DoverScorer",
    "DoverScores",
    "PROXY_BACKEND",
    "ProxyCalibration",
    "ProxyFactors",
    "QualityConfig",
    "aesthetic_view",
    "check_quality_weights",
    "fragment_mosaic",
    "fuse",
    "load_dover",
    "load_dover_state",
    "proxy_factors",
    "proxy_quality",
    "technical_view",
    "unwrap_state_dict",
]
