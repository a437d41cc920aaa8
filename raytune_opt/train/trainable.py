"""Running the loop: locally, inside a Tune trial, or under Ray Train's ``TorchTrainer`` in a Tune trial.

- :func:`run_local` — no Ray: the loop in this process (tests, notebooks, the benchmark baseline).
- :func:`trainable` — what ``ray.tune.Tuner`` takes, with its resource request:

  * ``num_workers == 1`` and no GPU: the loop runs in the trial itself (``ray.tune.report``),
    so trials are cheap and ``TuneConfig(reuse_actors=True)`` reuses their processes and
    in-process data caches.
  * ``num_workers > 1``, ``use_gpu`` or ``strategy="fsdp"`` (its process group shards the model even
    on one worker): Ray 2.60's supported "Ray Train inside Tune" pattern
    (the ``Tuner(trainer)`` form is deprecated): each trial is a light driver (0 CPUs,
    :data:`DRIVER_RESOURCES`) that launches a ``ray.train.torch.TorchTrainer`` with
    ``ScalingConfig(num_workers, use_gpu, resources_per_worker)`` on the trial's storage. A Train
    callback (``_ForwardToTune``) hands every report — rank 0's metrics, already averaged over
    workers, and the checkpoint — through a 0-CPU relay actor to the driver, which re-reports it
    with ``ray.tune.report(metrics, checkpoint=...)``. Ray's own ``TuneReportCallback`` forwards
    only the checkpoint's path, so Tune would hold no checkpoint and PBT could not clone the
    trial; here Tune owns a copy of every checkpoint, and a trial started from one (PBT exploit,
    trial restore) passes it to the workers to resume from. Give such trials
    ``reuse_actors=False`` so a stopped trial takes its Train run down with it (the controller
    is owned by the trial's process), and cap concurrent trials with
    ``TuneConfig(max_concurrent_trials)`` so the workers of running trials fit the cluster.
    A task's ``ray.data.Dataset`` splits go to the TorchTrainer's ``datasets`` (the training
    split's ``data_fraction`` sample, split among the workers: :mod:`raytune_opt.train.ray_data`).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from raytune_opt._compat.ray_train import trial_storage
from raytune_opt._compat.ray_tune import named_function_trainable
from raytune_opt.capabilities import declare
from raytune_opt.tasks import get_task, restore_user_tasks, user_tasks
from raytune_opt.train.config import task_names, validate, validate_space
from raytune_opt.train.loop import train_loop
from raytune_opt.train.ray_data import trainer_datasets
from raytune_opt.train.session import LocalSession, TrainSession, TuneSession, resume_checkpoint, tune_metrics

__all__ = ["run_local", "trainable", "DRIVER_RESOURCES"]

#: The per-trial driver of a distributed trial only waits on the TorchTrainer: no CPU, so that
#: the Train workers can use all of them. Tune refuses an empty request, hence a token 1 MiB of
#: the ``memory`` resource that every Ray node has.
DRIVER_RESOURCES = {"CPU": 0, "memory": 2**20}


def run_local(
    config: Mapping[str, Any],
    *,
    checkpoint: Any = None,
    storage: str | None = None,
    stop_after: int | None = None,
    device: str | None = None,
) -> LocalSession:
    """Run one trial in this process (from ``checkpoint`` if given, for at most ``stop_after`` epochs,
    on ``device``, default the CPU); ``session.results`` holds every epoch's metrics and
    ``session.checkpoints`` the checkpoint directories written under ``storage`` (if given)."""
    session = LocalSession(checkpoint=checkpoint, storage=storage, stop_after=stop_after, device=device)
    train_loop(config, session)
    return session


#: what rank 0 hands the relay when the workers start training (their resources were granted)
_STARTED = "workers started"


def _train_worker(config: dict[str, Any], resume: Any, tasks: dict[str, Any], relay: Any = None) -> None:
    """``train_loop_per_worker`` of the TorchTrainer: the loop with a Train session. Rank 0 first
    tells the trial's driver (through ``relay``) that the workers started."""
    import ray
    import ray.train

    if relay is not None and ray.train.get_context().get_world_rank() == 0:
        ray.get(relay.put.remote(_STARTED))
    restore_user_tasks(tasks)
    train_loop(config, TrainSession(resume=resume, config=config))


class _Relay:
    """A 0-CPU async actor between the Train controller and the Tune driver: ``put`` hands over one
    report and returns only once the driver has re-reported it (``ack``), so Train may then delete
    its own copy of the checkpoint; ``close`` ends the stream."""

    def __init__(self) -> None:
        import asyncio

        self.items: asyncio.Queue = asyncio.Queue(maxsize=1)
        self.acks: asyncio.Queue = asyncio.Queue(maxsize=1)

    async def put(self, item: Any) -> None:
        await self.items.put(item)
        await self.acks.get()

    async def get(self) -> Any:
        return await self.items.get()

    async def ack(self) -> None:
        await self.acks.put(True)

    async def close(self) -> None:
        await self.items.put(None)


def _forward_to_tune_callback(relay: Any) -> Any:
    from ray.train.v2.api.callback import UserCallback

    class _ForwardToTune(UserCallback):
        """Controller side: hand each report (rank 0's metrics, the checkpoint) to the Tune driver."""

        def after_report(self, run_context: Any, metrics: list[dict[str, Any]], checkpoint: Any) -> None:
            import ray

            ray.get(relay.put.remote((metrics[0], checkpoint)))

    return _ForwardToTune()


