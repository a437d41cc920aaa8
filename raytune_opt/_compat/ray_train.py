"""Ray Train internals that :mod:`raytune_opt.train` needs (tested against Ray 2.60)."""

from __future__ import annotations

from typing import Any

import raytune_opt._compat  # noqa: F401 - the tested-version check

__all__ = ["trial_storage", "set_checkpoint_index"]


def trial_storage() -> tuple[str, Any]:
    """``(trial_fs_path, storage_filesystem)`` of the running Tune trial: where a ``TorchTrainer``
    launched inside the trial writes its run, on the trial's own storage (a cluster's shared one).

    ``get_storage`` is a ``DeveloperAPI`` ("may change without notice between minor versions") and
    the ``StorageContext`` it returns is a class of ``ray.train._internal``: no public API gives a
    trial's storage filesystem (Ray's Train-inside-Tune example leaves ``storage_path`` unset, which
    on a cluster writes to the head node's local disk).
    """
    import ray.tune

    # developer API added in https://github.com/ray-project/ray/pull/39281 (TrainContext.get_storage)
    storage = ray.tune.get_context().get_storage()
    return storage.trial_fs_path, storage.storage_filesystem


def set_checkpoint_index(index: int) -> None:
    """Number the running Tune trial's next checkpoint ``checkpoint_<index + 1>``: after a trial
    resumed from a checkpoint on its storage newer than the one Tune handed it (Tune's saved state
    named an older one), its next checkpoints follow that one instead of overwriting it.

    The trial's ``StorageContext.current_checkpoint_index`` is incremented before each checkpoint is
    persisted (``_TrainSession.report``) and has no public setter; ``get_storage`` is the developer
    API of :func:`trial_storage`.
    """
    import ray.tune

    # no upstream issue found: Tune restores a trial from its saved state's latest checkpoint only
    ray.tune.get_context().get_storage().current_checkpoint_index = index
