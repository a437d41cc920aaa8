"""``raytune-opt`` end to end on a real local Ray: run, report, --dry-run, --set, list, resume after SIGKILL,
failing and diverging trials recorded while the experiment completes, every example at a tiny budget."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
import yaml
from gated_tasks import write_gated_tasks

from raytune_opt.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted([ROOT / "examples" / "quickstart.yaml", ROOT / "examples" / "glm.yaml"]) + sorted(
    (ROOT / "examples" / "strategies").glob("*.yaml")
)
REPORT_FILES = ("summary.json", "trials.csv", "best_so_far.png", "learning_curves.png", "report.md")

#: a tiny budget per example (on top of train.epochs=2, search.num_samples=3)
TINY = {
    "quickstart": ["search.max_t=2", "search.optimizers=[adamw, momentum]", "search.compare_seeds=2"],
    "hyperband": ["search.max_t=2"],
    "asha": ["search.max_t=2"],
    "bohb": ["search.max_t=2"],
    "grid": ["search.options.points=2", "search.num_samples=1"],
    "bo": ["search.options.n_initial=2"],
    "fabolas": ["search.options.n_initial=2", "search.num_samples=4"],
    "pbt": ["train.epochs=4", "search.options.perturbation_interval=2", "search.num_samples=2"],
    "pb2": ["train.epochs=4", "search.options.perturbation_interval=2", "search.num_samples=2"],
    "glm": ["train.epochs=5"],
}


def cli(*args: str) -> int:
    return main([str(a) for a in args])


def test_list(capsys):
    assert cli("list", "optimizers") == 0
    out = capsys.readouterr().out
    assert "lion" in out and "lbfgs" in out and "lr=" in out
    assert cli("list", "strategies") == 0
    assert "bohb" in capsys.readouterr().out
    assert cli("list", "tasks") == 0
    assert "mnist1d-mlp" in capsys.readouterr().out


def test_console_script_dry_run_and_bad_input(tmp_path):
    """The installed command: --dry-run prints the plan and starts nothing; bad input is one error
    line and exit status 2, never a traceback."""
    exe = Path(sys.executable).with_name("raytune-opt")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "raytune_opt"]
    quick = ROOT / "examples" / "quickstart.yaml"
    out = subprocess.run(
        [*cmd, "run", quick, "--dry-run", "--set", "search.num_samples=7", "--storage", tmp_path],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "strategy asha: 7 trials per optimizer" in out.stdout and "dry run: nothing started" in out.stdout
    assert "lion.lr: loguniform" in out.stdout and not list(tmp_path.iterdir())
    bad = subprocess.run(
        [*cmd, "run", quick, "--dry-run", "--set", "search.strategy=ashaa"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
    assert "search.strategy" in bad.stderr and "did you mean 'asha'" in bad.stderr


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_runs_at_a_tiny_budget(ray_local, tmp_path, example):
    overrides = ["train.epochs=2", "search.num_samples=3", *TINY.get(example.stem, [])]
    sets = [x for o in overrides for x in ("--set", o)]
    assert cli("run", example, "--storage", tmp_path, *sets) == 0
    name = yaml.safe_load(example.read_text())["name"]
    folder = tmp_path / name
    if (folder / "comparison.json").exists():  # search.compare: one sub-experiment per optimizer
        summary = json.loads((folder / "summary.json").read_text())
        assert (folder / "tuning_curves.png").stat().st_size > 0 and (folder / "report.md").exists()
        assert [r["rank"] for r in summary["ranking"]] == [1, 2]
        for r in summary["ranking"]:
            assert r["test"]["n"] == 2 and r["trials"] == 3 and (folder / r["folder"] / "trials.csv").exists()
        return
    for f in REPORT_FILES:
        assert (folder / f).stat().st_size > 0, f
    summary = json.loads((folder / "summary.json").read_text())
    trials = pd.read_csv(folder / "trials.csv", dtype={"trial_id": str})
    assert len(trials) == summary["trials"]["total"] >= 1
    assert summary["trials"]["failed"] == 0
    assert summary["best_metric"] is not None
    assert not list(folder.glob("*/events.out.tfevents*"))  # TensorBoard files only on request


TASKS = '''
import torch
from raytune_opt.tasks import get_task, register_task


@register_task("digits-flaky")
def digits_flaky(crash: bool = False):
    """digits-mlp, except that it raises inside the trial when crash=True."""
    if crash:
        raise RuntimeError("the task failed on purpose")
    return get_task("digits-mlp").fn()
'''


def test_failing_and_diverging_trials_are_recorded_and_the_experiment_completes(ray_local, tmp_path, capsys):
    (tmp_path / "flaky_tasks.py").write_text(TASKS)
    config = {
        "name": "flaky",
        "imports": ["flaky_tasks.py"],
        "task": "digits-flaky",
        "train": {"epochs": 2},
        "optimizer": {"name": "momentum"},
        "search": {
            "strategy": "grid",
            "space": {"task_args": {"grid": [{}, {"crash": True}]}, "lr": {"grid": [0.05, 1.0e12]}},
        },
        "run": {"max_failures": 0, "storage_path": str(tmp_path / "results"), "tensorboard": True},
    }
    path = tmp_path / "flaky.yaml"
    path.write_text(yaml.safe_dump(config))
    assert cli("run", path) == 0
    out = capsys.readouterr().out
    assert "4 trials: 0 running, 1 finished, 2 failed, 1 diverged" in out
    folder = tmp_path / "results" / "flaky"
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["trials"] == {**summary["trials"], "total": 4, "finished": 1, "failed": 2, "diverged": 1}
    trials = pd.read_csv(folder / "trials.csv", dtype={"trial_id": str})
    assert sorted(trials["status"]) == ["diverged", "failed", "failed", "finished"]
    assert summary["best_config"]["config/lr" if "config/lr" in summary["best_config"] else "lr"] == 0.05
    assert len({p.parent for p in folder.glob("*/events.out.tfevents*")}) == 4  # run.tensorboard: true


def wait_until(what: str, check, timeout: float, driver: subprocess.Popen, log: Path):
    """Poll ``check`` until it returns something truthy; fail with ``what`` (and the driver's log)
    after ``timeout`` seconds or when the driver exits first. The timeout only ends a broken run."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if driver.poll() is not None:
            raise AssertionError(
                f"the driver exited ({driver.returncode}) before {what}:\n{log.read_text()[-3000:]}"
            )
        if got := check():
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}:\n{log.read_text()[-3000:]}")


