"""The base of the stages that score clips from the frames the analysis stage shipped."""

from __future__ import annotations

from vidloom.pipelines.curation.rows import dumps, loads
from vidloom.pipelines.stage import Row, Stage


class ClipScoringStage(Stage):
    """A stage that adds signals to a video's ok clips.

    When it fails on a whole video, nothing measured so far is lost: the video row and every
    clip record stay, and its ok clips are marked ``status="error"`` with the reason.
    """

    def progress_units(self, row: Row) -> int:
        return sum(1 for clip in loads(row["clips_json"]) if clip["status"] == "ok")

    def error_row(self, row: Row, exc: BaseException) -> Row:
        clips = loads(row["clips_json"])
        reason = f"{self.name}: {type(exc).__name__}: {exc}"[:500]
        for clip in clips:
            if clip["status"] == "ok":
                clip["status"], clip["error"] = "error", reason
        return {**row, "clips_json": dumps(clips)}
