"""Tiered training sets from a curated manifest: tier queries, clip cutting, image sets and
WebDataset shards (`vidloom export`)."""

from vidloom.pipelines.export.runner import ExportSummary, run_export
from vidloom.pipelines.export.tiers import (
    DEFAULT_TIERS_PATH, ExportConfig, ImageSetConfig, TierConfig, load_export_config,
)

__all__ = [
    "DEFAULT_TIERS_PATH", "ExportConfig", "ExportSummary", "ImageSetConfig", "TierConfig",
    "load_export_config", "run_export",
]
