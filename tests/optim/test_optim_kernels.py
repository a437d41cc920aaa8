"""The single-pass CPU kernels (``optim._kernels``, numba) of Lion and RMSProp against their foreach rules,
and when the optimizers take them (``fused=True`` always; by default only for large float32/float64
buckets). Their equations are checked against the seed's float64 references in test_lion / test_rmsprop."""

from __future__ import annotations

import numba
import pytest
import torch

from raytune_opt.optim import _dispatch, _kernels, create

CASES = {
    "lion": dict(lr=1e-2, betas=(0.9, 0.99), weight_decay=0.1),
    "rmsprop": dict(lr=1e-2, weight_decay=0.01),
    "rmsprop-momentum": dict(lr=1e-2, momentum=0.5),
}


def _run(name, hp, base, grads, fused, schedule=True):
    ps = [(p.clone() if p.is_contiguous() else p.t().clone().t()).requires_grad_() for p in base]
    opt = create(name.split("-")[0], ps, **hp, fused=fused)
    for t, gs in enumerate(grads):
        if schedule:  # lr and the betas change at every step (a schedule): scalars, no recompilation
            opt.param_groups[0]["lr"] = hp["lr"] / (t + 1)
            if "betas" in hp:
                opt.param_groups[0]["betas"] = (0.9 - 0.01 * t, 0.99)
        for p, g in zip(ps, gs, strict=True):
            p.grad = g.clone()
        opt.step()
    return [p.detach() for p in ps], opt.state_dict()["state"]


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("maximize", [False, True])
def test_kernel_equals_foreach_rule(case, dtype, maximize):
    """Tensors larger than a chunk (cut in pieces), small ones, a 2-D one and a non-contiguous one (which
    the kernel leaves to the foreach rule): the same parameters and state as the foreach rule."""
    gen = torch.Generator().manual_seed(0)
    shapes = [(_kernels.CHUNK * 2 + 37,), (3,), (50, 40), (1,)]
    base = [torch.randn(s, generator=gen, dtype=dtype) for s in shapes]
    base.append(torch.randn(30, 20, generator=gen, dtype=dtype).t())
    grads = [[torch.randn(p.shape, generator=gen, dtype=dtype) for p in base] for _ in range(4)]
    hp = dict(CASES[case], maximize=maximize)
    (ours, s_ours), (ref, s_ref) = (_run(case, hp, base, grads, f) for f in (True, False))
    tol = dict(rtol=1e-13, atol=1e-15) if dtype == torch.float64 else dict(rtol=2e-6, atol=1e-7)
    for a, b, p0 in zip(ours, ref, base, strict=True):
        torch.testing.assert_close(a, b, **tol)
        assert not torch.equal(a, p0)
    for sa, sb in zip(s_ours.values(), s_ref.values(), strict=True):
        assert sa.keys() == sb.keys()
        for k in sa:
            torch.testing.assert_close(sa[k], sb[k], **tol)


def _count_kernel_calls(monkeypatch, name):
    calls = []
    real = getattr(_kernels, name)
    monkeypatch.setattr(_kernels, name, lambda *a, **k: (calls.append(len(a[0])), real(*a, **k))[1])
    return calls


@pytest.mark.parametrize("case", ["lion", "rmsprop"])
def test_default_path_takes_the_kernel_for_large_buckets_only(case, monkeypatch):
    calls = _count_kernel_calls(monkeypatch, f"{case}_update")
    monkeypatch.setattr(_dispatch, "KERNEL_MIN_TOTAL", 1000)
    gen = torch.Generator().manual_seed(2)
    grads = [[torch.randn(600, generator=gen)]]
    _run(case, CASES[case], [torch.randn(600)], grads, None)  # 600 < 1000: cache-blocked foreach
    assert calls == []
    base = [torch.randn(600), torch.randn(20, 30), torch.randn(40, 10).t()]  # 1200 contiguous elements
    grads = [[torch.randn(p.shape, generator=gen) for p in base]]
    _run(case, CASES[case], base, grads, None)
    assert calls == [2]  # the non-contiguous tensor went to the foreach rule
    bf16 = [p.to(torch.bfloat16) for p in base]
    _run(case, CASES[case], bf16, [[g.to(torch.bfloat16) for g in grads[0]]], None)
    assert calls == [2]  # no kernel for half precision
    _run(case, CASES[case], base, grads, False)
    assert calls == [2]


def test_kernel_threads_follow_torch():
    before = torch.get_num_threads()
    try:
        for n in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            torch.set_num_threads(n)
            _run("lion", CASES["lion"], [torch.randn(100)], [[torch.randn(100)]], True)
            assert numba.get_num_threads() == n
    finally:
        torch.set_num_threads(before)