def _kill(driver: subprocess.Popen) -> None:
    """SIGKILL the driver's process group (it and what it started) and reap it."""
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait(timeout=30)


def _cli_process(ray_local, args: list[str], log: Path, **env: str) -> subprocess.Popen:
    """``raytune-opt ARGS --address <the suite's Ray>`` in its own process group (``env`` added to its
    environment), its output in ``log``."""
    gcs = ray_local.get_runtime_context().gcs_address
    with open(log, "w") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "raytune_opt", *args, "--address", gcs],
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **env},
        )


@contextmanager
def gated_driver(ray_local, path: Path, gate: Path, log: Path, **env: str) -> Iterator[subprocess.Popen]:
    """``raytune-opt run path`` in its own process group on the suite's Ray (``env`` added to its
    environment, its output in ``log``); at the end the gate opens (never leave a trial waiting) and a
    driver still running is killed."""
    driver = _cli_process(ray_local, ["run", str(path)], log, **env)
    try:
        yield driver
    finally:
        (gate / "release").touch()
        if driver.poll() is None:
            _kill(driver)


def experiment_files(tmp_path: Path, config: dict) -> tuple[Path, Path, Path]:
    """``config`` written as ``<name>.yaml``: that file, the driver's log and the experiment folder
    (its ``run.storage_path`` is ``tmp_path``)."""
    path = tmp_path / f"{config['name']}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, tmp_path / "driver.log", tmp_path / config["name"]


def _finished_trials(folder: Path, epochs: int) -> set[str]:
    done = set()
    for result in folder.glob("*/result.json"):
        lines = [json.loads(x) for x in result.read_text().splitlines() if x.strip()]
        if lines and lines[-1].get("training_iteration") == epochs:
            done.add(lines[-1]["trial_id"])
    return done


