"""Model benchmarks: our DiT vs diffusers' HunyuanVideo transformer, VAE decode with/without tiling.

    python benchmarks/models.py            # CPU suite (a few minutes on 2 cores)
    python benchmarks/models.py --compile  # ... plus the torch.compile'd fast path (compiles first)
    python benchmarks/models.py --quick    # CPU smoke run, < 60 s
    python benchmarks/models.py --gpu      # 1B bf16 train-step MFU + 13B per-block step (needs CUDA)

CPU suite
  1. DiT forward+backward throughput, ours (reference path, fast path ``set_fast_path(True)``,
     with ``--compile`` the fast path with compiled blocks) vs diffusers'
     ``HunyuanVideoTransformer3DModel``. Same process, same config, same inputs, same dtype
     (fp32; ``--dtype bfloat16`` casts every model and input, which CPUs with AMX or AVX512-BF16
     run on bf16 GEMM units); diffusers gets our weights through ``ours_to_diffusers`` so all compute the same
     function (the max |Δ| of each output against diffusers is printed). Steps are interleaved
     (a, b, c, c, b, a, ...) and each model's median step time is reported, plus the median of
     the per-round time ratios, which is what to read on a shared machine. The first step of
     each (for the compiled one: the compilation) is timed apart as the warm-up.
  2. VAE decode time and peak memory with tiling vs without over several frame counts.

Peak memory (CPU): every measurement runs in a fresh subprocess (``--worker``) with glibc's
mmap threshold fixed at 64 KiB (every tensor buffer gets its own mapping, unmapped on free). It
builds the model and inputs, runs the step once (warm-up: library code pages, kernel caches),
returns free heap pages to the kernel (``malloc_trim(0)``), reads its resident set size (VmRSS), resets the kernel's high-water mark
(``echo 5 > /proc/self/clear_refs``, Linux), runs the step again and reads VmHWM. The figure is
VmHWM − VmRSS-before: the kernel-tracked peak of resident memory the step added (activations,
autograd buffers, gradients, allocator slack), not sampled, and not inflated by imports,
first-touch of code pages or memory an earlier step left in malloc's free lists.
``tracemalloc`` would not see torch's allocations at all.

Timings on a shared machine are noisy: read ratios measured in the same process, not absolute
figures. CPU step times are process CPU time (``time.process_time``), which with one intra-op
thread is the cost on a dedicated core and ignores time spent waiting for a shared one; wall
times are printed beside them. ``--threads`` sets torch's intra-op threads (default 1: on a loaded 2-core box a
second thread mostly adds synchronisation stalls).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from vidloom.models.dit.config import DiTConfig, default_rope_dims, get_config  # noqa: E402
from vidloom.models.dit.flops import forward_flops  # noqa: E402

# ------------------------------------------------------------------------------ configurations

#: CPU DiT: kernels dominate Python overhead, one step ~0.5 s on one core.
DIT_CPU = dict(hidden_size=384, heads=6, depth_double=2, depth_single=2, refiner_depth=1,
               text_dim=256, pooled_dim=64, guidance_embed=False)
DIT_CPU_LATENT = (5, 16, 16)  # 256p-like latent grid → 5·8·8 = 320 video tokens
DIT_CPU_TEXT = 64
DIT_CPU_TEXT_VALID = 48       # right-padded prompt (HunyuanVideo always pads its text)

#: CPU VAE: small widths, 64×64 px, 32 px / 16 frame tiles so both tiling axes really tile.
VAE_CPU = dict(block_out_channels=(32, 32, 64, 64), norm_num_groups=8)
VAE_CPU_QUICK = dict(block_out_channels=(8, 8, 16, 16), norm_num_groups=4)
VAE_SIZE = (64, 64)
VAE_TILES = dict(tile_sample_min_height=32, tile_sample_min_width=32, tile_sample_stride_height=24,
                 tile_sample_stride_width=24, tile_sample_min_num_frames=16, tile_sample_stride_num_frames=12)

#: Fixed mmap threshold for memory workers: glibc then serves every allocation >= 64 KiB with its
#: own mapping and unmaps it on free, so the warm-up step leaves nothing in malloc's free lists
#: (with the default dynamic threshold, freed activations stay resident and hide the next peak).
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536"}

#: Dense bf16 tensor-core peaks (TFLOP/s, no sparsity) for MFU; override with --peak-tflops.
GPU_PEAK_BF16 = {"H200": 989.0, "H100": 989.0, "H800": 989.0, "A100": 312.0, "A800": 312.0, "L40S": 362.0,
                 "L4": 121.0, "A10": 125.0, "B200": 2250.0, "GH200": 989.0}


def dit_cpu_config() -> DiTConfig:
    cfg = DIT_CPU
    return DiTConfig(**cfg, rope_dims=default_rope_dims(cfg["hidden_size"] // cfg["heads"]))


# ------------------------------------------------------------------------------ helpers


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def peak_rss_delta_mib(fn) -> float:
    """Run `fn` once; kernel-tracked peak RSS it added, MiB (see module docstring)."""
    before = _rss_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    if _rss_kib("VmHWM") > before + 1024:
        raise RuntimeError("cannot reset VmHWM (/proc/self/clear_refs): peak RSS not measurable here")
    fn()
    return (_rss_kib("VmHWM") - before) / 1024


def randomize(model: torch.nn.Module, seed: int = 0) -> None:
    """Random values in every parameter (zero-initialised modulations too)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            norm = re.search(r"norm\d?\.weight$", name) is not None
            p.copy_((1 + 0.1 * noise if norm else 0.05 * noise).to(p.dtype))


