"""Serving benchmark: what Ray Serve and HTTP add to one generation, and what batching buys.

    python benchmarks/serving.py                 # a fresh tiny model, CPU
    python benchmarks/serving.py --model RUN/final --size 128x128 --frames 17 --steps 20

Prints, with the same model and parameters:
  (a) one request alone: end to end over HTTP (POST /v1/videos/sync) vs the same generation
      in-process (`TextToVideoPipeline`), timed in turn: the platform's overhead, target <= 1.15x,
      at 10 steps and at 50 (the served default for a CFG model; --steps);
  (b) 8 concurrent same-shape requests (POST /v1/videos/sync, so the clients' status polls do
      not load the two cores): throughput with DiT batching on vs off, target >= 1.5x, at 10
      steps and at 50 (--batch-steps). Each mode runs with the DiT replica at 1 torch thread and
      at one per core (--dit-threads; the other replicas keep --threads): a batch of 8 has GEMMs
      large enough to use more cores, one request's do not, and beside the VAE decodes extra
      threads only contend. It prints every figure, the ratio at equal threads, and the
      headline: each mode at its best thread count;
  (c) time per deployment (mean of the jobs' extras).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vidloom.models.fast_path import FAST_PATH_MODES, SERVE_FAST_PATH  # noqa: E402
APP = "vidloom-bench"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tiny_export(folder: Path) -> str:
    from vidloom.models.dit.config import get_config
    from vidloom.models.dit.loading import build_dit, save_dit

    meta = {"text_encoder": {"spec": "tiny", "state_dim": 32, "pooled_dim": 24}, "vae": {"source": "tiny"},
            "limits": {"max_height": 256, "max_width": 256, "max_frames": 33}}
    return str(save_dit(build_dit(get_config("tiny")), folder, meta=meta))


def _deploy(model: str, storage: str, port: int, batch: int, threads: int | dict[str, int], fast_path: str):
    from ray import serve

    from vidloom.serving.app import DEPLOYMENTS, build_app

    app = build_app({"model": model, "storage": storage, "num_cpus": 0, "torch_threads": threads,
                     "fast_path": fast_path, "max_batch_size": batch, "batch_wait_timeout_s": 0.2,
                     "poll_after_ms": 100, "max_queue": 64,
                     "replicas": {n: 1 for n in DEPLOYMENTS}})
    serve.run(app, name=APP, route_prefix="/")
    return f"http://127.0.0.1:{port}"


def _median_seconds(fns: list, repeat: int) -> list[float]:
    """Median wall time of each of `fns` over `repeat` rounds, after one untimed warm-up call of
    each. The calls alternate, so a change in the machine's background load hits all alike."""
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for fn, spent in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            spent.append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


def _sync_request(url: str, body: dict) -> requests.Response:
    r = requests.post(f"{url}/v1/videos/sync", json=body, timeout=600)
    assert r.status_code == 200, r.text
    return r


def _concurrent(url: str, body: dict, n: int) -> tuple[float, list[dict]]:
    """`n` requests at once, each waiting on its own connection; returns the wall time and the
    jobs' records (their extras hold the batch size and the time per deployment)."""
    def one(seed: int) -> str:
        return _sync_request(url, {**body, "seed": seed}).headers["x-video-id"]

    t0 = time.perf_counter()
    with ThreadPoolExecutor(n) as pool:
        ids = list(pool.map(one, range(n)))
    seconds = time.perf_counter() - t0
    return seconds, [requests.get(f"{url}/v1/videos/{i}", timeout=60).json() for i in ids]


