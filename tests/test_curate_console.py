"""What a user sees when running `vidloom curate` on a terminal: one progress display, not Ray
Data's log lines or Ray's shutdown noise; Ray's lines are in OUT/logs/."""

from __future__ import annotations

import subprocess
import sys

from vidloom.pipelines.curation.progress import progress_line


def test_progress_line_reads_like_a_progress_display():
    line = progress_line(["video_analysis", "text_detection"], {"video_analysis": [3, 12], "text_detection": [2, 8]},
                         inputs=10, committed=2, clips_done=8, elapsed_s=10.0)
    assert line.startswith("decoded 3/10 inputs | analysed 12 · text 8 clips | written 2 inputs, 8 clips, 0.80 clips/s")
    assert "ETA 23s" in line  # 7 inputs left at 3 per 10 s


def test_curate_console_shows_one_progress_display(tmp_path, pyscenedetect_dir):
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "vidloom.jobs.curate", str(pyscenedetect_dir / "fades.mp4"),
         str(pyscenedetect_dir / "counter.mp4"), "--out", str(out), "--num-cpus", "2",
         "--set", "pipeline=[video_analysis,text_detection]"],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    console = proc.stdout + proc.stderr
    assert "decoded 2/2 inputs" in proc.stderr and "written 2 inputs" in proc.stderr
    assert "curated 2 inputs" in proc.stdout
    for noise in ("Running Dataset", "Execution plan", "MapBatches(", "Failed to kill actor", "(pid="):
        assert noise not in console, (noise, console[-3000:])
    # Ray's own lines went to the run folder instead.
    assert "Execution plan" in (out / "logs" / "ray.log").read_text()
