"""The report as one self-contained HTML page: inline CSS, inline SVG charts and thumbnails
as JPEG data URIs. Nothing on the page points outside it, so it can be mailed, archived or
opened offline, and no script runs."""

from __future__ import annotations

import base64
import datetime as dt
import statistics
from collections import Counter
from html import escape
from typing import Any, Iterable

import cv2
import numpy as np

from vidloom.pipelines.report import plots
from vidloom.pipelines.report.data import ClipCard, ReportData, TierFunnel, source_name

THUMB_BOX = (176, 99)  # px, the largest a thumbnail is drawn; thumbnails are shrunk to fit
THUMB_QUALITY = 72
MAX_CLUSTERS_DRAWN = 60
MAX_INPUT_ROWS = 60

SECTIONS = [
    ("overview", "Overview"),
    ("inputs", "Inputs"),
    ("funnel", "Funnel"),
    ("signals", "Signals"),
    ("examples", "Kept and dropped"),
    ("dedup", "Near-duplicates"),
    ("clusters", "Clusters"),
    ("captions", "Captions"),
    ("camera-motion", "Camera motion"),
]

CSS = """
:root { --ink:#1f2933; --muted:#616e7c; --line:#e4e7eb; --bg:#f5f7fa; --card:#fff; --accent:#2f6fb0;
        --ok:#2e7d32; --warn:#b26a00; --bad:#c62828; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 -apple-system, "Segoe UI", "DejaVu Sans", Helvetica, Arial, sans-serif;
       color:var(--ink); background:var(--bg); }
header { background:#102a43; color:#fff; padding:22px 32px 14px; }
header h1 { margin:0 0 4px; font-size:22px; font-weight:600; }
header .meta { color:#bcccdc; font-size:12.5px; }
nav { margin-top:12px; display:flex; flex-wrap:wrap; gap:4px 14px; }
nav a { color:#d9e2ec; text-decoration:none; font-size:13px; }
nav a:hover { color:#fff; text-decoration:underline; }
main { max-width:1240px; margin:0 auto; padding:8px 28px 48px; }
section { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:18px 22px;
          margin:18px 0; }
h2 { font-size:17px; margin:0 0 10px; }
h3 { font-size:14px; margin:16px 0 8px; }
p.lead { margin:0 0 12px; color:var(--muted); }
.notice { background:#fffbea; border:1px solid #f0d98c; border-radius:6px; padding:10px 14px; color:#5c4813; }
.notice code { background:#fff3c4; }
.na { color:var(--muted); font-style:italic; }
code { font:12.5px/1.3 "DejaVu Sans Mono", Menlo, Consolas, monospace; background:#f0f4f8; padding:1px 4px;
       border-radius:3px; }
pre { background:#f0f4f8; padding:10px 12px; border-radius:6px; overflow:auto; font-size:12px; }
.cards { display:grid; grid-template-columns:repeat(auto-fill, minmax(170px, 1fr)); gap:10px; }
.stat { border:1px solid var(--line); border-radius:6px; padding:10px 12px; }
.stat .v { font-size:22px; font-weight:600; }
.stat .k { color:var(--muted); font-size:12px; }
table { border-collapse:collapse; width:100%; font-size:13px; }
.zero { color:#b0b8c1; } .unk { color:var(--muted); font-size:11.5px; }
th, td { text-align:left; padding:6px 8px; border-bottom:1px solid var(--line); vertical-align:top; }
th { background:#f8fafc; font-weight:600; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
.pill { display:inline-block; padding:1px 8px; border-radius:10px; font-size:12px; font-weight:600; }
.pill.ok { background:#e3f4e4; color:var(--ok); } .pill.too_short { background:#fff1db; color:var(--warn); }
.pill.error { background:#fde8e8; color:var(--bad); }
.chart svg { width:100%; height:auto; display:block; }
.grid2 { display:grid; grid-template-columns:repeat(auto-fill, minmax(520px, 1fr)); gap:16px; }
.sig { border:1px solid var(--line); border-radius:6px; padding:10px 12px; }
.sig h3 { margin:0 0 2px; }
.sig .sub { color:var(--muted); font-size:12px; margin-bottom:6px; }
.group { margin:14px 0 18px; }
.group h3 .count { color:var(--muted); font-weight:400; }
.group.kept h3 { color:var(--ok); } .group.dropped h3 { color:var(--bad); }
.thumbs { display:flex; flex-wrap:wrap; gap:10px; }
figure.clip { margin:0; width:176px; font-size:11.5px; line-height:1.35; }
figure.clip .img { width:176px; height:99px; background:#102a43; border-radius:4px; display:flex;
                   align-items:center; justify-content:center; overflow:hidden; color:#9fb3c8; }
figure.clip img { display:block; max-width:176px; max-height:99px; }
figure.clip figcaption { margin-top:4px; word-break:break-word; }
figure.clip .id { font-family:"DejaVu Sans Mono", Menlo, Consolas, monospace; font-size:11px; }
figure.clip .src { color:var(--muted); }
figure.clip .note { color:var(--bad); }
.group.kept figure.clip .note { color:var(--ok); }
.dedup { display:flex; gap:14px; align-items:flex-start; padding:10px 0; border-bottom:1px solid var(--line); }
.dedup .arrow { align-self:center; color:var(--muted); font-size:20px; }
.dedup .kept .img { outline:3px solid var(--ok); }
.dedup figure.kept .note { color:var(--ok); }
td.cap { max-width:560px; }
td.cap div { margin-bottom:3px; }
td.cap b { color:var(--muted); font-weight:600; }
footer { text-align:center; color:var(--muted); font-size:12px; padding:10px; }
"""


