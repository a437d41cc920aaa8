"""Ray core internals that :mod:`raytune_opt.experiment` needs (tested against Ray 2.60)."""

from __future__ import annotations

from typing import Any

import raytune_opt._compat  # noqa: F401 - the tested-version check

__all__ = ["live_actors_of_jobs", "token_auth_enabled"]


def token_auth_enabled() -> bool:
    """Whether this process's Ray uses token authentication (``RAY_AUTH_MODE=token``, Ray 2.60's
    default for a new local cluster): its dashboard then asks for the token before it shows anything."""
    # no upstream issue found: Ray exposes the mode only through ray._private.authentication
    from ray._private.authentication.authentication_utils import is_token_auth_enabled

    return bool(is_token_auth_enabled())


def live_actors_of_jobs(job_ids: set[str]) -> list[dict[str, Any]]:
    """The actors of the jobs ``job_ids`` (hex) that are not dead yet (alive, restarting, being created)
    and not detached (Ray ends every other actor of a job once its driver died), from the GCS actor
    table: ``[{"actor_id", "class_name", "name", "state", "pid", "ip", "job_id"}]``."""
    # The public ray.util.state.list_actors (filters job_id, state) asks the dashboard's HTTP state
    # API (StateApiClient, Ray 2.60): a Ray started with include_dashboard=False (the suite's, many
    # users') has none. ray._private.state.actors reads the GCS actor table directly, in every Ray.
    from ray._private.state import actors

    out = []
    for info in actors().values():
        if info.get("JobID") not in job_ids or info.get("IsDetached") or info.get("State") == "DEAD":
            continue
        out.append(
            {
                "actor_id": info.get("ActorID"),
                "class_name": info.get("ActorClassName"),
                "name": info.get("Name") or "",
                "state": info.get("State"),
                "pid": info.get("Pid") or None,
                "ip": (info.get("Address") or {}).get("IPAddress") or "",
                "job_id": info.get("JobID"),
            }
        )
    return out
