"""`vidloom cluster up --local` / `vidloom cluster down --local`: an autoscaling Ray cluster on
this machine (Ray's fake_multinode provider), and `up aws|gcp` / `down aws|gcp` as the plain
`ray up` / `ray down` of the YAMLs in cluster/.

The local cluster is a head that schedules nothing (CPU: 0) plus a CPU worker type and a
fake-GPU worker type from cluster/local/autoscaling.yaml; the autoscaler adds and removes
workers as jobs ask for resources. Every port is chosen by the caller, so several clusters
(other users' included) can run side by side, and `down` stops only this cluster's processes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlparse

import yaml

REPO = Path(__file__).resolve().parents[2]
LOCAL_CONFIG = REPO / "cluster" / "local" / "autoscaling.yaml"
CLOUD_CONFIGS = {"aws": REPO / "cluster" / "aws.yaml", "gcp": REPO / "cluster" / "gcp.yaml"}
# One file per running local cluster, named by its dashboard port, so `vidloom submit` can tell
# that an address is a local cluster (whose nodes all share this machine's disk).
REGISTRY = Path(tempfile.gettempdir()) / "vidloom-local-clusters"


@dataclass
class LocalCluster:
    """Ports and folders of one local cluster; `base` + offsets give every port it uses."""

    base: int = 6379
    temp_dir: str = ""
    object_store_bytes: int = 200_000_000

    @property
    def gcs_port(self) -> int:
        return self.base

    @property
    def dashboard_port(self) -> int:
        return self.base + 1

    @property
    def client_port(self) -> int:
        return self.base + 2

    @property
    def agent_listen_port(self) -> int:
        return self.base + 3

    @property
    def metrics_port(self) -> int:
        return self.base + 4

    @property
    def worker_ports(self) -> tuple[int, int]:
        return self.base + 100, self.base + 299

    @property
    def address(self) -> str:
        """GCS address, for `ray.init(address=...)` and `ray status --address`."""
        return f"127.0.0.1:{self.gcs_port}"

    @property
    def dashboard_url(self) -> str:
        """Jobs API / dashboard address, for `ray job submit --address` and `vidloom submit`."""
        return f"http://127.0.0.1:{self.dashboard_port}"

    @property
    def state_dir(self) -> Path:
        return Path(self.temp_dir or f"/tmp/vidloom-ray-{self.base}")

    @property
    def registry_file(self) -> Path:
        """Where `up` records this cluster until `down` (named by its dashboard port)."""
        return REGISTRY / f"{self.dashboard_port}.json"

    @property
    def session_dir(self) -> Path:
        """The running (newest) Ray session's folder: its logs and the ports its processes bound."""
        return self.state_dir / "ray" / "session_latest"

    def fixed_ports(self) -> dict[int, str]:
        """Every port this cluster asks Ray for, with what listens there."""
        lo, hi = self.worker_ports
        named = {self.gcs_port: "GCS", self.dashboard_port: "dashboard", self.client_port: "Ray client server",
                 self.agent_listen_port: "dashboard agent (job submission)", self.metrics_port: "metrics export"}
        return {**{p: "worker" for p in range(lo, hi + 1)}, **named}


def render_local_config(cluster: LocalCluster, idle_timeout_minutes: float | None = None,
                        cpu_workers: int | None = None, gpu_workers: int | None = None) -> dict:
    """cluster/local/autoscaling.yaml with this cluster's GCS address and optional limits."""
    config = yaml.safe_load(LOCAL_CONFIG.read_text())
    config["provider"]["gcs_address"] = cluster.address
    if idle_timeout_minutes is not None:
        config["idle_timeout_minutes"] = idle_timeout_minutes
    types = config["available_node_types"]
    if cpu_workers is not None:
        types["cpu_worker"]["max_workers"] = cpu_workers
    if gpu_workers is not None:
        types["gpu_worker"]["max_workers"] = gpu_workers
    config["max_workers"] = types["cpu_worker"]["max_workers"] + types["gpu_worker"]["max_workers"]
    return config