def thumb_data_uri(jpeg: bytes | None) -> tuple[str, int, int] | None:
    """A JPEG shrunk to fit `THUMB_BOX`, as a data URI with its size; None if unreadable."""
    if not jpeg:
        return None
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        return None
    h, w = img.shape[:2]
    scale = min(THUMB_BOX[0] / w, THUMB_BOX[1] / h, 1.0)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if scale < 1.0:
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, THUMB_QUALITY])
    if not ok:
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode(), size[0], size[1]


class _Page:
    def __init__(self) -> None:
        self._thumbs: dict[str, tuple[str, int, int] | None] = {}

    def thumb(self, card: ClipCard) -> str:
        if card.clip_id not in self._thumbs:
            self._thumbs[card.clip_id] = thumb_data_uri(card.jpeg)
        t = self._thumbs[card.clip_id]
        if t is None:
            return '<div class="img">no thumbnail</div>'
        uri, w, h = t
        return f'<div class="img"><img src="{uri}" width="{w}" height="{h}" alt="clip {escape(card.clip_id)}"></div>'

    def figure(self, card: ClipCard, extra_class: str = "") -> str:
        note = f'<div class="note">{escape(card.note)}</div>' if card.note else ""
        return (f'<figure class="clip {extra_class}">{self.thumb(card)}<figcaption>'
                f'<div class="id">{escape(card.clip_id)}</div><div class="src">{escape(card.source_name)}</div>'
                f'<div>{escape(card.frames)}</div>{note}</figcaption></figure>')