def shipped_tasks(names: Iterable[str]) -> dict[str, Any]:
    """The user tasks ``names`` (:func:`raytune_opt.tasks.user_tasks`), their code to be pickled by
    value: a task registered from a module the workers cannot import (a script's folder put on
    ``sys.path``, a test module, a file imported a second way) reaches them all the same, as an
    ``imports:`` file does. Modules of installed packages stay pickled by reference."""
    import sys
    import sysconfig

    from ray import cloudpickle

    tasks = user_tasks(names)
    installed = {sysconfig.get_paths()[k] for k in ("purelib", "platlib")}
    for task in tasks.values():
        name = getattr(task.fn, "__module__", None)
        module = sys.modules.get(name) if name and name != "__main__" else None
        file = getattr(module, "__file__", None)
        if module is None or file is None or name.split(".")[0] == "raytune_opt":
            continue
        if not any(str(Path(file).resolve()).startswith(str(Path(p).resolve())) for p in installed):
            cloudpickle.register_pickle_by_value(module)
    return tasks


def _run_torch_trainer(config: dict[str, Any], tasks: dict[str, Any]) -> None:
    """The per-trial driver: launch a TorchTrainer and re-report its results to Tune, each with its
    ``time_this_iter_s`` counted from when the workers started (not while they waited for resources:
    :mod:`raytune_opt.train.resource_wait`); until then the trial is on the experiment's waiting board."""
    import ray
    import ray.train
    import ray.tune
    from ray.train.torch import TorchTrainer

    from raytune_opt.train.resource_wait import find_board

    restore_user_tasks(tasks)
    cfg = validate(config)
    context = ray.tune.get_context()
    trial_id = context.get_trial_id()
    board = find_board(context.get_experiment_name())
    if board is not None:
        ray.get(board.wait.remote(trial_id))
    resume = resume_checkpoint(config)
    datasets = trainer_datasets(get_task(cfg.task).build(**cfg.task_args), cfg)  # Ray Data splits, if any
    relay = ray.remote(num_cpus=0)(_Relay).remote()
    trial_fs_path, storage_filesystem = trial_storage()
    trainer = TorchTrainer(
        lambda c: _train_worker(c, resume, tasks, relay),
        train_loop_config=dict(config),
        datasets=datasets or None,
        dataset_config=ray.train.DataConfig(datasets_to_split=["train"]) if datasets else None,
        scaling_config=ray.train.ScalingConfig(
            num_workers=cfg.num_workers, use_gpu=cfg.use_gpu, resources_per_worker=cfg.worker_resources()
        ),
        run_config=ray.train.RunConfig(
            name=f"train-{uuid.uuid4().hex[:8]}",
            storage_path=trial_fs_path,
            storage_filesystem=storage_filesystem,
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=1),
            callbacks=[_forward_to_tune_callback(relay)],
        ),
    )
    error: list[BaseException] = []

    def fit() -> None:
        try:
            trainer.fit()
        except BaseException as e:  # re-raised in the trial below
            error.append(e)
        finally:
            relay.close.remote()

    thread = threading.Thread(target=fit, daemon=True, name="raytune_opt-torch-trainer")
    thread.start()
    last: float | None = None  # when the workers started, then when the last report came
    try:
        while (item := ray.get(relay.get.remote())) is not None:
            if item == _STARTED:
                last = time.time()
                if board is not None:
                    board.started.remote(trial_id)
                relay.ack.remote()
                continue
            metrics, checkpoint = item
            if last is not None:
                now = time.time()
                metrics = {**metrics, "time_this_iter_s": now - last}
                last = now
            ray.tune.report(tune_metrics(metrics), checkpoint=checkpoint)
            relay.ack.remote()
    finally:
        if board is not None:
            board.started.remote(trial_id)
    thread.join()
    if error:
        raise error[0]


def trainable(param_space: Mapping[str, Any]) -> Callable[..., Any]:
    """The Tune trainable for trials drawn from ``param_space``, with its resource request: a
    function-trainable class named ``raytune_opt_trial`` (``raytune_opt_ddp_trial`` for distributed
    trials), so that Ray's dashboard lists its actors by that name.

    Validates ``param_space`` first (names, fixed and categorical values: a ``ConfigError``
    before Ray starts anything). User-registered tasks travel with the trainable to the workers.
    It declares its capabilities (:mod:`raytune_opt.capabilities`): ``data_fraction``, and
    ``checkpoints`` unless ``checkpoint_every = 0`` and ``checkpoint_at_end = False``.
    """
    import ray.tune

    cfg = validate_space(param_space)
    tasks = shipped_tasks(task_names(param_space))
    # what the search strategies check (raytune_opt.capabilities): the loop trains on
    # config["data_fraction"] of the data, and checkpoints unless told to save none
    checkpoints = cfg.checkpoint_every > 0 or cfg.checkpoint_at_end
    if not cfg.distributed:

        def raytune_opt_trial(config: dict[str, Any]) -> None:
            restore_user_tasks(tasks)
            train_loop(config, TuneSession(config))

        fn = ray.tune.with_resources(raytune_opt_trial, cfg.worker_resources())
        name = "raytune_opt_trial"
    else:

        def raytune_opt_ddp_trial(config: dict[str, Any]) -> None:
            _run_torch_trainer(config, tasks)

        fn = ray.tune.with_resources(raytune_opt_ddp_trial, DRIVER_RESOURCES)
        name = "raytune_opt_ddp_trial"
    # a class named after the trial function: Ray's dashboard shows its trial actors by that name
    # (and ``name[<experiment>]``) instead of Tune's anonymous ``ImplicitFunc``
    cls = named_function_trainable(fn, name)
    return declare(cls, checkpoints=checkpoints, data_fraction=True)
