"""Dashboards query only metrics vidloom exports (curation: vidloom/platform/metrics.py, which a
real curation run puts on Ray's metrics endpoint; training/serving: the contract in
cluster/monitoring/metrics_contract.yaml), and `vidloom status` counts a run's funnel."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import urllib.request
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from vidloom.platform import metrics

MONITORING = Path(__file__).resolve().parents[1] / "cluster" / "monitoring"
CURATION_NAMES = {metrics.STAGE_ROWS_IN, metrics.STAGE_ROWS_OUT, metrics.STAGE_ERRORS, metrics.STAGE_LATENCY,
                  metrics.VIDEO_SECONDS, metrics.CLIPS}
CONTRACT = yaml.safe_load((MONITORING / "metrics_contract.yaml").read_text())
PROMQL_WORDS = {"sum", "avg", "min", "max", "count", "rate", "irate", "increase", "histogram_quantile", "by",
                "without", "on", "ignoring", "and", "or", "unless", "bool", "offset", "topk", "bottomk"}
# Ray's Prometheus suffixes: counters _total, histograms _bucket/_sum/_count, gauges none.
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def _series_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (label matchers, ranges and grouping removed)."""
    expr = re.sub(r"\{[^}]*\}", " ", expr)
    expr = re.sub(r"\[[^\]]*\]", " ", expr)
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", " ", expr)
    tokens = re.findall(r"\b[A-Za-z_:][A-Za-z0-9_:]*\b(?!\s*\()", expr)
    return {t for t in tokens if t not in PROMQL_WORDS and not re.fullmatch(r"[0-9.e]+", t)}


def _dashboards() -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((MONITORING / "dashboards").glob("*.json"))}


def _exported(name: str, kind: str) -> set[str]:
    return {f"ray_{name}{s}" for s in SUFFIXES[kind]}


def _allowed(group: str) -> set[str]:
    if group == "curation":
        kinds = {n: "counter" for n in CURATION_NAMES} | {metrics.STAGE_LATENCY: "histogram"}
        return set().union(*(_exported(n, k) for n, k in kinds.items()))
    return set().union(*(_exported(m["name"], m["type"]) for m in CONTRACT[group]))


def test_dashboards_reference_only_exported_metrics():
    dashboards = _dashboards()
    assert set(dashboards) == {"curation", "training", "serving"}
    for name, board in dashboards.items():
        assert board["uid"] == f"vidloom-{name}" and board["panels"]
        used = set()
        for panel in board["panels"]:
            assert panel["targets"], panel["title"]
            for target in panel["targets"]:
                used |= _series_names(target["expr"])
        unknown = used - _allowed(name)
        assert not unknown, f"{name} dashboard queries metrics nobody exports: {unknown}"
        # Every metric of the group is on its dashboard.
        group = CURATION_NAMES if name == "curation" else {m["name"] for m in CONTRACT[name]}
        assert {n for n in group if not any(u.startswith(f"ray_{n}_") or u == f"ray_{n}" for u in used)} == set()


def test_contract_lists_the_training_and_serving_metrics():
    names = {m["name"] for group in ("training", "serving") for m in CONTRACT[group]}
    assert names == {"vidloom_train_loss", "vidloom_train_tokens_per_s", "vidloom_train_mfu",
                     "vidloom_train_step_time_s", "vidloom_serve_queue_depth",
                     "vidloom_serve_generation_latency_s", "vidloom_serve_batch_size"}
    assert all(m["type"] in SUFFIXES and m["description"] for g in ("training", "serving") for m in CONTRACT[g])
    doc = (Path(__file__).resolve().parents[1] / "docs" / "operations.md").read_text()
    assert all(f"`{n}`" in doc for n in names), "docs/operations.md must list the metric contract"


def test_prometheus_scrapes_rays_service_discovery_file():
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    files = config["scrape_configs"][0]["file_sd_configs"][0]["files"]
    assert files == ["/tmp/ray/prom_metrics_service_discovery.json"]


