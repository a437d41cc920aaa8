"""Data sets and models behind names: ``get_task(name).build(**task_args) -> TaskSpec``.

Built in: ``mnist1d-mlp``, ``mnist1d-cnn`` (MNIST-1D generated offline), ``digits-mlp``
(scikit-learn digits), ``cifar10-resnet`` (a local torchvision-format CIFAR-10 in ``data_dir``),
``glm-logistic``, ``glm-gaussian``, ``glm-poisson``, ``glm-gamma`` (generalized linear models).
Register your own with :func:`register_task`; :func:`stratified_subset` draws the
``data_fraction`` subsets.
"""

from raytune_opt.tasks import cifar10, digits, glm, mnist1d  # noqa: E402,F401  (register the built-ins)
from raytune_opt.tasks.registry import (
    ACCURACY,
    Metric,
    Task,
    TaskSpec,
    available_tasks,
    get_task,
    register_task,
    restore_user_tasks,
    user_tasks,
)
from raytune_opt.tasks.subset import check_fraction, stratified_subset

__all__ = [
    "ACCURACY",
    "Metric",
    "Task",
    "TaskSpec",
    "available_tasks",
    "check_fraction",
    "get_task",
    "register_task",
    "restore_user_tasks",
    "stratified_subset",
    "user_tasks",
]
