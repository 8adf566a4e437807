"""EmbeddingStage: one vector per ok clip from the frames the analysis stage shipped.

The vectors leave the pipeline in `row["embeddings"]` (the driver writes them to
``OUT/manifest/embeddings.parquet``), and each clip records which embedder made its vector
in `embedding_backend`, so the global steps (near-duplicate removal, concept clustering)
never mix vectors of different spaces.
"""

from __future__ import annotations

from typing import Any

from vidloom.pipelines.curation.embeddings import EmbeddingConfig, build_embedder
import pyarrow as pa

from vidloom.pipelines.curation.rows import clip_frames, dumps, evenly, loads
from vidloom.pipelines.curation.stages.clip_scoring import ClipScoringStage
from vidloom.pipelines.stage import Row, StageResources


class EmbeddingStage(ClipScoringStage):
    """Embeds every ok clip with the configured embedder (`curation.embedding`)."""

    name = "embedding"
    config_sections = {"embedding": EmbeddingConfig}
    columns = {"embedding_backend": pa.string()}
    requires = ("video_analysis",)
    default_resources = StageResources(num_cpus=0.05, max_workers=1)  # ~0.15 GB resident

    @classmethod
    def weights(cls, config: Any) -> list[tuple[str | None, str]]:
        if config.embedding.backend != "open_clip":
            return []
        return [(config.embedding.checkpoint, "curation.embedding.checkpoint")]

    def __init__(self, config: dict[str, Any], resources: StageResources | None = None):
        super().__init__(resources)
        # Only this stage's section is read, so the stage runs with any curation config
        # that carries (or defaults) an `embedding` section.
        self.config = EmbeddingConfig.model_validate(config.get("embedding") or {})

    def setup(self) -> None:
        self.embedder = build_embedder(self.config)

    def process_row(self, row: Row) -> Row:
        clips = loads(row["clips_json"])
        frames = clip_frames(row)
        todo = [k for k, clip in enumerate(clips) if clip["status"] == "ok" and frames.get(k)]
        vectors = self.embedder.embed_clips([evenly(frames[k], self.config.frames_per_clip) for k in todo])
        embeddings = list(row.get("embeddings") or [])
        for k, vec in zip(todo, vectors):
            clips[k]["embedding_backend"] = self.embedder.backend
            embeddings.append({
                "clip_id": clips[k]["clip_id"],
                "backend": self.embedder.backend,
                "vector": [float(x) for x in vec],
            })
        return {**row, "clips_json": dumps(clips), "embeddings": embeddings}
