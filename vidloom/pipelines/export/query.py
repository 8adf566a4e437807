"""A tier is a query over ``clips.parquet``: which clips it keeps, why each other clip is out,
and the funnel (how many each filter removed). Nothing here decodes video or runs a model.

Filters run in a fixed order and a clip's drop reason is the first one it fails. A threshold
on a signal that is null (its stage has not run yet) does not remove the clip; the funnel
counts such clips under ``unknown``. A tier's own thresholds come first so that a blurred clip
is reported as ``sharpness_min`` in every tier, not as "not in the tier before"; ``parent``
then removes what an earlier tier's resampling or top slice took out, which keeps every tier a
subset of the one before it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from vidloom.pipelines.export.buckets import picture_box
from vidloom.pipelines.export.tiers import ExportConfig, Filters, TierConfig

CONCEPTS_MODULE = "vidloom.pipelines.curation.concepts"

# Evaluation order (also the order of "removed" in funnel.json).
VIDEO_FILTERS = [
    "status", "duplicate", "letterbox", "min_short_side", "duration", "sharpness_min", "frame_diff_min",
    "motion_range", "text_ratio_max", "watermark_score_max", "quality_min", "parent", "concepts",
    "top_quality", "export_error",
]
IMAGE_FILTERS = [
    "status", "duplicate", "letterbox", "min_short_side", "sharpness_min", "text_ratio_max",
    "watermark_score_max", "quality_min", "parent", "export_error",
]

Row = dict[str, Any]
Balancer = Callable[..., set]


class ConceptsUnavailableError(RuntimeError):
    """A tier asks for concept resampling but the concepts module is not installed."""


@dataclass
class TierSelection:
    """The result of one tier's query."""

    name: str
    kind: str  # "video" | "image"
    kept: list[str]  # clip ids, in manifest order
    reasons: dict[str, str | None]  # clip id -> None (kept) or the first filter that removed it
    funnel: dict[str, Any] = field(default_factory=dict)

    def remove(self, clip_id: str, reason: str) -> None:
        """Take a kept clip out after the fact (its cut failed) and keep the funnel right."""
        if self.reasons.get(clip_id) is None and clip_id in self.reasons:
            self.reasons[clip_id] = reason
            self.kept.remove(clip_id)
            self.funnel["kept"] -= 1
            self.funnel["removed"][reason] = self.funnel["removed"].get(reason, 0) + 1


def load_balancer() -> Balancer | None:
    """`balance_concepts` from the concepts module, or None while that module does not exist."""
    try:
        from vidloom.pipelines.curation.concepts import balance_concepts
    except ModuleNotFoundError as exc:
        if exc.name in (CONCEPTS_MODULE, CONCEPTS_MODULE.rsplit(".", 1)[0]):
            return None
        raise
    return balance_concepts


def picture_size(row: Row, letterbox: str) -> tuple[int, int]:
    """Width and height of the picture a tier would cut from the clip."""
    box = picture_box(int(row["width"]), int(row["height"]), row.get("border_box") if letterbox == "crop" else None)
    return box[2] - box[0], box[3] - box[1]


def _thresholds(row: Row, cfg: Filters, kind: str) -> tuple[str | None, list[str]]:
    """The first threshold filter `row` fails (or None) and the filters it passed unmeasured."""
    unknown: list[str] = []

    def check(name: str, value: Any, ok: Callable[[float], bool]) -> bool:
        if value is None:
            unknown.append(name)
            return True
        return ok(float(value))

    if row.get("border_box") and cfg.letterbox == "drop":
        return "letterbox", unknown
    w, h = picture_size(row, cfg.letterbox)
    if min(w, h) < cfg.min_short_side:
        return "min_short_side", unknown
    if kind == "video":
        assert isinstance(cfg, TierConfig)
        duration = row.get("duration_s")
        if duration is None or float(duration) + 1e-9 < cfg.min_duration_s:
            return "duration", unknown
    if cfg.sharpness_min is not None and not check("sharpness_min", row.get("sharpness"), lambda v: v >= cfg.sharpness_min):
        return "sharpness_min", unknown
    if kind == "video":
        if cfg.frame_diff_min is not None and not check("frame_diff_min", row.get("frame_diff"), lambda v: v >= cfg.frame_diff_min):
            return "frame_diff_min", unknown
        if cfg.motion_min is not None or cfg.motion_max is not None:
            lo = cfg.motion_min if cfg.motion_min is not None else float("-inf")
            hi = cfg.motion_max if cfg.motion_max is not None else float("inf")
            if not check("motion_range", row.get("motion"), lambda v: lo <= v <= hi):
                return "motion_range", unknown
    if cfg.text_ratio_max is not None and not check("text_ratio_max", row.get("text_ratio"), lambda v: v <= cfg.text_ratio_max):
        return "text_ratio_max", unknown
    if cfg.watermark_score_max is not None and not check(
        "watermark_score_max", row.get("watermark_score"), lambda v: v <= cfg.watermark_score_max
    ):
        return "watermark_score_max", unknown
    if cfg.quality_min is not None and not check("quality_min", row.get("quality"), lambda v: v >= cfg.quality_min):
        return "quality_min", unknown
    return None, unknown


