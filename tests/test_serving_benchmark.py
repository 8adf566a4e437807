"""Smoke test of benchmarks/serving.py on the session's Ray: a fresh tiny model, two steps, one
repeat, the DiT at one thread. Every figure the issue names is printed as a ratio from one run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(900)
def test_serving_benchmark_prints_its_ratios(ray_session, load_script, capsys):
    bench = load_script(REPO / "benchmarks" / "serving.py", "serving_benchmark")
    args = ["--size", "32x32", "--frames", "1", "--steps", "2", "--batch-steps", "2", "--repeat", "1",
            "--dit-threads", "1"]
    assert bench.main(args) == 0
    out = capsys.readouterr().out
    overhead = re.search(r"\(a\) one request, 2 steps: in-process [\d.]+ s, HTTP \+ Serve [\d.]+ s -> ([\d.]+)x", out)
    assert overhead and float(overhead.group(1)) > 0, out
    batching = re.search(r"\(b\) 8 concurrent, 2 steps, each mode at its best DiT thread count: on \(1\) [\d.]+ / "
                         r"off \(1\) [\d.]+ videos/s -> ([\d.]+)x \(target >= 1.5x\)", out)
    assert batching and float(batching.group(1)) > 0, out
    # The DiT's largest batch is printed with the figure (tests/serving checks that bursts batch).
    assert re.search(r"batching on [\d.]+ videos/s \(DiT batches up to \d+\)", out), out
    for mode in ("on", "off"):
        assert re.search(rf"\(c\) time per deployment, 2 steps, batching {mode}, DiT at 1 thread\(s\): "
                         r"PromptRewriter [\d.]+ s, TextEncoder [\d.]+ s, DiT [\d.]+ s, VAEDecoder [\d.]+ s", out), out
