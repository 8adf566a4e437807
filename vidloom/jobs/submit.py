"""`vidloom submit curate|precompute|train RUN [options] -- JOB ARGS...`, `vidloom submit status RUN`,
`vidloom submit stop RUN`: vidloom jobs on a Ray cluster through the Ray Jobs API.

A thin layer over `JobSubmissionClient`: the entrypoint is `python -m vidloom.jobs.<kind> JOB ARGS`,
the working dir is this checkout (or none when the image already holds vidloom), and the
submission id is `vidloom-<kind>-<RUN>`, so a run name names one job on the cluster. On a local
cluster (`vidloom cluster up --local`) the checkout is used in place (`local://PATH`) instead of
uploaded: its nodes share this disk. The same request with plain Ray:

    RAY_AUTH_MODE=token ray job submit --address http://HEAD:8265 --submission-id vidloom-curate-RUN \\
        --working-dir . -- python -m vidloom.jobs.curate JOB ARGS...
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidloom.jobs.cluster import agent_listen_state, local_cluster_at, session_log_tails
from vidloom.platform.jobs_client import DEFAULT_ADDRESS, JobsError, call, connect, resolve_address

REPO = Path(__file__).resolve().parents[2]
# kind -> job module run by the entrypoint.
KINDS = {"curate": "vidloom.jobs.curate", "precompute": "vidloom.jobs.precompute", "train": "vidloom.jobs.train"}
RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,100}$")
# Files never uploaded with the working dir (Ray also honours .gitignore).
EXCLUDES = [".git", "**/__pycache__", "*.egg-info", "runs", "out", ".pytest_cache"]
TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}


@dataclass
class JobRequest:
    """Everything `JobSubmissionClient.submit_job` is called with."""

    submission_id: str
    entrypoint: str
    runtime_env: dict[str, Any] = field(default_factory=dict)
    entrypoint_num_cpus: float | None = None
    entrypoint_num_gpus: float | None = None
    entrypoint_memory: int | None = None
    metadata: dict[str, str] = field(default_factory=dict)

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments of `submit_job`, unset resources left out."""
        out: dict[str, Any] = {"submission_id": self.submission_id, "entrypoint": self.entrypoint,
                               "runtime_env": self.runtime_env, "metadata": self.metadata}
        for key in ("entrypoint_num_cpus", "entrypoint_num_gpus", "entrypoint_memory"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out

    def ray_cli(self, address: str) -> str:
        """The equivalent `ray job submit` command line."""
        parts = ["ray", "job", "submit", "--address", address, "--submission-id", self.submission_id]
        if self.runtime_env:
            parts += ["--runtime-env-json", json.dumps(self.runtime_env, separators=(",", ":"))]
        if self.entrypoint_num_cpus is not None:
            parts += ["--entrypoint-num-cpus", str(self.entrypoint_num_cpus)]
        if self.entrypoint_num_gpus is not None:
            parts += ["--entrypoint-num-gpus", str(self.entrypoint_num_gpus)]
        if self.entrypoint_memory is not None:
            parts += ["--entrypoint-memory", str(self.entrypoint_memory)]
        if self.metadata:
            parts += ["--metadata-json", json.dumps(self.metadata, separators=(",", ":"))]
        return " ".join(shlex.quote(p) for p in parts) + " -- " + self.entrypoint


def submission_id(kind: str, run: str) -> str:
    """`vidloom-<kind>-<run>`; the run name must be a plain name (letters, digits, `_.-`)."""
    if kind not in KINDS:
        raise JobsError(f"unknown job kind {kind!r}; one of {', '.join(KINDS)}")
    if not RUN_NAME.match(run):
        raise JobsError(f"run name {run!r} must start with a letter or digit and use only letters, digits, '_', '.', '-'")
    return f"vidloom-{kind}-{run}"


def default_working_dir(address: str | None) -> str:
    """The job's working dir for a cluster at `address`: this checkout, uploaded, except on a
    running local cluster, where it is `local://` this checkout, used in place. The local
    cluster's worker nodes are processes of this machine sharing one Ray session folder: with an
    uploaded package, each node that joins mid-job unpacks it again over the folder that other
    nodes' workers run in (their cwd vanishes). In place, nothing is unpacked or uploaded."""
    return f"local://{REPO}" if local_cluster_at(resolve_address(address)) else str(REPO)


def build_request(kind: str, run: str, job_args: list[str], *, working_dir: str | None = str(REPO),
                  pip: list[str] | None = None, image: str | None = None, env: dict[str, str] | None = None,
                  num_cpus: float | None = None, num_gpus: float | None = None,
                  memory_gb: float | None = None) -> JobRequest:
    """The job request for `vidloom.jobs.<kind>` with `job_args`.

    `working_dir` (default: this checkout) is uploaded and is the job's cwd, so
    `python -m vidloom.jobs.<kind>` imports this code (`local://PATH`: a folder every node
    already has, used in place); None when `image` (a container image,
    Ray's `image_uri`) already has vidloom installed. `pip` adds packages to the job's
    environment. The num_* / memory values reserve resources for the driver process only.
    """
    runtime_env: dict[str, Any] = {}
    if working_dir:
        runtime_env["working_dir"] = working_dir
        if not working_dir.startswith("local://"):  # nothing is packaged in place
            runtime_env["excludes"] = list(EXCLUDES)
    if image:
        runtime_env["image_uri"] = image
    if pip:
        runtime_env["pip"] = list(pip)
    env_vars = {"RAY_DATA_DISABLE_PROGRESS_BARS": "1", **(env or {})}
    runtime_env["env_vars"] = env_vars
    return JobRequest(
        submission_id=submission_id(kind, run),
        entrypoint=" ".join(shlex.quote(p) for p in ["python", "-m", KINDS[kind], *job_args]),
        runtime_env=runtime_env,
        entrypoint_num_cpus=num_cpus,
        entrypoint_num_gpus=num_gpus,
        entrypoint_memory=int(memory_gb * 2**30) if memory_gb is not None else None,
        metadata={"vidloom_kind": kind, "vidloom_run": run},
    )


AGENT_NOT_READY = "No available agent to submit job"


def job_info(client, job_id: str):
    """The job's `JobDetails`, or None when no job has this submission id."""
    try:
        return call(client, "get_job_info", job_id)
    except RuntimeError as exc:
        if isinstance(exc, JobsError) or "404" not in str(exc) and "does not exist" not in str(exc):
            raise
        return None


def submit(client, request: JobRequest, replace: bool = False, timeout_s: float = 120.0) -> str:
    """Submit `request`; an existing job with its id is an error unless `replace` (stop it if
    running, delete it, submit again)."""
    existing = job_info(client, request.submission_id)
    if existing is not None:
        if not replace:
            raise JobsError(f"run {request.metadata.get('vidloom_run')!r} already has job {request.submission_id} "
                            f"({existing.status}); pick another run name or pass --replace")
        stop_and_wait(client, request.submission_id, timeout_s)
        call(client, "delete_job", request.submission_id)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return call(client, "submit_job", **request.kwargs())
        except RuntimeError as exc:
            # A head that has just started answers before its job agent has registered;
            # Ray asks to try again later, and nothing was submitted.
            if AGENT_NOT_READY not in str(exc):
                raise
            if time.monotonic() > deadline:
                raise JobsError(agent_not_ready_message(client.get_address(), timeout_s)) from None
            print("waiting for the head node's job agent ...", file=sys.stderr)
            time.sleep(2.0)


def agent_not_ready_message(address: str, timeout_s: float) -> str:
    """Why no job could be submitted: on a local cluster, with the head's agent and job logs."""
    message = f"the head node's job agent did not come up within {timeout_s:.0f} s"
    cluster = local_cluster_at(address)
    if cluster is None:
        return message + "; see dashboard_agent.log and dashboard_JobHead.log in the head's Ray session logs"
    logs = session_log_tails(cluster, ("dashboard_agent.log", "dashboard_JobHead.log"))
    return f"{message} (agent {agent_listen_state(cluster)} on port {cluster.agent_listen_port})\n{logs}"


def stop_and_wait(client, job_id: str, timeout_s: float = 120.0) -> str:
    """Stop the job if it is still running and wait until it has ended; returns its status."""
    if str(call(client, "get_job_status", job_id)) not in TERMINAL:
        call(client, "stop_job", job_id)
    return wait(client, job_id, timeout_s)


def wait(client, job_id: str, timeout_s: float = 3600.0, poll_s: float = 1.0) -> str:
    """Block until the job is SUCCEEDED, FAILED or STOPPED; returns the status."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = str(call(client, "get_job_status", job_id))
        if status in TERMINAL:
            return status
        if time.monotonic() > deadline:
            raise JobsError(f"job {job_id} still {status} after {timeout_s:.0f} s")
        time.sleep(poll_s)


def follow(client, job_id: str, out=sys.stdout) -> str:
    """Stream the job's logs until it ends; returns its final status."""

    async def _tail() -> None:
        async for lines in client.tail_job_logs(job_id):
            out.write(lines)
            out.flush()

    asyncio.run(_tail())
    return wait(client, job_id, timeout_s=60)


def resolve_job_id(client, run: str, kind: str | None = None) -> str:
    """A full submission id, or the one job `vidloom-<kind>-<run>` that exists."""
    if run.startswith("vidloom-") or kind:
        return run if run.startswith("vidloom-") else submission_id(kind, run)
    found = [submission_id(k, run) for k in KINDS if job_info(client, submission_id(k, run)) is not None]
    if len(found) != 1:
        what = "no job" if not found else f"several jobs ({', '.join(found)}); pass --kind"
        raise JobsError(f"run {run!r}: {what}")
    return found[0]


def describe(info) -> str:
    """Status lines of one job, for `vidloom submit status`."""
    def when(ms):
        return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000)) + " UTC" if ms else "-"

    lines = [f"{info.submission_id}: {info.status}", f"  entrypoint: {info.entrypoint}",
             f"  started: {when(info.start_time)}  ended: {when(info.end_time)}"]
    if info.message:
        lines.append(f"  message: {info.message}")
    return "\n".join(lines)


