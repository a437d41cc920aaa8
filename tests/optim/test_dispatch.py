"""Which execution path the dispatcher (``optim._dispatch``) takes for each setting of torch's two flags,
observed by wrapping the real paths (they still run); that every path computes the same update is
checked in test_conformance, test_optim_chunked, test_optim_kernels and test_torch_contract."""

from __future__ import annotations

import pytest
import torch

from raytune_opt.optim import Adam, Lion, _dispatch, create


@pytest.fixture
def seen(monkeypatch):
    """Names of the paths taken in one step: native, kernel, compiled, chunked, and each rule call's
    number of tensors."""
    calls: list = []

    def spy(label, real):
        def wrapped(*args, **kwargs):
            calls.append(label)
            return real(*args, **kwargs)

        return wrapped

    for name in ("run_chunked", "run_compiled", "run_kernel"):
        monkeypatch.setattr(_dispatch, name, spy(name.removeprefix("run_"), getattr(_dispatch, name)))
    for cls in (Adam, Lion):
        monkeypatch.setattr(cls, "_native", spy("native", cls._native))
        rule = cls.rule
        monkeypatch.setattr(
            cls, "rule", staticmethod(lambda *a, _r=rule, **k: (calls.append(len(a[0])), _r(*a, **k))[1])
        )
    return calls


def _step(name, params, **flags):
    opt = create(name, params, lr=1e-3, **flags)
    for p in params:
        p.grad = torch.ones_like(p)
    opt.step()


def _params(n=3):
    return [torch.zeros(4, 5, requires_grad=True) for _ in range(n)]


@pytest.mark.parametrize(
    ("flags", "path"),
    [
        ({}, ["native"]),  # torch's fused kernel
        ({"fused": True}, ["native"]),
        ({"foreach": False}, ["native"]),  # never the foreach rule: the fused kernel still may run
        ({"fused": False}, ["chunked", 3]),  # the CPU default without fused kernels: cache-blocked
        ({"foreach": True}, [3]),  # the foreach rule over whole tensors, one call
        ({"fused": False, "foreach": False}, [1, 1, 1]),  # tensor by tensor
    ],
)
def test_adam_paths(seen, flags, path):
    _step("adam", _params(), **flags)
    assert seen == path


def test_strided_views_leave_the_native_kernel(seen):
    params = _params(2) + [torch.zeros(4, 10)[:, ::2].requires_grad_()]
    _step("adam", params)
    assert seen == ["native", "chunked", 1]  # two dense tensors native, the view through the rule


@pytest.mark.parametrize(
    ("flags", "path"),
    [
        ({}, ["kernel", "chunked", 3]),  # small: the kernel declines, the rule runs cache-blocked
        ({"fused": True}, ["kernel"]),  # the numba kernel for every contiguous float32 tensor
        ({"foreach": False}, ["kernel", 1, 1, 1]),
        ({"fused": False}, ["chunked", 3]),
        ({"foreach": True}, [3]),
    ],
)
def test_lion_paths(seen, flags, path):
    _step("lion", _params(), **flags)
    assert seen == path


def test_fused_true_without_a_kernel_compiles(seen, monkeypatch):
    """Half precision on the CPU: no native Lion, no numba kernel: the compiled rule (the one tensor is
    under the compiled path's size threshold, so it takes the eager rule, here tensor by tensor)."""
    monkeypatch.setattr(_dispatch, "COMPILED_MIN_NUMEL", 1 << 30)
    _step("lion", [p.detach().bfloat16().requires_grad_() for p in _params(2)], fused=True, foreach=False)
    assert seen == ["kernel", "compiled", 1, 1]


def test_while_tracing_the_rule_runs_on_whole_tensors(seen):
    opt = create("adam", _params(), lr=1e-3)
    for p in opt.param_groups[0]["params"]:
        p.grad = torch.ones_like(p)
    torch.compile(opt.step, backend="eager")()
    assert seen == [3]
