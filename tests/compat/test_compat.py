"""Every shim of raytune_opt._compat against the installed Ray and torch: when an internal moves or
changes its signature, a test here fails first (and says which one), before a run misbehaves."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import tempfile
import warnings

import pytest
import torch

import raytune_opt._compat as compat
from raytune_opt._compat import ray_train, ray_tune
from raytune_opt._compat import torch as torch_compat


# ------------------------------------------------------------------ the version check
def test_installed_versions_are_the_tested_ones():
    assert compat.check_versions() == []


def test_an_untested_version_warns_once_with_what_to_do(monkeypatch):
    monkeypatch.setattr(compat, "_warned", set())
    tested = {"ray": ("0.1", "0.2")}
    with pytest.warns(compat.UntestedVersionWarning, match=r"ray>=0.1,<0.2.*pytest tests/compat.*ray\["):
        (message,) = compat.check_versions(tested)
    assert "is installed" in message
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second check repeats the message but does not warn again
        assert compat.check_versions(tested) == [message]


@pytest.mark.parametrize("version, minor", [("2.60.0", (2, 60)), ("2.13.0+cpu", (2, 13)), ("3", (3, 0))])
def test_minor_version_parsing(version, minor):
    assert compat._minor(version) == minor


# ------------------------------------------------------------------ ray.tune: Hyperband brackets
def _bracket():
    from ray.tune.schedulers.hyperband import _Bracket

    return _Bracket(time_attr="training_iteration", max_trials=9, init_t_attr=1, max_t_attr=9, eta=3, s=2)


def _stub_trial(name: str):
    from ray.tune.experiment import Trial

    return Trial("__fake", stub=True, trial_id=name)


def test_bracket_members_are_where_the_shims_read_them():
    bracket = _bracket()
    for name in ray_tune.BRACKET_MEMBERS:
        assert hasattr(bracket, name), f"ray's _Bracket lost {name}"
    all_trials, live, unpause = ray_tune.bracket_members(bracket)
    assert (all_trials, live, unpause) == ([], {}, set())
    a, b = _stub_trial("a"), _stub_trial("b")
    bracket.add_trial(a)
    bracket.add_trial(b)
    all_trials, live, _ = ray_tune.bracket_members(bracket)
    assert all_trials == [a, b] and set(live) == {a, b}


def test_a_bracket_rebuilt_from_its_counters_behaves_as_the_original():
    original = _bracket()
    counters = ray_tune.bracket_counters(original)
    assert not set(counters) & set(ray_tune.BRACKET_MEMBERS)
    rebuilt = ray_tune.new_bracket(counters)
    assert ray_tune.bracket_counters(rebuilt) == counters
    trials = [_stub_trial(f"t{i}") for i in range(9)]
    for bracket in (original, rebuilt):
        assert not bracket.filled()
        for t in trials:
            bracket.add_trial(t)
    ray_tune.set_bracket_members(rebuilt, list(trials), {t: None for t in trials})
    assert rebuilt.filled() and original.filled()
    for i, t in enumerate(trials):  # every member reaches the first milestone (1 iteration)
        for bracket in (original, rebuilt):
            bracket.update_trial_stats(t, {"training_iteration": 1, "loss": float(i)})
    assert rebuilt.cur_iter_done() and original.cur_iter_done()
    assert rebuilt.successive_halving("loss", 1.0)[0] == original.successive_halving("loss", 1.0)[0]


def _attribute_names(obj) -> set[str]:
    return set(vars(obj)) | {n for n in dir(type(obj))}


def test_hyperband_privates_exist():
    from ray.tune.schedulers import HyperBandScheduler
    from ray.tune.schedulers.hb_bohb import HyperBandForBOHB

    for cls in (HyperBandScheduler, HyperBandForBOHB):
        sched = cls(time_attr="training_iteration", metric="loss", mode="min", max_t=9)
        missing = set(ray_tune.HYPERBAND_PRIVATES) - _attribute_names(sched)
        assert not missing, f"{cls.__name__} lost {missing}"
        for hook, params in ray_tune.HYPERBAND_HOOKS.items():
            assert tuple(inspect.signature(getattr(cls, hook)).parameters) == params, hook
    bracket = _bracket()
    assert isinstance(bracket, ray_tune.bracket_class())
    missing = set(ray_tune.BRACKET_PRIVATES) - set(vars(bracket))
    assert not missing, f"ray's _Bracket lost {missing}"


def test_asha_privates_exist():
    from ray.tune.schedulers import AsyncHyperBandScheduler

    sched = AsyncHyperBandScheduler(metric="loss", mode="min", max_t=9, reduction_factor=3)
    missing = set(ray_tune.ASHA_PRIVATES) - _attribute_names(sched)
    assert not missing, f"AsyncHyperBandScheduler lost {missing}"
    (bracket,) = sched._brackets
    assert not set(ray_tune.ASHA_BRACKET_PRIVATES) - set(vars(bracket))
    assert all(isinstance(r, dict) for _, r in bracket._rungs)  # (milestone, {trial_id: value})


def _pbt(cls, **kw):
    return cls(time_attr="training_iteration", metric="loss", mode="min", perturbation_interval=2, **kw)


def test_pbt_privates_and_hooks_exist_with_the_signatures_we_call():
    from ray.tune.schedulers import PopulationBasedTraining
    from ray.tune.schedulers.pb2 import PB2

    pbt = _pbt(PopulationBasedTraining, hyperparam_mutations={"lr": [0.1, 0.2]})
    pb2 = _pbt(PB2, hyperparam_bounds={"lr": [0.1, 0.2]})
    for sched in (pbt, pb2):
        missing = set(ray_tune.PBT_PRIVATES) - _attribute_names(sched)
        assert not missing, f"{type(sched).__name__} lost {missing}"
        for hook, params in ray_tune.PBT_HOOKS.items():
            assert tuple(inspect.signature(getattr(type(sched), hook)).parameters) == params, hook
    missing = set(ray_tune.PB2_PRIVATES) - _attribute_names(pb2)
    assert not missing, f"PB2 lost {missing}"
    # the per-trial state's fields that SeededPBT saves
    from ray.tune.schedulers.pbt import _PBTTrialState

    from raytune_opt.search.schedulers import _PBT_FIELDS

    state = _PBTTrialState(_stub_trial("x"))
    assert set(_PBT_FIELDS) | {"last_checkpoint"} <= set(vars(state))


def test_searcher_privates_exist():
    from ray.tune.search import Searcher

    s = Searcher(metric="loss", mode="min")
    assert (s._metric, s._mode) == ("loss", "min") and (s.metric, s.mode) == ("loss", "min")
    assert set(ray_tune.SEARCHER_PRIVATES) <= set(vars(s))


# ------------------------------------------------------------------ ray.tune: trials, experiments
def test_trial_checkpoint_shims():
    from ray.train import Checkpoint
    from ray.train._internal.session import _TrainingResult

    trial = _stub_trial("c")
    assert ray_tune.saving_checkpoint(trial) is None and not trial.is_saving
    assert ray_tune.latest_checkpoint_result(trial) is None
    result = _TrainingResult(checkpoint=Checkpoint("/tmp/nowhere"), metrics={"training_iteration": 3})
    trial.run_metadata.checkpoint_manager.register_checkpoint(result)
    assert ray_tune.latest_checkpoint_result(trial) is result
    trial.temporary_state.saving_to = "pending-save"
    assert ray_tune.saving_checkpoint(trial) == "pending-save" and trial.is_saving


def test_convert_to_experiment_list():
    from ray.tune.experiment import Experiment

    def fn(config):
        pass

    exp = Experiment("compat", fn, config={"a": 1})
    assert ray_tune.convert_to_experiment_list(exp) == [exp]
    assert ray_tune.convert_to_experiment_list([exp, exp]) == [exp, exp]


def test_result_grid_trials_and_the_logger_switch(ray_local, tmp_path, monkeypatch):
    from ray import tune

    monkeypatch.delenv("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", raising=False)

    def one(config):
        tune.report({"loss": 1.0})

    with ray_tune.tune_run_environment():
        assert os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] == "1"
        grid = tune.Tuner(one, run_config=tune.RunConfig(storage_path=str(tmp_path), name="g")).fit()
    assert "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS" not in os.environ
    (trial,) = ray_tune.result_grid_trials(grid)
    assert trial.status == "TERMINATED"
    (result,) = list(grid)
    # Tune's automatic CSV logger would have written progress.csv into the trial's folder
    assert not os.path.exists(os.path.join(result.path, "progress.csv"))


def test_run_environment_keeps_a_users_values(monkeypatch):
    key = "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S"
    monkeypatch.delenv(key, raising=False)
    monkeypatch.delenv("TUNE_GLOBAL_CHECKPOINT_S", raising=False)
    with ray_tune.tune_run_environment():
        assert os.environ[key] == "0"
        assert os.environ["TUNE_GLOBAL_CHECKPOINT_S"] == str(ray_tune.STATE_PERIOD_S)
    assert key not in os.environ and "TUNE_GLOBAL_CHECKPOINT_S" not in os.environ
    # a large run: Tune's own adaptive period (a save's time grows with the trials)
    with ray_tune.tune_run_environment(ray_tune.LARGE_RUN_TRIALS):
        assert os.environ["TUNE_GLOBAL_CHECKPOINT_S"] == str(ray_tune.STATE_PERIOD_S)
    with ray_tune.tune_run_environment(ray_tune.LARGE_RUN_TRIALS + 1):
        assert os.environ["TUNE_GLOBAL_CHECKPOINT_S"] == "auto"
    assert "TUNE_GLOBAL_CHECKPOINT_S" not in os.environ
    monkeypatch.setenv(key, "30")
    monkeypatch.setenv("TUNE_GLOBAL_CHECKPOINT_S", "60")
    with ray_tune.tune_run_environment(10_000):
        assert os.environ[key] == "30" and os.environ["TUNE_GLOBAL_CHECKPOINT_S"] == "60"
    # Tune still reads the three variables
    import ray.tune.execution.experiment_state as experiment_state
    import ray.tune.execution.tune_controller as controller
    import ray.tune.utils.callback as callback

    assert key in inspect.getsource(experiment_state)
    assert "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS" in inspect.getsource(callback)
    assert "TUNE_GLOBAL_CHECKPOINT_S" in inspect.getsource(controller)


def test_trial_has_the_actor_handle_the_watchdog_kills():
    from ray.tune.experiment import Trial

    trial = Trial("noop", config={}, stub=True)
    assert hasattr(trial, "temporary_state") and hasattr(trial.temporary_state, "ray_actor")
    assert trial.temporary_state.ray_actor is None
    assert ray_tune.kill_trial_actor(trial) is False  # no actor: nothing to stop


def test_job_placement_groups_are_this_jobs_and_removing_frees_them(ray_local):
    pg = ray_local.util.placement_group([{"CPU": 0.01}])
    ray_local.get(pg.ready(), timeout=120)
    mine = ray_tune.job_placement_groups()
    assert pg.id.hex() in mine  # a PlacementGroupID ends with its creator's JobID
    ray_tune.remove_placement_groups({pg.id.hex()})
    assert pg.id.hex() not in ray_tune.job_placement_groups()


# ------------------------------------------------------------------ ray.train
def test_set_checkpoint_index_numbers_the_next_checkpoint(ray_local, tmp_path):
    from ray import tune

    def probe(config):
        ray_train.set_checkpoint_index(6)
        with tempfile.TemporaryDirectory() as d:
            tune.report({"x": 1}, checkpoint=tune.Checkpoint.from_directory(d))

    grid = tune.Tuner(probe, run_config=tune.RunConfig(storage_path=str(tmp_path), name="index")).fit()
    (result,) = list(grid)
    assert result.error is None, result.error
    assert os.path.basename(result.checkpoint.path) == "checkpoint_000007"


def test_trial_storage_inside_a_tune_trial(ray_local, tmp_path):
    from ray import tune

    def probe(config):
        path, fs = ray_train.trial_storage()
        tune.report({"path": path, "fs": type(fs).__name__, "exists": os.path.isdir(path)})

    grid = tune.Tuner(probe, run_config=tune.RunConfig(storage_path=str(tmp_path), name="compat")).fit()
    (result,) = list(grid)
    assert result.error is None, result.error
    assert result.metrics["exists"] and result.metrics["fs"] == "LocalFileSystem"
    assert os.path.realpath(result.metrics["path"]) == os.path.realpath(result.path)


# ------------------------------------------------------------------ torch
def test_dynamo_disabled_functions_are_torchs_wrapped_optimizer_methods():
    names = {f.__qualname__ for f in torch_compat.dynamo_disabled_functions()}
    assert {"Optimizer.zero_grad", "Optimizer.add_param_group", "Optimizer.state_dict"} <= names
    # the cache attribute the shim seeds is the one torch's wrapper reads
    assert torch_compat._CACHE in inspect.getsource(torch._disable_dynamo)


SCRIPT = """
import sys
import torch
from raytune_opt._compat.torch import dynamo_disabled_functions, without_dynamo_import
with without_dynamo_import():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.ones(2))], lr=0.1)
    opt.zero_grad()
    opt.state_dict()
    inside = "torch._dynamo" in sys.modules
