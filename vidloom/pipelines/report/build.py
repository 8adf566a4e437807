"""Gather a curated folder's data, render the page and write it atomically."""

from __future__ import annotations

from pathlib import Path

from vidloom.pipelines.report.data import load_report_data
from vidloom.pipelines.report.render import render_html
from vidloom.platform.storage import atomic_write_bytes


def build_report(out_dir: str | Path, dest: str | Path | None = None, *, examples_per_group: int = 6,
                 caption_samples: int = 10) -> Path:
    """Write the report of curated folder `out_dir` to `dest` (default
    ``out_dir/report/index.html``) and return its path."""
    out_dir = Path(out_dir)
    dest = Path(dest) if dest is not None else out_dir / "report" / "index.html"
    data = load_report_data(out_dir, examples_per_group=examples_per_group, caption_samples=caption_samples)
    dest.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(dest, render_html(data).encode("utf-8"))
    return dest
