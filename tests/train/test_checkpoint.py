"""Checkpoints hold tensors and plain data only: they load with plain ``torch.load(weights_only=True)``,
restore every RNG stream exactly, and a forged ``state.pt`` whose unpickling would run code is refused
without running it."""

from __future__ import annotations

import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from raytune_opt.tasks import get_task
from raytune_opt.train import run_local
from raytune_opt.train.checkpoint import (
    STATE_FILE,
    CheckpointError,
    load_state,
    newest_checkpoint,
    rng_state,
    save_state,
    set_rng_state,
    write_meta,
)


class _Payload:
    """Unpickling this creates ``path`` — what a forged checkpoint could do with any command."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _draws() -> tuple[float, float, float, torch.Tensor]:
    return random.random(), float(np.random.randn()), float(np.random.rand()), torch.rand(3)


def test_a_trained_checkpoint_loads_with_plain_torch_load_weights_only(tmp_path: Path) -> None:
    config = {"task": "digits-mlp", "task_args": {"hidden": 8}, "optimizer": "adam", "lr": 1e-3, "epochs": 1}
    session = run_local(config, storage=str(tmp_path))
    state = torch.load(Path(session.checkpoints[-1]) / STATE_FILE, weights_only=True)
    assert state["epoch"] == 1 and state["task"] == "digits-mlp"
    model = get_task(config["task"]).build(**config["task_args"]).model
    model.load_state_dict(state["model"])  # the model's state_dict, as torch writes it
    assert set(state["rng"][0]) >= {"torch", "numpy", "python"}


def test_rng_states_round_trip_exactly_through_a_weights_only_file(tmp_path: Path) -> None:
    random.seed(1)
    np.random.seed(2)
    np.random.randn()  # leaves a cached Gaussian in NumPy's state
    torch.manual_seed(3)
    save_state(str(tmp_path), {"rng": [rng_state()]})
    expected = _draws()
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    set_rng_state(load_state(str(tmp_path))["rng"][0])
    got = _draws()
    assert got[:3] == expected[:3] and torch.equal(got[3], expected[3])


def test_a_forged_checkpoint_that_would_run_code_is_refused(tmp_path: Path) -> None:
    # the payload is real: unpickled the unsafe way, it creates its marker file
    proof = tmp_path / "proof"
    pickle.loads(pickle.dumps(_Payload(proof)))
    assert proof.exists()

    marker = tmp_path / "pwned"
    forged = tmp_path / "ckpt"
    forged.mkdir()
    torch.save({"model": {}, "rng": [_Payload(marker)], "epoch": 1}, forged / STATE_FILE)
    with pytest.raises(CheckpointError, match="refusing to restore the checkpoint .*tensors and plain data"):
        load_state(str(forged))
    assert not marker.exists()

    # resuming a trial from it: the same refusal before any training
    config = {"task": "digits-mlp", "task_args": {"hidden": 8}, "optimizer": "sgd", "lr": 0.1, "epochs": 2}
    with pytest.raises(CheckpointError):
        run_local(config, checkpoint=str(forged))
    assert not marker.exists()


def _checkpoint(trial: Path, index: int, epoch: int, config: dict, reports: list[dict]) -> Path:
    d = trial / f"checkpoint_{index:06d}"
    save_state(str(d), {"epoch": epoch})
    write_meta(str(d), epoch, config, reports)
    return d


def test_the_newest_complete_checkpoint_of_this_config_wins_over_an_older_handed_one(tmp_path: Path) -> None:
    import pyarrow.fs
    from ray.tune import Checkpoint

    fs = pyarrow.fs.LocalFileSystem()
    config, other = {"lr": 0.1, "epochs": 9}, {"lr": 0.2, "epochs": 9}
    trial = tmp_path / "trial"
    for i in range(4):
        _checkpoint(trial, i, i + 1, config, [{"training_iteration": i + 1}])
    _checkpoint(trial, 4, 5, other, [{"training_iteration": 5}])  # another config's (a PBT exploit)
    cut = _checkpoint(trial, 5, 6, config, [{"training_iteration": 6}])
    with open(cut / STATE_FILE, "r+b") as f:  # a copy to storage cut short
        f.truncate(10)
    handed = Checkpoint(str(trial / "checkpoint_000001"), fs)

    found, index, reports = newest_checkpoint(str(trial), fs, config, handed)
    assert index == 3 and found.path == str(trial / "checkpoint_000003")
    assert reports == [{"training_iteration": 3}, {"training_iteration": 4}]  # after the handed one
    assert newest_checkpoint(str(trial), fs, config, None)[2] == [
        {"training_iteration": i} for i in (1, 2, 3, 4)
    ]
    assert newest_checkpoint(str(trial), fs, config, Checkpoint(str(trial / "checkpoint_000003"), fs)) is None
    donor = Checkpoint(str(tmp_path / "donor" / "checkpoint_000000"), fs)  # another trial's: PBT's clone
    assert newest_checkpoint(str(trial), fs, config, donor) is None
    assert newest_checkpoint(str(tmp_path / "none"), fs, config, None) is None
