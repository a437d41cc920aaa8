"""A DataLoader worker that dies mid-epoch, in a real experiment on the suite's local Ray: the trial fails
with the loader's message after ``run.max_failures`` retries, and the other trial of the experiment
finishes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from raytune_opt import Experiment
from raytune_opt.experiment.run import run_experiment

# paced by an index, not by time: the loader worker that fetches sample `crash_at` of the trial whose
# seed is `crash_seed` (the loop seeds torch with the trial's seed before it builds the task) logs the
# attempt and exits at once, as a worker killed by the OS would
CRASHING = """
import os
import torch
from torch.utils.data import Dataset, get_worker_info
from raytune_opt.tasks import TaskSpec, get_task, register_task


class Crashing(Dataset):
    def __init__(self, x, y, crash_at, log):
        self.x, self.y, self.crash_at, self.log = x, y, crash_at, log

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        if i == self.crash_at and get_worker_info() is not None:
            with open(self.log, "a") as f:
                f.write(f"{os.getpid()}\\n")
            os._exit(3)
        return self.x[i], self.y[i]


@register_task("test-crashing-loader", overwrite=True)
def crashing(crash_at: int = -1, crash_seed: int = 0, log: str = "") -> TaskSpec:
    spec = get_task("digits-mlp").build(hidden=16)
    if torch.initial_seed() == crash_seed:
        spec.train = Crashing(*spec.train, crash_at, log)
    return spec
"""


def test_a_crashing_loader_worker_fails_its_trial_after_the_retries_and_the_rest_goes_on(
    ray_local, tmp_path: Path
) -> None:
    (tmp_path / "crashing.py").write_text(CRASHING)
    log = tmp_path / "crashes.txt"
    exp = Experiment.from_dict(
        {
            "name": "crash",
            "imports": [str(tmp_path / "crashing.py")],
            "task": {
                "name": "test-crashing-loader",
                "args": {"crash_at": 5, "crash_seed": 0, "log": str(log)},
            },
            "train": {"epochs": 2, "checkpoint_every": 0, "data": {"num_workers": 1}},
            "optimizer": {"name": "adam", "lr": 1e-2},
            "search": {"strategy": "grid", "space": {"seed": {"grid": [0, 1]}}},
            "resources": {"cpus_per_worker": 0.5},
            "run": {"storage_path": str(tmp_path / "results"), "max_failures": 1},
        }
    )
    result = run_experiment(exp, progress=False)
    trials = pd.read_csv(result.path / "trials.csv", dtype={"trial_id": str}).sort_values("config/seed")
    assert list(trials["status"]) == ["failed", "finished"]
    # torch's "DataLoader worker (pid(s) …) exited unexpectedly", or raytune_opt's when the worker died
    # while handing over a batch (raytune_opt.train.data._read)
    error = trials["error"].iloc[0]
    assert "DataLoader worker" in error and "exited unexpectedly" in error, error
    assert len(log.read_text().split()) == 2  # the first attempt and its one retry (max_failures 1)
    assert trials["iterations"].iloc[1] == 2
