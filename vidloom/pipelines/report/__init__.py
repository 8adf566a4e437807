"""The curation report: one self-contained HTML page about a curated folder.

    from vidloom.pipelines.report import build_report
    path = build_report("DIR")            # writes DIR/report/index.html
"""

from __future__ import annotations

from vidloom.pipelines.report.build import build_report
from vidloom.pipelines.report.data import ReportData, load_report_data
from vidloom.pipelines.report.render import render_html

__all__ = ["ReportData", "build_report", "load_report_data", "render_html"]