def _table(headers: list[str], rows: Iterable[list[str]], numeric: set[int] = frozenset(),
           classes: dict[int, str] | None = None) -> str:
    """A table of HTML cells; `numeric` columns are right-aligned, `classes` styles others."""
    cls = {**(classes or {}), **{i: "num" for i in numeric}}

    def attr(i: int) -> str:
        return f' class="{cls[i]}"' if i in cls else ""

    head = "".join(f"<th{attr(i)}>{escape(h)}</th>" for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(f"<td{attr(i)}>{c}</td>" for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _section(key: str, title: str, body: str, lead: str = "") -> str:
    lead_html = f'<p class="lead">{lead}</p>' if lead else ""
    return f'<section id="{key}"><h2>{escape(title)}</h2>{lead_html}{body}</section>'


def _not_computed(what: str) -> str:
    return f'<p class="na">Not computed: {what}</p>'


def _num(v: Any, digits: int = 1) -> str:
    return "–" if v is None else f"{v:,.{digits}f}" if isinstance(v, float) else f"{v:,}"


def _overview(d: ReportData) -> str:
    vstatus = Counter(v["status"] for v in d.videos)
    seconds = sum(float(v.get("duration_s") or 0.0) for v in d.videos if v["status"] == "ok")
    stats = [
        (f"{len(d.videos):,}", "inputs"),
        (f"{vstatus.get('ok', 0):,}", "videos decoded"),
        (f"{vstatus.get('error', 0) + vstatus.get('too_short', 0):,}", "inputs rejected"),
        (f"{seconds / 60:,.1f} min", "video decoded"),
        (f"{d.clip_status.get('ok', 0):,}", "clips (status ok)"),
        (f"{d.clip_status.get('too_short', 0) + d.clip_status.get('error', 0):,}", "clips too short or failed"),
    ]
    for tier in [t for t in d.funnel or [] if t.kind == "video"][:6]:
        stats.append((f"{tier.kept:,}", f"clips in tier {tier.name}"))
    if d.summary and d.summary.get("wall_s") is not None:
        stats.append((f"{float(d.summary['wall_s']):,.0f} s", "last curation run (wall)"))
    cards = "".join(f'<div class="stat"><div class="v">{escape(v)}</div><div class="k">{escape(k)}</div></div>'
                    for v, k in stats)
    backends = [f"{k.removesuffix('_backend')}: {', '.join(v) if v else 'not computed'}" for k, v in d.backends.items()]
    extra = f'<p class="lead" style="margin-top:12px">Model backends — {escape("; ".join(backends))}</p>' if backends else ""
    return _section("overview", "Overview", f'<div class="cards">{cards}</div>{extra}')


def _inputs(d: ReportData) -> str:
    counts = Counter(v["status"] for v in d.videos)
    rows = [[f'<span class="pill {escape(s)}">{escape(s)}</span>', f"{counts.get(s, 0):,}",
             f"{sum(c for k, c in d.clip_status.items() if k == s):,}"]
            for s in ("ok", "too_short", "error")]
    body = "<h3>Status</h3>" + _table(["status", "inputs", "clips"], rows, {1, 2})
    bad = [v for v in d.videos if v["status"] != "ok"]
    if len(bad) > MAX_INPUT_ROWS:
        # Many failures: group them by reason (with the input's own path taken out).
        reasons = Counter((v["status"], (v.get("error") or "").replace(v["source"], "<input>")) for v in bad)
        body += "<h3>Why inputs were rejected</h3>" + _table(
            ["status", "reason", "inputs"],
            ([f'<span class="pill {escape(s)}">{escape(s)}</span>', escape(r or "(no reason recorded)"), f"{n:,}"]
             for (s, r), n in reasons.most_common(30)), {2})
    if bad:
        shown = bad[:MAX_INPUT_ROWS]
        more = f" (first {len(shown)} of {len(bad):,})" if len(bad) > len(shown) else ""
        body += f"<h3>Rejected inputs{more}</h3>" + _table(
            ["input", "status", "reason"],
            ([f'<span title="{escape(v["source"])}">{escape(source_name(v["source"]))}</span>',
              f'<span class="pill {escape(v["status"])}">{escape(v["status"])}</span>', escape(v.get("error") or "")]
             for v in shown))
    if d.clip_errors:
        body += "<h3>Clips a stage failed on</h3>" + _table(
            ["error", "clips"], ([escape(e), f"{n:,}"] for e, n in d.clip_errors.most_common(20)), {1})
    ok_videos = [v for v in d.videos if v["status"] == "ok"]
    if ok_videos:
        shown = ok_videos[:MAX_INPUT_ROWS]
        more = f" (first {len(shown)} of {len(ok_videos):,})" if len(ok_videos) > len(shown) else ""
        body += f"<details><summary>Decoded inputs{more}</summary>" + _table(
            ["input", "duration (s)", "fps", "size", "codec", "shots", "clips"],
            ([f'<span title="{escape(v["source"])}">{escape(source_name(v["source"]))}</span>',
              _num(v.get("duration_s"), 2), _num(v.get("fps"), 2), f'{v.get("width")}×{v.get("height")}',
              escape(v.get("codec") or ""), str(len(v.get("scene_cuts") or []) + 1), _num(v.get("num_clips"))]
             for v in shown), {1, 2, 5, 6}) + "</details>"
    return _section("inputs", "Inputs", body, "Every input video and what became of it (status ok / error / too_short).")


def _export_notice() -> str:
    return ('<div class="notice">No tiers yet: <code>tiers/funnel.json</code> is missing. Run '
            '<code>vidloom export DIR</code> to filter the clips into tiers; this section then shows how many '
            'clips each filter removed at each tier.</div>')


def _funnel_matrix(funnel: list[TierFunnel]) -> str:
    """Filters (rows, in evaluation order) by tiers (columns): clips removed, and in grey the
    clips that passed only because the signal was not measured."""
    filters: list[str] = []
    for tier in funnel:
        for name, _ in tier.removed:
            if name not in filters:
                filters.append(name)
    rows = [["candidates"] + [f"{t.candidates:,}" for t in funnel]]
    for name in filters:
        cells = []
        for t in funnel:
            removed = dict(t.removed)
            if name not in removed:
                cells.append('<span class="na">n/a</span>')
                continue
            n, unknown = removed[name], t.unknown.get(name, 0)
            cell = f"−{n:,}" if n else '<span class="zero">0</span>'
            if unknown:
                cell += f' <span class="unk" title="passed unmeasured">({unknown:,} unmeasured)</span>'
            cells.append(cell)
        rows.append([escape(name)] + cells)
    rows.append(["<b>kept</b>"] + [f"<b>{t.kept:,}</b>" for t in funnel])
    headers = ["filter"] + [f"{t.name} ({t.kind})" for t in funnel]
    return _table(headers, rows, set(range(1, len(funnel) + 1)))


def _threshold_matrix(funnel: list[TierFunnel]) -> str:
    """Settings (rows) by tiers (columns); nested settings dotted, off (null) ones as '–'."""
    def flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
        return out

    per_tier = [flat(t.thresholds) for t in funnel]
    keys: list[str] = []
    for f in per_tier:
        keys += [k for k in f if k not in keys]
    rows = [[escape(k)] + [escape(_setting(f[k])) if k in f else '<span class="na">n/a</span>' for f in per_tier]
            for k in keys]
    return _table(["setting"] + [t.name for t in funnel], rows, set(range(1, len(funnel) + 1)))


def _setting(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _funnel(d: ReportData) -> str:
    if not d.funnel:
        return _section("funnel", "Funnel", _export_notice())
    body = f'<div class="chart">{plots.funnel_chart(d.funnel)}</div>'
    body += "<h3>Clips removed by each filter</h3>" + _funnel_matrix(d.funnel)
    body += "<h3>Thresholds</h3>" + _threshold_matrix(d.funnel)
    for tier in d.funnel:
        consistent = tier.remaining()[-1] if tier.removed else tier.candidates
        if consistent != tier.kept:
            body += (f'<p class="notice">{escape(tier.name)}: funnel.json is inconsistent: candidates minus '
                     f'removed = {consistent:,}, but kept = {tier.kept:,}.</p>')
        if tier.errors:
            body += (f'<p class="lead">{escape(tier.name)}: {len(tier.errors):,} files not written — ' + escape("; ".join(
                f"{k}: {v}" for k, v in list(tier.errors.items())[:10])) + "</p>")
    if d.tiers_yaml:
        body += f"<details><summary>tiers/tiers.yaml</summary><pre>{escape(d.tiers_yaml)}</pre></details>"
    lead = ("As in Figure 4 of the HunyuanVideo report: bars in a tier's colour are the clips left after each "
            "filter, grey the clips that filter removed (filters that removed nothing are left off the chart). "
            "<i>Unmeasured</i>: clips that passed a threshold only because their signal is null (its stage has "
            "not run).")
    return _section("funnel", "Funnel", body, lead)


def _signals(d: ReportData) -> str:
    tier_index = {t.name: i for i, t in enumerate(d.funnel or [])}
    cards = []
    for s in d.signals:
        if not s.values:
            chart = _not_computed(f"<code>{escape(s.column)}</code> is null for every clip.")
            sub = escape(s.unit)
        else:
            chart = f'<div class="chart">{plots.histogram(s, tier_index)}</div>'
            med = statistics.median(s.values)
            sub = (f"{escape(s.unit)} · {len(s.values):,} clips · median {med:.3g} · "
                   f"range {min(s.values):.3g} – {max(s.values):.3g}")
            if s.backends:
                sub += f" · backend {escape(', '.join(s.backends))}"
            if not s.thresholds and d.funnel:
                sub += " · no tier thresholds on this signal"
        cards.append(f'<div class="sig"><h3>{escape(s.title)} <code>{escape(s.column)}</code></h3>'
                     f'<div class="sub">{sub}</div>{chart}</div>')
    lead = "Distribution of each signal over clips with status ok."
    lead += (" Dashed lines: the tier thresholds (≥ keeps clips at or above, ≤ at or below)." if d.funnel else
             " Tier thresholds appear here after <code>vidloom export</code>.")
    return _section("signals", "Signals", f'<div class="grid2">{"".join(cards)}</div>', lead)


def _examples(d: ReportData, page: _Page) -> str:
    body = "" if d.funnel else _export_notice()
    for g in d.examples:
        thumbs = "".join(page.figure(c) for c in g.cards)
        shown = f", {len(g.cards)} shown" if len(g.cards) < g.count else ""
        body += (f'<div class="group {g.kind}"><h3>{escape(g.title)} <span class="count">({g.count:,} clips'
                 f'{shown})</span></h3><div class="thumbs">{thumbs}</div></div>')
    if not d.examples:
        body += _not_computed("no clips to show.")
    lead = ("A few clips per outcome, from as many sources as possible: the clip id, its source, frame range, "
            "and the signal that dropped it.")
    return _section("examples", "Kept and dropped clips", body, lead)


def _dedup(d: ReportData, page: _Page) -> str:
    if d.dedup_total is None:
        return _section("dedup", "Near-duplicates", _not_computed(
            "<code>dup_of</code> is null for every clip (the dedup step has not run, or found no duplicates)."))
    groups, dups = d.dedup_total
    body = ""
    for g in d.dedup_groups:
        more = (f'<div class="na" style="align-self:center">+{g.total_duplicates - len(g.duplicates)} more</div>'
                if g.total_duplicates > len(g.duplicates) else "")
        body += (f'<div class="dedup">{page.figure(g.kept, "kept")}<div class="arrow">⟵</div>'
                 + "".join(page.figure(c) for c in g.duplicates) + more + "</div>")
    shown = f"; the {len(d.dedup_groups)} largest shown" if len(d.dedup_groups) < groups else ""
    lead = (f"{groups:,} kept clips have near-duplicates ({dups:,} duplicate clips dropped){shown}. "
            "The kept clip (green frame) is on the left, its duplicates on the right.")
    return _section("dedup", "Near-duplicates", body, lead)


def _clusters(d: ReportData) -> str:
    if not d.cluster_sizes:
        return _section("clusters", "Clusters", _not_computed("<code>cluster_id</code> is null for every clip."))
    sizes = d.cluster_sizes
    drawn = sizes[:MAX_CLUSTERS_DRAWN]
    chart = plots.bar_chart([str(k) for k, _ in drawn], [n for _, n in drawn], "clips",
                            "Cluster sizes", horizontal=False,
                            category="cluster id")
    counts = [n for _, n in sizes]
    more = f" The {len(drawn)} largest are drawn." if len(drawn) < len(sizes) else ""
    lead = (f"{len(sizes):,} clusters over {sum(counts):,} clips; largest {counts[0]:,}, median "
            f"{statistics.median(counts):g}, smallest {counts[-1]:,} clips.{more} Clusters ordered by size.")
    return _section("clusters", "Clusters", f'<div class="chart">{chart}</div>', lead)


def _captions(d: ReportData, page: _Page) -> str:
    if not d.captions:
        return _section("captions", "Captions", _not_computed("<code>caption</code> is null for every clip."))
    rows = []
    for card, body, backend in d.captions:
        if isinstance(body, dict):
            text = "".join(f"<div><b>{escape(k.replace('_', ' '))}:</b> {escape(v)}</div>" for k, v in body.items() if v)
        else:
            text = f"<div><b>raw (not JSON):</b> {escape(body)}</div>"
        rows.append([page.figure(card), text, escape(backend)])
    table = _table(["clip", "caption", "backend"], rows, classes={1: "cap"})
    lead = f"{d.captioned:,} of {d.num_ok_clips:,} ok clips captioned; {len(rows)} samples from different sources."
    return _section("captions", "Captions", table, lead)


def _camera_motion(d: ReportData) -> str:
    if not d.camera_motion:
        return _section("camera-motion", "Camera motion", _not_computed("no clip has a camera-motion label."))
    chart = plots.bar_chart([k for k, _, _ in d.camera_motion], [n for _, n, _ in d.camera_motion], "clips",
                            "Camera-motion label counts")
    table = _table(["label", "clips", "mean confidence"],
                   ([escape(k), f"{n:,}", f"{c:.2f}"] for k, n, c in d.camera_motion), {1, 2})
    body = f'<div class="grid2"><div class="chart">{chart}</div><div>{table}</div></div>'
    return _section("camera-motion", "Camera motion", body, "Labels of the clips with status ok.")


def render_html(d: ReportData, generated: dt.datetime | None = None) -> str:
    """The whole report page for `d`."""
    generated = generated or dt.datetime.now(dt.timezone.utc)
    page = _Page()
    nav = "".join(f'<a href="#{k}">{escape(t)}</a>' for k, t in SECTIONS)
    parts = [_overview(d), _inputs(d), _funnel(d), _signals(d), _examples(d, page), _dedup(d, page),
             _clusters(d), _captions(d, page), _camera_motion(d)]
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>vidloom curation report — {escape(d.out_dir.name)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>Curation report</h1><div class=\"meta\">{escape(str(d.out_dir))} · generated "
        f"{generated.strftime('%Y-%m-%d %H:%M UTC')}</div><nav>{nav}</nav></header>"
        f"<main>{''.join(parts)}</main><footer>vidloom · self-contained page: no external resources, no scripts"
        "</footer></body></html>\n"
    )
