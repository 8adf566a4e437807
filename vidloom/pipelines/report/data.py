"""Everything the curation report shows, gathered from a curated folder.

Reads ``DIR/manifest/{videos,clips}.parquet``, ``DIR/summary.json``, ``DIR/thumbs/`` and, once
``vidloom export DIR`` has run, ``DIR/tiers/funnel.json`` and ``DIR/tiers/tiers.yaml``. Every
input is optional past the manifest: a column that no stage has filled yet (all null) is
reported as not computed, never guessed.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pyarrow.parquet as pq

from vidloom.platform.caption_schema import CAPTION_FIELDS

# The per-clip signals that get a histogram: (column, title, unit/meaning). Column names are
# those of docs/manifest.md.
SIGNALS: list[tuple[str, str, str]] = [
    ("sharpness", "Sharpness", "clarity at the strongest edges, 0 = blurred (docs/clarity.md)"),
    ("motion", "Motion", "mean optical flow, fraction of the frame diagonal per frame"),
    ("text_ratio", "Text ratio", "fraction of the frame covered by text"),
    ("frame_diff", "Frame difference", "mean absolute difference, grey levels"),
    ("quality", "Aesthetic quality", "quality model score"),
    ("watermark_score", "Watermark score", "watermark detector confidence"),
    ("duration_s", "Duration", "seconds"),
]
# Other spellings a tier's threshold or filter may use for a column (besides the column name
# itself and `<column>_min` / `_max` / `_range`, as `vidloom export` writes them).
_ALIASES: dict[str, tuple[str, ...]] = {
    "duration_s": ("duration", "duration_min_s", "duration_max_s"),
    "watermark_score": ("watermark",),
    "text_ratio": ("text",),
    "dup_of": ("dedup", "duplicate", "near_duplicate"),
    "border_box": ("letterbox",),
    "cluster_id": ("concepts",),
    "quality": ("top_quality",),
}


@dataclass
class TierFunnel:
    """One tier of ``tiers/funnel.json``: filters in evaluation order."""

    name: str
    candidates: int
    kept: int
    removed: list[tuple[str, int]]
    thresholds: dict[str, Any]
    kind: str = "video"
    unknown: dict[str, int] = field(default_factory=dict)  # passed only because the signal is null
    errors: dict[str, str] = field(default_factory=dict)  # clip id -> why its file was not written

    def remaining(self) -> list[int]:
        """Clips left after each filter, in order (the last equals `kept` when consistent)."""
        left, out = self.candidates, []
        for _, n in self.removed:
            left -= n
            out.append(left)
        return out


@dataclass
class ClipCard:
    """One thumbnail with the facts printed under it."""

    clip_id: str
    source_name: str
    frames: str
    jpeg: bytes | None
    note: str = ""


@dataclass
class ExampleGroup:
    title: str
    count: int
    cards: list[ClipCard]
    kind: str  # "kept" or "dropped"


@dataclass
class DedupGroup:
    kept: ClipCard
    duplicates: list[ClipCard]
    total_duplicates: int


@dataclass
class SignalData:
    column: str
    title: str
    unit: str
    values: list[float]  # non-null values over clips with status ok
    thresholds: list[tuple[str, float, str]]  # (tier, value, "min"/"max"/"=")
    backends: list[str] = field(default_factory=list)


@dataclass
class ReportData:
    """All the report's content, independent of how it is drawn."""

    out_dir: Path
    summary: dict[str, Any] | None
    videos: list[dict[str, Any]]
    clip_status: Counter
    clip_errors: Counter
    signals: list[SignalData]
    funnel: list[TierFunnel] | None
    tiers_yaml: str | None
    examples: list[ExampleGroup]
    dedup_groups: list[DedupGroup]
    dedup_total: tuple[int, int] | None  # (groups, duplicate clips); None when not computed
    cluster_sizes: list[tuple[int, int]] | None  # (cluster id, clips), largest first
    captions: list[tuple[ClipCard, dict[str, str] | str, str]] | None  # card, fields or raw text, backend
    captioned: int
    camera_motion: list[tuple[str, int, float]]  # (label, clips, mean confidence)
    backends: dict[str, list[str]]
    num_ok_clips: int


def source_name(source: str) -> str:
    """The file name of a source path or URI (what a person recognises)."""
    return source.rstrip("/").rsplit("/", 1)[-1] or source


