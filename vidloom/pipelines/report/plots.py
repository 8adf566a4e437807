"""The report's charts: matplotlib figures written as inline SVG.

Figures are built with `matplotlib.figure.Figure` (no pyplot, so no GUI backend and no global
state) and saved as SVG with text kept as text. The SVG is cleaned for inlining in HTML:
no XML prolog, no metadata, no namespace URLs, and ids made unique per chart so that several
charts on one page never share a clip path.
"""

from __future__ import annotations

import functools
import io
import itertools
import math
import re
from typing import Callable, Sequence

import matplotlib
import matplotlib.patches
from matplotlib.figure import Figure

from vidloom.pipelines.report.data import SignalData, TierFunnel

# Colours of the page (kept in step with the CSS in render.py).
INK = "#1f2933"
MUTED = "#7b8794"
GRID = "#e4e7eb"
REMOVED = "#c5cbd3"
ACCENT = "#2f6fb0"
# One colour per tier, from the lowest tier up (as the paper colours its stages).
TIER_COLOURS = ["#3b82c4", "#2aa198", "#8e6bbf", "#d9822b", "#c2445a", "#5b8c3a", "#b8860b", "#4a5a8a"]

_RC = {
    "svg.fonttype": "none",  # text stays text: smaller, sharp, searchable
    "svg.hashsalt": "vidloom",  # stable ids, so the same data gives the same page
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Helvetica", "Arial"],
    "font.size": 9,
    "axes.edgecolor": MUTED,
    "axes.labelcolor": INK,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "xtick.color": INK,
    "ytick.color": INK,
    "legend.frameon": False,
    "legend.fontsize": 8,
}
_counter = itertools.count()


def tier_colour(index: int) -> str:
    return TIER_COLOURS[index % len(TIER_COLOURS)]


def _styled(fn: Callable[..., str]) -> Callable[..., str]:
    """Run a chart function with the report's style (axes read rcParams when created)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs) -> str:
        with matplotlib.rc_context(_RC):
            return fn(*args, **kwargs)

    return wrapper


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), dpi=96)


def to_inline_svg(fig: Figure, label: str) -> str:
    """`fig` as an ``<svg>`` element ready to paste into HTML5, with an accessible label."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", pad_inches=0.05, metadata={"Date": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)
    # HTML5 parses inline SVG without namespace declarations; dropping them keeps the page free
    # of any URL.
    text = re.sub(r'\s+xmlns(?::\w+)?="[^"]*"', "", text)
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    prefix = f"c{next(_counter)}-"
    ids = set(re.findall(r'\bid="([^"]+)"', text))
    for old in sorted(ids, key=len, reverse=True):
        text = text.replace(f'id="{old}"', f'id="{prefix}{old}"')
        text = text.replace(f'"#{old}"', f'"#{prefix}{old}"').replace(f"url(#{old})", f"url(#{prefix}{old})")
    safe = label.replace('"', "'").replace("<", "").replace(">", "")
    # Scale down to fit the page, never up past the drawn size (fonts would balloon).
    size = re.search(r'<svg[^>]*\bwidth="([\d.]+)pt"', text)
    style = f' style="max-width:{float(size.group(1)) * 4 / 3:.0f}px"' if size else ""
    return text.replace("<svg", f'<svg role="img" aria-label="{safe}"{style}', 1)


def _style_axes(ax) -> None:
    ax.grid(axis="y", color=GRID, linewidth=0.8)
    ax.set_axisbelow(True)


@_styled
def funnel_chart(funnel: Sequence[TierFunnel]) -> str:
    """Figure-4-style funnel: for each tier, the candidates, then one bar per filter that
    removed clips, with the clips still left (tier colour) under those it removed (grey)."""
    bars: list[tuple[float, int, int, str, str]] = []  # x, left, removed, label, colour
    groups: list[tuple[float, float, str, str]] = []
    x = 0.0
    for t_index, tier in enumerate(funnel):
        colour = tier_colour(t_index)
        start = x
        bars.append((x, tier.candidates, 0, "candidates", colour))
        x += 1
        for (name, removed), left in zip(tier.removed, tier.remaining()):
            if removed:  # filters that removed nothing stay in the table, not on the chart
                bars.append((x, left, removed, name, colour))
                x += 1
        groups.append((start, x - 1, tier.name, colour))
        x += 0.8  # gap between tiers
    width = min(16.0, max(6.0, 0.42 * len(bars) + 1.5))
    fig = _figure(width, 3.9)
    ax = fig.add_subplot()
    _style_axes(ax)
    top = max([left + removed for _, left, removed, _, _ in bars] + [1])
    for xi, left, removed, _, colour in bars:
        ax.bar(xi, left, width=0.78, color=colour, edgecolor="white", linewidth=0.5)
        if removed:
            ax.bar(xi, removed, bottom=left, width=0.78, color=REMOVED, edgecolor="white", linewidth=0.5)
            ax.text(xi, left + removed + top * 0.01, f"−{removed}", ha="center", va="bottom", fontsize=7, color=MUTED)
        elif left:
            ax.text(xi, left + top * 0.01, f"{left}", ha="center", va="bottom", fontsize=7, color=INK)
    for (start, end, name, colour), tier in zip(groups, funnel):
        ax.annotate(f"{name}\n{tier.kept} kept", xy=((start + end) / 2, top * 1.13), ha="center", va="bottom",
                    fontsize=8.5, fontweight="bold", color=colour, annotation_clip=False, linespacing=1.1)
        ax.plot([start - 0.35, end + 0.35], [top * 1.11] * 2, color=colour, linewidth=2, clip_on=False)
    ax.set_xticks([b[0] for b in bars])
    ax.set_xticklabels([b[3] for b in bars], rotation=40, ha="right", fontsize=8)
    ax.set_xlim(-0.6, x - 0.2)
    ax.set_ylim(0, top * 1.1)
    ax.set_ylabel("clips")
    handles = [matplotlib.patches.Patch(color=REMOVED, label="removed by the filter")]
    handles += [matplotlib.patches.Patch(color=tier_colour(i), label=f"left in {t.name}") for i, t in enumerate(funnel)]
    ax.legend(handles=handles, loc="upper right", bbox_to_anchor=(1.0, -0.32), ncol=min(len(handles), 6))
    return to_inline_svg(fig, "Funnel: clips kept and removed by each filter at each tier")


