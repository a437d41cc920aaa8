"""A real multi-node Ray cluster on this machine, for the cluster tests (imported by them; not a test).

:class:`LocalCluster` starts a head and worker nodes as separate ``ray start --block`` processes (each its
own process group), with token authentication (``RAY_AUTH_MODE=token`` and a fresh token file), its own
temp dir and its own ports, so it never meets another Ray on the machine. It stops only what it started:
the process groups and the descendants of its own ``ray start`` processes, by pid. ``ray stop`` is never
used (it stops every Ray of the machine's user).

The experiment runs as a Ray job (Jobs API over the dashboard's HTTP port, with the bearer token), the
way a user submits to a cluster: ``python examples/run_experiment.py <yaml> --address auto``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
RUNNER = REPO / "examples" / "run_experiment.py"
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


def wait_for(what: str, check: Callable[[], Any], timeout: float, interval: float = 0.5) -> Any:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
        except AssertionError:
            raise
        except Exception as e:  # a node or endpoint that is not up yet
            last_error, value = e, None
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what} (last error: {last_error!r})")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state, ppid, ...), or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _children() -> dict[int, list[int]]:
    """Parent pid → child pids, from /proc."""
    out: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))) is not None:
            out.setdefault(int(stat[1]), []).append(int(entry))
    return out


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid``."""
    tree, found, todo = _children(), [], [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def start_time(pid: int) -> str | None:
    """The process's start time (clock ticks since boot): with the pid, names one process for good."""
    stat = _stat(pid)
    return stat[19] if stat is not None and stat[0] != "Z" else None


def _kill(procs: dict[int, str], sig: int) -> None:
    """Signal each (pid, start time) that is still that very process (pids get reused)."""
    for pid, started in procs.items():
        if start_time(pid) == started:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)


