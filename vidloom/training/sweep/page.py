"""The sweep's page, ``OUT/index.html``: the curation report's look (its CSS, table and section
helpers, its matplotlib style), with the plots as embedded PNGs. One self-contained file:
no scripts, nothing loaded from outside it."""

from __future__ import annotations

import base64
import datetime as dt
import io
import math
from html import escape
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from vidloom.pipelines.report import plots
from vidloom.pipelines.report.render import CSS, _section, _table

SECTIONS = [("overview", "Overview"), ("curves", "Loss curves"), ("isoflop", "IsoFLOP slices"),
            ("laws", "Scaling laws"), ("trials", "Trials"), ("reading", "How to read this page")]
EXTRA_CSS = ".chart img { max-width:100%; height:auto; display:block; }"


def _png(fig: Figure, label: str) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", pad_inches=0.08)
    data = base64.b64encode(buf.getvalue()).decode()
    return f'<div class="chart"><img src="data:image/png;base64,{data}" alt="{escape(label)}"></div>'


def _colours(n: int) -> list:
    cmap = matplotlib.colormaps["viridis"]
    return [cmap(0.1 + 0.75 * i / max(1, n - 1)) for i in range(n)]


def _axes(fig: Figure, *where):
    ax = fig.add_subplot(*where)
    ax.grid(True, which="major", color=plots.GRID, linewidth=0.8)
    ax.set_axisbelow(True)
    return ax


@plots._styled
def curves_chart(fit: dict[str, Any]) -> str:
    """Loss against consumed compute, one colour per size, the envelope in black."""
    fig = Figure(figsize=(8.2, 4.4), dpi=96)
    ax = _axes(fig)
    widths = sorted({t["width"] for t in fit["trials"]})
    colour = dict(zip(widths, _colours(len(widths))))
    for t in fit["trials"]:
        ax.plot(t["flops"], t["loss"], "-", color=colour[t["width"]], linewidth=1.3, alpha=0.9)
        ax.plot(t["flops"][-1], t["loss"][-1], "o", color=colour[t["width"]], markersize=4)
    for w in widths:
        params = next(t["params"] for t in fit["trials"] if t["width"] == w)
        ax.plot([], [], "-", color=colour[w], label=f"width {w} ({params / 1e6:.3g}M params)")
    env = fit["loss_envelope"]["points"]
    ax.plot([e["flops"] for e in env], [e["loss"] for e in env], "--", color=plots.INK, linewidth=1.6,
            label="envelope L(C)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training compute C (FLOPs)")
    ax.set_ylabel("validation loss")
    ax.legend(loc="upper right")
    return _png(fig, "validation loss against training compute, one curve per model size, with the envelope")


@plots._styled
def isoflop_chart(fit: dict[str, Any]) -> str:
    """Final loss against model size on each budget, the fitted parabola and its minimum."""
    fig = Figure(figsize=(8.2, 4.2), dpi=96)
    ax = _axes(fig)
    optima = fit["optima"]
    budgets = sorted({t["budget"] for t in fit["trials"]})
    colour = dict(zip(budgets, _colours(len(budgets))))
    for b in budgets:
        ts = sorted((t for t in fit["trials"] if t["budget"] == b), key=lambda t: t["params"])
        ax.plot([t["params"] for t in ts], [t["loss"][-1] for t in ts], "o", color=colour[b], label=f"C = {b:.2g}")
    for o, b in zip(optima, budgets):
        if not o["parabola"]:
            continue
        ts = [t["params"] for t in fit["trials"] if t["budget"] == b]
        x = np.linspace(math.log(min(ts + [o["params"]])), math.log(max(ts + [o["params"]])), 80)
        ax.plot(np.exp(x), np.polyval(o["coefficients"], x), "-", color=colour[b], linewidth=1.1)
        ax.plot(o["params"], o["loss"], "*", color=colour[b], markersize=13, markeredgecolor=plots.INK,
                markeredgewidth=0.6)
    ax.set_xscale("log")
    ax.set_xlabel("parameters N")
    ax.set_ylabel("final validation loss")
    ax.legend(loc="upper right", title="budget (FLOPs)")
    return _png(fig, "isoFLOP slices: final loss against model size per budget, parabola fits and their minima")