def _bins(values: Sequence[float], log: bool) -> list[float]:
    lo, hi = min(values), max(values)
    n = 36
    if hi <= lo:
        return [lo - 0.5, hi + 0.5]
    if log:
        a, b = math.log10(lo), math.log10(hi)
        return [10 ** (a + (b - a) * i / n) for i in range(n + 1)]
    return [lo + (hi - lo) * i / n for i in range(n + 1)]


def _set_range(ax, values: Sequence[float], lines: Sequence[float], log: bool) -> tuple[float, float]:
    """The data's range, widened to show threshold lines that lie near it; a line far away
    (e.g. a motion cap 5x above every clip) would squash the histogram, so it is left off
    the axis and only named in the legend."""
    lo, hi = min(values), max(values)
    if log:
        lo, hi = math.log10(lo), math.log10(hi)
        lines = [math.log10(v) for v in lines if v > 0]
    span = max(hi - lo, 1e-12)
    near = [v for v in lines if lo - 0.5 * span <= v <= hi + 0.5 * span]
    lo, hi = min([lo, *near]), max([hi, *near])
    pad = (hi - lo) * 0.04 or 0.5
    lo, hi = lo - pad, hi + pad
    limits = (10 ** lo, 10 ** hi) if log else (lo, hi)
    ax.set_xlim(*limits)
    return limits


@_styled
def histogram(signal: SignalData, tier_index: dict[str, int]) -> str:
    """Histogram of one signal over ok clips, with every tier's thresholds as vertical lines."""
    values = signal.values
    positive = [v for v in values if v > 0]
    # Sharpness spans decades (blur → ~0, detailed frames → thousands): a log axis shows both.
    log = len(positive) == len(values) and len(values) > 1 and max(values) / max(min(values), 1e-12) > 100
    fig = _figure(5.6, 2.7)
    ax = fig.add_subplot()
    _style_axes(ax)
    ax.hist(values, bins=_bins(values, log), color=ACCENT, alpha=0.85, edgecolor="white", linewidth=0.4)
    if log:
        ax.set_xscale("log")
    # Tiers sharing a bound share one line: "540p, 720p ≥ 40".
    merged: dict[tuple[float, str], list[str]] = {}
    for tier, value, kind in signal.thresholds:
        if not (log and value <= 0):
            merged.setdefault((value, kind), []).append(tier)
    lo, hi = _set_range(ax, values, [v for v, _ in merged], log)
    for (value, kind), tiers in merged.items():
        colour = tier_colour(tier_index.get(tiers[0], 0))
        sign = "≥ " if kind == "min" else "≤ " if kind == "max" else "threshold "
        off = "" if lo <= value <= hi else (" (off scale →)" if value > hi else " (← off scale)")
        ax.axvline(value, color=colour, linestyle="--", linewidth=1.6, label=f"{', '.join(tiers)} {sign}{value:g}{off}")
    ax.figure.set_size_inches(5.6, 2.7 + 0.18 * ((len(merged) + 2) // 3))
    ax.set_xlabel(signal.unit)
    ax.set_ylabel("clips")
    if merged:
        ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.01), ncol=min(3, len(merged)), fontsize=8,
                  handlelength=1.8, borderaxespad=0.2, columnspacing=1.2)
    return to_inline_svg(fig, f"Histogram of {signal.title}")


@_styled
def bar_chart(labels: Sequence[str], counts: Sequence[int], xlabel: str, label: str, *,
              horizontal: bool = True, colour: str = ACCENT, category: str = "") -> str:
    """A plain bar chart with the count written at each bar."""
    n = len(labels)
    if horizontal:
        fig = _figure(6.4, max(1.4, 0.28 * n + 0.7))
        ax = fig.add_subplot()
        ax.grid(axis="x", color=GRID, linewidth=0.8)
        ax.set_axisbelow(True)
        y = list(range(n))[::-1]
        ax.barh(y, counts, color=colour, height=0.7)
        ax.set_yticks(y)
        ax.set_yticklabels(labels)
        for yi, c in zip(y, counts):
            ax.text(c, yi, f" {c}", va="center", fontsize=8, color=INK)
        ax.set_xlim(0, max(counts or [1]) * 1.12)
        ax.set_xlabel(xlabel)
    else:
        fig = _figure(min(14.0, max(5.0, 0.22 * n + 1.5)), 2.8)
        ax = fig.add_subplot()
        _style_axes(ax)
        x = list(range(n))
        ax.bar(x, counts, color=colour, width=0.8)
        ax.set_xticks(x)
        ax.set_xticklabels(labels, rotation=90 if n > 12 else 0, fontsize=7 if n > 12 else 8)
        ax.set_ylabel(xlabel)
        ax.set_xlabel(category)
        ax.set_xlim(-0.7, n - 0.3)
    return to_inline_svg(fig, label)