def _saved_terminated(folder: Path) -> set[str]:
    """The trials Tune's last saved experiment state (what ``resume`` reads) has as TERMINATED."""
    done: set[str] = set()
    for path in folder.glob("experiment_state-*.json"):
        try:
            trials = [json.loads(t[0]) for t in json.loads(path.read_text())["trial_data"]]
        except (ValueError, KeyError, IndexError):  # being written
            continue
        done |= {t["trial_id"] for t in trials if t.get("status") == "TERMINATED"}
    return done


def ready(folder: Path, gate: Path, epochs: int, free: int) -> set[str] | None:
    """The finished trials once ``free`` have finished, both slots wait at the gate (nothing more can
    finish) and Tune's saved state has the finished ones as TERMINATED; else None."""
    done = _finished_trials(folder, epochs)
    if len(done) >= free and len(list(gate.glob("waiting_*"))) == 2 and done <= _saved_terminated(folder):
        return done
    return None


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_interrupted_driver_then_resume_keeps_every_finished_trial(ray_local, tmp_path, sig):
    """A driver killed with SIGKILL (trials on the cluster die with it) or stopped with Ctrl-C (SIGINT:
    Tune saves its state and returns; exit status 130) mid-run; ``resume`` finishes the budget from the
    experiment state and checkpoints, and every trial finished before is in trials.csv.

    Paced by a gate, not by the machine's speed: the first two trials finish, the next two wait at
    their first batch (so the experiment cannot finish) until the test opens the gate, after the
    signal, before ``resume``."""
    epochs, samples, free = 2, 6, 2
    gate = tmp_path / "gate"
    gate.mkdir()
    config = {
        "name": "killed",
        "imports": [str(write_gated_tasks(tmp_path))],
        "task": {"name": "gated-digits", "args": {"gate": str(gate), "free": free}},
        "train": {"epochs": epochs, "batch_size": 32},
        "search": {"strategy": "random", "optimizers": ["adam", "momentum"], "num_samples": samples},
        "resources": {"max_concurrent_trials": 2},
        "run": {"storage_path": str(tmp_path), "max_failures": 1},
    }
    path = tmp_path / "killed.yaml"
    path.write_text(yaml.safe_dump(config))
    log = tmp_path / "driver.log"
    folder = tmp_path / "killed"
    with gated_driver(ray_local, path, gate, log) as driver:
        before = wait_until(
            "two trials finished, two waiting at the gate and Tune's state saved with the finished ones",
            lambda: ready(folder, gate, epochs, free),
            timeout=300,
            driver=driver,
            log=log,
        )
        assert len(before) == free and not (gate / "release").exists()
        if sig == signal.SIGKILL:
            _kill(driver)
        else:
            driver.send_signal(signal.SIGINT)
            assert driver.wait(timeout=120) == 130, log.read_text()[-3000:]
            assert "raytune-opt resume" in log.read_text()
    assert json.loads((folder / "experiment.json").read_text())["finished_at"] is None

    assert cli("resume", folder) == 0
    trials = pd.read_csv(folder / "trials.csv", dtype={"trial_id": str})
    # a trial started after Tune last saved its state is unknown to the resumed run, which samples a
    # replacement; its folder stays in the table as unfinished
    assert (trials["status"] == "finished").sum() == samples
    assert set(trials["status"]) <= {"finished", "unfinished"}
    assert before <= set(trials["trial_id"])
    state = json.loads((folder / "experiment.json").read_text())
    assert state["finished_at"] is not None


