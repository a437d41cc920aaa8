"""Shared fixtures: one session-scoped local Ray for the whole suite, and the check that every test
module gives its CPUs back."""

from __future__ import annotations

import os
import sys
import time
import warnings

import pytest

os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")

#: how long a module's trials, tasks and actors may take to hand their CPUs back after its last test
#: (released resources show within a second or two; past it the suite's Ray is restarted, which costs
#: a few seconds and changes no test outcome)
RELEASE_TIMEOUT_S = 10.0


#: how the suite starts its local Ray (and restarts it after a module left CPUs held)
RAY_INIT = {"num_cpus": 2, "include_dashboard": False, "log_to_driver": False, "configure_logging": False}

#: the GCS address of the suite's own Ray, once started (a module may connect elsewhere)
_SUITE_GCS: list[str] = []


def _start_suite_ray(ray) -> None:
    ray.init(**RAY_INIT)
    _SUITE_GCS[:] = [ray.get_runtime_context().gcs_address]


@pytest.fixture(scope="session")
def ray_local():
    """A real local Ray with 2 CPUs, started once for the suite (again after a module that left CPUs
    held: :func:`ray_resources_released`) and shut down at its end."""
    import ray

    if not ray.is_initialized():
        _start_suite_ray(ray)
    yield ray
    ray.shutdown()


def _held(ray) -> str | None:
    """What the suite's Ray still holds (``"CPU 1 of 2 …"``), or ``None`` when every CPU is free."""
    total = ray.cluster_resources()
    free = ray.available_resources()
    held = {
        k: total[k] - free.get(k, 0.0) for k in ("CPU", "GPU") if total.get(k, 0.0) - free.get(k, 0.0) > 1e-9
    }
    return ", ".join(f"{k} {v:g} of {total[k]:g}" for k, v in held.items()) or None


def _holders(ray) -> str:
    """Who holds them: the live actors (class and name) and placement groups (name, bundles) of the
    suite's Ray, for the warning below."""
    from ray._private.state import actors
    from ray.util import placement_group_table

    alive = [
        f"{a.get('ActorClassName') or a.get('ClassName')}[{a.get('Name') or ''}]"
        for a in actors().values()
        if a.get("State") == "ALIVE"
    ]
    groups = [
        f"{g.get('name') or g.get('placement_group_id', '')[:8]}{g.get('bundles')}"
        for g in placement_group_table().values()
        if g.get("state") not in ("REMOVED",)
    ]
    return f"live actors: {alive or 'none'}; placement groups: {groups or 'none'}"


class HeldResourcesWarning(UserWarning):
    """A test module left CPUs (or GPUs) of the suite's Ray held: the leak the suite still has."""


@pytest.fixture(scope="module", autouse=True)
def ray_resources_released():
    """After each test module that used the suite's Ray: its CPUs (and GPUs) all come back, within
    :data:`RELEASE_TIMEOUT_S`. Otherwise a :class:`HeldResourcesWarning` names the module and what the
    cluster still runs, and the suite's Ray is restarted, so that the leftover does not starve later
    modules (a 2-CPU request of a later test would wait for ever). Ray itself sometimes keeps a CPU
    with no live actor, task or placement group left to hold it (seen intermittently after
    Hyperband's Tuner run on a loaded machine); no test outcome depends on the restart."""
    yield
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return
    deadline = time.monotonic() + RELEASE_TIMEOUT_S
    while (held := _held(ray)) is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    if held is None:
        return
    suite = bool(_SUITE_GCS) and ray.get_runtime_context().gcs_address == _SUITE_GCS[0]
    warnings.warn(
        f"after this module the suite's Ray still holds {held} (waited {RELEASE_TIMEOUT_S:.0f} s); "
        f"{_holders(ray)}" + ("; the suite's Ray is restarted" if suite else ""),
        HeldResourcesWarning,
        stacklevel=1,
    )
    if suite:
        ray.shutdown()
        _start_suite_ray(ray)
