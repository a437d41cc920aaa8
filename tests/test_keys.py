"""The one parser of optimizer-aware keys (``"<optimizer>.<hparam>"``), and its users agree with it."""

from __future__ import annotations

from raytune_opt import keys


def test_split_key_owner_round_trip():
    assert keys.key("lion", "lr") == "lion.lr"
    assert keys.split("lion.lr") == ("lion", "lr")
    assert keys.split(keys.key("adamw", "weight_decay")) == ("adamw", "weight_decay")
    assert keys.split("batch_size") is None and keys.split(3) is None
    assert keys.owner("momentum.momentum") == "momentum" and keys.owner("epochs") is None


def test_active_keeps_shared_and_the_chosen_optimizers_keys_flat():
    config = {"optimizer": "lion", "lion.lr": 3e-4, "adamw.lr": 1e-3, "epochs": 9}
    assert keys.active(config) == {"optimizer": "lion", "epochs": 9, "lr": 3e-4}
    assert keys.active(config, "adamw") == {"optimizer": "lion", "epochs": 9, "lr": 1e-3}
    assert keys.clashes({**config, "lr": 0.1}, "lion") == ["lion.lr"]
    assert keys.clashes(config, "lion") == []


def test_users_of_the_convention_agree():
    """The search space writes the keys the trial config, the status line and the report read."""
    from raytune_opt.progress import format_config
    from raytune_opt.report.params import owner
    from raytune_opt.report.results import CONFIG_PREFIX
    from raytune_opt.search import SearchSpace
    from raytune_opt.train.config import resolve_optimizer_keys

    space = SearchSpace.for_optimizers(["adamw", "lion"])
    names = [p.name for p in space if p.name != "optimizer"]
    assert names and all(keys.owner(n) in ("adamw", "lion") for n in names)
    config = {"task": "digits-mlp", "optimizer": "lion", "lion.lr": 3e-4, "adamw.lr": 1e-3}
    assert resolve_optimizer_keys(config) == {"task": "digits-mlp", "optimizer": "lion", "lr": 3e-4}
    assert format_config(config).startswith("lion, ") and "lr=3.00e-04" in format_config(config)
    assert owner(f"{CONFIG_PREFIX}lion.lr", ["adamw", "lion"]) == "lion"
    assert owner(f"{CONFIG_PREFIX}batch_size", ["adamw", "lion"]) is None
