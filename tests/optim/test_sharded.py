"""Every first-order optimizer steps FSDP2-sharded parameters (``DTensor`` shards over 2 gloo ranks,
spawned) as it steps the whole parameters in one process: parameters and state after a few steps
(with the lr changed between them) agree to float32 rounding."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from gloo_helpers import spawn_gloo
from torch import nn

from raytune_opt import optim

#: every first-order optimizer of the zoo, with its decay terms on; "-fused": the single-pass CPU
#: kernels on the local shards; lion-bf16: the momentum stored in bfloat16
CASES = {
    "sgd": dict(lr=0.1, weight_decay=1e-3),
    "momentum": dict(lr=0.05, momentum=0.9, weight_decay=1e-3),
    "nesterov": dict(lr=0.05, momentum=0.9, weight_decay=1e-3),
    "rmsprop": dict(lr=1e-2, momentum=0.5, weight_decay=1e-3),
    "rmsprop-fused": dict(lr=1e-2, fused=True),
    "adagrad": dict(lr=0.1, decay=0.95, weight_decay=1e-3),
    "adam": dict(lr=1e-2, weight_decay=1e-3),
    "adamw": dict(lr=1e-2, weight_decay=0.1),
    "lion": dict(lr=1e-3, weight_decay=0.1),
    "lion-fused": dict(lr=1e-3, fused=True),
    "lion-bf16": dict(lr=1e-3, state_dtype="bfloat16"),
}
STEPS = 4
BATCH = 8


def _model() -> nn.Module:
    """Uneven shards on 2 ranks (7 and 3 rows split 4/3 and 2/1) and an empty one (1 row: 1/0)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3), nn.LayerNorm(3), nn.Linear(3, 1))


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(STEPS, BATCH, 5, generator=g), torch.randn(STEPS, BATCH, 1, generator=g)


def _train(model: nn.Module, case: str, rank: int = 0, world: int = 1) -> torch.optim.Optimizer:
    """STEPS steps of the mean squared error on this rank's half of each batch (FSDP averages the
    ranks' gradients: the full batch's), the lr scaled by 0.7 after each."""
    opt = optim.create(case.split("-")[0], model, **CASES[case])
    x, y = _data()
    for t in range(STEPS):
        opt.zero_grad(set_to_none=True)
        nn.functional.mse_loss(model(x[t, rank::world]), y[t, rank::world]).backward()
        opt.step()
        for group in opt.param_groups:
            group["lr"] *= 0.7
    return opt


def _full(t: object) -> object:
    return t.full_tensor() if hasattr(t, "full_tensor") else t


def _rank(rank: int, world: int, out: str) -> None:
    from torch.distributed.fsdp import fully_shard

    results = {}
    for case in CASES:
        model = _model()
        for sub in model:
            if any(True for _ in sub.parameters(recurse=False)):
                fully_shard(sub)
        fully_shard(model)
        opt = _train(model, case, rank, world)
        local = [p.to_local().numel() for p in model.parameters()]
        results[case] = {
            "params": [_full(p.detach()) for p in model.parameters()],
            "state": [{k: _full(v) for k, v in opt.state[p].items()} for p in model.parameters()],
            "state_bytes": optim.state_bytes(opt),
            "local_numel": local,
        }
    if rank == 0:
        torch.save(results, out)


@pytest.fixture(scope="module")
def sharded(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Every case stepped on 2 spawned gloo ranks (spawn, not fork: this process may hold Ray's driver)."""
    out = Path(tmp_path_factory.mktemp("fsdp")) / "results.pt"
    spawn_gloo(_rank, str(out))
    return torch.load(out, weights_only=False)


def test_the_parameters_are_sharded_unevenly_with_an_empty_shard(sharded: dict) -> None:
    # rank 0's shards: 7 rows → 4, 3 → 2, 1 → 1 (rank 1 holds the other 3, 1 and 0)
    assert sharded["sgd"]["local_numel"] == [4 * 5, 4, 2 * 7, 2, 2, 2, 1 * 3, 1]


@pytest.mark.parametrize("case", CASES)
def test_a_sharded_step_is_the_unsharded_step(sharded: dict, case: str) -> None:
    model = _model()
    opt = _train(model, case)
    got = sharded[case]
    for p, q in zip(model.parameters(), got["params"], strict=True):
        torch.testing.assert_close(q, p.detach(), rtol=1e-5, atol=1e-6)
    for p, state in zip(model.parameters(), got["state"], strict=True):
        ref = opt.state[p]
        assert state.keys() == ref.keys()
        for k, v in ref.items():
            if torch.is_tensor(v):
                assert state[k].dtype == v.dtype, k
                torch.testing.assert_close(state[k], v, rtol=1e-5, atol=1e-6)
            else:
                assert state[k] == pytest.approx(v, rel=1e-12), k  # Nesterov's momentum_scale
    assert got["state_bytes"] == optim.state_bytes(opt)  # logical sizes: the same sharded or not
