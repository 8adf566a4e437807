"""QualityStage: one quality score in [0, 1] per ok clip (the report's DOVER step).

``curation.quality.backend``:

* ``proxy`` (default, offline): `proxy_quality` over the part-1 signals stored on each clip;
  no pixels and no model, so it must run after the text-detection stage (it uses
  ``text_ratio``).
* ``dover``: DOVER from ``curation.quality.dover_checkpoint`` on the clip's shipped frames
  (`clip_frames`); the source is never decoded again. The checkpoint is loaded in `setup`, so a
  missing file fails the run at start with MissingWeightsError naming the setting.

Each ok clip gets ``quality`` and ``quality_backend`` (``proxy-v1`` or ``dover-stills:<sha256[:12]>``: DOVER's weights on
the shipped still frames, not on its defined input; docs/quality.md),
plus ``quality_technical`` / ``quality_aesthetic`` in the clip records of the stage output
(DOVER's branch scores; for the proxy, technical = quality and aesthetic = null).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa

from vidloom.pipelines.curation.quality.config import QualityConfig
from vidloom.pipelines.curation.quality.proxy import PROXY_BACKEND, proxy_quality
from vidloom.pipelines.curation.rows import clip_frames, dumps, loads
from vidloom.pipelines.curation.stages.clip_scoring import ClipScoringStage
from vidloom.pipelines.stage import Row, StageResources

if TYPE_CHECKING:  # the DOVER scorer imports torch: only a dover actor pays for it
    from vidloom.pipelines.curation.quality.scorer import DoverScorer


class QualityStage(ClipScoringStage):
    name = "quality"
    config_sections = {"quality": QualityConfig}
    columns = {
        "quality": pa.float64(), "quality_technical": pa.float64(), "quality_aesthetic": pa.float64(),
        "quality_backend": pa.string(),
    }
    requires = ("video_analysis",)
    default_resources = StageResources(num_cpus=0.05, max_workers=1)  # ~0.4 GB resident

    @classmethod
    def dependencies(cls, config: Any) -> tuple[str, ...]:
        # The offline proxy scores text coverage, so it needs text_ratio measured first.
        return cls.requires + (("text_detection",) if config.quality.backend == "proxy" else ())

    @classmethod
    def weights(cls, config: Any) -> list[tuple[str | None, str]]:
        if config.quality.backend != "dover":
            return []
        return [(config.quality.dover_checkpoint, "curation.quality.dover_checkpoint")]

    def __init__(self, config: dict[str, Any], resources: StageResources | None = None):
        super().__init__(resources)
        from vidloom.pipelines.curation.config import CurationConfig  # built from the stages

        # The quality section is validated on its own so the stage reads the same settings
        # whether or not CurationConfig already lists it.
        self.quality = QualityConfig.model_validate(config.get("quality") or {})
        self.config = CurationConfig.model_validate({k: v for k, v in config.items() if k != "quality"})
        self.scorer: DoverScorer | None = None

    def setup(self) -> None:
        if self.quality.backend == "dover":
            from vidloom.pipelines.curation.quality.scorer import DoverScorer

            self.scorer = DoverScorer.from_config(self.quality)

    def process_row(self, row: Row) -> Row:
        clips = loads(row["clips_json"])
        frames = clip_frames(row) if self.quality.backend == "dover" else {}
        analysis_side = self.config.decode.analysis_short_side
        for k, clip in enumerate(clips):
            if clip["status"] != "ok":
                continue
            if self.quality.backend == "proxy":
                q = proxy_quality(clip, analysis_side)
                clip.update(quality=q, quality_backend=PROXY_BACKEND, quality_technical=q, quality_aesthetic=None)
                continue
            if self.scorer is None:
                raise RuntimeError("QualityStage.setup() was not called before process_row")
            if not frames.get(k):
                clip["status"], clip["error"] = "error", "quality: no frames were shipped for this clip"
                continue
            scores = self.scorer.score(frames[k])
            clip.update(
                quality=scores.overall,
                quality_backend=self.scorer.backend,
                quality_technical=scores.technical,
                quality_aesthetic=scores.aesthetic,
            )
        return {**row, "clips_json": dumps(clips)}
