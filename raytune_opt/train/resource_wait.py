"""Distributed trials that wait for resources.

A distributed trial (``num_workers > 1`` or GPUs, :mod:`raytune_opt.train.trainable`) is a 0-CPU
driver that Tune starts at once; its ``TorchTrainer`` then waits until the cluster can place all its
workers. Tune counts such a trial as running from its start, so two things are set right here:

* **its time**: the driver reports ``time_this_iter_s`` itself (Tune's ``Trainable.train`` takes a
  reported one), measured from the moment its workers start training, so ``time_total_s`` (the
  report's trial-seconds, Fabolas' cost model) leaves out the wait;
* **its status**: while it waits, the trial is on the experiment's :class:`WaitingBoard` (a 0-CPU
  named actor the run opens, :func:`open_board`), which the status line reads to show it as
  *pending*, not running.
"""

from __future__ import annotations

from typing import Any

__all__ = ["WaitingBoard", "board_name", "find_board", "open_board"]


def board_name(experiment: str) -> str:
    """The board's actor name for the Tune experiment ``experiment`` (its folder's name)."""
    return f"raytune_opt_waiting:{experiment}"


class WaitingBoard:
    """The ids of the trials whose workers wait for resources."""

    def __init__(self) -> None:
        self.waiting: set[str] = set()

    def wait(self, trial_id: str) -> None:
        self.waiting.add(trial_id)

    def started(self, trial_id: str) -> None:
        self.waiting.discard(trial_id)

    def ids(self) -> list[str]:
        return sorted(self.waiting)


def open_board(experiment: str) -> Any:
    """The experiment's board, created (0 CPUs) in this process's Ray job: it lives as long as the
    process that opened it (the run's driver)."""
    import ray

    return (
        ray.remote(num_cpus=0)(WaitingBoard).options(name=board_name(experiment), get_if_exists=True).remote()
    )


def find_board(experiment: str) -> Any | None:
    """The board the run opened for ``experiment``, or ``None`` (a run without a status line)."""
    import ray

    try:
        return ray.get_actor(board_name(experiment))
    except ValueError:
        return None