@plots._styled
def laws_chart(fit: dict[str, Any]) -> str:
    """N_opt(C) and D_opt(C): the slices' optima, the fitted power laws and bootstrap bands."""
    fig = Figure(figsize=(10.5, 4.0), dpi=96)
    optima = fit["optima"]
    c = np.array([o["budget"] for o in optima])
    grid = np.geomspace(c.min() / 2, c.max() * 2, 60)
    draws = np.asarray(fit["bootstrap"]["draws"], float)
    tail = (1 - fit["bootstrap"]["confidence"]) / 2 * 100
    for k, (key, what, label) in enumerate((("n_opt", "params", "N_opt (parameters)"),
                                           ("d_opt", "tokens", "D_opt (tokens)"))):
        ax = _axes(fig, 1, 2, k + 1)
        law = fit[key]
        curves = draws[:, 2 * k, None] * grid[None, :] ** draws[:, 2 * k + 1, None]
        ax.fill_between(grid, np.percentile(curves, tail, axis=0), np.percentile(curves, 100 - tail, axis=0),
                        color=plots.ACCENT, alpha=0.15, linewidth=0, label=f"{fit['bootstrap']['confidence']:.0%} bootstrap")
        ax.plot(grid, law["a"] * grid ** law["b"], "-", color=plots.ACCENT, linewidth=1.6,
                label=f"{law['a']:.3g}·C^{law['b']:.3f}")
        ax.plot(c, [o[what] for o in optima], "o", color=plots.INK, markersize=5, label="isoFLOP optima")
        env = fit["loss_envelope"]["points"]
        if k == 0:
            ax.plot([e["flops"] for e in env], [e["params"] for e in env], ".", color=plots.MUTED, markersize=4,
                    label="size on the envelope")
        ax.set_xscale("log")
        ax.set_yscale("log")
        # The band can run off to extremes where few sizes were tried: keep the axes on the data.
        seen = [o[what] for o in optima] + list(law["a"] * grid ** law["b"])
        ax.set_ylim(min(seen) / 10, max(seen) * 10)
        ax.set_xlabel("training compute C (FLOPs)")
        ax.set_ylabel(label)
        ax.legend(loc="upper left")
    return _png(fig, "compute-optimal parameters and tokens against compute with the fitted power laws")


def _interval(law: dict[str, Any]) -> str:
    lo, hi = law["b_interval"]
    return f"{law['b']:.3f} [{lo:.3f}, {hi:.3f}]"


def _overview(fit: dict[str, Any]) -> str:
    trials, sweep = fit["trials"], fit["sweep"]
    params = [t["params"] for t in trials]
    stats = [
        (f"{len(trials)}", f"trials ({len({t['width'] for t in trials})} sizes × {len({t['budget'] for t in trials})} budgets)"),
        (f"{min(params) / 1e6:.3g}–{max(params) / 1e6:.3g}M", "parameters"),
        (f"{min(t['budget'] for t in trials):.2g}–{max(t['budget'] for t in trials):.2g}", "budgets (FLOPs)"),
        (_interval(fit["n_opt"]), "b1: N_opt ∝ C^b1"),
        (_interval(fit["d_opt"]), "b2: D_opt ∝ C^b2"),
        (f"{fit['loss_envelope']['b']:.3f}", "envelope: L ∝ C^b"),
    ]
    cards = "".join(f'<div class="stat"><div class="v">{escape(v)}</div><div class="k">{escape(k)}</div></div>'
                    for v, k in stats)
    setup = (f"<p>Training config <code>{escape(sweep['train'])}</code>, stage <code>{escape(sweep['stage'])}</code>; "
             f"family widths {sweep['family']['widths']}, head dim {sweep['family']['head_dim']}, "
             f"{sweep['family']['width_per_block']:g} channels per block; "
             f"{fit['bootstrap']['resamples']} bootstrap resamples.</p>")
    note = f'<p class="notice">{escape(fit["note"])}</p>' if fit.get("note") else ""
    return _section("overview", "Overview", f'<div class="cards">{cards}</div>{setup}{note}')


