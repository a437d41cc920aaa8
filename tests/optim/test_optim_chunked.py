"""The default CPU path of optimizers without a native kernel (Lion, RMSProp; Nesterov at momentum 0) runs
the foreach rule block by block (``_dispatch.run_chunked``): bit-identical to the whole-tensor rule."""

from __future__ import annotations

import pytest
import torch

from raytune_opt.optim import _dispatch, create
from raytune_opt.optim.adam import adam_update

HP = {
    "lion": dict(lr=1e-2, weight_decay=0.1),
    "rmsprop": dict(lr=1e-2, momentum=0.5, weight_decay=0.01),
    "nesterov": dict(lr=1e-2, momentum=0.0),
}


@pytest.mark.parametrize("name", sorted(HP))
@pytest.mark.parametrize("maximize", [False, True])
def test_chunked_equals_whole_tensor_rule(name, maximize, monkeypatch):
    monkeypatch.setattr(_dispatch, "CHUNK_NUMEL", 64)
    gen = torch.Generator().manual_seed(0)
    # big tensors are cut into blocks (one not a multiple of 64), small ones grouped, one non-contiguous
    shapes = [(1000,), (7, 50), (3,), (10,), (200,), (5, 5), (130,)]
    base = [torch.randn(s, generator=gen) for s in shapes]
    base.append(torch.randn(40, 30, generator=gen).t())  # non-contiguous: whole, in a group
    grads = [[torch.randn(p.shape, generator=gen) for p in base] for _ in range(4)]
    out = []
    for flags in ({}, {"foreach": True}):  # the default (cache-blocked) against the whole-tensor rule
        ps = [(p.clone() if p.is_contiguous() else p.t().clone().t()).requires_grad_() for p in base]
        opt = create(name, ps, **HP[name], maximize=maximize, **flags)
        for gs in grads:
            for p, g in zip(ps, gs, strict=True):
                p.grad = g.clone()
            opt.step()
        out.append((ps, opt.state_dict()["state"]))
    for a, b in zip(out[0][0], out[1][0], strict=True):
        assert torch.equal(a.detach(), b.detach())
    for sa, sb in zip(out[0][1].values(), out[1][1].values(), strict=True):
        for k in sa:
            assert torch.equal(sa[k], sb[k]) if torch.is_tensor(sa[k]) else sa[k] == sb[k], k
    assert not torch.equal(out[0][0][0].detach(), base[0])


def test_chunked_slices_per_tensor_hyperparameters(monkeypatch):
    """Adam's rule takes per-tensor step counts: each block gets its own tensor's."""
    monkeypatch.setattr(_dispatch, "CHUNK_NUMEL", 64)
    gen = torch.Generator().manual_seed(1)
    shapes = [(300,), (20,), (50,), (129,)]
    ps = [torch.randn(s, generator=gen) for s in shapes]
    gs = [torch.randn(s, generator=gen) for s in shapes]
    runs = []
    for chunked in (True, False):
        lists = (
            [p.clone() for p in ps],
            gs,
            [torch.zeros_like(p) for p in ps],
            [torch.ones_like(p) for p in ps],
        )
        hyper = dict(
            steps=[1.0, 5.0, 2.0, 9.0],
            lr=0.1,
            beta1=0.9,
            beta2=0.99,
            eps=1e-8,
            weight_decay=0.0,
            maximize=False,
        )
        if chunked:
            _dispatch.run_chunked(adam_update, lists, hyper)
        else:
            adam_update(*lists, **hyper)
        runs.append(lists)
    for a, b in zip(runs[0], runs[1], strict=True):
        for x, y in zip(a, b, strict=True):
            assert torch.equal(x, y)


def test_block_workers_run_one_intra_op_thread_and_leave_the_default_alone():
    threads = torch.get_num_threads()
    pool = _dispatch._workers(2)
    try:
        assert torch.get_num_threads() == threads
        x = torch.zeros(1 << 16)
        assert pool.submit(lambda: (x.add_(1), torch.get_num_threads())[1]).result() == 1
    finally:
        torch.set_num_threads(threads)