def run(args: argparse.Namespace) -> str:
    import torch
    from ray import serve

    from vidloom.platform.ray_runtime import init_ray
    from vidloom.serving.jobs import stop_store
    from vidloom.serving.model import resolve_model
    from vidloom.serving.params import parse_request, resolve_params
    from vidloom.serving.pipeline import TextToVideoPipeline

    tmp = Path(tempfile.mkdtemp(prefix="vidloom-bench-serving-"))
    model = args.model or _tiny_export(tmp / "model")
    width, height = (int(v) for v in args.size.split("x"))
    body = {"prompt": "a red fox runs through fresh snow, camera pans left", "size": args.size,
            "num_frames": args.frames, "num_inference_steps": args.steps[0], "seed": 0, "rewrite": "normal"}

    # (a) in-process baseline: the same stages in this process, same thread count as a replica,
    # timed in turn with the HTTP requests once the app runs (Ray's own processes idle beside both).
    torch.set_num_threads(args.threads)
    spec = resolve_model(model)
    pipe = TextToVideoPipeline(spec, fast_path=args.fast_path)

    init_ray(num_cpus=args.num_cpus)
    port = _free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    lines = [f"serving benchmark: {spec.model_id} ({spec.num_parameters / 1e6:.2f} M parameters), "
             f"{width}x{height}x{args.frames} frames, {args.threads} torch thread(s) per replica, "
             f"fast path {args.fast_path}"]
    try:
        url = _deploy(model, str(tmp / "store"), port, 8, args.threads, args.fast_path)
        _concurrent(url, body, 2)  # warm-up of the replicas' first batched call
        for steps in args.steps:
            one = {**body, "num_inference_steps": steps}
            params = resolve_params(parse_request(one), spec)
            a_local, a_http = _median_seconds([partial(pipe, params), partial(_sync_request, url, one)], args.repeat)
            lines.append(f"(a) one request, {steps} steps: in-process {a_local:.2f} s, HTTP + Serve {a_http:.2f} s -> "
                         f"{a_http / a_local:.2f}x (target <= 1.15x); fixed cost {1000 * (a_http - a_local):.0f} ms")

        # (b) at each step count: batching pays where denoising is most of a request (the served
        # default is 50 steps; at 10 the unbatched VAE decode and mp4 are a large share).
        runs: dict[tuple[str, int, int], tuple[float, list[dict]]] = {}
        for mode, batch in (("on", 8), ("off", 1)):
            for dit_threads in args.dit_threads:
                threads = {"DiT": dit_threads, "TextEncoder": args.threads, "VAEDecoder": args.threads}
                url = _deploy(model, str(tmp / "store"), port, batch, threads, args.fast_path)
                _concurrent(url, body, 2)  # warm-up of this deployment's path
                for steps in args.batch_steps:
                    runs[(mode, dit_threads, steps)] = _concurrent(url, {**body, "num_inference_steps": steps}, 8)
        for steps in args.batch_steps:
            rate = {(mode, t): 8 / runs[(mode, t, steps)][0] for mode in ("on", "off") for t in args.dit_threads}
            for t in args.dit_threads:
                sizes = [j["extras"]["batch_size"] for j in runs[("on", t, steps)][1]]
                lines.append(f"(b) 8 concurrent, {steps} steps, DiT at {t} thread(s): batching on {rate[('on', t)]:.2f} "
                             f"videos/s (DiT batches up to {max(sizes)}), off {rate[('off', t)]:.2f} videos/s -> "
                             f"{rate[('on', t)] / rate[('off', t)]:.2f}x at equal threads")
            on = max(args.dit_threads, key=lambda t: rate[("on", t)])
            off = max(args.dit_threads, key=lambda t: rate[("off", t)])
            lines.append(f"(b) 8 concurrent, {steps} steps, each mode at its best DiT thread count: on ({on}) "
                         f"{rate[('on', on)]:.2f} / off ({off}) {rate[('off', off)]:.2f} videos/s -> "
                         f"{rate[('on', on)] / rate[('off', off)]:.2f}x (target >= 1.5x)")
            for name, t in (("on", on), ("off", off)):
                jobs = runs[(name, t, steps)][1]
                keys = jobs[0]["extras"]["timings_s"]
                means = {k: statistics.mean(j["extras"]["timings_s"][k] for j in jobs) for k in keys}
                lines.append(f"    (c) time per deployment, {steps} steps, batching {name}, DiT at {t} thread(s): "
                             + ", ".join(f"{k} {v:.3f} s" for k, v in means.items())
                             + f"; end to end {statistics.mean(j['extras']['total_s'] for j in jobs):.2f} s")
    finally:
        serve.delete(APP)
        stop_store(APP)
        serve.shutdown()
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="a DiT export (default: a fresh tiny model)")
    p.add_argument("--size", default="128x128")
    p.add_argument("--frames", type=int, default=9)
    p.add_argument("--steps", type=lambda t: [int(x) for x in t.split(",")], default=[10, 50],
                   help="denoising steps of the (a) runs, comma-separated (50 = the served default)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch threads in-process and per replica")
    p.add_argument("--batch-steps", type=lambda t: [int(x) for x in t.split(",")], default=[10, 50],
                   help="denoising steps of the (b) runs, comma-separated (50 = the served default)")
    p.add_argument("--dit-threads", type=lambda t: sorted({int(x) for x in t.split(",")}),
                   default=sorted({1, os.cpu_count() or 1}),
                   help="torch threads of the DiT replica in (b), comma-separated (default: 1 and one per core)")
    p.add_argument("--fast-path", choices=FAST_PATH_MODES, default=SERVE_FAST_PATH,
                   help="the DiT's fast path, in-process and served (default: the server's)")
    p.add_argument("--num-cpus", type=int, help="CPUs of the local Ray (default: all)")
    print(run(p.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