def start_command(cluster: LocalCluster, config_path: Path) -> list[str]:
    """The `ray start --head` line of a local autoscaling cluster (no default port used)."""
    lo, hi = cluster.worker_ports
    return [
        "ray", "start", "--head", f"--autoscaling-config={config_path}",
        "--node-ip-address=127.0.0.1",
        f"--port={cluster.gcs_port}", f"--dashboard-port={cluster.dashboard_port}",
        "--dashboard-host=127.0.0.1", "--include-dashboard=true",
        f"--ray-client-server-port={cluster.client_port}",
        f"--dashboard-agent-listen-port={cluster.agent_listen_port}",
        f"--metrics-export-port={cluster.metrics_port}",
        f"--min-worker-port={lo}", f"--max-worker-port={hi}",
        f"--temp-dir={cluster.state_dir / 'ray'}",
        f"--object-store-memory={cluster.object_store_bytes}",
        "--num-cpus=0", "--num-gpus=0", "--disable-usage-stats",
    ]


def busy_ports(cluster: LocalCluster) -> list[str]:
    """The cluster's ports that another socket already holds, each with its role and holder.

    Checked like Ray's servers bind (SO_REUSEADDR), so a port in TIME_WAIT counts as free.
    """
    import socket

    busy = []
    for port, role in cluster.fixed_ports().items():
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("", port))
            except OSError:
                busy.append(f"{port} ({role}) is in use by {_port_holder(port)}")
    return busy


def _port_holder(port: int) -> str:
    import psutil

    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == port and conn.pid:
                try:
                    return f"pid {conn.pid} ({' '.join(psutil.Process(conn.pid).cmdline()[:3])[:120]})"
                except psutil.Error:
                    return f"pid {conn.pid}"
    except psutil.Error:
        pass
    return "another process"


def session_log_tails(cluster: LocalCluster, names: tuple[str, ...], lines: int = 30) -> str:
    """The last `lines` lines of each of the head's Ray logs `names` (dashboard_agent.log, ...),
    each headed by its path."""
    parts = []
    for name in names:
        log = cluster.session_dir / "logs" / name
        try:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            tail = "(no such log)"
        parts.append(f"--- {log}:\n{tail}")
    return "\n".join(parts)


def agent_listen_state(cluster: LocalCluster) -> str:
    """`ready` once the head's dashboard agent serves job submission on its port, `failed` when
    it could not listen there (Ray keeps such an agent alive without its HTTP server, and the
    Jobs API answers "no available agent" forever), else `starting`.

    The agent writes the port it bound, or -1, to the session folder right before it registers
    its address for the Jobs API.
    """
    values = []
    for f in cluster.session_dir.glob("dashboard_agent_listen_port_*"):
        try:
            values.append(f.read_text().strip())
        except OSError:
            continue
    if str(cluster.agent_listen_port) in values:
        return "ready"
    return "failed" if "-1" in values else "starting"


def up_local(cluster: LocalCluster, idle_timeout_minutes: float | None = None, cpu_workers: int | None = None,
             gpu_workers: int | None = None, timeout_s: float = 180.0, attempts: int = 2) -> LocalCluster:
    """Start the head of a local autoscaling cluster and wait until its Jobs API accepts jobs.

    A head whose job agent or node module did not come up is stopped and started again, up to
    `attempts` starts in all (each gets `timeout_s`); the reason is printed to stderr.
    """
    busy = busy_ports(cluster)
    if busy:
        raise RuntimeError(f"the local cluster on port {cluster.base} needs ports {cluster.base}-{cluster.metrics_port} "
                           f"and {cluster.worker_ports[0]}-{cluster.worker_ports[1]}, but " + "; ".join(busy[:5])
                           + "; pick another --port or stop what holds them")
    state = cluster.state_dir
    state.mkdir(parents=True, exist_ok=True)
    config_path = state / "autoscaling.yaml"
    config_path.write_text(yaml.safe_dump(render_local_config(cluster, idle_timeout_minutes, cpu_workers, gpu_workers)))
    for attempt in range(1, attempts + 1):
        why = _start_head(cluster, config_path, timeout_s)
        if why is None:
            return cluster
        down_local(cluster)
        if attempt < attempts:
            print(f"vidloom cluster: start {attempt} of the head on port {cluster.base} failed "
                  f"({why.splitlines()[0]}); starting it again", file=sys.stderr)
    raise RuntimeError(f"the local cluster on port {cluster.base} did not start ({attempts} tries): {why}")