def test_storage_uri_goes_through_pyarrow_and_the_report_is_uploaded(ray_local, tmp_path, monkeypatch):
    """``run.storage_path`` as a URI (here ``file://``, the code path of ``s3://`` and ``gs://``):
    Tune and the runner write through pyarrow.fs; the report is made in a local mirror and uploaded."""
    monkeypatch.setenv("RAYTUNE_OPT_CACHE", str(tmp_path / "cache"))
    uri = f"file://{tmp_path}/shared"
    quick = ROOT / "examples" / "strategies" / "random.yaml"
    sets = ["train.epochs=1", "search.num_samples=2", "search.optimizers=[adam]"]
    assert cli("run", quick, "--storage", uri, *[x for o in sets for x in ("--set", o)]) == 0
    remote = tmp_path / "shared" / "random"
    assert json.loads((remote / "experiment.json").read_text())["finished_at"] is not None
    for f in REPORT_FILES:
        assert (remote / f).stat().st_size > 0, f
    assert (tmp_path / "cache" / "results" / "random" / "trials.csv").exists()
    from raytune_opt.experiment import load_experiment

    exp = load_experiment(f"{uri}/random")
    assert exp.run_.storage_path == uri and exp.name == "random"


def _saved_iterations(folder: Path) -> dict[str, int]:
    """Trial id → the last training_iteration Tune's saved experiment state has for it."""
    out: dict[str, int] = {}
    for path in sorted(folder.glob("experiment_state-*.json")):
        try:
            items = json.loads(path.read_text())["trial_data"]
        except (ValueError, KeyError):  # being written
            continue
        for trial_json, meta_json in items:
            trial_id = json.loads(trial_json)["trial_id"]
            out[trial_id] = json.loads(meta_json).get("last_result", {}).get("training_iteration", 0)
    return out


def _result_lines(folder: Path) -> list[dict]:
    (result,) = folder.glob("*/result.json")
    return [json.loads(x) for x in result.read_text().splitlines() if x.strip()]


def _newest_checkpoint_index(folder: Path) -> int:
    """The highest ``checkpoint_<index>`` of the experiment's trial (epoch ``index + 1`` when every
    epoch checkpoints); -1 when none."""
    return max((int(p.name.split("_")[1]) for p in folder.glob("*/checkpoint_*")), default=-1)