def _top_quality(rows: list[Row], cfg: TierConfig) -> tuple[set[str], int]:
    """Clip ids of the best `top_quality` slice of `rows`; unmeasured quality ranks last."""
    ranked = sorted(
        rows,
        key=lambda r: (r.get("quality") is None, -float(r["quality"]) if r.get("quality") is not None else 0.0, r["clip_id"]),
    )
    chosen = ranked[: cfg.top_quality.size(len(rows))]
    return {r["clip_id"] for r in chosen}, sum(1 for r in chosen if r.get("quality") is None)


def select_tier(
    name: str,
    cfg: Filters,
    rows: list[Row],
    parent: set[str] | None,
    balancer: Balancer | None,
) -> TierSelection:
    """Run one tier's query over all `rows` (the clips table as dicts)."""
    kind = "video" if isinstance(cfg, TierConfig) else "image"
    order = VIDEO_FILTERS if kind == "video" else IMAGE_FILTERS
    removed = {f: 0 for f in order}
    unknown: dict[str, int] = {}
    reasons: dict[str, str | None] = {}
    passing: list[Row] = []
    for row in rows:
        cid = row["clip_id"]
        if row.get("status") != "ok":
            reason = "status"
        elif row.get("dup_of"):
            reason = "duplicate"
        else:
            reason, unmeasured = _thresholds(row, cfg, kind)
            if reason is None:
                for f in unmeasured:
                    unknown[f] = unknown.get(f, 0) + 1
                if parent is not None and cid not in parent:
                    reason = "parent"
        reasons[cid] = reason
        if reason is None:
            passing.append(row)
        else:
            removed[reason] += 1

    if kind == "video" and cfg.concepts.enabled and passing:
        clustered = [r for r in passing if r.get("cluster_id") is not None]
        unknown_clusters = len(passing) - len(clustered)
        if unknown_clusters:
            unknown["concepts"] = unknown_clusters
        if clustered:
            if balancer is None:
                raise ConceptsUnavailableError(
                    f"tier '{name}' sets concepts (max_per_cluster / max_share) and the manifest has "
                    f"cluster_id values, but {CONCEPTS_MODULE} (balance_concepts) is not installed; "
                    f"unset tiers.{name}.concepts or install it"
                )
            # All of the tier's clips go in, so that max_share is a share of the whole tier;
            # the balancer keeps clips without a cluster_id.
            keep = set(balancer(passing, cfg.concepts.max_per_cluster, cfg.concepts.max_share, cfg.concepts.seed))
            for r in clustered:
                if r["clip_id"] not in keep:
                    reasons[r["clip_id"]] = "concepts"
                    removed["concepts"] += 1
            passing = [r for r in passing if reasons[r["clip_id"]] is None]

    if kind == "video" and cfg.top_quality is not None and passing:
        keep, unmeasured = _top_quality(passing, cfg)
        if unmeasured:
            unknown["top_quality"] = unmeasured
        for r in passing:
            if r["clip_id"] not in keep:
                reasons[r["clip_id"]] = "top_quality"
                removed["top_quality"] += 1
        passing = [r for r in passing if reasons[r["clip_id"]] is None]

    kept = [r["clip_id"] for r in passing]
    funnel = {
        "kind": kind,
        "candidates": len(rows),
        "kept": len(kept),
        "removed": removed,
        "unknown": unknown,
        "thresholds": cfg.model_dump(mode="json"),
    }
    return TierSelection(name=name, kind=kind, kept=kept, reasons=reasons, funnel=funnel)


def select_all(config: ExportConfig, rows: list[Row], balancer: Balancer | None = None) -> dict[str, TierSelection]:
    """Every video tier (one chain) and image set (another chain), in file order."""
    out: dict[str, TierSelection] = {}
    for chain in (config.tiers, config.image_sets):
        parent: set[str] | None = None
        for name, cfg in chain.items():
            sel = select_tier(name, cfg, rows, parent, balancer)
            out[name] = sel
            parent = set(sel.kept)
    return out


def clip_columns(selections: dict[str, TierSelection], clip_ids: list[str]) -> tuple[list[list[str]], list[dict]]:
    """The `tiers` and `drop_reason` values of each clip, in `clip_ids` order."""
    tiers_col, reasons_col = [], []
    for cid in clip_ids:
        tiers_col.append([n for n, s in selections.items() if s.reasons.get(cid, "status") is None])
        reasons_col.append({n: s.reasons.get(cid, "status") for n, s in selections.items()})
    return tiers_col, reasons_col
