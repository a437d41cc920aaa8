"""Your own training function, tuned by raytune_opt's strategies: the few things it takes from a trial.

A user with their own model, data and loop writes a Ray Tune function trainable and takes from
:class:`Trial` the optimizer built from the trial's config, the fidelities, checkpoints and
reporting::

    from raytune_opt.capabilities import capabilities
    from raytune_opt.train.user import Trial

    @capabilities(checkpoints=True, data_fraction=True)   # what pbt / pb2 / fabolas check
    def train_fn(config):
        trial = Trial(config)
        model = MyNet()
        opt = trial.optimizer(model)                        # config["optimizer"], "adamw.lr" → lr …
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 0.97**t)
        trial.restore(model, opt, sched)                    # a PBT clone or a resumed trial
        loader = DataLoader(trial.subset(my_dataset), batch_size=64, shuffle=True)
        for epoch in trial.epochs():                        # range(start, config["epochs"])
            ...                                             # the user's own epoch
            trial.report({"val_loss": v}, model, opt, sched)

* :meth:`Trial.optimizer` — ``raytune_opt.optim.create(config["optimizer"], model, **hparams)``
  with the chosen optimizer's hyperparameters from the config, flat (``lr``) or optimizer-aware
  (``adamw.lr``, folded by :func:`raytune_opt.train.config.resolve_optimizer_keys`); biases and
  norms are not decayed.
* :attr:`Trial.epochs_total`, :attr:`Trial.data_fraction` — the fidelities (``epochs``,
  ``data_fraction``; Fabolas sets the latter); :meth:`Trial.subset` draws that share of a Dataset
  as a ``Subset`` of seeded, class-stratified indices (:func:`raytune_opt.train.data.subset_indices`).
* :meth:`Trial.restore` / :meth:`Trial.report` — checkpoints in the loop's format
  (:mod:`raytune_opt.train.checkpoint`: model, optimizer, scheduler, RNG states, epoch and the
  hyperparameters they were made with, plain tensors). Restoring from a checkpoint made with other
  hyperparameters (a PBT clone, Ray issue #36660) keeps the weights, moments and schedule position
  and applies the *current* config's values; a scheduler with ``base_lrs`` gets the new lr as its
  base, its current factor kept (exact for multiplicative schedules: LambdaLR, StepLR, …).

The trainable declares its capabilities (:mod:`raytune_opt.capabilities`) itself; the strategies
read that declaration (``make_tune_config(..., trainable=train_fn)``), never its source.
:func:`tune_function` tunes such a function with one of the strategies (one CPU a trial).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset, Subset

from raytune_opt._compat.torch import set_last_lr
from raytune_opt.errors import ConfigError, ConfigTypeError
from raytune_opt.tasks import check_fraction
from raytune_opt.train.checkpoint import apply_hparams, load_state, rng_state, save_state, set_rng_state
from raytune_opt.train.config import DEFAULTS, resolve_optimizer_keys
from raytune_opt.train.data import subset_indices
from raytune_opt.train.session import Session, TuneSession

__all__ = ["Trial", "tune_function"]


def _int(config: Mapping[str, Any], key: str, low: int) -> int:
    value = config.get(key, DEFAULTS[key])
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError.invalid(key, value, f"an integer >= {low}")
    return value


class Trial:
    """One trial of a user's own training function (``session``: the Tune trial by default; a
    :class:`raytune_opt.train.LocalSession` runs it without Ray).

    Attributes:
        config: the trial's config, optimizer-aware keys folded into flat ones.
        optimizer_name: ``config["optimizer"]`` (default ``adamw``).
        hparams: the chosen optimizer's hyperparameters given in the config.
        epochs_total: ``config["epochs"]`` (default 10), the epoch budget.
        data_fraction: ``config["data_fraction"]`` (default 1), the share of the training data.
        data_seed: ``config["data_seed"]`` (default 0), the subset's seed (fixed, so fidelities nest).
        checkpoint_every: ``config["checkpoint_every"]`` (default 1; the last epoch always saves).
        start_epoch: the epoch this run starts at (after :meth:`restore`).
        epoch: the epochs done so far (reported).
    """

    def __init__(self, config: Mapping[str, Any], session: Session | None = None) -> None:
        from raytune_opt import optim

        if not isinstance(config, Mapping):
            raise ConfigTypeError.invalid("config", type(config).__name__, "the trial's config dict")
        name = config.get("optimizer", DEFAULTS["optimizer"])
        if not isinstance(name, str) or name not in optim.available():
            raise ConfigError.unknown("optimizer", name, optim.available())
        self.config = resolve_optimizer_keys(config)
        self.optimizer_name = name
        self.hparams = {k: self.config[k] for k in optim.spec(name).hparams if k in self.config}
        self.epochs_total = _int(self.config, "epochs", 1)
        self.data_fraction = check_fraction(self.config.get("data_fraction", 1.0))
        self.data_seed = _int(self.config, "data_seed", 0)
        self.checkpoint_every = _int(self.config, "checkpoint_every", 0)
        self.session = session if session is not None else TuneSession(config)
        self.start_epoch = self.epoch = 0

    def optimizer(self, model: nn.Module | Any) -> torch.optim.Optimizer:
        """The trial's optimizer for ``model`` (a module, or an iterable of parameters / groups)."""
        from raytune_opt import optim

        return optim.create(self.optimizer_name, model, **self.hparams)

    def subset(self, dataset: Dataset, targets: Any = None, stratify: bool | None = None) -> Dataset:
        """The ``data_fraction`` share of ``dataset`` as a ``Subset`` (``dataset`` itself for 1):
        class-stratified by ``targets`` (or the dataset's ``targets`` attribute) when given, a
        plain seeded subset otherwise (``stratify=True``: a ConfigError without labels)."""
        if self.data_fraction == 1.0:
            return dataset
        labels = None if targets is None else torch.as_tensor(targets)
        keep = subset_indices(
            dataset, self.data_fraction, self.data_seed, stratify=stratify, labels=labels, classes=True
        )
        return Subset(dataset, keep.tolist())

    def restore(self, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any = None) -> int:
        """Load the trial's checkpoint (a PBT clone's donor, or the trial's own on a resume) into
        ``model``, ``optimizer`` and ``scheduler``, with this config's hyperparameters; returns the
        epoch to start at (0 without a checkpoint). Call it after building all three."""
        ckpt = self.session.get_checkpoint()
        if ckpt is None:
            return self.start_epoch
        state = load_state(ckpt)
        fresh = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        changed = apply_hparams(optimizer, fresh, state["hparams"], self.hparams)
        if scheduler is not None and state.get("scheduler") is not None:
            scheduler.load_state_dict(state["scheduler"])
            if "lr" in changed and hasattr(scheduler, "base_lrs"):
                saved = state["optimizer"]["param_groups"]
                for i, (group, new, old) in enumerate(zip(optimizer.param_groups, fresh, saved, strict=True)):
                    base = scheduler.base_lrs[i]
                    factor = old["lr"] / base if base else 1.0
                    scheduler.base_lrs[i] = new["lr"]
                    group["initial_lr"] = new["lr"]
                    group["lr"] = new["lr"] * factor
                set_last_lr(scheduler, [g["lr"] for g in optimizer.param_groups])
        set_rng_state(state["rng"][0])
        self.start_epoch = self.epoch = int(state["epoch"])
        return self.start_epoch

    def epochs(self) -> Iterator[int]:
        """The epochs left to run (``start_epoch`` … ``epochs_total − 1``); stops early when the
        session says so (a local ``stop_after``; Tune stops trials itself)."""
        for epoch in range(self.start_epoch, self.epochs_total):
            yield epoch
            if self.session.should_stop():
                return

    def report(
        self,
        metrics: Mapping[str, Any],
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: Any = None,
        *,
        checkpoint: bool | None = None,
    ) -> None:
        """Report one epoch's ``metrics`` (plus ``epoch``), with a checkpoint of ``model``,
        ``optimizer``, ``scheduler`` and the RNG states every ``checkpoint_every`` epochs and at the
        last one (``checkpoint`` True / False overrides that)."""
        self.epoch += 1
        out = {**metrics, "epoch": self.epoch}
        if checkpoint is None:
            due = self.checkpoint_every > 0 and self.epoch % self.checkpoint_every == 0
            checkpoint = due or self.epoch >= self.epochs_total
        if not checkpoint:
            self.session.report(out, None)
            return
        module = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
        state = {
            "model": module.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "rng": [rng_state()],
            "epoch": self.epoch,
            "samples_seen": int(metrics.get("samples_seen", 0)),
            "hparams": dict(self.hparams),
        }
        with tempfile.TemporaryDirectory(prefix="raytune_opt-ckpt-") as d:
            self.session.report(out, save_state(d, state))


