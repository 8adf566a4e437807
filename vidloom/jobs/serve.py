"""`vidloom serve`: the text-to-video service on a local Ray (or `--address`), until Ctrl-C.

``app`` is the application builder for Ray Serve's own tools::

    serve run vidloom.jobs.serve:app model=/data/runs/train/final storage=/data/serve
    serve deploy cluster/serve/serve_config.yaml      # import_path: vidloom.jobs.serve:app
"""

from __future__ import annotations

import argparse
import sys
import time

from vidloom.jobs.arguments import add_ray_options
from vidloom.models.fast_path import FAST_PATH_MODES, SERVE_FAST_PATH
from vidloom.platform.config import ConfigError
from vidloom.serving.app import ServeAppConfig, build_app

#: The Serve application builder (``serve run vidloom.jobs.serve:app key=value ...``).
app = build_app
APP_NAME = "vidloom"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vidloom serve", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="a training export (RUN/final), diffusers folder or official checkpoint "
                                   "(default: a random tiny model, so the API can be tried; its videos are noise)")
    p.add_argument("--vae", help="VAE export or config name (default: what the export records, else tiny)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 for every interface)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key-env", metavar="NAME", help="require Authorization: Bearer $NAME on /v1 routes")
    p.add_argument("--storage", default="/tmp/vidloom-serve", help="job records and results")
    p.add_argument("--rewriter", help="prompt rewriter backend: keyword (default), openai, local")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    p.add_argument("--max-queue", type=int, default=16, help="queued + running jobs before 429")
    p.add_argument("--timeout-s", type=float, default=600.0, help="limit of one generation")
    p.add_argument("--sequence-parallel", type=int, default=1, metavar="P",
                   help="ranks per DiT replica (Ulysses; P divides the DiT's heads): docs/parallelism.md")
    p.add_argument("--fast-path", choices=FAST_PATH_MODES, default=SERVE_FAST_PATH,
                   help="the DiT's fused kernels (on, the default), plus torch.compile of its blocks (compile); "
                        "off: bit-identical to diffusers; as in training")
    add_ray_options(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from ray import serve

    from vidloom.platform.ray_runtime import init_ray
    from vidloom.platform.config import validate
    from vidloom.serving.jobs import stop_store

    fields = {"model": args.model, "vae": args.vae, "api_key_env": args.api_key_env, "storage": args.storage,
              "rewriter": args.rewriter, "device": args.device, "dtype": args.dtype, "max_queue": args.max_queue,
              "timeout_s": args.timeout_s, "sequence_parallel": args.sequence_parallel, "fast_path": args.fast_path}
    # Local CPUs are shared by all five deployments: each replica asks for a fraction.
    if not (args.address or args.device != "cpu"):
        fields["num_cpus"] = 0.1
    try:
        config = validate(ServeAppConfig, {k: v for k, v in fields.items() if v is not None})
        application = build_app(config)
    except ConfigError as exc:
        print(f"vidloom serve: {exc}", file=sys.stderr)
        return 2
    init_ray(args.address, args.num_cpus)
    serve.start(http_options={"host": args.host, "port": args.port})
    serve.run(application, name=APP_NAME, route_prefix="/")
    host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    url = f"http://{host}:{args.port}"
    print(f"vidloom serve: {url}/ (web page), {url}/v1 (OpenAI Videos API), {url}/docs; Ctrl-C stops", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        serve.delete(APP_NAME)
        stop_store(APP_NAME)
        serve.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
