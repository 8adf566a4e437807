"""Watermark / logo detection for the curation pipeline.

- `persistence`: the deterministic fixed-layer check (no weights);
- `yolo`: the trained one-class YOLO detector run from ONNX by onnxruntime, its ONNX export,
  and the offline Ultralytics set-up for training (the default backend, `both`, runs both);
- `synthetic`: text/logo overlays on real frames, written as a YOLO dataset for training;
- `config`: `WatermarkConfig`, the `watermark` section of the curation config.

The stage is `vidloom.pipelines.curation.stages.watermark.WatermarkStage`; the training job is
`vidloom.jobs.train_watermark_detector`. Nothing here imports Ultralytics except training and
the ONNX export.
"""

from vidloom.pipelines.curation.watermark.config import WEIGHTS_SETTING, WatermarkConfig
from vidloom.pipelines.curation.watermark.persistence import PersistenceParams, PersistenceResult, persistence_scores

__all__ = ["WEIGHTS_SETTING", "WatermarkConfig", "PersistenceParams", "PersistenceResult", "persistence_scores"]
