"""A real two-node Ray cluster on this machine: an experiment submitted through the Jobs API runs its
trials on both nodes, survives the loss of the worker node and of a trial's process, and the dashboard's
HTTP API lists the job.

One run (the module fixture ``faulted_run``) carries every check, to keep the cluster tests short:

* the head (1 CPU) and the worker (1 CPU) are separate ``ray start`` nodes with token authentication;
* the job is ``python examples/run_experiment.py <yaml> --address auto``: three grid trials of a gated
  ``digits-mlp`` (registered by the experiment's ``imports``; trained full-batch, one batch an epoch)
  with 3, 12 and 13 epochs, a checkpoint every epoch and ``run.max_failures: 3``;
* paced by a gate, not by the machine's speed: a trial's first process waits at the start of its 4th
  epoch (after reporting and checkpointing 3) until the test opens the gate, so the short trial
  finishes and each long one is held; when both long trials wait, one on each node, the test SIGKILLs
  the worker node (its process group and every process it started) and the process of the trial on
  the head, then opens the gate;
* both interrupted trials must resume from their last checkpoint (the first epoch their new process
  reports is the one after the last epoch reported before the kill), every epoch appears exactly once,
  and the finished trial is never run again.

Which node ran a trial: result.json records the trial's pid; the dashboard's state API
(``/api/v0/actors``) maps each trial actor's pid to its node id.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path
from typing import Any

import pytest
from cluster_harness import VENV_BIN, LocalCluster, start_time, trial_results, wait_for
from gated_tasks import write_gated_tasks

#: the class names of trial actors in Ray's state API (raytune_opt.train.trainable names them)
TRIAL_ACTORS = ("raytune_opt_trial", "raytune_opt_ddp_trial")


#: the grid's trials: a short one that finishes first, then two that the faults interrupt
EPOCHS = (3, 12, 13)
HOLD_AT = EPOCHS[0]  # a trial's first process waits after reporting this many epochs: only the long ones


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    """A head (1 CPU) and one worker node (1 CPU) for this module; everything stopped at its end."""
    root = Path(tempfile.mkdtemp(prefix="rto-", dir="/tmp"))  # short: Ray's socket paths must fit
    c = LocalCluster(root)
    try:
        c.start_head()
        c.add_worker(wait=False)  # joins while the first job's driver starts
        yield c
    finally:
        c.shutdown()
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class FaultedRun:
    """What the test saw of one experiment run with a worker node and a trial process killed."""

    cluster: LocalCluster
    job_id: str
    status: str
    logs: str
    exp_dir: Path
    results: dict[str, list[dict[str, Any]]]  # trial → result lines, in order
    node_of_pid: dict[int, str]  # trial actor pid → node id
    killed_at: float
    finished_before: str  # the trial that had finished before the kills
    on_worker: str  # the trial running on the worker node when it was killed
    on_head: str  # the trial running on the head whose process was killed


def _epochs(lines: list[dict[str, Any]]) -> list[int]:
    return [r["epoch"] for r in lines]


def _segments(lines: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Consecutive result lines of one process (pid): one segment per (re)start of the trial."""
    return [list(g) for _, g in groupby(lines, key=lambda r: r["pid"])]


@pytest.fixture(scope="module")
def faulted_run(cluster: LocalCluster) -> FaultedRun:
    head_id = cluster.head.node_id
    worker = cluster.workers[0]
    write_gated_tasks(cluster.root)
    gate = cluster.root / "gate"
    gate.mkdir()
    config = cluster.experiment_yaml(
        "faults",
        imports=["gated_tasks.py"],  # gated_tasks: a process that trained HOLD_AT epochs waits at the gate
        task={"name": "epoch-gated-digits", "args": {"gate": str(gate), "hold": HOLD_AT, "hidden": 128}},
        train={"batch_size": "full", "checkpoint_every": 1, "seed": 0},
        optimizer={"name": "sgd", "lr": 0.1},
        search={
            "strategy": "grid",
            "space": {"epochs": {"grid": list(EPOCHS)}},
            "num_samples": 1,
            "metric": "val_accuracy",
            "mode": "max",
        },
        run={"max_failures": 3},
    )
    job_id = cluster.run_experiment(config, "--no-report")
    cluster.wait_joined(worker)
    exp_dir = cluster.results / "faults"
    held: dict[str, tuple[int, str]] = {}  # trial → (pid, start time) of its process at the gate

    def trial_nodes() -> dict[int, str]:
        return {a["pid"]: a["node_id"] for a in cluster.actors() if a["class_name"] in TRIAL_ACTORS}

    def ready() -> tuple[dict[str, list[dict[str, Any]]], dict[str, str]] | None:
        """The short trial finished; both long ones at the gate after HOLD_AT epochs, one on each node."""
        if cluster.job_status(job_id) in ("FAILED", "STOPPED"):
            raise AssertionError(f"job ended early:\n{cluster.job_logs(job_id)[-5000:]}")
        res = trial_results(exp_dir)  # Tune's copy on storage, saved every few seconds
        for trial, lines in res.items():
            if lines and lines[0]["config"]["epochs"] > EPOCHS[0] and trial not in held:
                pid = lines[-1]["pid"]
                at_gate = lines[-1]["epoch"] == HOLD_AT and (gate / f"waiting_{pid}").exists()
                if at_gate and (started := start_time(pid)) and cluster.owns(pid):
                    held[trial] = (pid, started)
        short = [lines for lines in res.values() if lines and lines[0]["config"]["epochs"] == EPOCHS[0]]
        if len(held) < 2 or not short or short[0][-1]["epoch"] < EPOCHS[0]:
            return None
        pids = trial_nodes()
        nodes = {t: pids.get(pid) for t, (pid, _) in held.items()}
        if None in nodes.values():  # the state API has not caught up yet
            return None
        assert set(nodes.values()) == {head_id, worker.node_id}, nodes
        return res, nodes

    try:
        res, nodes = wait_for("two trials at the gate, one on each node", ready, timeout=240, interval=0.2)
        on_head = next(t for t, n in nodes.items() if n == head_id)
        on_worker = next(t for t, n in nodes.items() if n == worker.node_id)
        finished = next(t for t, lines in res.items() if lines[0]["config"]["epochs"] == EPOCHS[0])
        killed_at = time.time()
        cluster.signal(*held[on_head], signal.SIGKILL)  # one trial's process on the surviving node
        cluster.kill_worker(worker)  # the whole node: raylet, agents, the other trial's process
    finally:
        (gate / "release").touch()  # the resumed trials (and any left waiting) run on
    status = cluster.wait_job(job_id, timeout=300)
    return FaultedRun(
        cluster=cluster,
        job_id=job_id,
        status=status,
        logs=cluster.job_logs(job_id),
        exp_dir=exp_dir,
        results=trial_results(exp_dir),
        node_of_pid=trial_nodes(),
        killed_at=killed_at,
        finished_before=finished,
        on_worker=on_worker,
        on_head=on_head,
    )