def dit_inputs(cfg: DiTConfig, latent, text_len: int, text_valid: int, batch: int = 1, seed: int = 0,
               device="cpu", dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, cfg.in_channels, *latent, generator=g).to(device, dtype)
    text = torch.randn(batch, text_len, cfg.text_dim, generator=g).to(device, dtype)
    mask = torch.zeros(batch, text_len, dtype=torch.long)
    mask[:, :text_valid] = 1
    pooled = torch.randn(batch, cfg.pooled_dim, generator=g).to(device, dtype)
    t = torch.full((batch,), 500.0)
    return x, t.to(device), text, mask.to(device), pooled


def build_ours(cfg: DiTConfig, seed: int = 0):
    from vidloom.models.dit.loading import build_dit

    model = build_dit(cfg, seed=seed)
    randomize(model, seed)
    return model


def build_theirs(ours) -> torch.nn.Module:
    from diffusers import HunyuanVideoTransformer3DModel

    from vidloom.models.dit.key_maps import config_to_diffusers, ours_to_diffusers

    cfg = ours.config
    theirs = HunyuanVideoTransformer3DModel(**config_to_diffusers(cfg))
    theirs.load_state_dict(ours_to_diffusers(ours.state_dict(), cfg.hidden_size), strict=True)
    return theirs


def forward_fn(impl: str, model, inputs):
    x, t, text, mask, pooled = inputs
    if impl == "ours":
        return lambda: model(x, t, text, mask, pooled)
    return lambda: model(hidden_states=x, timestep=t, encoder_hidden_states=text, encoder_attention_mask=mask,
                         pooled_projections=pooled, return_dict=False)[0]


