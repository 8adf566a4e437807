"""CaptioningStage: the report's structured JSON caption for every ok clip.

Runs last among the model stages, so it sees every measured signal (camera motion, border box,
text ratio) and captions only clips still ``ok``. It reads the frames the analysis stage
shipped with the row (never the source again). The backend is `caption.backend`: the offline
``signals`` default, an OpenAI-compatible VLM server, or a local transformers VLM. A clip the
backend cannot caption gets ``status="error"`` with the reason; the video's other clips go on.
"""

from __future__ import annotations

from typing import Any

from vidloom.pipelines.curation.captions.config import CaptionConfig
from vidloom.pipelines.curation.captions.registry import build_caption_backend
import pyarrow as pa

from vidloom.pipelines.curation.rows import clip_frames, dumps, loads
from vidloom.pipelines.curation.stages.clip_scoring import ClipScoringStage
from vidloom.pipelines.stage import Row, StageResources


class CaptioningStage(ClipScoringStage):
    """Fills ``caption`` (JSON string) and ``caption_backend`` of every ok clip."""

    name = "captioning"
    config_sections = {"caption": CaptionConfig}
    columns = {"caption": pa.string(), "caption_backend": pa.string()}
    requires = ("video_analysis",)
    default_resources = StageResources(num_cpus=0.1, max_workers=1)  # ~0.3 GB resident

    @classmethod
    def fusible(cls, config: Any) -> bool:
        # An OpenAI-compatible server answers in seconds; fused, every decode would wait on it.
        return config.caption.backend != "openai"

    @classmethod
    def weights(cls, config: Any) -> list[tuple[str | None, str]]:
        if config.caption.backend != "local":
            return []
        return [(config.caption.local_model_path, "curation.caption.local_model_path")]

    def __init__(self, config: dict[str, Any], resources: StageResources | None = None):
        super().__init__(resources)
        # Only the `caption` section matters here; it is validated on its own so the stage
        # does not depend on which other sections the curation config carries.
        self.caption_config = CaptionConfig.model_validate(config.get("caption") or {})

    def setup(self) -> None:
        self.backend = build_caption_backend(self.caption_config)

    def process_row(self, row: Row) -> Row:
        clips = loads(row["clips_json"])
        frames = clip_frames(row)
        todo = [k for k, clip in enumerate(clips) if clip["status"] == "ok"]
        outcomes = self.backend.caption_many([(clips[k], frames.get(k, [])) for k in todo])
        for k, outcome in zip(todo, outcomes):
            clip = clips[k]
            clip["caption_backend"] = self.backend.name
            if outcome.caption is None:
                clip["status"], clip["error"] = "error", f"{self.name}: {outcome.error}"[:500]
                clip["caption"] = None
            else:
                clip["caption"] = outcome.caption.to_json()
        return {**row, "clips_json": dumps(clips)}