def _one_gated_trial(tmp_path: Path, name: str, epochs: int, hold: int) -> tuple[Path, Path, Path]:
    """An experiment file of one epoch-gated digits trial (it waits at the gate after ``hold``
    epochs; a checkpoint every epoch): the file, the gate folder and the experiment's folder."""
    gate = tmp_path / "gate"
    gate.mkdir()
    config = {
        "name": name,
        "imports": [str(write_gated_tasks(tmp_path))],
        "task": {"name": "epoch-gated-digits", "args": {"gate": str(gate), "hold": hold}},
        "train": {"epochs": epochs, "batch_size": "full", "checkpoint_every": 1},
        "optimizer": {"name": "adam", "lr": 0.01},
        "run": {"storage_path": str(tmp_path), "max_failures": 1, "keep_checkpoints": 2},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, gate, tmp_path / name


@pytest.mark.parametrize("staged", ["kept", "lost"])
def test_resume_continues_from_the_newest_checkpoint_on_disk(ray_local, tmp_path, staged):
    """The driver SIGKILLed after a trial checkpointed epoch 3 while Tune's saved state (and its copy
    of result.json) stops at epoch 2 (state saves: forced after every ``keep_checkpoints`` = 2
    checkpoints, the periodic ones put off by ``TUNE_GLOBAL_CHECKPOINT_S``): ``resume`` trains on from
    epoch 3's checkpoint (re-reporting epoch 3 from its checkpoint's record if the stored result.json
    lacks it); result.json has every epoch once.

    The driver writes result.json in a staging folder that Tune copies to storage at its state saves.
    ``kept``: the resumed run (on the same Ray session) continues the dead driver's staged copy;
    ``lost``: that copy is gone (a resume on another machine, after a reboot), and the resumed trial
    re-reports the epochs the stored result.json lacks.

    Paced by a gate: the trial waits at its 4th epoch; the gate stays shut until the resume finished
    (the resumed trial trains 3 epochs, none at the gate). The resume starts right after the kill,
    while the dead driver's trial may still be at the gate: it waits until Ray stopped that actor."""
    epochs, hold = 6, 3
    path, gate, folder = _one_gated_trial(tmp_path, "newest", epochs, hold)
    log = tmp_path / "driver.log"

    def held() -> bool:
        # at the gate, epoch 3's report (and the copy of its checkpoint to storage) has returned
        saved = list(_saved_iterations(folder).values())
        newest = _newest_checkpoint_index(folder)
        return any(gate.glob("waiting_*")) and saved == [hold - 1] and newest == hold - 1

    with gated_driver(ray_local, path, gate, log, TUNE_GLOBAL_CHECKPOINT_S="100000") as driver:
        wait_until(
            f"epoch {hold} checkpointed, Tune's state saved at epoch {hold - 1}, the trial at the gate",
            held,
            timeout=300,
            driver=driver,
            log=log,
        )
        _kill(driver)
        # what Tune's last save copied to storage: epoch 2's line, and epoch 3's if the driver wrote it
        # before that save's (background) copy read the file
        before = [r["epoch"] for r in _result_lines(folder)]
        assert before in (list(range(1, hold)), list(range(1, hold + 1)))
        if staged == "lost":
            (trial,) = folder.glob("raytune_opt_trial_*")
            # the dead driver's staged copies in this Ray session (other sessions' folders are not ours)
            session = Path(ray_local._private.worker._global_node.get_session_dir_path())
            copies = list(session.glob(f"artifacts/*/newest/driver_artifacts/{trial.name}"))
            assert copies, f"no staged copy of {trial.name} under {session}/artifacts"
            for copy in copies:
                shutil.rmtree(copy)
        # right away, the gate still shut: the dead driver's trial may be alive (resume waits for it)
        assert cli("resume", folder) == 0
    lines = _result_lines(folder)
    assert [r["training_iteration"] for r in lines] == list(range(1, epochs + 1))  # each epoch once
    assert [r["epoch"] for r in lines] == list(range(1, epochs + 1))
    # re-reported from their checkpoints' records: the epochs the stored result.json lacked when the
    # trial resumed (none when the resumed driver continued the dead one's staged copy)
    replayed = {r["epoch"] for r in lines if r.get("replayed")}
    lacked = set(range(len(before) + 1, hold + 1))
    assert replayed == lacked if staged == "lost" else replayed <= lacked
    trained = [r for r in lines if r["pid"] != lines[0]["pid"] and not r.get("replayed")]
    assert trained[0]["epoch"] == hold + 1  # trained on from epoch 3's checkpoint, not epoch 2's
    trials = pd.read_csv(folder / "trials.csv", dtype={"trial_id": str})
    assert list(trials["status"]) == ["finished"] and list(trials["iterations"]) == [epochs]


def test_resume_waits_until_the_previous_runs_trial_ended(ray_local, tmp_path):
    """``resume`` while a trial of the experiment's previous run still trains (its driver frozen:
    SIGSTOP, so Ray cannot reap the trial, which the gate holds at its 3rd epoch) waits, saying so,
    until that trial's actor is gone (here: its driver SIGKILLed and its process killed), and only
    then restores: each epoch is in result.json once, the resumed trial trained on from epoch 2's
    checkpoint. Paced by the gate and by resume's own output; the gate stays shut for the old trial."""
    epochs, hold = 4, 2
    path, gate, folder = _one_gated_trial(tmp_path, "overlap", epochs, hold)
    log, resume_log = tmp_path / "driver.log", tmp_path / "resume.log"

    def held() -> list[Path]:
        # at the gate, with epoch 2's checkpoint on disk and Tune's state saved
        waiting = list(gate.glob("waiting_*"))
        return waiting if _saved_iterations(folder) and _newest_checkpoint_index(folder) == hold - 1 else []

    with gated_driver(ray_local, path, gate, log) as driver:
        (marker,) = wait_until(f"epoch {hold} checkpointed, the trial at the gate", held, 300, driver, log)
        os.killpg(driver.pid, signal.SIGSTOP)  # alive to Ray: its trial actor is not reaped
        resume = _cli_process(ray_local, ["resume", str(folder)], resume_log)
        try:
            wait_until(
                "resume waiting for the previous run's actors",
                lambda: "actor(s) of the previous run" in resume_log.read_text(),
                120,
                resume,
                resume_log,
            )
            assert _newest_checkpoint_index(folder) == hold - 1  # nothing restored or trained yet
            _kill(driver)
            os.kill(int(marker.name.split("_")[1]), signal.SIGKILL)  # the old trial, still at the gate
            assert resume.wait(timeout=600) == 0, resume_log.read_text()[-3000:]
        finally:
            if resume.poll() is None:
                os.killpg(resume.pid, signal.SIGKILL)
                resume.wait()
    out = resume_log.read_text()
    assert "Traceback" not in out and "previous run's actors ended" in out, out[-3000:]
    lines = _result_lines(folder)
    assert [r["training_iteration"] for r in lines] == list(range(1, epochs + 1))  # each epoch once
    trained = [r for r in lines if r["pid"] != lines[0]["pid"] and not r.get("replayed")]
    assert trained[0]["epoch"] == hold + 1  # trained on from epoch 2's checkpoint, not over again


def test_resume_names_the_previous_runs_live_actors_after_its_timeout(tmp_path, monkeypatch):
    """A previous run's actor that outlives the wait: an error naming it (class, id, pid) and how to
    stop it; nothing restored."""
    from raytune_opt._compat import ray_core
    from raytune_opt.errors import PreviousRunAliveError
    from raytune_opt.experiment.run import wait_for_previous_run
    from raytune_opt.storage import ExperimentFolder

    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "experiment.json").write_text(json.dumps({"job_ids": ["0a000000"]}))
    actor = {"actor_id": "abc", "class_name": "raytune_opt_trial", "name": "", "state": "ALIVE"}
    actor |= {"pid": 4242, "ip": "10.0.0.7", "job_id": "0a000000"}
    monkeypatch.setattr(ray_core, "live_actors_of_jobs", lambda jobs: [actor] if "0a000000" in jobs else [])
    with pytest.raises(PreviousRunAliveError) as e:
        wait_for_previous_run(ExperimentFolder(str(tmp_path), "exp"), progress=False, timeout_s=0)
    assert "raytune_opt_trial abc (ALIVE, job 0a000000, pid 4242 on 10.0.0.7)" in str(e.value)
    assert "`raytune-opt resume` again" in str(e.value)


