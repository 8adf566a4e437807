"""Smoke test of benchmarks/generation.py on a tiny teacher / distilled-student pair (random
weights, no Ray): every row is measured and the ratios, the bound and the defaults are printed."""

from __future__ import annotations

import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]



def test_generation_benchmark_prints_ratios_and_defaults(load_script, tmp_path, capsys):
    from vidloom.models.dit.config import get_config
    from vidloom.models.dit.loading import build_dit, save_dit

    meta = {"text_encoder": {"spec": "tiny", "state_dim": 32, "pooled_dim": 24}, "vae": {"source": "tiny"}}
    teacher = save_dit(build_dit(get_config("tiny"), seed=0), tmp_path / "run" / "sft" / "final", meta=meta)
    student = save_dit(build_dit(get_config("tiny", guidance_embed=True), seed=0), tmp_path / "run" / "final",
                       meta=meta)
    bench = load_script(REPO / "benchmarks" / "generation.py", "generation_benchmark")
    args = ["--model", str(student), "--teacher", str(teacher), "--size", "32x32", "--frames", "1", "--prompts", "1",
            "--seeds", "1", "--few-steps", "2,4", "--threads", "1", "--json", str(tmp_path / "out.json")]
    assert bench.main(args) == 0
    out = capsys.readouterr().out
    rows = re.findall(r"^\| \((a|b|c|d)\) \| (teacher|student) \| (\d+) \| ([\d.]+) \| ([\w+]+) \|", out, re.M)
    assert [(r, m, int(n), solver) for r, m, n, _, solver in rows] == [
        ("a", "teacher", 50, "euler"), ("b", "student", 50, "euler"),
        *[("c", "student", n, solver) for n in (2, 4) for _shift in (7, 17) for solver in ("euler", "dpm++2m")],
        ("d", "teacher", 2, "euler")]
    assert re.search(r"\(b\) distilled 50 steps vs \(a\) 50-step CFG: [\d.]+x faster wall, [\d.]+x CPU", out), out
    assert re.search(r"best few-step: student 2 steps, shift (7|17), (euler|dpm\+\+2m): ", out), out
    assert re.search(r"recommended serve defaults for a distilled model: num_inference_steps=2 flow_shift=(7|17) "
                     r"solver=(euler|dpm\+\+2m)", out)
    figures = json.loads((tmp_path / "out.json").read_text())
    a = figures["table"][0]
    assert a["calls"] == 100 and a["latent_mse"] == 0 and a["speedup"] == 1
    assert figures["table"][1]["calls"] == 50  # one DiT call a step with the guidance embedding
