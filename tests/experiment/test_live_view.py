"""The live view: how to open Ray's dashboard with its token, named trial actors, pending trials."""

from __future__ import annotations

import time

import pytest

from raytune_opt.experiment.run import dashboard_line


def test_the_dashboard_line_says_where_the_token_is_never_the_token(monkeypatch) -> None:
    assert dashboard_line("127.0.0.1:8265", token_auth=False) == "Ray dashboard: http://127.0.0.1:8265"
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    line = dashboard_line("127.0.0.1:8265", token_auth=True)
    assert line.startswith("Ray dashboard: http://127.0.0.1:8265 ")
    assert "~/.ray/auth_token" in line and "`ray get-auth-token`" in line
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", "/secrets/ray-token")
    assert "the file /secrets/ray-token" in dashboard_line("h:8265", token_auth=True)
    monkeypatch.setenv("RAY_AUTH_TOKEN", "s3cr3t-token-value")
    line = dashboard_line("h:8265", token_auth=True)
    assert "$RAY_AUTH_TOKEN" in line and "s3cr3t-token-value" not in line


def _actors() -> list[tuple[str, str]]:
    """``(class_name, repr_name)`` of every actor in Ray's actor table (what the dashboard lists; the
    suite's Ray runs without a dashboard, so its GCS table is read directly)."""
    import ray._private.state
    from ray.core.generated import gcs_pb2

    accessor = ray._private.state.state._connect_and_get_accessor()
    rows = [gcs_pb2.ActorTableData.FromString(a) for a in accessor.get_actor_table(None, None)]
    return [(a.class_name, a.repr_name) for a in rows]


def test_trial_actors_are_named_after_the_trainable_and_the_experiment(ray_local, tmp_path) -> None:
    from raytune_opt import Experiment

    exp = Experiment.from_dict(
        {
            "name": "named-actors",
            "task": {"name": "digits-mlp", "args": {"hidden": 8}},
            "train": {"epochs": 1, "batch_size": 256},
            "search": {"strategy": "random", "optimizers": ["adamw"], "num_samples": 2},
            "run": {"storage_path": str(tmp_path / "results")},
        }
    )
    before = set(_actors())
    result = exp.run(progress=False, report=False)
    assert len(result.grid) == 2 and not result.grid.errors
    new = [a for a in _actors() if a not in before]
    assert ("raytune_opt_trial", "raytune_opt_trial[named-actors]") in new
    assert not any(cls == "ImplicitFunc" for cls, _ in new)
    assert all(p.name.startswith("raytune_opt_trial_") for p in result.path.iterdir() if p.is_dir())


GATED = '''
import pathlib
import time

import torch
from raytune_opt.tasks import get_task, register_task


class Gated(torch.nn.Module):
    """The digits MLP, whose forward waits until the file ``go`` exists."""

    def __init__(self, inner, go):
        super().__init__()
        self.inner, self.go = inner, pathlib.Path(go)

    def forward(self, x):
        while not self.go.exists():
            time.sleep(0.05)
        return self.inner(x)


@register_task("digits-gated")
def digits_gated(go: str = "/nonexistent"):
    """digits-mlp whose training waits for the file ``go``."""
    spec = get_task("digits-mlp").fn(hidden=8)
    return type(spec)(**{**spec.__dict__, "model": Gated(spec.model, go)})
'''


def test_a_trial_waiting_for_its_workers_is_pending_and_its_wait_is_not_its_time(
    ray_local, tmp_path, capsys
) -> None:
    """Two 2-worker trials where one fits: the second waits (Tune has started its 0-CPU driver) and
    is shown pending; the first trains only once the test saw that (the file ``go``), and the
    second's time_total_s counts from when its workers started."""
    import ray
    import ray.util
    from ray.tune import Callback

    from raytune_opt import Experiment
    from raytune_opt.progress import LiveStatus
    from raytune_opt.train.resource_wait import find_board

    # leave 1.5 CPUs free (an earlier test may still hold one of the suite's 2): one trial's two
    # 0.5-CPU workers fit, two trials' do not
    free = ray.available_resources().get("CPU", 0.0)
    assert free >= 1.0
    blocker = None
    if free > 1.5:
        blocker = ray.util.placement_group([{"CPU": free - 1.5}])
        ray.get(blocker.ready())
    go = tmp_path / "go"
    (tmp_path / "gated.py").write_text(GATED)

    class Pacer(Callback):
        """Opens the gate once the status line shows one trial running and one pending."""

        def __init__(self) -> None:
            self.status = LiveStatus("val_accuracy", "max", total=2, poll=0.0, waiting=self.waiting)
            self.line, self.seen_at, self.waited = "", None, None
            self.result_at: dict[str, float] = {}

        @staticmethod
        def waiting() -> list[str]:
            board = find_board("pending")
            return ray.get(board.ids.remote()) if board is not None else []

        def on_step_end(self, iteration, trials, **info) -> None:
            if go.exists():
                return
            line = self.status.line(trials)
            waiting = self.waiting()  # started by Tune, its workers waiting (not Tune's own PENDING)
            if "1 running, 1 pending" in line and waiting:
                (self.waited,) = waiting
                self.line, self.seen_at = line, time.time()
                go.touch()

        def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
            self.result_at[trial.trial_id] = time.time()

    pacer = Pacer()
    exp = Experiment.from_dict(
        {
            "name": "pending",
            "imports": [str(tmp_path / "gated.py")],
            "task": {"name": "digits-gated", "args": {"go": str(go)}},
            "train": {"epochs": 1, "batch_size": 256},
            "search": {"strategy": "random", "optimizers": ["adamw"], "num_samples": 2},
            "resources": {"num_workers": 2, "cpus_per_worker": 0.5},
            "run": {"storage_path": str(tmp_path / "results")},
        }
    )
    try:
        result = exp.run(report=False, callbacks=[pacer])
    finally:
        if blocker is not None:
            ray.util.remove_placement_group(blocker)
    assert len(result.grid) == 2 and not result.grid.errors
    assert pacer.line.startswith("[") and " 2 trials: 1 running, 1 pending, 0 finished" in pacer.line
    assert "1 running, 1 pending" in capsys.readouterr().out  # the run's own status line said so too
    waited = next(r for r in result.grid if r.metrics["trial_id"] == pacer.waited)
    # its workers started after the gate opened (the first trial held the CPUs until then): all of
    # its counted time lies between the gate and its last result
    assert waited.metrics["time_total_s"] <= pacer.result_at[pacer.waited] - pacer.seen_at
    history = waited.metrics_dataframe
    assert history["time_total_s"].iloc[-1] == pytest.approx(history["time_this_iter_s"].sum())
