"""Smoke test of benchmarks/curation_throughput.py: its --quick functions on two tiny videos,
on the session's Ray (the benchmark's own `init_ray` call then joins it)."""

from __future__ import annotations

import importlib.util
import re
import sys

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PYSCENEDETECT_DATA = (REPO / ".." / "shared" / "data" / "pyscenedetect").resolve()

TINY = ("fades.mp4", "counter.mp4")


def _load_benchmark():
    path = REPO / "benchmarks" / "curation_throughput.py"
    spec = importlib.util.spec_from_file_location("curation_throughput", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.timeout(300)
def test_quick_benchmark_reports_ratios(ray_session, tmp_path, capsys):
    files = [PYSCENEDETECT_DATA / name for name in TINY]
    if not all(f.is_file() for f in files):
        pytest.skip(f"PySceneDetect test videos not found under {PYSCENEDETECT_DATA}")
    bench = _load_benchmark()
    paths = bench.replicate(files, tmp_path / "corpus", copies=1)
    assert len(set(paths)) == 2

    report = bench.run_benchmark(paths, tmp_path, repeat=1, split_video=str(files[0]))
    print(report)
    out = capsys.readouterr().out

    for label in ("(a) floor", "(b) pipeline", "(c) sequential"):
        assert label in out
    ratios = dict(re.findall(r"ratio \(b\)/\((a|c)\) [^=]+= ([0-9.]+)", out))
    assert set(ratios) == {"a", "c"}, out
    assert all(float(v) > 0 for v in ratios.values())
    # Every measurement saw the same source frames (fades 250 + counter 30).
    frames = re.search(r"corpus: 2 inputs, (\d+) source frames", out)
    assert frames and int(frames.group(1)) == 280, out
    assert "note:" not in out, out  # no frame-count disagreement between (a), (b), (c)
    assert "cuts ours" in out and "cuts detect" in out