def test_a_full_storage_stops_the_run_with_one_error_line_and_resume_completes(ray_local, tmp_path):
    """The driver's writes fail with EFBIG past 16 KiB (``ulimit -f``: a file size limit, what a full
    disk does to the next write without needing root for a small file system): a save of Tune's
    state while trials run, or the report's plots once they finished, whichever comes first on this
    machine. The run exits with status 75 and an ``error:`` line that says how to resume; ``resume``
    (no limit) completes every trial and writes the report."""
    epochs = 3
    config = {
        "name": "full",
        "task": {"name": "digits-mlp", "args": {"hidden": 16}},
        "train": {"epochs": epochs, "batch_size": 128, "checkpoint_every": 1},
        "optimizer": {"name": "adam"},
        "search": {"strategy": "grid", "space": {"lr": {"grid": [1e-3, 1e-2]}}},
        "run": {"storage_path": str(tmp_path), "max_failures": 0},
    }
    path = tmp_path / "full.yaml"
    path.write_text(yaml.safe_dump(config))
    gcs = ray_local.get_runtime_context().gcs_address
    # Python ignores SIGXFSZ: a write past the limit fails with EFBIG instead of killing the process
    command = f"ulimit -f 16 && exec {sys.executable} -m raytune_opt run {path} --address {gcs}"
    out = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=600)
    assert out.returncode == 75, out.stdout[-3000:] + out.stderr[-3000:]
    folder = tmp_path / "full"
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"the storage of {folder} is full" in errors[0], out.stderr[-3000:]
    assert "File too large" in errors[0] and f"`raytune-opt resume {folder}`" in errors[0]
    assert "Traceback" not in out.stderr.split(errors[0])[-1]  # the error line is the last word

    assert cli("resume", folder) == 0
    trials = pd.read_csv(folder / "trials.csv", dtype={"trial_id": str})
    assert list(trials["status"]) == ["finished", "finished"] and set(trials["iterations"]) == {epochs}
    assert json.loads((folder / "experiment.json").read_text())["finished_at"] is not None
    assert (folder / "report.md").stat().st_size > 0