def test_curation_dashboard_series_have_data_after_a_run(ray_session, curated):
    """Each series the curation dashboard queries is on the endpoint, non-zero, after a run."""
    node = ray_session.nodes()[0]
    url = f"http://{node['NodeManagerAddress']}:{node['MetricsExportPort']}/metrics"
    wanted = {n for panel in _dashboards()["curation"]["panels"] for t in panel["targets"]
              for n in _series_names(t["expr"])}

    def totals(text: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, value in re.findall(r"^(ray_vidloom_\w+)\{[^}]*\} ([0-9.e+]+)$", text, re.M):
            out[name] = out.get(name, 0.0) + float(value)
        return out

    deadline = time.monotonic() + 60  # Ray exports metrics every few seconds
    while True:
        seen = totals(urllib.request.urlopen(url, timeout=10).read().decode())
        missing = {n for n in wanted if seen.get(n, 0) <= 0}
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(2)
    # Errors only appear after a failing row; the corpus has unreadable videos, so they do too.
    assert missing == set(), f"dashboard series without data: {missing}"


def test_status_of_a_finished_and_a_running_run(curated, tmp_path, capsys):
    from vidloom.jobs.status import main, run_funnel

    out = curated["out"]
    videos, clips = curated["videos"], curated["clips"]
    done = run_funnel(out)
    assert done.state == "finished" and done.inputs_found == done.inputs_done == len(videos)
    assert done.videos == {s: sum(v["status"] == s for v in videos) for s in {v["status"] for v in videos}}
    assert done.clips == {s: sum(c["status"] == s for c in clips) for s in {c["status"] for c in clips}}
    assert done.video_seconds == pytest.approx(sum(v["duration_s"] or 0 for v in videos), abs=0.01)

    # A run caught mid-way: the config and the parts of two videos, no tables yet.
    run = tmp_path / "run"
    (run / "manifest" / "parts").mkdir(parents=True)
    shutil.copy(out / "config.yaml", run / "config.yaml")
    ok = [v for v in videos if v["status"] == "ok"][:2]
    for v in ok:
        for kind in ("video", "clips"):
            shutil.copy(out / "manifest" / "parts" / f"{v['video_id']}.{kind}.parquet", run / "manifest" / "parts")
    partial = run_funnel(run, [v["source"] for v in videos])
    assert partial.state == "running" and partial.inputs_found == len(videos) and partial.inputs_done == 2
    assert partial.videos == {"ok": 2}
    part_clips = [c for c in clips if c["video_id"] in {v["video_id"] for v in ok}]
    assert sum(partial.clips.values()) == len(part_clips)

    # Tiers appear once `vidloom export` has written its funnel.
    (run / "tiers").mkdir()
    (run / "tiers" / "funnel.json").write_text(json.dumps(
        {"base": {"candidates": 5, "kept": 3, "removed": {"too_short": 1, "text": 1}, "thresholds": {}}}))
    assert main([str(run), *[v["source"] for v in videos]]) == 0
    text = capsys.readouterr().out
    assert f"{run}: running" in text and f"{len(videos)} found, 2 done" in text
    assert "tier base: 5 candidates -> 3 kept (removed: too_short 1, text 1)" in text
    assert main([str(run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["inputs_done"] == 2
    assert "? found, 2 done" in (run_funnel(run).to_text())  # inputs unknown while running
    assert pq.read_table(out / "manifest" / "videos.parquet").num_rows == done.inputs_done

    # A resumed run: tables and summary of the last run exist, the new run rewrote its config.
    for name in ("summary.json", "manifest/videos.parquet", "manifest/clips.parquet"):
        shutil.copy(out / name, run / name)
    assert run_funnel(run).state == "finished"
    (run / "config.yaml").write_text((run / "config.yaml").read_text())
    future = time.time() + 5
    os.utime(run / "config.yaml", (future, future))
    assert run_funnel(run).state == "running"
