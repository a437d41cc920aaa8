"""Tasks paced by a gate folder, for the end-to-end tests that interrupt a run: ``GATED_TASKS`` is the
source of an experiment's ``imports:`` file (:func:`write_gated_tasks`). Its trials train digits-mlp
and, at a point the task's arguments say, wait until ``gate/release`` exists, saying so with a
``gate/waiting_<id>`` file: a test thus knows, on any machine, what has run and what cannot go on.

* ``gated-digits`` (``gate``, ``free``, ``hidden``): each trial takes a ticket (0, 1, … in the order
  trials first train); those from the ``free``-th on wait before their first batch
  (``waiting_<ticket>``), so the first ``free`` trials can finish while the later ones cannot.
* ``epoch-gated-digits`` (``gate``, ``hold``, ``hidden``): trained full-batch (one batch an epoch), a
  trial's process that has trained ``hold`` epochs (reported and checkpointed them) waits at the
  first batch of the next (``waiting_<pid>``).
"""

from __future__ import annotations

from pathlib import Path

GATED_TASKS = """
import dataclasses
import os
import time

from raytune_opt.tasks import get_task, register_task


def _wait_for_release(gate, marker):
    release = os.path.join(gate, "release")
    if not os.path.exists(release):
        open(os.path.join(gate, f"waiting_{marker}"), "w").close()
        while not os.path.exists(release):
            time.sleep(0.05)


def _ticket(gate):
    n = 0
    while True:
        try:
            os.close(os.open(os.path.join(gate, f"ticket_{n}"), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            return n
        except FileExistsError:
            n += 1


def _from_ticket(gate, free):
    state = {}

    def augment(x):
        if "open" not in state:
            ticket = _ticket(gate)
            if ticket >= free:
                _wait_for_release(gate, ticket)
            state["open"] = True
        return x

    return augment


def _hold_at(gate, hold):
    seen = []

    def augment(x):
        if len(seen) == hold:
            _wait_for_release(gate, os.getpid())
        seen.append(1)
        return x

    return augment


@register_task("gated-digits", overwrite=True)
def gated_digits(gate: str = "", free: int = 0, hidden: int = 16):
    spec = get_task("digits-mlp").build(hidden=hidden)
    return dataclasses.replace(spec, augment=_from_ticket(gate, free))


@register_task("epoch-gated-digits", overwrite=True)
def epoch_gated_digits(gate: str = "", hold: int = 0, hidden: int = 16):
    spec = get_task("digits-mlp").build(hidden=hidden)
    return dataclasses.replace(spec, augment=_hold_at(gate, hold))
"""


def write_gated_tasks(folder: Path) -> Path:
    """``GATED_TASKS`` written to ``folder/gated_tasks.py`` (an experiment's ``imports:`` entry)."""
    path = folder / "gated_tasks.py"
    path.write_text(GATED_TASKS)
    return path