def _start_head(cluster: LocalCluster, config_path: Path, timeout_s: float) -> str | None:
    """`ray start` the head and wait until jobs can be submitted; None, or why not (with logs)."""
    REGISTRY.mkdir(parents=True, exist_ok=True)
    cluster.registry_file.write_text(json.dumps(asdict(cluster)))
    env = {**os.environ, "RAY_FAKE_CLUSTER": "1"}
    # Jobs must not inherit an address pointing elsewhere.
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run(start_command(cluster, config_path), env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        return f"ray start failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    deadline = time.monotonic() + timeout_s
    while True:
        # Jobs go through the head's dashboard agent, which starts after the dashboard.
        state = agent_listen_state(cluster)
        listed = state == "ready" and _head_node_listed(cluster.dashboard_url)
        if listed:
            return None
        if state == "failed" or time.monotonic() > deadline:
            why = (f"its dashboard agent could not listen on port {cluster.agent_listen_port} (now held by "
                   f"{_port_holder(cluster.agent_listen_port)}), so no job could be submitted"
                   if state == "failed" else
                   f"within {timeout_s:.0f} s, the job agent (port {cluster.agent_listen_port}: {state}) or the "
                   f"dashboard at {cluster.dashboard_url} (head node listed: {listed}) "
                   "did not come up")
            logs = session_log_tails(cluster, ("dashboard_agent.log", "dashboard.log", "dashboard_NodeHead.log",
                                               "dashboard_JobHead.log"), lines=20)
            return f"{why}\n{logs}"
        time.sleep(1)


def _head_node_listed(url: str) -> bool:
    """The dashboard lists the head node alive. Its node module records the head's id for the
    Jobs API just before listing it; until then every submission is refused with "no available
    agent", however long the agent itself has been up."""
    import requests

    from vidloom.platform.jobs_client import JobsError, auth_headers

    try:
        token_auth = requests.get(f"{url}/api/version", timeout=5).status_code == 401
        headers = auth_headers("token" if token_auth else "disabled")[0]
        r = requests.get(f"{url}/nodes?view=summary", headers=headers, timeout=5)
        nodes = r.json()["data"]["summary"] if r.status_code == 200 else []
    except (requests.RequestException, ValueError, KeyError, JobsError):
        return False
    return any(n.get("raylet", {}).get("isHeadNode") and n["raylet"].get("state") == "ALIVE" for n in nodes)


def cluster_pids(cluster: LocalCluster) -> list[int]:
    """Processes of this cluster only: every Ray process it runs names its temp dir or its
    GCS address on its command line (fake worker nodes included)."""
    import psutil

    port = cluster.gcs_port
    # (?!\d): port 6379 must not match another cluster's 63790. The Ray client server names the
    # GCS by the machine's own IP (--address=192.0.2.2:PORT), whatever the node IP is.
    marker = re.compile(rf"{re.escape(str(cluster.state_dir))}(?![\w-])|127\.0\.0\.1:{port}(?!\d)"
                        rf"|--gcs_server_port={port}(?!\d)|--(?:gcs[-_])?address=[\w.:\[\]-]*:{port}(?!\d)")
    me = os.getpid()
    pids = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(p.info.get("cmdline") or [])
        if p.info["pid"] != me and marker.search(cmd):
            pids.append(p.info["pid"])
            # Agents and dashboard modules retitle themselves (ray::DashboardAgent, ...).
            try:
                pids += [c.pid for c in p.children(recursive=True)]
            except psutil.Error:
                pass
    return sorted(set(pids))


def registered_cluster(base: int) -> LocalCluster | None:
    """The local cluster `vidloom cluster up --local --port BASE` recorded (its temp dir included)."""
    try:
        return LocalCluster(**json.loads(LocalCluster(base=base).registry_file.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def local_cluster_at(address: str) -> LocalCluster | None:
    """The running local cluster whose Jobs API is `address` (http://127.0.0.1:PORT), else None."""
    url = urlparse(address if "://" in address else f"http://{address}")
    if url.hostname not in ("127.0.0.1", "localhost") or url.port is None:
        return None
    cluster = registered_cluster(url.port - 1)
    # A file left by a cluster that was killed without `down` names no running processes.
    return cluster if cluster is not None and cluster_pids(cluster) else None


def down_local(cluster: LocalCluster, grace_s: float = 10.0) -> int:
    """Stop every process of this local cluster (SIGTERM, then SIGKILL); returns how many."""
    import psutil

    cluster.registry_file.unlink(missing_ok=True)
    procs = []
    for pid in cluster_pids(cluster):
        try:
            procs.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            continue
    for p in procs:
        try:
            p.send_signal(signal.SIGTERM)
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=grace_s)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=5)
    # Worker nodes of the fake provider may have been spawned between the scan and the kill.
    late = cluster_pids(cluster)
    for pid in late:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return len(procs) + len(late)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vidloom cluster", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="action", required=True)
    for action in ("up", "down"):
        s = sub.add_parser(action, help=f"{action} a local autoscaling cluster or a cloud one")
        s.add_argument("target", nargs="?", choices=sorted(CLOUD_CONFIGS), help="cloud cluster (ray up/down of cluster/<target>.yaml)")
        s.add_argument("--local", action="store_true", help="the local fake multi-node cluster")
        s.add_argument("--port", type=int, default=6379,
                       help="GCS port of the local cluster; the dashboard is port+1, client port+2, "
                            "agent port+3, metrics port+4, workers port+100..port+299 (default 6379)")
        s.add_argument("--temp-dir", default="", help="Ray temp dir of the local cluster (default /tmp/vidloom-ray-PORT)")
        if action == "up":
            s.add_argument("--idle-timeout-min", type=float, help="minutes before an idle worker is removed")
            s.add_argument("--cpu-workers", type=int, help="most CPU workers (default from the YAML)")
            s.add_argument("--gpu-workers", type=int, help="most fake-GPU workers (default from the YAML)")
        s.add_argument("--dry-run", action="store_true", help="print the commands instead of running them")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.local == bool(args.target):
        print("vidloom cluster: give either --local or a cloud target (aws, gcp)", file=sys.stderr)
        return 2
    if args.target:
        cmd = ["ray", args.action, "-y", str(CLOUD_CONFIGS[args.target])]
        print(" ".join(cmd))
        return 0 if args.dry_run else subprocess.call(cmd, cwd=REPO)
    cluster = LocalCluster(base=args.port, temp_dir=args.temp_dir)
    if args.action == "down" and not args.temp_dir:
        # `up --temp-dir X` recorded X: without it, `down` would miss the processes that name only X.
        cluster = registered_cluster(args.port) or cluster
    if args.action == "up":
        if args.dry_run:
            print(" ".join(["RAY_FAKE_CLUSTER=1", *start_command(cluster, cluster.state_dir / "autoscaling.yaml")]))
            return 0
        try:
            up_local(cluster, args.idle_timeout_min, args.cpu_workers, args.gpu_workers)
        except RuntimeError as exc:
            print(f"vidloom cluster: {exc}", file=sys.stderr)
            return 1
        print(f"local autoscaling cluster up: GCS {cluster.address}, dashboard/jobs {cluster.dashboard_url}\n"
              f"  submit:  vidloom submit curate RUN INPUT... --address {cluster.dashboard_url}\n"
              f"  status:  ray status --address {cluster.address}\n"
              f"  stop:    vidloom cluster down --local --port {cluster.base}"
              + (f" --temp-dir {cluster.temp_dir}" if cluster.temp_dir else ""))
        return 0
    if args.dry_run:
        print("\n".join(str(pid) for pid in cluster_pids(cluster)))
        return 0
    n = down_local(cluster)
    print(f"stopped {n} processes of the local cluster on port {cluster.base}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
