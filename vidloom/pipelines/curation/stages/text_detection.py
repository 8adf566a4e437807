"""TextDetectionStage: the share of the frame covered by text (subtitles, titles, captions).

PP-OCR's detector is the costly signal on CPU, so it runs only on clips that are still `ok`,
on the few frames per clip the analysis stage kept, at a reduced detector size, and by default
in int8 (`ocr.precision`, signals/text_int8.py).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from vidloom.pipelines.curation.sections import OcrConfig
from vidloom.pipelines.curation.rows import clip_frames, dumps, evenly, loads
from vidloom.pipelines.curation.signals.text import TextDetector
from vidloom.pipelines.curation.stages.clip_scoring import ClipScoringStage
from vidloom.pipelines.stage import Row, StageResources


class TextDetectionStage(ClipScoringStage):
    name = "text_detection"
    config_sections = {"ocr": OcrConfig}
    columns = {"text_ratio": pa.float64(), "text_backend": pa.string()}
    requires = ("video_analysis",)
    # A scheduling weight, not a whole CPU: a whole CPU starved the second analysis actor on
    # 2 cores and halved throughput (measured); ~0.6 GB resident per actor.
    default_resources = StageResources(num_cpus=0.15, max_workers=1)

    @classmethod
    def weights(cls, config: Any) -> list[tuple[str | None, str]]:
        return [(config.ocr.model_dir, "curation.ocr.model_dir")] if config.ocr.backend == "paddleocr" else []

    def __init__(self, config: dict[str, Any], resources: StageResources | None = None):
        super().__init__(resources)
        from vidloom.pipelines.curation.config import CurationConfig  # built from the stages

        self.config = CurationConfig.model_validate(config)

    def setup(self) -> None:
        ocr = self.config.ocr
        self.detector = TextDetector(
            backend=ocr.backend,
            model_dir=ocr.model_dir,
            det_limit_side_len=ocr.det_limit_side_len,
            intra_op_threads=ocr.threads,
            precision=ocr.resolved_precision,
        )

    def process_row(self, row: Row) -> Row:
        clips = loads(row["clips_json"])
        frames = clip_frames(row)
        for k, clip in enumerate(clips):
            if clip["status"] == "ok" and frames.get(k):
                picked = evenly(frames[k], self.config.ocr.frames_per_clip)
                clip["text_ratio"] = float(self.detector.text_ratio(picked))
                clip["text_backend"] = self.detector.label
        return {**row, "clips_json": dumps(clips)}