def tune_function(
    train_fn: Callable[..., None],
    strategy: str,
    space: Mapping[str, Any],
    param_space: Mapping[str, Any],
    *,
    metric: str,
    mode: str,
    num_samples: int,
    name: str,
    storage: str | None = None,
    seed: int = 0,
    **options: Any,
) -> Any:
    """Tune the function trainable ``train_fn`` over ``space`` (a :class:`raytune_opt.search.SearchSpace`
    or its mapping) with ``strategy``, one CPU a trial; returns Ray's ``ResultGrid``.

    ``param_space`` holds every trial's fixed keys, ``epochs`` among them (the strategies' ``max_t``);
    ``options`` go to :func:`raytune_opt.search.make_tune_config`, which checks ``train_fn``'s
    declared capabilities (Fabolas' fidelity defaults to ``data_fraction``). The run is ``name``
    under ``storage`` (default: a new temporary folder)."""
    from ray import tune

    from raytune_opt import trial_logs
    from raytune_opt.search import make_tune_config

    if strategy == "fabolas":
        options.setdefault("fidelity", "data_fraction")
    epochs = param_space["epochs"]
    tune_config = make_tune_config(
        strategy,
        space,
        metric=metric,
        mode=mode,
        num_samples=num_samples,
        max_t=epochs,
        seed=seed,
        trainable=train_fn,
        **options,
    )
    tuner = tune.Tuner(
        tune.with_resources(train_fn, {"cpu": 1}),
        param_space=dict(param_space),
        tune_config=tune_config,
        # trial_logs.loggers(): Ray 2.60's own loggers lose a paused PBT trial's last reports
        run_config=tune.RunConfig(
            storage_path=storage or tempfile.mkdtemp(prefix=f"{name}-"),
            name=name,
            verbose=0,
            callbacks=trial_logs.loggers(),
        ),
    )
    return tuner.fit()