def _asha_rungs(folder: Path) -> dict[float, dict[str, float]] | None:
    """The ASHA rungs in the searcher state Tune last copied to storage (milestone → {trial id:
    value}); None while there is none or it is being written."""
    import torch

    paths = sorted(folder.glob("searcher-state-*.pkl"))  # one per session: the newest is the greatest
    if not paths:
        return None
    try:
        state = torch.load(paths[-1], weights_only=True)
    except (RuntimeError, EOFError, OSError):  # being written
        return None
    (bracket,) = state["__companion_scheduler_state__"]["rungs"]
    return {float(m): dict(recorded) for m, recorded in bracket}


def _rungs_from_results(folder: Path, milestones: list[float], metric: str, sign: float) -> dict:
    """What ASHA records when it sees every report once: at each milestone, each trial's value
    (``sign · metric``) at its first report with ``training_iteration ≥ milestone``."""
    out: dict[float, dict[str, float]] = {m: {} for m in milestones}
    for result in folder.glob("*/result.json"):
        lines = [json.loads(x) for x in result.read_text().splitlines() if x.strip()]
        for m in milestones:
            first = next((r for r in lines if r["training_iteration"] >= m), None)
            if first is not None:
                out[m][first["trial_id"]] = sign * first[metric]
    return out


def test_asha_rungs_survive_a_killed_driver_and_resume(ray_local, tmp_path):
    """ASHA (η = 2, grace 1, max_t 3: rungs at iterations 1 and 2) with the driver SIGKILLed after
    two trials ended (finished or stopped by a rung) and two wait at the gate: after ``resume``, the
    rungs hold every trial's value at each milestone it reached — the killed run's trials included —
    exactly what an uninterrupted run records from the same reports (Ray's restored ASHA would start
    from empty rungs and forget the first two). Paced by the gate, as above."""
    epochs, samples, free = 3, 6, 2
    gate = tmp_path / "gate"
    gate.mkdir()
    config = {
        "name": "asha_killed",
        "imports": [str(write_gated_tasks(tmp_path))],
        "task": {"name": "gated-digits", "args": {"gate": str(gate), "free": free}},
        "train": {"epochs": epochs, "batch_size": 64, "checkpoint_every": 1},
        "optimizer": {"name": "adam"},
        "search": {
            "strategy": "asha",
            "space": {"lr": {"loguniform": [1e-4, 1e-1]}},
            "num_samples": samples,
            "max_t": epochs,
            "reduction_factor": 2,
            "seed": 0,
        },
        "resources": {"max_concurrent_trials": 2},
        "run": {"storage_path": str(tmp_path), "max_failures": 1},
    }
    path, log, folder = experiment_files(tmp_path, config)

    def ended_and_saved() -> set[str] | None:
        # two trials ended, both slots at the gate, and both in the rungs Tune last copied to storage
        done = _saved_terminated(folder)
        rungs = _asha_rungs(folder)
        if len(done) >= free and len(list(gate.glob("waiting_*"))) == 2 and rungs and done <= set(rungs[1.0]):
            return done
        return None

    with gated_driver(ray_local, path, gate, log) as driver:
        before = wait_until(
            "two trials ended, two at the gate, their rung values saved", ended_and_saved, 300, driver, log
        )
        _kill(driver)
    assert len(before) == free

    assert cli("resume", folder) == 0
    state = json.loads((folder / "experiment.json").read_text())
    rungs = _asha_rungs(folder)
    assert sorted(rungs) == [1.0, 2.0]
    expected = _rungs_from_results(
        folder, [1.0, 2.0], state["metric"], 1.0 if state["mode"] == "max" else -1.0
    )
    assert before <= set(rungs[1.0])  # the killed run's trials still count at the first rung
    assert rungs == expected  # the same values: Ray's own v = metric_op · metric of the same report
    trials = pd.read_csv(folder / "trials.csv", dtype={"trial_id": str})
    assert "failed" not in set(trials["status"]) and before <= set(trials["trial_id"])
    assert len(set(rungs[1.0])) >= samples  # every trial of the budget reported its first rung
