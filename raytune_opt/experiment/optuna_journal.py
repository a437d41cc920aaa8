"""The experiment as an Optuna study, written while it runs: ``run.optuna_journal: true`` (or
``Experiment.run(optuna_journal=True)``) keeps ``<experiment folder>/optuna.journal``, an Optuna
``JournalStorage`` file, up to date, so that

    optuna-dashboard results/quickstart/optuna.journal

shows the trials, their learning curves and the parameter importances while the search runs.

:class:`OptunaJournal` is a ``ray.tune.Callback`` in the driver: each Tune trial becomes one Optuna
trial when it starts (state ``RUNNING``; ``params`` its searched values, ``distributions`` from the
experiment's :class:`~raytune_opt.search.SearchSpace`: ``FloatDistribution(low, high, log)``,
``IntDistribution``, ``CategoricalDistribution``; only the parameters active in that trial), each
report adds an intermediate value (step = ``training_iteration``), and at the end it is ``COMPLETE``
with the trial's best value of the metric over its reports (what the report and the status line call
its best; ``last_value`` beside it as a user attribute), or ``FAIL`` (error, or no finite value:
a diverged trial). The Ray trial id is the user attribute ``ray_trial_id``: a resumed experiment
finds its trials again in the journal. Optuna is optional: ``pip install optuna`` (and
``optuna-dashboard`` to view it); asking for the journal without it is one ConfigError before Ray
starts (:func:`check_optuna`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ray.tune import Callback

from raytune_opt.errors import ConfigError

__all__ = ["JOURNAL_FILE", "OptunaJournal", "check_optuna", "distributions"]

#: the journal's name in the experiment folder
JOURNAL_FILE = "optuna.journal"


def check_optuna(where: str = "run.optuna_journal") -> None:
    """A ConfigError (one line) when optuna is not installed."""
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise ConfigError(
            f"{where}: the Optuna journal needs the 'optuna' package, which is not installed: "
            "pip install optuna"
        ) from None


def _choice(value: Any) -> Any:
    """A categorical value as Optuna stores it (None, bool, int, float or str; anything else its repr)."""
    return value if value is None or isinstance(value, (bool, int, float, str)) else repr(value)


def distributions(space: Any) -> dict[str, Any]:
    """Optuna's distribution of each searched parameter of ``space`` (a SearchSpace; fixed ones left out)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    from raytune_opt.search.space import Choice, Float, Int

    out: dict[str, Any] = {}
    for p in space or ():
        d = p.domain
        if isinstance(d, Float):
            out[p.name] = FloatDistribution(float(d.low), float(d.high), log=d.log)
        elif isinstance(d, Int):
            out[p.name] = IntDistribution(int(d.low), int(d.high), log=d.log)
        elif isinstance(d, Choice):
            out[p.name] = CategoricalDistribution([_choice(v) for v in d.values])
    return out


class OptunaJournal(Callback):
    """Writes the experiment's trials into the Optuna study ``study_name`` of the journal ``path``.

    Args:
        path: the journal file (created, or continued when it exists: a resumed experiment).
        space: the experiment's SearchSpace (its searched parameters become the trials' params).
        metric, mode: the metric the search optimises and ``"min"`` or ``"max"`` (the study's direction).
        study_name: the study's name (the experiment's).
    """

    def __init__(self, path: str | Path, space: Any, metric: str, mode: str, study_name: str) -> None:
        import optuna
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        self.metric, self.mode = metric, mode
        self.distributions = distributions(space)
        self.storage = JournalStorage(JournalFileBackend(str(path)))
        self.study = optuna.create_study(
            storage=self.storage,
            study_name=study_name,
            direction="maximize" if mode == "max" else "minimize",
            load_if_exists=True,
        )
        self.study_id = self.storage.get_study_id_from_name(study_name)
        self.ids: dict[str, int] = {  # Ray trial id -> Optuna trial id, the resumed ones included
            str(t.user_attrs["ray_trial_id"]): self.storage.get_trial_id_from_study_id_trial_number(
                self.study_id, t.number
            )
            for t in self.study.get_trials(deepcopy=False)
            if "ray_trial_id" in t.user_attrs
        }

    # ------------------------------------------------------------------ Tune hooks
    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._trial(trial)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        value = result.get(self.metric)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            return
        tid = self._trial(trial)
        step = int(result.get("training_iteration") or 0)
        self.storage.set_trial_intermediate_value(tid, step, float(value))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finish(trial, failed=False)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finish(trial, failed=True)

    # ------------------------------------------------------------------ the study's trials
    def _trial(self, trial: Any) -> int:
        """The Optuna trial of a Tune trial, created (``RUNNING``) the first time it is seen."""
        from optuna.trial import TrialState, create_trial

        if trial.trial_id in self.ids:
            return self.ids[trial.trial_id]
        config = trial.config
        params, dists = {}, {}
        for name, dist in self.distributions.items():
            if name in config:
                value = config[name]
                params[name] = _choice(value) if hasattr(dist, "choices") else value
                dists[name] = dist
        frozen = create_trial(
            state=TrialState.RUNNING,
            params=params,
            distributions=dists,
            user_attrs={"ray_trial_id": trial.trial_id},
        )
        tid = self.storage.create_new_trial(self.study_id, template_trial=frozen)
        self.ids[trial.trial_id] = tid
        return tid

    def _finish(self, trial: Any, *, failed: bool) -> None:
        from optuna.trial import TrialState

        tid = self._trial(trial)
        frozen = self.storage.get_trial(tid)
        if frozen.state.is_finished():
            return
        seen = [v for _, v in sorted(frozen.intermediate_values.items()) if math.isfinite(v)]
        if failed or not seen:
            self.storage.set_trial_state_values(tid, TrialState.FAIL)
            return
        best = max(seen) if self.mode == "max" else min(seen)
        self.storage.set_trial_user_attr(tid, "last_value", seen[-1])
        self.storage.set_trial_state_values(tid, TrialState.COMPLETE, [best])
