"""The loop without Ray: exact resume, PBT-style restore, full-batch GD, subsets, divergence, second order."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from raytune_opt.tasks import get_task
from raytune_opt.train import run_local
from raytune_opt.train.checkpoint import load_state

DIGITS = {"task": "digits-mlp", "task_args": {"hidden": 16}, "batch_size": 128}
#: digits-mlp's training split (train / val / test: 1150 / 288 / 359)
N_TRAIN = len(get_task("digits-mlp").build().train[1])


def _weights(checkpoint: str) -> dict[str, torch.Tensor]:
    return load_state(checkpoint)["model"]


def _assert_bit_identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize(
    "config",
    [
        {
            **DIGITS,
            "optimizer": "adamw",
            "lr": 3e-3,
            "weight_decay": 0.1,
            "schedule": "warmup_cosine",
            "grad_clip": 1.0,
            "data_fraction": 0.5,
        },
        # BatchNorm buffers, momentum state, and augmentation drawing from the RNG
        {
            "task": "cifar10-resnet",
            "task_args": {"width": 4},
            "optimizer": "momentum",
            "lr": 0.05,
            "batch_size": 16,
            "schedule": "onecycle",
        },
    ],
    ids=["digits-adamw", "cifar-momentum"],
)
def test_resume_is_bit_exact(config: dict, tmp_path: Path, tiny_cifar: str) -> None:
    """6 epochs straight == 3 epochs, checkpoint, resume in a new session, 3 more epochs."""
    if config["task"] == "cifar10-resnet":
        config = {**config, "task_args": {**config["task_args"], "data_dir": tiny_cifar}}
    config = {**config, "epochs": 6, "seed": 5}
    straight = run_local(config, storage=str(tmp_path / "straight"))
    first = run_local(config, storage=str(tmp_path / "a"), stop_after=3)
    assert [r["epoch"] for r in first.results] == [1, 2, 3]
    torch.manual_seed(1234)  # a different global RNG state in between must not matter
    second = run_local(config, checkpoint=first.checkpoints[-1], storage=str(tmp_path / "b"))
    assert [r["epoch"] for r in second.results] == [4, 5, 6]
    assert second.results[-1]["samples_seen"] == straight.results[-1]["samples_seen"]
    assert [r["train_loss"] for r in second.results] == [r["train_loss"] for r in straight.results[3:]]
    _assert_bit_identical(_weights(straight.checkpoints[-1]), _weights(second.checkpoints[-1]))
    s_opt = load_state(straight.checkpoints[-1])["optimizer"]["state"]
    r_opt = load_state(second.checkpoints[-1])["optimizer"]["state"]
    for i in s_opt:
        for k in s_opt[i]:
            assert torch.equal(torch.as_tensor(s_opt[i][k]), torch.as_tensor(r_opt[i][k]))


def test_pbt_style_restore_uses_the_new_hyperparameters(tmp_path: Path) -> None:
    """A trial cloned from another's checkpoint keeps its weights and moments but uses its own lr
    and weight decay (Ray issue #36660: loading the optimizer state must not restore the old ones)."""
    donor_cfg = {
        **DIGITS,
        "optimizer": "adamw",
        "lr": 1e-2,
        "weight_decay": 0.0,
        "epochs": 6,
        "schedule": "cosine",
    }
    donor = run_local(donor_cfg, storage=str(tmp_path / "donor"), stop_after=2)
    clone_cfg = {**donor_cfg, "lr": 2e-4, "weight_decay": 0.3}
    clone = run_local(
        clone_cfg, checkpoint=donor.checkpoints[-1], storage=str(tmp_path / "clone"), stop_after=1
    )
    steps_per_epoch = math.ceil(N_TRAIN / 128)
    # epoch 3 continues the donor's schedule position with the clone's base lr
    t_last = 3 * steps_per_epoch
    expected_lr = 2e-4 * 0.5 * (1 + math.cos(math.pi * t_last / (6 * steps_per_epoch)))
    assert clone.results[0]["epoch"] == 3
    assert clone.results[0]["lr"] == pytest.approx(expected_lr, rel=1e-12)
    state = load_state(clone.checkpoints[-1])
    groups = state["optimizer"]["param_groups"]
    assert [g["weight_decay"] for g in groups] == [0.3, 0.0]  # biases still not decayed
    assert [g["initial_lr"] for g in groups] == [2e-4, 2e-4]
    assert state["hparams"] == {"lr": 2e-4, "weight_decay": 0.3}
    step = next(iter(state["optimizer"]["state"].values()))["step"]
    assert int(step) == 3 * steps_per_epoch  # Adam's moments came from the donor
    # and it differs from the donor simply continuing
    cont = run_local(
        donor_cfg, checkpoint=donor.checkpoints[-1], stop_after=1, storage=str(tmp_path / "cont")
    )
    assert not torch.equal(
        _weights(cont.checkpoints[-1])["1.weight"], _weights(clone.checkpoints[-1])["1.weight"]
    )


def test_full_batch_gd_is_one_gradient_over_all_data(tmp_path: Path) -> None:
    config = {**DIGITS, "optimizer": "sgd", "lr": 0.5, "weight_decay": 0.0, "batch_size": "full", "epochs": 1}
    session = run_local(config, storage=str(tmp_path))
    torch.manual_seed(0)
    spec = get_task("digits-mlp").build(hidden=16)
    x, y = spec.train
    loss = F.cross_entropy(spec.model(x), y)
    grads = torch.autograd.grad(loss, list(spec.model.parameters()))
    expected = {
        k: p.detach() - 0.5 * g for (k, p), g in zip(spec.model.named_parameters(), grads, strict=True)
    }
    got = _weights(session.checkpoints[-1])
    for k, v in expected.items():
        torch.testing.assert_close(got[k], v, rtol=1e-5, atol=1e-6)
    assert session.results[0]["samples_seen"] == len(y)
    assert session.results[0]["train_loss"] == pytest.approx(loss.item(), rel=1e-6)


@pytest.mark.parametrize(
    ("every", "at_end", "saved_after"),
    [(0, True, [3]), (0, False, []), (2, False, [2]), (2, True, [2, 3]), (1, True, [1, 2, 3])],
)
def test_checkpoint_every_and_at_end_choose_the_saved_epochs(tmp_path, every, at_end, saved_after) -> None:
    config = {**DIGITS, "optimizer": "sgd", "lr": 0.1, "epochs": 3, "checkpoint_every": every}
    session = run_local({**config, "checkpoint_at_end": at_end}, storage=str(tmp_path))
    assert [load_state(c)["epoch"] for c in session.checkpoints] == saved_after
    assert len(session.results) == 3


def test_data_fraction_and_metrics() -> None:
    session = run_local({**DIGITS, "optimizer": "adam", "lr": 1e-2, "epochs": 2, "data_fraction": 0.25})
    r = session.results
    assert [x["samples_seen"] for x in r] == [round(0.25 * N_TRAIN), 2 * round(0.25 * N_TRAIN)]
    assert set(r[0]) >= {
        "train_loss",
        "val_loss",
        "val_accuracy",
        "epoch",
        "time_this_epoch_s",
        "lr",
        "diverged",
    }
    assert 0.0 <= r[-1]["val_accuracy"] <= 1.0 and r[-1]["val_loss"] < r[0]["val_loss"] + 1.0
    assert not any(x["diverged"] for x in r)


def test_divergence_stops_with_the_worst_metric() -> None:
    session = run_local({**DIGITS, "optimizer": "sgd", "lr": 1e30, "epochs": 5})
    assert len(session.results) == 1
    last = session.results[-1]
    assert last["diverged"] is True and last["val_accuracy"] == 0.0 and last["val_loss"] == math.inf


@pytest.mark.parametrize(("task", "optimizer"), [("glm-logistic", "newton"), ("glm-poisson", "lbfgs")])
def test_second_order_full_batch_closure(task: str, optimizer: str) -> None:
    session = run_local({"task": task, "optimizer": optimizer, "epochs": 4, "batch_size": 32})
    losses = [r["train_loss"] for r in session.results]
    assert losses[-1] < losses[0]
    assert [r["samples_seen"] for r in session.results][0] == len(get_task(task).build().train[1])


def test_irls_epochs_are_the_glm_solver_iterates(tmp_path: Path) -> None:
    """optimizer 'irls' on a glm task: epoch k's weights are raytune_opt.glm.fit's k-th IRLS iterate,
    and it ends at the maximum-likelihood fit that Newton also reaches."""
    import warnings

    from raytune_opt import glm

    irls = run_local({"task": "glm-poisson", "optimizer": "irls", "epochs": 6}, storage=str(tmp_path))
    x, y = get_task("glm-poisson").build().train
    x1 = torch.cat([x, torch.ones(len(x), 1)], 1).double()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", glm.GLMConvergenceWarning)
        second = glm.fit(x1, y.double(), family="poisson", method="irls", max_iter=2)
    w = _weights(irls.checkpoints[1])
    got = torch.cat([w["weight"].flatten(), w["bias"]]).double()
    torch.testing.assert_close(got, torch.as_tensor(second.coef), rtol=1e-6, atol=1e-6)
    newton = run_local({"task": "glm-poisson", "optimizer": "newton", "epochs": 6})
    assert irls.results[-1]["train_loss"] == pytest.approx(newton.results[-1]["train_loss"], rel=1e-6)
    assert irls.results[-1]["val_deviance"] == pytest.approx(newton.results[-1]["val_deviance"], rel=1e-5)
    losses = [r["train_loss"] for r in irls.results]
    assert all(b <= a * (1 + 1e-6) for a, b in zip(losses, losses[1:], strict=False))


def test_glm_solver_only_for_glm_tasks() -> None:
    from raytune_opt.errors import ConfigError

    with pytest.raises(ConfigError, match="glm"):
        run_local({**DIGITS, "optimizer": "irls", "epochs": 1})