def train_step_fn(impl: str, model, inputs):
    fwd = forward_fn(impl, model, inputs)

    def step():
        model.zero_grad(set_to_none=True)
        fwd().float().square().mean().backward()

    return step


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _time2(fn) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one call. With one intra-op thread the CPU time
    is what the step costs on a dedicated core, unaffected by waiting for a shared one."""
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


# ------------------------------------------------------------------------------ subprocess worker


def worker(spec: dict[str, Any]) -> dict[str, Any]:
    """One peak-memory measurement in this (fresh) process."""
    torch.set_num_threads(spec["threads"])
    if spec["kind"] == "dit":
        cfg = dit_cpu_config()
        impl, fast, _ = DIT_VARIANTS[spec["impl"]]
        ours = build_ours(cfg)
        ours.set_fast_path(fast)
        model = ours if impl == "ours" else build_theirs(ours)
        if impl != "ours":
            del ours
        inputs = dit_inputs(cfg, DIT_CPU_LATENT, DIT_CPU_TEXT, spec["text_valid"])
        fn = train_step_fn(impl, model, inputs)
    else:
        from vidloom.models.vae import VAEConfig, load_vae

        vae = load_vae(VAEConfig(**spec["vae"]))
        vae.enable_tiling(**VAE_TILES) if spec["tiled"] else vae.disable_tiling()
        z = torch.randn(1, vae.latent_channels, (spec["frames"] - 1) // 4 + 1, *(s // 8 for s in VAE_SIZE),
                        generator=torch.Generator().manual_seed(0))

        def fn():
            with torch.no_grad():
                vae.decode(z)

    fn()  # warm-up: first-touch of library code pages, oneDNN/MKL caches, thread pools
    if spec["kind"] == "dit":
        model.zero_grad(set_to_none=True)  # gradients count in the measured step, not the baseline
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand free heap pages back so the next peak is re-touched
    return {"peak_mib": peak_rss_delta_mib(fn)}


def run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": str(spec["threads"]), **MALLOC_ENV})
    if proc.returncode:
        raise RuntimeError(f"memory worker {spec} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------ CPU suite


#: The DiT implementations a CPU run compares: (label, impl for forward_fn, fast path, compile).
DIT_VARIANTS = {"ours": ("ours", False, False), "ours fast": ("ours", True, False),
                "ours fast+compile": ("ours", True, True), "diffusers": ("theirs", False, False)}


def bench_dit_cpu(reps: int, threads: int, memory: bool, profile: bool,
                  text_valid: int = DIT_CPU_TEXT_VALID, compile: bool = False,
                  dtype: torch.dtype = torch.float32) -> dict[str, Any]:
    import copy

    cfg = dit_cpu_config()
    ours = build_ours(cfg)
    theirs = build_theirs(ours).to(dtype)
    ours = ours.to(dtype)
    models = {"ours": ours, "diffusers": theirs, "ours fast": copy.deepcopy(ours)}
    models["ours fast"].set_fast_path(True)
    warmup: dict[str, float] = {}
    if compile:
        models["ours fast+compile"] = copy.deepcopy(ours)
        models["ours fast+compile"].set_fast_path(True, compile=True)
    inputs = dit_inputs(cfg, DIT_CPU_LATENT, DIT_CPU_TEXT, text_valid, dtype=dtype)
    steps = {name: train_step_fn(DIT_VARIANTS[name][0], m, inputs) for name, m in models.items()}
    with torch.no_grad():
        theirs_out = forward_fn("theirs", models["diffusers"], inputs)().float()
        diffs = {name: (forward_fn("ours", m, inputs)().float() - theirs_out).abs().max().item()
                 for name, m in models.items() if name != "diffusers"}
    for name, fn in steps.items():  # warm-up (oneDNN primitive caches, first-touch pages; compilation)
        warmup[name] = _time2(fn)[0]
    times: dict[str, list[float]] = {name: [] for name in steps}
    walls: dict[str, list[float]] = {name: [] for name in steps}
    for r in range(reps):
        for name in (list(steps) if r % 2 == 0 else list(steps)[::-1]):
            w, c = _time2(steps[name])
            walls[name].append(w)
            times[name].append(c)
    pt, ph, pw = cfg.patch_size
    video_tokens = (DIT_CPU_LATENT[0] // pt) * (DIT_CPU_LATENT[1] // ph) * (DIT_CPU_LATENT[2] // pw)
    tokens = video_tokens + DIT_CPU_TEXT
    step_flops = 3 * forward_flops(cfg, video_tokens, DIT_CPU_TEXT)
    res: dict[str, Any] = {
        "config": {**DIT_CPU, "latent": DIT_CPU_LATENT, "text_tokens": DIT_CPU_TEXT, "text_valid": text_valid,
                   "tokens_per_step": tokens, "parameters": ours.num_parameters()},
        "max_abs_diff_fwd": diffs, "reps": reps, "threads": threads, "variants": list(steps),
        "dtype": str(dtype).removeprefix("torch."), "output_scale": theirs_out.abs().max().item(),
    }
    for name, ts in times.items():
        med = statistics.median(ts)
        res[name] = {"step_s_median": med, "step_s_min": min(ts), "tokens_per_s": tokens / med,
                     "gflops": step_flops / med / 1e9, "wall_s_median": statistics.median(walls[name]),
                     "wall_tokens_per_s": tokens / statistics.median(walls[name]), "warmup_wall_s": warmup[name]}
    theirs = times["diffusers"]
    for name in steps:
        if name != "diffusers":
            res[name]["ratio_tokens_per_s"] = res[name]["tokens_per_s"] / res["diffusers"]["tokens_per_s"]
            res[name]["ratio_median_of_rounds"] = statistics.median(d / o for o, d in zip(times[name], theirs))
            res[name]["ratio_wall"] = res[name]["wall_tokens_per_s"] / res["diffusers"]["wall_tokens_per_s"]
    if memory and dtype == torch.float32:
        for name in ("ours", "ours fast", "diffusers"):
            res[name]["peak_mib"] = run_worker({"kind": "dit", "impl": name, "threads": threads,
                                                "text_valid": text_valid})["peak_mib"]
    if profile:
        res["profile"] = profile_compare({n: steps[n] for n in ("ours fast", "diffusers")})
    return res


def profile_compare(steps: dict[str, Any], rounds: int = 5, rows: int = 16) -> str:
    """Side-by-side torch.profiler self-CPU time per aten op, median over interleaved profiled steps."""
    from torch.profiler import ProfilerActivity, profile

    per: dict[str, dict[str, list[float]]] = {name: {} for name in steps}
    calls: dict[str, dict[str, int]] = {name: {} for name in steps}
    totals: dict[str, list[float]] = {name: [] for name in steps}
    for r in range(rounds):
        for name in (list(steps) if r % 2 == 0 else list(steps)[::-1]):
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                steps[name]()
            total = 0.0
            for ev in prof.key_averages():
                ms = ev.self_cpu_time_total / 1e3
                total += ms
                per[name].setdefault(ev.key, []).append(ms)
                calls[name][ev.key] = ev.count
            totals[name].append(total)
    names = list(steps)
    med = {n: {k: statistics.median(v + [0.0] * (rounds - len(v))) for k, v in per[n].items()} for n in names}
    keys = sorted(set().union(*med.values()), key=lambda k: -max(med[n].get(k, 0.0) for n in names))
    lines = [f"  {'op (self CPU, median of ' + str(rounds) + ')':<52}" + "".join(f"{n + ' ms':>12}{'calls':>7}" for n in names)]
    for k in keys[:rows]:
        lines.append(f"  {k[:52]:<52}" + "".join(f"{med[n].get(k, 0.0):>12.1f}{calls[n].get(k, 0):>7}" for n in names))
    lines.append(f"  {'total (all ops)':<52}" + "".join(f"{statistics.median(totals[n]):>12.1f}{'':>7}" for n in names))
    return "\n".join(lines)


def bench_vae_cpu(frame_counts, reps: int, threads: int, vae_kwargs: dict[str, Any]) -> dict[str, Any]:
    from vidloom.models.vae import VAEConfig, load_vae

    vae = load_vae(VAEConfig(**vae_kwargs))
    rows = []
    for frames in frame_counts:
        z = torch.randn(1, vae.latent_channels, (frames - 1) // 4 + 1, *(s // 8 for s in VAE_SIZE),
                        generator=torch.Generator().manual_seed(0))
        times: dict[bool, list[float]] = {False: [], True: []}
        for r in range(reps):
            for tiled in ((False, True) if r % 2 == 0 else (True, False)):
                vae.enable_tiling(**VAE_TILES) if tiled else vae.disable_tiling()
                with torch.no_grad():
                    times[tiled].append(_time2(lambda: vae.decode(z))[1])
        row = {"frames": frames, "latent": list(z.shape[2:])}
        for tiled in (False, True):
            key = "tiled" if tiled else "full"
            spec = {"kind": "vae", "vae": vae_kwargs, "frames": frames, "tiled": tiled, "threads": threads}
            row[key] = {"decode_s": statistics.median(times[tiled]), "peak_mib": run_worker(spec)["peak_mib"]}
        rows.append(row)
    return {"config": {**vae_kwargs, "size": VAE_SIZE, "tiles": VAE_TILES}, "rows": rows, "reps": reps}


def print_dit(res: dict[str, Any]) -> None:
    c = res["config"]
    diffs = ", ".join(f"{n} {d:.1e}" for n, d in res["max_abs_diff_fwd"].items())
    print(f"DiT fwd+bwd (CPU, {res['dtype']}, {res['threads']} thread(s), {res['reps']} interleaved rounds): "
          f"hidden {c['hidden_size']}, "
          f"{c['heads']} heads, {c['depth_double']}+{c['depth_single']} blocks, refiner {c['refiner_depth']}, "
          f"{c['parameters'] / 1e6:.1f}M params; latent {tuple(c['latent'])} + {c['text_tokens']} text "
          f"({c['text_valid']} valid) = {c['tokens_per_step']} tokens; max |Δ| fwd vs diffusers: {diffs} "
          f"(outputs up to {res['output_scale']:.2f})")
    for name in res["variants"]:
        r = res[name]
        mem = f", peak +{r['peak_mib']:.0f} MiB" if "peak_mib" in r else ""
        print(f"  {name:<18} {r['tokens_per_s']:8.0f} tokens/s  (median step {r['step_s_median'] * 1e3:.0f} ms CPU, "
              f"min {r['step_s_min'] * 1e3:.0f} ms, {r['gflops']:.1f} GFLOP/s; wall {r['wall_s_median'] * 1e3:.0f} ms; "
              f"first step {r['warmup_wall_s']:.1f} s wall){mem}")
    for name in res["variants"]:
        if name != "diffusers":
            r = res[name]
            print(f"  ratio {name} / diffusers: {r['ratio_tokens_per_s']:.2f}x tokens/s by CPU time (median of "
                  f"per-round ratios {r['ratio_median_of_rounds']:.2f}x, by wall {r['ratio_wall']:.2f}x; target >= 1.2x)")
    if "profile" in res:
        print(f"  torch.profiler, one fwd+bwd each:\n{res['profile']}")


def print_vae(res: dict[str, Any]) -> None:
    c = res["config"]
    print(f"VAE decode (CPU, no grad, {res['reps']} interleaved rounds): channels {tuple(c['block_out_channels'])}, "
          f"{c['size'][0]}x{c['size'][1]} px, tiles {c['tiles']['tile_sample_min_height']} px every "
          f"{c['tiles']['tile_sample_stride_height']}, {c['tiles']['tile_sample_min_num_frames']} frames every "
          f"{c['tiles']['tile_sample_stride_num_frames']}")
    print(f"  {'frames':>6} {'latent':>10} {'full s':>8} {'tiled s':>8} {'full peak MiB':>14} {'tiled peak MiB':>15}")
    for r in res["rows"]:
        lat = "x".join(map(str, r["latent"]))
        print(f"  {r['frames']:>6} {lat:>10} {r['full']['decode_s']:>8.2f} {r['tiled']['decode_s']:>8.2f} "
              f"{r['full']['peak_mib']:>14.0f} {r['tiled']['peak_mib']:>15.0f}")


# ------------------------------------------------------------------------------ GPU suite


def _cuda_time(fn, warmup: int, iters: int) -> list[float]:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    out = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        out.append(start.elapsed_time(end) / 1e3)
    return out


def peak_tflops(device_name: str, override: float | None) -> float:
    if override:
        return override
    for key in sorted(GPU_PEAK_BF16, key=len, reverse=True):
        if key in device_name:
            return GPU_PEAK_BF16[key]
    raise SystemExit(f"unknown GPU {device_name!r}: pass --peak-tflops (dense bf16 peak) for MFU")


def bench_dit_train(config: DiTConfig, latent, text_len: int, device, dtype, warmup: int, iters: int,
                    checkpointing: bool = False, fast: bool = True, compile: bool = False) -> dict[str, Any]:
    """Forward+backward of a full DiT (all text valid, batch 1) on `device`."""
    from vidloom.models.dit.loading import build_dit

    model = build_dit(config, device=device).to(dtype)
    model.set_gradient_checkpointing(checkpointing)
    model.set_fast_path(fast, compile=compile)
    inputs = dit_inputs(config, latent, text_len, text_len, device=device, dtype=dtype)
    step = train_step_fn("ours", model, inputs)
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    if torch.device(device).type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        times = _cuda_time(step, warmup, iters)
        peak = torch.cuda.max_memory_allocated() / 2**30
    else:
        times = [_time(step) for _ in range(warmup + iters)][warmup:]
        peak = float("nan")
    sync()
    pt, ph, pw = config.patch_size
    video = (latent[0] // pt) * (latent[1] // ph) * (latent[2] // pw)
    flops = 3 * forward_flops(config, video, text_len)
    med = statistics.median(times)
    return {"step_s": med, "tokens_per_s": (video + text_len) / med, "tflops": flops / med / 1e12,
            "video_tokens": video, "text_tokens": text_len, "params": model.num_parameters(), "peak_gib": peak}


def bench_blocks(config: DiTConfig, latent, text_len: int, device, dtype, warmup: int, iters: int) -> dict[str, Any]:
    """Forward+backward of one double-stream and one single-stream block at `config`'s widths."""
    from vidloom.models.dit.double_block import DoubleStreamBlock
    from vidloom.models.dit.rope import rope_3d
    from vidloom.models.dit.single_block import SingleStreamBlock

    c = config
    pt, ph, pw = c.patch_size
    grid = (latent[0] // pt, latent[1] // ph, latent[2] // pw)
    video = grid[0] * grid[1] * grid[2]
    g = torch.Generator(device=device).manual_seed(0)
    mk = lambda *s: torch.randn(*s, generator=g, device=device, dtype=dtype, requires_grad=True)  # noqa: E731
    img, txt, vec = mk(1, video, c.hidden_size), mk(1, text_len, c.hidden_size), mk(1, c.hidden_size)
    joint = mk(1, video + text_len, c.hidden_size)
    rope = rope_3d(grid, c.rope_dims, c.rope_theta, device=device)
    is_cuda = torch.device(device).type == "cuda"
    base = forward_flops(c.with_overrides(depth_double=0, depth_single=0), video, text_len)
    res: dict[str, Any] = {"video_tokens": video, "text_tokens": text_len}
    for kind in ("double", "single"):
        with torch.device(device):
            block = (DoubleStreamBlock(c.hidden_size, c.heads, c.mlp_ratio, c.qkv_bias) if kind == "double"
                     else SingleStreamBlock(c.hidden_size, c.heads, c.mlp_ratio)).to(dtype)
        randomize(block)
        for m in block.modules():  # the fast path, as HunyuanVideoDiT.set_fast_path sets it
            if hasattr(m, "fast"):
                m.fast = True

        def step():
            block.zero_grad(set_to_none=True)
            if kind == "double":
                a, b = block(img, txt, vec, rope, None)
                loss = a.float().square().mean() + b.float().square().mean()
            else:
                loss = block(joint, vec, video, rope, None).float().square().mean()
            loss.backward()

        if is_cuda:
            torch.cuda.reset_peak_memory_stats()
            times = _cuda_time(step, warmup, iters)
            peak = torch.cuda.max_memory_allocated() / 2**30
        else:
            times = [_time(step) for _ in range(warmup + iters)][warmup:]
            peak = float("nan")
        one = c.with_overrides(depth_double=int(kind == "double"), depth_single=int(kind == "single"))
        flops = 3 * (forward_flops(one, video, text_len) - base)
        med = statistics.median(times)
        res[kind] = {"step_s": med, "tflops": flops / med / 1e12, "peak_gib": peak}
        del block
    return res


def gpu_suite(args) -> int:
    if not torch.cuda.is_available():
        print("benchmarks/models.py --gpu: CUDA is not available on this machine; refusing to run the GPU suite "
              "(the CPU suite runs without --gpu)", file=sys.stderr)
        return 2
    torch.backends.cuda.matmul.allow_tf32 = True
    name = torch.cuda.get_device_name()
    peak = peak_tflops(name, args.peak_tflops)
    print(f"GPU: {name}, dense bf16 peak {peak:.0f} TFLOP/s, torch {torch.__version__}")
    latent = tuple(args.gpu_latent)
    r = bench_dit_train(get_config("1B"), latent, 256, "cuda", torch.bfloat16, args.gpu_warmup, args.gpu_iters,
                        checkpointing=args.checkpointing, compile=args.compile)
    mfu = r["tflops"] / peak
    print(f"1B bf16 fwd+bwd, latent {latent} ({r['video_tokens']} video + 256 text tokens, batch 1, "
          f"{r['params'] / 1e9:.2f}B params, checkpointing {'on' if args.checkpointing else 'off'}, fast path"
          f"{' + compile' if args.compile else ''}): "
          f"{r['step_s'] * 1e3:.1f} ms/step, {r['tokens_per_s']:.0f} tokens/s, {r['tflops']:.1f} TFLOP/s, "
          f"MFU {100 * mfu:.1f}% (target >= 40%), peak {r['peak_gib']:.1f} GiB")
    latent13 = tuple(args.gpu_block_latent)
    b = bench_blocks(get_config("13B"), latent13, 256, "cuda", torch.bfloat16, args.gpu_warmup, args.gpu_iters)
    for kind in ("double", "single"):
        k = b[kind]
        print(f"13B {kind}-stream block bf16 fwd+bwd, latent {latent13} ({b['video_tokens']} + 256 tokens): "
              f"{k['step_s'] * 1e3:.1f} ms, {k['tflops']:.1f} TFLOP/s, MFU {100 * k['tflops'] / peak:.1f}%, "
              f"peak {k['peak_gib']:.1f} GiB")
    full = 20 * b["double"]["step_s"] + 40 * b["single"]["step_s"]
    print(f"13B blocks only (20 double + 40 single) at that latent: ~{full:.2f} s per fwd+bwd step on one GPU")
    if args.json:
        Path(args.json).write_text(json.dumps({"gpu": name, "1B": r, "13B_blocks": b}, indent=2, default=str))
    return 0


# ------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="CPU smoke run (< 60 s)")
    p.add_argument("--gpu", action="store_true", help="GPU suite: 1B bf16 MFU and 13B per-block step (needs CUDA)")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads for the CPU suite (default 1)")
    p.add_argument("--reps", type=int, default=None, help="interleaved rounds (default 9, quick 2)")
    p.add_argument("--profile", action="store_true", help="print torch.profiler op tables (ours fast, diffusers)")
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32",
                   help="DiT comparison dtype, both sides (default float32; bf16 uses AMX/AVX512-BF16 where present)")
    p.add_argument("--compile", action="store_true",
                   help="also time the fast path with torch.compile'd blocks (minutes of compilation first)")
    p.add_argument("--text-valid", type=int, nargs="+", default=None,
                   help=f"DiT: valid text tokens of {DIT_CPU_TEXT} (default {DIT_CPU_TEXT_VALID} and {DIT_CPU_TEXT}; "
                   f"quick: {DIT_CPU_TEXT_VALID})")
    p.add_argument("--skip-vae", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--skip-dit", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--frames", type=int, nargs="+", default=None, help="VAE pixel frame counts (4k+1)")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    p.add_argument("--peak-tflops", type=float, default=None, help="GPU dense bf16 peak for MFU")
    p.add_argument("--gpu-latent", type=int, nargs=3, default=(17, 32, 56),
                   help="1B latent (T H W); default 256p 65 frames")
    p.add_argument("--gpu-block-latent", type=int, nargs=3, default=(33, 68, 120),
                   help="13B block latent (T H W); default 540p 129 frames")
    p.add_argument("--gpu-warmup", type=int, default=3)
    p.add_argument("--gpu-iters", type=int, default=10)
    p.add_argument("--checkpointing", action="store_true", help="1B with activation checkpointing")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0
    if args.gpu:
        return gpu_suite(args)

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    reps = args.reps or (2 if args.quick else 9)
    print(f"torch {torch.__version__}, CPU, {args.threads} intra-op thread(s), {os.cpu_count()} cores visible"
          f"{' (quick)' if args.quick else ''}")
    results: dict[str, Any] = {"dit": [], "vae": None}
    valid = args.text_valid or ([DIT_CPU_TEXT_VALID] if args.quick else [DIT_CPU_TEXT_VALID, DIT_CPU_TEXT])
    for n in ([] if args.skip_dit else valid):
        results["dit"].append(bench_dit_cpu(reps, args.threads, memory=not args.quick, profile=args.profile,
                                            text_valid=n, compile=args.compile, dtype=getattr(torch, args.dtype)))
        print_dit(results["dit"][-1])
    if not args.skip_vae:
        frames = args.frames or ([9, 33] if args.quick else [9, 17, 33, 65])
        results["vae"] = bench_vae_cpu(frames, 1 if args.quick else 2, args.threads,
                                       VAE_CPU_QUICK if args.quick else VAE_CPU)
        print_vae(results["vae"])
    print(f"total {time.perf_counter() - t0:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