def test_experiment_finishes_after_losing_a_node_and_a_trial_process(faulted_run: FaultedRun) -> None:
    assert faulted_run.status == "SUCCEEDED", faulted_run.logs[-5000:]
    assert len(faulted_run.results) == len(EPOCHS)
    for trial, lines in faulted_run.results.items():
        epochs = lines[0]["config"]["epochs"]
        assert _epochs(lines) == list(range(1, epochs + 1)), trial  # every epoch once, none lost
        assert [r["training_iteration"] for r in lines] == list(range(1, epochs + 1))


def test_trials_ran_on_both_nodes(faulted_run: FaultedRun) -> None:
    cluster = faulted_run.cluster
    (worker,) = cluster.dead
    cluster.wait_dead(worker)  # the cluster noticed the node's loss
    nodes = {faulted_run.node_of_pid[r["pid"]] for lines in faulted_run.results.values() for r in lines}
    assert nodes == {cluster.head.node_id, worker.node_id}
    first = faulted_run.results[faulted_run.on_worker][0]
    assert faulted_run.node_of_pid[first["pid"]] == worker.node_id


def _check_resumed(run: FaultedRun, trial: str) -> list[list[dict[str, Any]]]:
    segments = _segments(run.results[trial])
    assert len(segments) == 2, f"{trial}: {len(segments)} processes"
    before, after = segments
    assert all(r["timestamp"] <= run.killed_at for r in before)
    # the new process starts right after the last epoch (and checkpoint) reported before the kill
    assert before[-1]["epoch"] >= HOLD_AT
    assert after[0]["epoch"] == before[-1]["epoch"] + 1
    assert after[0]["training_iteration"] == before[-1]["training_iteration"] + 1
    return segments


def test_trial_on_the_killed_node_resumes_from_its_checkpoint(faulted_run: FaultedRun) -> None:
    segments = _check_resumed(faulted_run, faulted_run.on_worker)
    head = faulted_run.cluster.head.node_id
    assert faulted_run.node_of_pid[segments[0][0]["pid"]] != head
    assert faulted_run.node_of_pid[segments[-1][-1]["pid"]] == head  # finished on the surviving node


def test_killed_trial_process_resumes_from_its_checkpoint(faulted_run: FaultedRun) -> None:
    segments = _check_resumed(faulted_run, faulted_run.on_head)
    assert segments[0][0]["pid"] != segments[1][0]["pid"]


def test_finished_trial_is_kept_and_not_rerun(faulted_run: FaultedRun) -> None:
    lines = faulted_run.results[faulted_run.finished_before]
    assert len(_segments(lines)) == 1
    assert _epochs(lines) == list(range(1, EPOCHS[0] + 1))
    assert all(r["timestamp"] <= faulted_run.killed_at for r in lines)
    assert (faulted_run.exp_dir / faulted_run.finished_before / "params.json").exists()


def test_dashboard_http_api_lists_the_job(faulted_run: FaultedRun) -> None:
    cluster = faulted_run.cluster
    jobs = {j["submission_id"]: j for j in cluster.api("/api/jobs/")}
    job = jobs[faulted_run.job_id]
    assert job["status"] == "SUCCEEDED"
    assert "examples/run_experiment.py" in job["entrypoint"]
    assert job["driver_node_id"] == cluster.head.node_id
    # token authentication: no token, no answer
    assert cluster.status_without_token("/api/jobs/") == 401


def test_ray_job_cli_reaches_the_cluster_with_the_token(faulted_run: FaultedRun) -> None:
    """What clusters/README.md tells users: RAY_AUTH_MODE=token and the token file, then `ray job`."""
    cluster = faulted_run.cluster
    cmd = [str(VENV_BIN / "ray"), "job", "status", "--address", cluster.dashboard, faulted_run.job_id]
    env = {k: v for k, v in cluster.env.items() if k not in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH")}
    with_token = subprocess.run(cmd, env=cluster.env, capture_output=True, text=True, timeout=120)
    assert with_token.returncode == 0, with_token.stderr[-2000:]
    assert "succeeded" in (with_token.stdout + with_token.stderr).lower()
    without = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert without.returncode != 0
    assert "401" in without.stdout + without.stderr or "auth" in (without.stdout + without.stderr).lower()