def _trials(fit: dict[str, Any]) -> str:
    optima = _table(["budget C", "N_opt", "D_opt", "loss at the optimum", "sizes", "note"],
                    [[f"{o['budget']:.3g}", f"{o['params']:.3g}", f"{o['tokens']:.3g}", f"{o['loss']:.4f}",
                      str(o["sizes"]), "" if o["parabola"] and o["inside"] else
                      ("not convex: best trial" if not o["parabola"] else "at the edge of the sizes tried")
                      + ("" if o.get("fitted", True) else "; left out of the fit")]
                     for o in fit["optima"]], numeric={0, 1, 2, 3, 4})
    rows = [[escape(t["name"]), str(t["width"]), f"{t['params']:,.0f}", f"{t['budget']:.3g}", f"{t['flops'][-1]:.3g}",
             f"{t['tokens'][-1]:,.0f}", f"{t['flops'][-1] / (6 * t['params'] * t['tokens'][-1]):.2f}",
             f"{t['loss'][-1]:.4f}"] for t in fit["trials"]]
    table = _table(["trial", "width", "params N", "budget", "FLOPs spent", "tokens D", "C / 6ND", "final loss"],
                   rows, numeric={1, 2, 3, 4, 5, 6, 7})
    return _section("trials", "Trials", f"<h3>Per-budget optima</h3>{optima}<h3>Every trial</h3>{table}",
                    "C / 6ND above 1 is the attention and text-token work that 6·N·D leaves out.")


READING = """
<p><b>Loss curves.</b> Each line is one trial: a model size trained to one budget, its validation loss
(held-out samples, fixed noise levels and noise, the same for every size) reported as compute is spent.
The dashed line is the envelope: the lowest loss any size reached at each compute. Where a small
model's curve leaves the envelope, a bigger model has become the better use of more compute.</p>
<p><b>IsoFLOP slices.</b> All trials of one budget spent the same compute. Their final losses against
log N form a valley; the parabola's minimum (star) is the compute-optimal size for that budget, and the
tokens that size sees at that budget are D_opt.</p>
<p><b>Scaling laws.</b> The optima against compute, with N_opt = a1·C^b1 and D_opt = a2·C^b2 fitted in
log-log space; the band is the spread of the same fit over bootstrap resamples of the trials.
b1 + b2 ≈ 1 because C ∝ N·D. Read the recommended size and tokens for a budget with
<code>vidloom sweep recommend --fit fit.json --budget FLOPS</code>; budgets far beyond the swept ones
are extrapolations, so widen the sweep before trusting them.</p>
"""


def render_page(fit: dict[str, Any], generated: dt.datetime | None = None) -> str:
    generated = generated or dt.datetime.now(dt.timezone.utc)
    nav = "".join(f'<a href="#{k}">{escape(t)}</a>' for k, t in SECTIONS)
    parts = [
        _overview(fit),
        _section("curves", "Loss curves", curves_chart(fit), "Validation loss against training compute, "
                 "coloured by model size; the dashed line is the envelope L(C)."),
        _section("isoflop", "IsoFLOP slices", isoflop_chart(fit), "Final loss against model size at each "
                 "budget; stars mark the fitted loss-optimal size."),
        _section("laws", "Scaling laws", laws_chart(fit), "Compute-optimal parameters and tokens against "
                 "compute, with the fitted power laws and their bootstrap band."),
        _trials(fit),
        _section("reading", "How to read this page", READING),
    ]
    name = fit["sweep"]["name"]
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>vidloom scaling sweep — {escape(name)}</title><style>{CSS}{EXTRA_CSS}</style></head><body>"
        f"<header><h1>Scaling-law sweep: {escape(name)}</h1><div class=\"meta\">generated "
        f"{generated.strftime('%Y-%m-%d %H:%M UTC')}</div><nav>{nav}</nav></header>"
        f"<main>{''.join(parts)}</main><footer>vidloom · self-contained page: no external resources, no scripts"
        "</footer></body></html>\n"
    )


def write_page(fit: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.write_text(render_page(fit))
    return path
