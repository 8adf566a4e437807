"""Write the Grafana dashboards of cluster/monitoring/dashboards/ (curation, training, serving).

    python cluster/monitoring/render.py          # rewrite the JSON files
    python cluster/monitoring/render.py --check  # exit 1 when a committed dashboard is stale

Every query selects one Ray cluster through the SessionName label Ray puts on all its series,
like Ray's own generated dashboards, so one Prometheus can watch several clusters.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "dashboards"
SEL = 'SessionName=~"$SessionName"'
RATE = "$__rate_interval"


def _panel(title: str, targets: list[tuple[str, str]], unit: str = "short", kind: str = "timeseries",
           description: str = "") -> dict:
    return {"type": kind, "title": title, "description": description,
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "targets": [{"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend}
                        for i, (expr, legend) in enumerate(targets)]}


def _dashboard(uid: str, title: str, probe_metric: str, panels: list[dict]) -> dict:
    width, height = 12, 8
    for i, p in enumerate(panels):
        p["id"] = i + 1
        p["gridPos"] = {"x": (i % 2) * width, "y": (i // 2) * height, "w": width, "h": height}
    return {
        "uid": uid, "title": title, "tags": ["vidloom"], "schemaVersion": 39, "version": 1,
        "timezone": "utc", "refresh": "10s", "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": [
            {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Data source"},
            {"name": "SessionName", "type": "query", "label": "Ray session",
             "datasource": {"type": "prometheus", "uid": "${datasource}"},
             "query": f"label_values({probe_metric}, SessionName)", "refresh": 2, "includeAll": True,
             "multi": True, "current": {"text": "All", "value": "$__all"}},
        ]},
        "panels": panels,
    }


def curation() -> dict:
    def by_stage(metric: str) -> str:
        return f"sum by (stage) (rate(ray_{metric}_total{{{SEL}}}[{RATE}]))"

    def quantile(q: float) -> str:
        return (f"histogram_quantile({q}, sum by (stage, le) "
                f"(rate(ray_vidloom_stage_latency_s_bucket{{{SEL}}}[{RATE}])))")

    return _dashboard("vidloom-curation", "vidloom / curation", "ray_vidloom_stage_rows_in_total", [
        _panel("Rows in per stage", [(by_stage("vidloom_stage_rows_in"), "{{stage}}")], "rowsps",
               description="Rows (videos) entering each stage per second"),
        _panel("Rows out per stage", [(by_stage("vidloom_stage_rows_out"), "{{stage}}")], "rowsps",
               description="Rows leaving each stage per second; in minus out is what the stage holds"),
        _panel("Errors per stage", [(by_stage("vidloom_stage_errors"), "{{stage}}")], "rowsps",
               description="Rows a stage marked as failed, per second (recorded in the manifest, not retried)"),
        _panel("Per-row latency (p50, p95)", [(quantile(0.5), "p50 {{stage}}"), (quantile(0.95), "p95 {{stage}}")], "s",
               description="Time one row spends in a stage's code"),
        _panel("Clips by status", [(f"sum by (status) (ray_vidloom_clips_total{{{SEL}}})", "{{status}}")], "short",
               description="Clips produced so far: ok and too_short"),
        _panel("Video-seconds per second",
               [(f"sum(rate(ray_vidloom_video_seconds_total{{{SEL}}}[{RATE}]))", "video-s/s")], "short",
               description="Seconds of source video decoded per wall-clock second: the pipeline's throughput"),
    ])


def training() -> dict:
    by_rank = "{{run}} rank {{rank}}"
    return _dashboard("vidloom-training", "vidloom / training", "ray_vidloom_train_loss", [
        _panel("Loss", [(f"avg by (run) (ray_vidloom_train_loss{{{SEL}}})", "{{run}}")], "short",
               description="Flow-matching loss, mean over ranks"),
        _panel("Tokens per second", [(f"sum by (run) (ray_vidloom_train_tokens_per_s{{{SEL}}})", "{{run}}")], "short",
               description="Latent tokens per second, summed over ranks"),
        _panel("MFU", [(f"ray_vidloom_train_mfu{{{SEL}}}", by_rank)], "percentunit",
               description="Model FLOPs utilisation per rank; a low rank points at a slow GPU or data wait"),
        _panel("Step time (p50, p95)", [
            (f"histogram_quantile(0.5, sum by (run, le) (rate(ray_vidloom_train_step_time_s_bucket{{{SEL}}}[{RATE}])))",
             "p50 {{run}}"),
            (f"histogram_quantile(0.95, sum by (run, le) (rate(ray_vidloom_train_step_time_s_bucket{{{SEL}}}[{RATE}])))",
             "p95 {{run}}")], "s", description="Optimizer step wall time"),
    ])


def serving() -> dict:
    # deployment="all" is a whole job (request to mp4); the others are each deployment's part.
    def q(p: float, by: str = "", match: str = 'deployment="all"') -> str:
        return (f"histogram_quantile({p}, sum by ({by}le) (rate(ray_vidloom_serve_generation_latency_s_bucket"
                f"{{{SEL},{match}}}[{RATE}])))")

    return _dashboard("vidloom-serving", "vidloom / serving", "ray_vidloom_serve_queue_depth", [
        _panel("Queue depth", [(f"sum by (deployment) (ray_vidloom_serve_queue_depth{{{SEL}}})", "{{deployment}}")],
               "short", description="Jobs queued or running (JobStore), requests waiting for a DiT batch (DiT)"),
        _panel("Generation latency (p50, p95)", [(q(0.5), "p50"), (q(0.95), "p95")], "s",
               description="Request arrival to finished video"),
        _panel("Time per deployment (p95)", [(q(0.95, "deployment, ", 'deployment!="all"'), "{{deployment}}")], "s",
               description="Time a request spends in each deployment (the DiT's includes waiting for its batch)"),
        _panel("Latency by resolution (p95)", [(q(0.95, "resolution, "), "{{resolution}}")], "s",
               description="Request arrival to finished video, per output size"),
        _panel("Batch size (mean)", [(
            f"sum by (deployment) (rate(ray_vidloom_serve_batch_size_sum{{{SEL}}}[{RATE}])) / "
            f"sum by (deployment) (rate(ray_vidloom_serve_batch_size_count{{{SEL}}}[{RATE}]))", "{{deployment}}")],
            "short", description="Requests of one shape denoised together"),
        _panel("Requests per second", [(
            f'sum(rate(ray_vidloom_serve_generation_latency_s_count{{{SEL},deployment="all"}}[{RATE}]))', "finished")],
            "reqps", description="Finished generations per second"),
    ])


DASHBOARDS = {"curation.json": curation, "training.json": training, "serving.json": serving}


def render() -> dict[str, str]:
    """File name -> dashboard JSON text."""
    return {name: json.dumps(build(), indent=2) + "\n" for name, build in DASHBOARDS.items()}


def main(argv: list[str]) -> int:
    OUT.mkdir(exist_ok=True)
    stale = []
    for name, text in render().items():
        path = OUT / name
        if "--check" in argv:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print(f"stale dashboards (run python cluster/monitoring/render.py): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