def _key_values(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise JobsError(f"--env takes KEY=VALUE, got {item!r}")
        out[key] = value
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vidloom submit", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    def common(s):
        s.add_argument("--address", help="Jobs API of the cluster (default: RAY_ADDRESS, else http://127.0.0.1:8265)")
        s.add_argument("--auth", choices=["token", "disabled"],
                       help="token authentication (default: RAY_AUTH_MODE); token from RAY_AUTH_TOKEN or ~/.ray/auth_token")

    for kind in KINDS:
        s = sub.add_parser(kind, help=f"submit `python -m {KINDS[kind]} ARGS` as job vidloom-{kind}-RUN")
        s.add_argument("run", help="run name; the job's submission id is vidloom-%s-RUN" % kind)
        common(s)
        s.add_argument("--working-dir", help="uploaded as the job's cwd (default: this checkout; on a local cluster "
                       "local://CHECKOUT, used in place); local://PATH: a folder every node has; "
                       "'none' when --image already contains vidloom")
        s.add_argument("--image", help="container image of the job (Ray's runtime_env image_uri)")
        s.add_argument("--pip", action="append", default=[], help="extra pip requirement of the job (repeatable)")
        s.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="environment variable (repeatable)")
        s.add_argument("--num-cpus", type=float, help="CPUs reserved for the driver (default 0: drivers run on the head)")
        s.add_argument("--num-gpus", type=float, help="GPUs reserved for the driver")
        s.add_argument("--memory-gb", type=float, help="memory reserved for the driver")
        s.add_argument("--replace", action="store_true", help="stop and delete an existing job of this run first")
        s.add_argument("--follow", "-f", action="store_true", help="stream the logs until the job ends")
        s.add_argument("--dry-run", action="store_true", help="print the equivalent `ray job submit` and exit")
    for name, text in (("status", "status of a run's job"), ("stop", "stop a run's job")):
        s = sub.add_parser(name, help=text)
        s.add_argument("run", help="run name or full submission id")
        s.add_argument("--kind", choices=list(KINDS), help="job kind, when a run name has several")
        common(s)
        if name == "status":
            s.add_argument("--logs", action="store_true", help="print the job's logs too")
            s.add_argument("--follow", "-f", action="store_true", help="stream the logs until the job ends")
        else:
            s.add_argument("--wait", action="store_true", help="wait until the job has stopped")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything after the first `--` belongs to the job module, untouched by this parser.
    job_args = argv[argv.index("--") + 1:] if "--" in argv else []
    args = build_parser().parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    try:
        if args.command in KINDS:
            working_dir = args.working_dir or default_working_dir(args.address)
            if working_dir.lower() == "none":
                working_dir = None
            elif not working_dir.startswith("local://"):
                working_dir = str(Path(working_dir).resolve())
            request = build_request(
                args.command, args.run, job_args, working_dir=working_dir,
                pip=args.pip, image=args.image, env=_key_values(args.env),
                num_cpus=args.num_cpus, num_gpus=args.num_gpus, memory_gb=args.memory_gb)
            if args.dry_run:
                print(request.ray_cli(args.address or DEFAULT_ADDRESS))
                return 0
            client = connect(args.address, args.auth)
            job_id = submit(client, request, replace=args.replace)
            print(f"submitted {job_id}\n  logs:   vidloom submit status {args.run} --logs\n  stop:   vidloom submit stop {args.run}")
            if args.follow:
                status = follow(client, job_id)
                print(f"{job_id}: {status}")
                return 0 if status == "SUCCEEDED" else 1
            return 0
        client = connect(args.address, args.auth)
        job_id = resolve_job_id(client, args.run, args.kind)
        if args.command == "stop":
            stopped = call(client, "stop_job", job_id)
            print(f"{job_id}: {'stop requested' if stopped else 'already ended'}")
            if args.wait:
                print(f"{job_id}: {wait(client, job_id, timeout_s=300)}")
            return 0
        if args.follow:
            follow(client, job_id)
        elif args.logs:
            print(call(client, "get_job_logs", job_id), end="")
        print(describe(call(client, "get_job_info", job_id)))
        return 0
    except JobsError as exc:
        print(f"vidloom submit: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