@dataclass
class RayNode:
    """One ``ray start --block`` process (a process-group leader) and the Ray node it runs."""

    name: str
    proc: subprocess.Popen
    log: Path
    relaunch: Callable[[], subprocess.Popen]  # the same node again, on fresh ports
    node_id: str | None = None
    launches: int = 1
    known: dict[int, str] = field(default_factory=dict)  # pid → start time, of every process seen

    def snapshot(self) -> dict[int, str]:
        """Remember (and return) every process of this node that is alive now."""
        for pid in (self.proc.pid, *descendants(self.proc.pid)):
            if (started := start_time(pid)) is not None:
                self.known.setdefault(pid, started)
        return {p: t for p, t in self.known.items() if start_time(p) == t}

    def _killpg(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def kill(self) -> None:
        """SIGKILL the whole node at once: its process group and every process it started."""
        procs = self.snapshot()
        self._killpg()
        _kill(procs, signal.SIGKILL)
        self.proc.wait(timeout=30)
        wait_for(
            f"{self.name}'s processes to exit",
            lambda: all(start_time(p) != t for p, t in procs.items()),
            timeout=30,
        )

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM (Ray's graceful shutdown of the node), then SIGKILL whatever is left."""
        procs = self.snapshot()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=timeout)
        self._killpg()
        _kill(procs, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.wait(timeout=30)


class LocalCluster:
    """A head and worker nodes on this machine, each a separate Ray node (``ray start``)."""

    def __init__(self, root: Path, head_cpus: int = 1) -> None:
        self.root = root
        self.token = secrets.token_hex(32)
        self.token_file = root / "auth_token"
        self.token_file.write_text(self.token)
        self.token_file.chmod(0o600)
        self.temp_dir = root / "ray"
        self.results = root / "results"
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        env.update(
            RAY_AUTH_MODE="token",
            RAY_AUTH_TOKEN_PATH=str(self.token_file),
            RAY_USAGE_STATS_ENABLED="0",
            PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",  # `python` in entrypoints = this venv
            PYTHONUNBUFFERED="1",
        )
        self.env = env
        self.gcs_port = self.dashboard_port = 0  # picked when the head starts
        self.head: RayNode | None = None
        self.workers: list[RayNode] = []
        self.dead: list[RayNode] = []
        self._head_cpus = head_cpus
        self._n = 0

    # ------------------------------------------------------------------ nodes
    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.gcs_port}"

    @property
    def dashboard(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def _start(self, name: str, args: Callable[[], list[str]]) -> RayNode:
        """Launch one ``ray start --block`` with ``args()`` (ports picked at each launch); the node
        carries the custom resource ``rto_<name>`` so that the cluster's node list tells which it is."""
        log = self.root / f"{name}.log"

        def launch() -> subprocess.Popen:
            cmd = [
                str(VENV_BIN / "ray"),
                "start",
                "--block",
                f"--temp-dir={self.temp_dir}",
                f"--resources={json.dumps({f'rto_{name}': 1})}",
                f"--dashboard-agent-listen-port={free_port()}",
                "--min-worker-port=0",
                "--max-worker-port=0",
                "--include-log-monitor=false",
                "--disable-usage-stats",
                *args(),
            ]
            with open(log, "ab") as out:
                # its own session: the node is one process group, killed as one
                return subprocess.Popen(
                    cmd,
                    env=self.env,
                    cwd=self.root,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )

        return RayNode(name, launch(), log, launch)

    def _head_args(self) -> list[str]:
        self.gcs_port, self.dashboard_port = free_port(), free_port()
        return [
            "--head",
            f"--port={self.gcs_port}",
            f"--num-cpus={self._head_cpus}",
            "--include-dashboard=true",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={self.dashboard_port}",
            f"--ray-client-server-port={free_port()}",
        ]

    def start_head(self) -> None:
        """Start the head (GCS, dashboard, Jobs API) and wait until it is up."""
        self.head = self._start("head", self._head_args)
        self.wait_joined(self.head)

    def add_worker(self, num_cpus: int = 1, wait: bool = True) -> RayNode:
        """Start a worker node that joins the head; with ``wait=False``, :meth:`wait_joined` later."""
        self._n += 1
        args = [f"--address={self.address}", f"--num-cpus={num_cpus}"]
        node = self._start(f"worker{self._n}", lambda: args)
        self.workers.append(node)
        if wait:
            self.wait_joined(node)
        return node

    def wait_joined(self, node: RayNode, timeout: float = 180) -> str:
        """Wait until ``node`` is an ALIVE member of the cluster; its node id. A node whose
        ``ray start`` exits first (a port taken between picking and binding it) is launched again."""
        if node.node_id is not None:
            return node.node_id

        def joined() -> str | None:
            if node.proc.poll() is not None:
                if node.launches >= 3:
                    raise AssertionError(f"{node.name} exited: {node.log.read_text()[-3000:]}")
                node.stop()
                node.proc, node.launches = node.relaunch(), node.launches + 1
                return None
            for n in self.nodes():
                if n["state"] == "ALIVE" and f"rto_{node.name}" in n["resources_total"]:
                    return n["node_id"]
            return None

        node.node_id = wait_for(f"{node.name} to join", joined, timeout=timeout)
        node.snapshot()
        return node.node_id

    def kill_worker(self, node: RayNode) -> None:
        """SIGKILL a worker node (all its processes at once), as a machine failure would."""
        node.kill()
        self.workers.remove(node)
        self.dead.append(node)

    def wait_dead(self, node: RayNode, timeout: float = 120) -> None:
        """Wait until the cluster has marked ``node`` dead."""
        wait_for(
            f"{node.name} to be marked dead",
            lambda: any(n["node_id"] == node.node_id and n["state"] == "DEAD" for n in self.nodes()),
            timeout=timeout,
        )

    def shutdown(self) -> None:
        for node in [*reversed(self.workers), *self.dead]:
            node.stop()
        if self.head is not None:
            self.head.stop()

    def owns(self, pid: int) -> bool:
        """Whether ``pid`` is a process of this cluster (its environment names this cluster's token)."""
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                return f"RAY_AUTH_TOKEN_PATH={self.token_file}".encode() in f.read().split(b"\0")
        except OSError:
            return False

    def signal(self, pid: int, started: str, sig: int) -> None:
        """Send ``sig`` to the process ``(pid, start time)`` if it is still that process of this cluster."""
        if start_time(pid) == started and self.owns(pid):
            os.kill(pid, sig)

    # ------------------------------------------------------------------ HTTP API of the dashboard
    def api(self, path: str, token: str | None = None) -> Any:
        """GET ``path`` on the dashboard with the bearer token; the decoded JSON."""
        req = urllib.request.Request(self.dashboard + path)
        req.add_header("Authorization", f"Bearer {self.token if token is None else token}")
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def status_without_token(self, path: str) -> int:
        try:
            with urllib.request.urlopen(self.dashboard + path, timeout=30) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    def nodes(self) -> list[dict[str, Any]]:
        """Every node the cluster has seen (state API): node_id, state (ALIVE/DEAD), resources_total."""
        return self.api("/api/v0/nodes?limit=1000&detail=true")["data"]["result"]["result"]

    def actors(self) -> list[dict[str, Any]]:
        """Every actor, dead ones included: class_name, pid, node_id, state."""
        return self.api("/api/v0/actors?limit=10000&detail=true")["data"]["result"]["result"]

    # ------------------------------------------------------------------ jobs
    def jobs(self) -> Any:
        from ray.job_submission import JobSubmissionClient

        return JobSubmissionClient(self.dashboard, headers={"Authorization": f"Bearer {self.token}"})

    def submit(self, entrypoint: str) -> str:
        return self.jobs().submit_job(entrypoint=entrypoint, entrypoint_num_cpus=0)

    def job_status(self, job_id: str) -> str:
        return str(self.jobs().get_job_status(job_id).value)

    def wait_job(self, job_id: str, timeout: float = 240) -> str:
        status = wait_for(
            f"job {job_id}", lambda: (s := self.job_status(job_id)) in TERMINAL and s, timeout, interval=1
        )
        return status

    def job_logs(self, job_id: str) -> str:
        return self.jobs().get_job_logs(job_id)

    # ------------------------------------------------------------------ experiments
    def experiment_yaml(self, name: str, **sections: Any) -> Path:
        """An experiment YAML for examples/run_experiment.py, storing under this cluster's results."""
        spec: dict[str, Any] = {"name": name, "task": "digits-mlp", **sections}
        spec.setdefault("run", {})
        spec["run"] = {"storage_path": str(self.results), "address": "auto", **spec["run"]}
        path = self.root / f"{name}.yaml"
        path.write_text(yaml.safe_dump(spec, sort_keys=False))
        return path

    def run_experiment(self, config: Path, *extra: str) -> str:
        """Submit ``python examples/run_experiment.py CONFIG --address auto`` as a Ray job; its id."""
        return self.submit(f"python {RUNNER} {config} --address auto {' '.join(extra)}".strip())


def trial_results(experiment_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Trial folder name → every result line of its result.json, in order."""
    out = {}
    for result in sorted(experiment_dir.glob("*/result.json")):
        lines = [json.loads(line) for line in result.read_text().splitlines() if line.strip()]
        out[result.parent.name] = lines
    return out
