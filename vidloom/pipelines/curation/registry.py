"""The curation stages, in pipeline order: the one list a new stage is added to.

Everything else (the config's sections and `stages` resources, the allowed `pipeline` names,
the manifest's clip columns, the weights check at start) is derived from the classes listed
here; docs/writing_a_stage.md walks through adding one.
"""

from __future__ import annotations

from vidloom.pipelines.curation.stages.captioning import CaptioningStage
from vidloom.pipelines.curation.stages.embedding import EmbeddingStage
from vidloom.pipelines.curation.stages.quality import QualityStage
from vidloom.pipelines.curation.stages.text_detection import TextDetectionStage
from vidloom.pipelines.curation.stages.video_analysis import VideoAnalysisStage
from vidloom.pipelines.curation.stages.watermark import WatermarkStage

# Decode once and measure, then the model-backed stages on the frames the analysis stage kept
# (cheap before expensive: the VLM captioner runs last).
STAGE_CLASSES = (
    VideoAnalysisStage,
    TextDetectionStage,
    QualityStage,
    WatermarkStage,
    EmbeddingStage,
    CaptioningStage,
)
STAGE_ORDER = tuple(cls.name for cls in STAGE_CLASSES)
STAGES_BY_NAME = {cls.name: cls for cls in STAGE_CLASSES}
