"""The task registry: built-ins, user tasks from a script, errors with did-you-mean."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from raytune_opt.errors import ConfigError
from raytune_opt.tasks import TaskSpec, available_tasks, get_task, register_task, user_tasks
from raytune_opt.tasks import registry as reg

BUILTIN = {
    "mnist1d-mlp",
    "mnist1d-cnn",
    "digits-mlp",
    "cifar10-resnet",
    "glm-logistic",
    "glm-gaussian",
    "glm-poisson",
    "glm-gamma",
}


def test_builtins_registered() -> None:
    assert set(available_tasks()) >= BUILTIN
    assert all(available_tasks()[n].builtin and available_tasks()[n].summary for n in BUILTIN)


def test_unknown_task_and_argument_did_you_mean() -> None:
    with pytest.raises(ConfigError, match="did you mean 'mnist1d-mlp'"):
        get_task("mnist1d_mlp")
    with pytest.raises(ConfigError, match="did you mean 'hidden'"):
        get_task("digits-mlp").build(hiden=3)


def test_user_task_from_a_script() -> None:
    @register_task("toy-linear-test")
    def toy(width: int = 3) -> TaskSpec:
        """A toy task."""
        x = torch.randn(20, width)
        y = (x.sum(1) > 0).long()
        return TaskSpec(
            train=(x, y), val=(x, y), model=nn.Linear(width, 2), loss=F.cross_entropy, num_classes=2
        )

    try:
        task = get_task("toy-linear-test")
        assert task.summary == "A toy task." and not task.builtin and "toy-linear-test" in user_tasks()
        assert task.build(width=5).train[0].shape == (20, 5)
        with pytest.raises(ConfigError, match="already registered"):
            register_task("toy-linear-test", toy)
    finally:
        reg._TASKS.pop("toy-linear-test")


def test_taskspec_checks_its_parts() -> None:
    x = torch.randn(4, 2)
    with pytest.raises(ConfigError, match="TaskSpec.train"):
        TaskSpec(train=x, val=(x, x), model=nn.Linear(2, 2), loss=F.mse_loss)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="equal lengths"):
        TaskSpec(train=(x, x[:2]), val=(x, x), model=nn.Linear(2, 2), loss=F.mse_loss)


def test_digits_split() -> None:
    spec = get_task("digits-mlp").build()
    assert (len(spec.train[1]), len(spec.val[1]), len(spec.test[1])) == (1150, 288, 359)
    assert spec.train[0].max() <= 1.0 and spec.model(spec.val[0]).shape == (len(spec.val[1]), 10)


def test_a_split_may_be_a_dataset() -> None:
    x, y = torch.zeros(4, 2), torch.arange(4)
    ds = torch.utils.data.TensorDataset(x, y)
    spec = TaskSpec(
        train=ds, val=(x, y), test=ds, model=nn.Linear(2, 4), loss=F.cross_entropy, train_targets=y
    )
    assert spec.train is ds and spec.train_targets is y
    with pytest.raises(ConfigError, match=r"TaskSpec.train: the Dataset is empty"):
        TaskSpec(
            train=torch.utils.data.TensorDataset(x[:0], y[:0]),
            val=(x, y),
            model=nn.Linear(2, 4),
            loss=F.cross_entropy,
        )
    with pytest.raises(
        TypeError,
        match=r"TaskSpec.val must be a tuple \(X, y\) of tensors, a torch.utils.data.Dataset or a ray.data",
    ):
        TaskSpec(train=ds, val=[x, y], model=nn.Linear(2, 4), loss=F.cross_entropy)
    with pytest.raises(TypeError, match=r"TaskSpec.train_targets = 'list' is not allowed"):
        TaskSpec(train=ds, val=(x, y), model=nn.Linear(2, 4), loss=F.cross_entropy, train_targets=[0, 1])
    with pytest.raises(TypeError, match=r"TaskSpec.columns = 'x' is not allowed: expected a pair"):
        TaskSpec(train=ds, val=(x, y), model=nn.Linear(2, 4), loss=F.cross_entropy, columns="x")