def column_for(name: str, columns: set[str] | Iterable[str]) -> str | None:
    """The manifest column a filter or threshold named `name` reads, if any."""
    columns = set(columns)
    if name in columns:
        return name
    for column, aliases in _ALIASES.items():
        if name in aliases and column in columns:
            return column
    for suffix in ("_min", "_max", "_range"):
        if name.endswith(suffix) and name[: -len(suffix)] in columns:
            return name[: -len(suffix)]
    return None


def _number(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def threshold_lines(tier: str, thresholds: dict[str, Any], column: str) -> list[tuple[str, float, str]]:
    """The bounds a tier puts on `column`, as (tier, value, "min" | "max" | "threshold").

    Reads both spellings: ``{signal: value or [min, max]}`` and the export's
    ``{signal_min: v, signal_max: v}``. A duration minimum is raised to ``num_frames / fps``
    when the tier gives both, since no shorter clip can fill a training sample.
    """
    lines: list[tuple[str, float, str]] = []
    for key, value in thresholds.items():
        if column_for(key, {column}) != column:
            continue
        kind = "min" if "_min" in key else "max" if "_max" in key else None
        if isinstance(value, (list, tuple)):
            lo, hi = (list(value) + [None, None])[:2]
            lines += [(tier, _number(lo), "min")] if _number(lo) is not None else []
            lines += [(tier, _number(hi), "max")] if _number(hi) is not None else []
        elif _number(value) is not None:
            lines.append((tier, _number(value), kind or "threshold"))
    if column == "duration_s":
        frames, fps = _number(thresholds.get("num_frames")), _number(thresholds.get("fps"))
        if frames and fps:
            floor = frames / fps
            lines = [(t, max(v, floor), k) if k == "min" else (t, v, k) for t, v, k in lines]
            if not any(k == "min" for _, _, k in lines):
                lines.append((tier, floor, "min"))
    return lines


def _tier_bound(thresholds: dict[str, Any], filter_name: str, column: str | None) -> str | None:
    """How a filter's bound reads in a note: 'sharpness_min 20', 'motion 0.0005–0.03'."""
    lines = threshold_lines("", thresholds, column) if column is not None else []
    if not lines:
        value = _number(thresholds.get(filter_name))
        return None if value is None else f"{filter_name} {_fmt(value)}"
    return ", ".join(f"{'≥ ' if k == 'min' else '≤ ' if k == 'max' else ''}{_fmt(v)}" for _, v, k in lines)


def _read_json(path: Path) -> Any | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def read_funnel(out_dir: Path) -> list[TierFunnel] | None:
    """``tiers/funnel.json`` as tiers in file order, or None before ``vidloom export``."""
    raw = _read_json(out_dir / "tiers" / "funnel.json")
    if raw is None:
        return None
    tiers = []
    for name, t in raw.items():
        removed = [(str(k), int(v)) for k, v in (t.get("removed") or {}).items()]
        tiers.append(TierFunnel(
            str(name), int(t.get("candidates", 0)), int(t.get("kept", 0)), removed, dict(t.get("thresholds") or {}),
            str(t.get("kind") or "video"), {str(k): int(v) for k, v in (t.get("unknown") or {}).items()},
            {str(k): str(v) for k, v in (t.get("errors") or {}).items()}))
    return tiers


def _parse_json_field(value: Any) -> Any:
    if value is None or isinstance(value, (dict, list)):
        return value
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return None


def _round_robin(rows: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """Up to `count` rows, one source after another, so examples are not all from one video."""
    by_source: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_source[r["source"]].append(r)
    queues = [by_source[s] for s in sorted(by_source)]
    out: list[dict[str, Any]] = []
    depth = 0
    while len(out) < count and any(depth < len(q) for q in queues):
        for q in queues:
            if depth < len(q) and len(out) < count:
                out.append(q[depth])
        depth += 1
    return out


def _fmt(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1e4 else f"{value:.0f}"
    return str(value)


class _Thumbs:
    def __init__(self, folder: Path):
        self.folder = folder

    def card(self, clip: dict[str, Any], note: str = "") -> ClipCard:
        path = self.folder / f"{clip['clip_id']}.jpg"
        jpeg = path.read_bytes() if path.exists() and path.stat().st_size else None
        frames = f"frames {clip['start_frame']}–{clip['end_frame']}"
        if clip.get("start_s") is not None and clip.get("end_s") is not None:
            frames += f" ({clip['start_s']:.1f}–{clip['end_s']:.1f} s)"
        return ClipCard(clip["clip_id"], source_name(clip["source"]), frames, jpeg, note)


def _signal_note(clip: dict[str, Any], filter_name: str, columns: set[str], tier: TierFunnel | None) -> str:
    """'dropped by sharpness_min: sharpness = 7.4 (needs ≥ 20)' and the like."""
    column = column_for(filter_name, columns)
    note = f"dropped by {filter_name}"
    if filter_name == "export_error" and tier is not None and clip["clip_id"] in tier.errors:
        return f"{note}: {tier.errors[clip['clip_id']]}"
    if filter_name == "min_short_side":
        return f"{note}: {clip.get('width')}×{clip.get('height')}"
    if column == "dup_of":
        return f"{note}: duplicate of {clip.get('dup_of')}"
    if column is not None:
        note += f": {column} = {_fmt(clip.get(column))}"
        bound = _tier_bound(tier.thresholds, filter_name, column) if tier is not None else None
        if bound:
            note += f" (needs {bound})" if bound[:1] in "≥≤" else f" ({bound})"
    return note


def _examples(clips: list[dict[str, Any]], funnel: list[TierFunnel] | None, thumbs: _Thumbs,
              columns: set[str], per_group: int) -> list[ExampleGroup]:
    groups: list[ExampleGroup] = []
    if funnel is not None and "drop_reason" in columns:
        # The video tiers form one chain (image sets mirror it): a clip climbs it until the
        # first tier that drops it, and that tier's reason tells why it stopped.
        chain = [t for t in funnel if t.kind == "video"] or list(funnel)
        order = [t.name for t in chain]
        by_name = {t.name: t for t in chain}
        dropped: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        kept_all: list[dict[str, Any]] = []
        for c in clips:
            if c["status"] != "ok":
                continue
            reasons = _parse_json_field(c.get("drop_reason")) or {}
            first = next(((t, reasons[t]) for t in order if reasons.get(t)), None)
            if first is None:
                if set(order) <= set(c.get("tiers") or []):
                    kept_all.append(c)
            else:
                dropped[first].append(c)
        if order:
            groups.append(ExampleGroup(
                f"Kept in every video tier (up to {order[-1]})", len(kept_all),
                [thumbs.card(c, "in " + ", ".join(c.get("tiers") or [])) for c in _round_robin(kept_all, per_group)],
                "kept"))

        def rank(key: tuple[str, str]) -> tuple[int, int, str]:
            tier, reason = key
            filters = [f for f, _ in by_name[tier].removed] if tier in by_name else []
            return (order.index(tier) if tier in order else len(order),
                    filters.index(reason) if reason in filters else len(filters), reason)

        for tier, reason in sorted(dropped, key=rank):
            rows = dropped[(tier, reason)]
            cards = [thumbs.card(c, _signal_note(c, reason, columns, by_name.get(tier)))
                     for c in _round_robin(rows, per_group)]
            groups.append(ExampleGroup(f"Dropped at {tier} by {reason}", len(rows), cards, "dropped"))
    else:
        ok = [c for c in clips if c["status"] == "ok"]
        if ok:
            groups.append(ExampleGroup("Status ok: candidates for the tiers", len(ok),
                                       [thumbs.card(c, c.get("camera_motion") or "") for c in _round_robin(ok, per_group)],
                                       "kept"))
    # Clips that never reach the filters: too short, or a stage failed on them.
    for status, title in (("too_short", "Too short (never candidates)"), ("error", "Failed in a stage")):
        rows = [c for c in clips if c["status"] == status]
        if rows:
            cards = [thumbs.card(c, c.get("error") or status) for c in _round_robin(rows, per_group)]
            groups.append(ExampleGroup(title, len(rows), cards, "dropped"))
    return groups


def _dedup(clips: list[dict[str, Any]], thumbs: _Thumbs, max_groups: int, per_group: int) -> tuple[list[DedupGroup], tuple[int, int]]:
    by_id = {c["clip_id"]: c for c in clips}
    members: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for c in clips:
        if c.get("dup_of"):
            members[c["dup_of"]].append(c)
    # Largest groups first: they say the most about what the dedup step merges.
    order = sorted(members, key=lambda k: (-len(members[k]), k))
    groups = []
    for kept_id in order[:max_groups]:
        kept = by_id.get(kept_id)
        kept_card = thumbs.card(kept, "kept") if kept else ClipCard(kept_id, "(not in manifest)", "", None, "kept")
        dups = [thumbs.card(c, f"duplicate of {kept_id}") for c in members[kept_id][:per_group]]
        groups.append(DedupGroup(kept_card, dups, len(members[kept_id])))
    return groups, (len(members), sum(len(v) for v in members.values()))


def load_report_data(out_dir: str | Path, *, examples_per_group: int = 6, max_dedup_groups: int = 8,
                     dups_per_group: int = 4, caption_samples: int = 10) -> ReportData:
    """Read a curated folder into `ReportData` (raises FileNotFoundError without a manifest)."""
    out_dir = Path(out_dir)
    manifest = out_dir / "manifest"
    clips_path, videos_path = manifest / "clips.parquet", manifest / "videos.parquet"
    for p in (clips_path, videos_path):
        if not p.exists():
            raise FileNotFoundError(f"{p} not found: run `vidloom curate ... --out {out_dir}` first")
    clips_table = pq.read_table(clips_path)
    columns = set(clips_table.column_names)
    clips = clips_table.to_pylist()
    videos = pq.read_table(videos_path).to_pylist()
    thumbs = _Thumbs(out_dir / "thumbs")
    funnel = read_funnel(out_dir)
    tiers_yaml_path = out_dir / "tiers" / "tiers.yaml"
    ok = [c for c in clips if c["status"] == "ok"]

    signals = []
    for column, title, unit in SIGNALS:
        values = [float(c[column]) for c in ok if c.get(column) is not None] if column in columns else []
        values = [v for v in values if math.isfinite(v)]
        # Lines for the video tiers (one chain); image sets mirror them.
        lines = [line for tier in funnel or [] if tier.kind == "video"
                 for line in threshold_lines(tier.name, tier.thresholds, column)]
        backend_col = {"quality": "quality_backend", "watermark_score": "watermark_backend"}.get(column)
        backends = sorted({c[backend_col] for c in ok if c.get(backend_col)}) if backend_col in columns else []
        signals.append(SignalData(column, title, unit, values, lines, backends))

    backends = {}
    for col in ("quality_backend", "watermark_backend", "caption_backend", "embedding_backend"):
        if col in columns:
            backends[col] = sorted({c[col] for c in clips if c.get(col)})

    dedup_groups, dedup_total = [], None
    if "dup_of" in columns and any(c.get("dup_of") for c in clips):
        dedup_groups, dedup_total = _dedup(clips, thumbs, max_dedup_groups, dups_per_group)

    cluster_sizes = None
    if "cluster_id" in columns and any(c.get("cluster_id") is not None for c in clips):
        sizes = Counter(int(c["cluster_id"]) for c in clips if c.get("cluster_id") is not None)
        cluster_sizes = sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0]))

    captions, captioned = None, 0
    if "caption" in columns:
        with_caption = [c for c in ok if c.get("caption")]
        captioned = len(with_caption)
        if with_caption:
            captions = []
            for c in _round_robin(with_caption, caption_samples):
                parsed = _parse_json_field(c["caption"])
                body: dict[str, str] | str = (
                    {k: str(parsed.get(k, "")) for k in CAPTION_FIELDS} if isinstance(parsed, dict) else str(c["caption"]))
                captions.append((thumbs.card(c), body, c.get("caption_backend") or ""))

    motion: dict[str, list[float]] = defaultdict(list)
    for c in ok:
        if c.get("camera_motion"):
            motion[c["camera_motion"]].append(float(c.get("camera_motion_confidence") or 0.0))
    camera_motion = sorted(((k, len(v), sum(v) / len(v)) for k, v in motion.items()), key=lambda t: (-t[1], t[0]))

    return ReportData(
        out_dir=out_dir,
        summary=_read_json(out_dir / "summary.json"),
        videos=videos,
        clip_status=Counter(c["status"] for c in clips),
        clip_errors=Counter(c["error"] for c in clips if c["status"] == "error" and c.get("error")),
        signals=signals,
        funnel=funnel,
        tiers_yaml=tiers_yaml_path.read_text() if tiers_yaml_path.exists() else None,
        examples=_examples(clips, funnel, thumbs, columns, examples_per_group),
        dedup_groups=dedup_groups,
        dedup_total=dedup_total,
        cluster_sizes=cluster_sizes,
        captions=captions,
        captioned=captioned,
        camera_motion=camera_motion,
        backends=backends,
        num_ok_clips=len(ok),
    )
