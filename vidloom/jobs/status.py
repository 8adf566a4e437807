"""`vidloom status RUN [INPUT...]`: the funnel of a curation run, or the stages of a training
run (`vidloom train --out`), running or finished.

While the run goes, finished videos are the part files under ``RUN/manifest/parts/``; once it
has consolidated, ``RUN/manifest/{videos,clips}.parquet``. Inputs found are known from
``RUN/summary.json`` after a run, or from the INPUT arguments (the same ones given to
`vidloom curate`) while it runs. Tiers are added when ``RUN/tiers/funnel.json`` exists.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


@dataclass
class RunFunnel:
    """Counts of one curation run folder."""

    run: str
    state: str  # "running" (started, no summary newer than its start), "finished", "empty"
    inputs_found: int | None
    inputs_done: int
    videos: dict[str, int] = field(default_factory=dict)  # status -> count
    clips: dict[str, int] = field(default_factory=dict)  # status -> count
    video_seconds: float = 0.0
    clip_seconds_ok: float = 0.0
    tiers: list[dict] = field(default_factory=list)  # name, candidates, kept, removed

    def to_text(self) -> str:
        found = "?" if self.inputs_found is None else str(self.inputs_found)
        share = f" ({100 * self.inputs_done / self.inputs_found:.0f}%)" if self.inputs_found else ""
        lines = [f"{self.run}: {self.state}",
                 f"  inputs:  {found} found, {self.inputs_done} done{share}",
                 "  videos:  " + _counts(self.videos, ("ok", "error", "too_short")),
                 "  clips:   " + _counts(self.clips, ("ok", "too_short", "error")),
                 f"  video:   {self.video_seconds:.1f} s decoded, {self.clip_seconds_ok:.1f} s in ok clips"]
        for t in self.tiers:
            removed = ", ".join(f"{k} {v}" for k, v in t["removed"]) or "none"
            lines.append(f"  tier {t['name']}: {t['candidates']} candidates -> {t['kept']} kept (removed: {removed})")
        return "\n".join(lines)


def _counts(counts: dict[str, int], order: tuple[str, ...]) -> str:
    keys = list(order) + sorted(k for k in counts if k not in order)
    return ", ".join(f"{counts.get(k, 0)} {k}" for k in keys)


def _read(paths: list[Path], columns: list[str]) -> pa.Table | None:
    tables = []
    for p in paths:
        try:
            tables.append(pq.read_table(p, columns=columns))
        except FileNotFoundError:  # a part replaced between listing and reading
            continue
    return pa.concat_tables(tables) if tables else None


def run_funnel(run_dir: str | Path, inputs: list[str] | None = None) -> RunFunnel:
    """Read the funnel of the curation run in `run_dir` (see the module docstring)."""
    run = Path(run_dir)
    manifest, parts = run / "manifest", run / "manifest" / "parts"
    video_parts = sorted(parts.glob("*.video.parquet")) if parts.exists() else []
    tables, summary, config = manifest / "videos.parquet", run / "summary.json", run / "config.yaml"
    # `vidloom curate` writes config.yaml when it starts and summary.json when it ends, so a
    # summary older than the config means a resumed run is going.
    finished = tables.exists() and summary.exists() and (
        not config.exists() or summary.stat().st_mtime >= config.stat().st_mtime)
    if finished:
        videos = _read([tables], ["status", "duration_s"])
        clips = _read([manifest / "clips.parquet"], ["status", "duration_s"])
        state = "finished"
    else:
        videos = _read(video_parts, ["status", "duration_s"])
        clips = _read(sorted(parts.glob("*.clips.parquet")), ["status", "duration_s"]) if video_parts else None
        state = "running" if video_parts or (run / "config.yaml").exists() else "empty"

    found = None
    if inputs:
        from vidloom.platform.storage import expand_inputs

        found = len(expand_inputs(inputs))
    elif finished:
        found = int(json.loads(summary.read_text())["inputs"])

    vstatus = Counter(videos.column("status").to_pylist()) if videos is not None else Counter()
    cstatus = Counter(clips.column("status").to_pylist()) if clips is not None else Counter()
    seconds = sum(d or 0.0 for d in videos.column("duration_s").to_pylist()) if videos is not None else 0.0
    ok_seconds = 0.0
    if clips is not None:
        ok_seconds = sum(d or 0.0 for d, s in zip(clips.column("duration_s").to_pylist(),
                                                    clips.column("status").to_pylist()) if s == "ok")
    funnel = RunFunnel(run=str(run), state=state, inputs_found=found, inputs_done=sum(vstatus.values()),
                       videos=dict(vstatus), clips=dict(cstatus), video_seconds=round(seconds, 3),
                       clip_seconds_ok=round(ok_seconds, 3))
    from vidloom.pipelines.report.data import read_funnel

    for tier in read_funnel(run) or []:
        funnel.tiers.append({"name": tier.name, "candidates": tier.candidates, "kept": tier.kept,
                             "removed": [list(r) for r in tier.removed]})
    return funnel


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vidloom status", description=__doc__.split("\n")[0])
    p.add_argument("run", help="the --out folder of `vidloom curate` or `vidloom train`")
    p.add_argument("inputs", nargs="*", help="the run's inputs, to count inputs found while it runs")
    p.add_argument("--watch", type=float, metavar="S", help="print again every S seconds until the run is finished")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    return p


def training_status(run: str | Path) -> dict:
    """Stages of a training run folder (`vidloom train --out`): state, step, loss, validation."""
    import yaml

    run = Path(run)
    config = yaml.safe_load((run / "config.yaml").read_text())
    stages = []
    for stage in config.get("stages", []):
        folder = run / stage["name"]
        done = _json(folder / "done.json")
        progress = _json(folder / "progress.json") or {}
        state = "finished" if done else ("running" if progress else "pending")
        metrics = (done or {}).get("metrics", {})
        stages.append({"name": stage["name"], "kind": stage["kind"], "state": state,
                       "step": progress.get("step", 0), "steps": stage["steps"], "loss": progress.get("loss"),
                       "val_loss": metrics.get("val_loss", metrics.get("val_psnr")), "eta_s": progress.get("eta_s")})
    finished = all(s["state"] == "finished" for s in stages) and (run / "final").is_dir()
    return {"run": str(run), "kind": "training", "state": "finished" if finished else "running", "stages": stages}


def _json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def training_text(status: dict) -> str:
    lines = [f"{status['run']}: training, {status['state']}"]
    for s in status["stages"]:
        loss = f"  loss {s['loss']:.4f}" if s["loss"] is not None else ""
        val = f"  validation {s['val_loss']:.4f}" if s["val_loss"] is not None else ""
        eta = f"  ETA {s['eta_s']:.0f} s" if s["state"] == "running" and s["eta_s"] is not None else ""
        lines.append(f"  {s['name']:<14} {s['kind']:<8} {s['state']:<9} step {s['step']}/{s['steps']}{loss}{val}{eta}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not Path(args.run).is_dir():
        print(f"vidloom status: no run folder at {args.run}", file=sys.stderr)
        return 1
    if (Path(args.run) / "config.yaml").is_file() and not (Path(args.run) / "manifest").exists():
        while True:  # a training run (`vidloom train --out`)
            status = training_status(args.run)
            print(json.dumps(status) if args.json else training_text(status), flush=True)
            if not args.watch or status["state"] == "finished":
                return 0
            time.sleep(args.watch)
    while True:
        funnel = run_funnel(args.run, args.inputs or None)
        print(json.dumps(asdict(funnel)) if args.json else funnel.to_text(), flush=True)
        if not args.watch or funnel.state == "finished":
            return 0
        time.sleep(args.watch)


if __name__ == "__main__":
    sys.exit(main())
