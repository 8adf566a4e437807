"""Watermark / logo detection for the curation pipeline.

- `persistence`: the deterministic corner-persistence check (default, no weights);
- `yolo`: the trained one-class YOLO detector and the offline Ultralytics set-up;
- `synthetic`: text/logo overlays on real frames, written as a YOLO dataset for training;
- `config`: `WatermarkConfig`, the `watermark` section of the curation config.

The stage is `vidloom.pipelines.curation.stages.watermark.WatermarkStage`; the training job is
`vidloom.jobs.train_watermark_detector`. Nothing here imports Ultralytics until a YOLO model is
built.
"""

from vidloom.pipelines.curation.watermark.config import WEIGHTS_SETTING, WatermarkConfig
from vidloom.pipelines.curation.watermark.persistence import PersistenceParams, PersistenceResult, persistence_scores

__all__ = ["WEIGHTS_SETTING", "WatermarkConfig", "PersistenceParams", "PersistenceResult", "persistence_scores"]