left = [f.__qualname__ for f in dynamo_disabled_functions() if getattr(f, "__dynamo_disable", None) is f]
torch.optim.SGD([torch.nn.Parameter(torch.ones(2))], lr=0.1)
print(inside, left, "torch._dynamo" in sys.modules)
"""


def test_without_dynamo_import_is_still_needed_and_works():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, timeout=300, env=env
    ).stdout.split()
    # inside: no import; nothing left seeded; outside: torch imports dynamo (else the shim is moot)
    assert out == ["False", "[]", "True"]


def test_set_last_lr_is_what_get_last_lr_returns():
    p = torch.nn.Parameter(torch.ones(1))
    opt = torch.optim.SGD([p], lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5**step)
    opt.step()
    sched.step()
    assert sched.get_last_lr() == pytest.approx([0.05])
    for g in opt.param_groups:
        g["lr"] = 0.3
    torch_compat.set_last_lr(sched, [0.3])
    assert sched.get_last_lr() == [0.3]
    opt.step()
    sched.step()  # the schedule goes on from the step count, on the base lr
    assert sched.get_last_lr() == pytest.approx([0.1 * 0.25])


def test_token_auth_mode_is_where_the_shim_reads_it(monkeypatch):
    from raytune_opt._compat.ray_core import token_auth_enabled

    assert isinstance(token_auth_enabled(), bool)


def test_a_named_function_trainable_keeps_tunes_resources_and_name():
    from ray import tune
    from ray.tune import Trainable

    from raytune_opt._compat.ray_tune import named_function_trainable

    def my_trial(config):
        return None

    cls = named_function_trainable(tune.with_resources(my_trial, {"CPU": 0.5}), "my_trial")
    assert issubclass(cls, Trainable) and cls.__name__ == cls.__qualname__ == "my_trial"
    assert cls.default_resource_request({}).required_resources == {"CPU": 0.5}


def test_search_generator_state_has_the_keys_grown_search_reads_and_replaces():
    """``GrownSearch.set_state`` reads ``counter`` and replaces ``total_samples`` of Ray's
    ``SearchGenerator.get_state()``; a restored ``Tuner`` keeps its TuneConfig where
    ``restored_tune_config`` reads it (``tests/experiment/test_resume_grow.py`` grows a real run)."""
    from ray.tune import Tuner
    from ray.tune.search import SearchGenerator

    from raytune_opt.search import SearchSpace
    from raytune_opt.search._searcher import GrownSearch
    from raytune_opt.search.qmc import SequenceSearcher

    searcher = SequenceSearcher(SearchSpace({"lr": {"uniform": [0.0, 1.0]}}), "random", "loss", "min", 0)
    state = SearchGenerator(searcher).get_state()
    assert {"counter", "total_samples", "finished"} <= set(state)
    grown = GrownSearch(searcher, 7)
    grown.set_state({**state, "counter": 3, "total_samples": 4})
    assert grown.total_samples == 7 and not grown.is_finished()
    with pytest.raises(ValueError, match="at least the 3 trials"):
        GrownSearch(searcher, 2).set_state({**state, "counter": 3})
    assert "_local_tuner" in Tuner.__annotations__


# ------------------------------------------------------------------ optuna
def test_nsga2_sampler_pickles_and_samples_after_loading():
    optuna = pytest.importorskip("optuna")
    import pickle

    from raytune_opt._compat.optuna import NSGAIISampler

    def objective(trial):
        x = trial.suggest_float("x", -1.0, 1.0)
        return x * x, (x - 1.0) ** 2

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = pickle.loads(pickle.dumps(NSGAIISampler(population_size=2, seed=0)))
    assert isinstance(sampler, optuna.samplers.NSGAIISampler)
    study = optuna.create_study(directions=["minimize", "minimize"], sampler=sampler)
    study.optimize(objective, n_trials=6)  # past the first generation: the GA's cache, under its lock
    assert len(study.trials) == 6
    assert pickle.loads(pickle.dumps(study.sampler)).population_size == 2


def test_drop_metric_windows_empties_tunes_windows_and_keeps_the_statistics():
    import json
    from types import SimpleNamespace

    from ray.tune.trainable.metadata import _TrainingRunMetadata

    meta = _TrainingRunMetadata()
    for step, value in enumerate([3.0, 2.0, 1.0], start=1):
        meta.update_metric("loss", value, step=step)
    assert set(meta.metric_n_steps["loss"]) == {str(n) for n in meta._n_steps}
    ray_tune.drop_metric_windows(SimpleNamespace(run_metadata=meta))
    assert dict(meta.metric_n_steps) == {}
    assert meta.metric_analysis["loss"]["min"] == 1.0 and meta.metric_analysis["loss"]["last-5-avg"] == 2.0
    assert json.loads(meta.get_json_state())["metric_n_steps"] == {}
    meta.update_metric("loss", 4.0, step=4)  # a later report: a fresh window, no KeyError
    assert meta.metric_analysis["loss"]["last-10-avg"] == 4.0
