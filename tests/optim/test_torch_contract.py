"""The torch.optim contract on inputs users have, after the checks of PyTorch's own optimizer tests
(``torch/testing/_internal/common_optimizers.py``, ``test/optim/test_optim.py``): non-dense parameters,
state dicts of older versions, a Python-number ``step``, complex parameters, ``torch.compile(opt.step)``,
and the two execution-path flags ``fused`` / ``foreach``."""

from __future__ import annotations

import copy

import pytest
import torch
from first_order_helpers import FIRST_ORDER

from raytune_opt.optim import create

F64 = torch.float64
HP = {  # settings that reach every term of each equation
    "sgd": dict(lr=0.1, weight_decay=0.01),
    "momentum": dict(lr=0.1, momentum=0.9, weight_decay=0.01),
    "nesterov": dict(lr=0.1, momentum=0.9),
    "rmsprop": dict(lr=0.01, momentum=0.5, weight_decay=0.01),
    "adagrad": dict(lr=0.1, weight_decay=0.01, decay=0.95),
    "adam": dict(lr=0.1, weight_decay=0.01),
    "adamw": dict(lr=0.1, weight_decay=0.1),
    "lion": dict(lr=0.01, weight_decay=0.1),
}
#: the paths a user can ask for; the default first
FLAGS = [{}, {"foreach": True}, {"foreach": False}, {"fused": False}, {"fused": True}]


def _grads(shape, steps, seed=0, dtype=F64):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=gen, dtype=dtype) for _ in range(steps)]


def _step_all(opt, params, grads_per_param):
    for gs in zip(*grads_per_param, strict=True):
        for p, g in zip(params, gs, strict=True):
            p.grad = g.clone()
        opt.step()


def _dense_reference(name, x0s, grads_per_param, **hp):
    """The same steps on contiguous copies of the parameters (the path the float64 references check)."""
    ref = [x.detach().clone().contiguous().requires_grad_() for x in x0s]
    _step_all(create(name, ref, **HP[name], **hp), ref, grads_per_param)
    return ref


@pytest.mark.parametrize("flags", FLAGS[:4], ids=str)
@pytest.mark.parametrize("name", FIRST_ORDER)
def test_non_dense_parameters_get_the_dense_update(name, flags):
    """A strided view (every other column) and a transposed parameter whose gradient is laid out
    contiguously: torch's CPU fused kernels index raw memory and get both wrong (they are not used for
    them); the update must be the one a contiguous parameter gets."""
    base = torch.randn(6, 16, dtype=F64)
    view = base[:, ::2].requires_grad_()  # non-dense: a leaf that views every other column
    trans = torch.randn(8, 6, dtype=F64).t().requires_grad_()  # dense, but not the gradient's layout
    assert not view.is_contiguous() and not trans.is_contiguous()
    x0s = [view.detach().clone(), trans.detach().clone()]
    grads = [_grads((6, 8), 3, seed=1), _grads((6, 8), 3, seed=2)]
    _step_all(create(name, [view, trans], **HP[name], **flags), [view, trans], grads)
    for ours, ref, x0 in zip([view, trans], _dense_reference(name, x0s, grads), x0s, strict=True):
        assert not torch.equal(ours.detach(), x0)
        torch.testing.assert_close(ours.detach(), ref.detach(), rtol=1e-12, atol=1e-14)
    assert torch.equal(base[:, 1::2], base[:, 1::2].clone())  # the columns between stay as they were


def _trained(name, steps=3, **hp):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)).double()
    opt = create(name, model, **HP[name], **hp)
    for i in range(steps):
        _loss(model, i).backward()
        opt.step()
        opt.zero_grad()
    return model, opt


def _loss(model, i):
    gen = torch.Generator().manual_seed(100 + i)
    x, y = torch.randn(7, 5, generator=gen, dtype=F64), torch.randn(7, 2, generator=gen, dtype=F64)
    return ((model(x) - y) ** 2).mean()


def _resume_equals_continuing(name, edit):
    """Train, save, ``edit`` the state dict (as an older version wrote it), load it into a fresh optimizer
    over a copy of the model, and take the same further steps as the original: the same parameters."""
    model, opt = _trained(name)
    sd = copy.deepcopy(opt.state_dict())
    edit(sd)
    model2 = copy.deepcopy(model)
    opt2 = create(name, model2, **HP[name])
    opt2.load_state_dict(sd)
    for m, o in ((model, opt), (model2, opt2)):
        for i in range(3, 6):
            _loss(m, i).backward()
            o.step()
            o.zero_grad()
    for a, b in zip(model.parameters(), model2.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    return opt2


@pytest.mark.parametrize("name", FIRST_ORDER)
def test_a_state_dict_without_the_newer_group_keys_loads_and_steps(name):
    def drop(sd):
        for group in sd["param_groups"]:
            for key in ("maximize", "fused", "foreach", "differentiable"):
                group.pop(key, None)

    opt = _resume_equals_continuing(name, drop)
    for group in opt.param_groups:  # filled in from the constructor's defaults, as torch does
        assert group["maximize"] is False and group["fused"] is None and group["foreach"] is None


@pytest.mark.parametrize("name", ["adam", "adamw", "adagrad"])
def test_a_step_saved_as_a_python_number_loads_and_steps(name):
    def to_float(sd):
        for st in sd["state"].values():
            st["step"] = float(st["step"])

    opt = _resume_equals_continuing(name, to_float)
    for st in opt.state.values():
        assert torch.is_tensor(st["step"]) and st["step"].dtype == torch.float32 and float(st["step"]) == 6


@pytest.mark.parametrize("flags", FLAGS, ids=str)
@pytest.mark.parametrize("name", FIRST_ORDER)
def test_complex_parameters_step_as_their_real_view(name, flags):
    """As torch.optim: a complex parameter is its real and imaginary parts, two real coordinates each."""
    gen = torch.Generator().manual_seed(3)
    z0 = torch.randn(5, 3, dtype=torch.complex128, generator=gen)
    grads = [torch.randn(5, 3, dtype=torch.complex128, generator=gen) for _ in range(4)]
    z = z0.clone().requires_grad_()
    r = torch.view_as_real(z0).clone().requires_grad_()
    _step_all(create(name, [z], **HP[name], **flags), [z], [grads])
    _step_all(create(name, [r], **HP[name], **flags), [r], [[torch.view_as_real(g) for g in grads]])
    assert not torch.equal(z.detach(), z0)
    torch.testing.assert_close(torch.view_as_real(z.detach()), r.detach(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(
    ("name", "peer"),
    [
        ("sgd", lambda p: torch.optim.SGD(p, lr=0.1, weight_decay=0.01)),
        ("adam", lambda p: torch.optim.Adam(p, lr=0.1, weight_decay=0.01)),
        ("adamw", lambda p: torch.optim.AdamW(p, lr=0.1, weight_decay=0.1)),
    ],
)
def test_complex_parameters_agree_with_torch(name, peer):
    """Where torch.optim computes the same equation, it gives the same complex iterates."""
    gen = torch.Generator().manual_seed(4)
    z0 = torch.randn(4, 2, dtype=torch.complex128, generator=gen)
    grads = [torch.randn(4, 2, dtype=torch.complex128, generator=gen) for _ in range(5)]
    ours, theirs = z0.clone().requires_grad_(), z0.clone().requires_grad_()
    _step_all(create(name, [ours], **HP[name]), [ours], [grads])
    _step_all(peer([theirs]), [theirs], [grads])
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-14)


def _compiled_run(name, backend):
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3).double()
    ref = copy.deepcopy(model)
    opt, opt_ref = create(name, model, **HP[name]), create(name, ref, **HP[name])
    step = torch.compile(opt.step, backend=backend)
    for i in range(3):
        for m, s in ((model, step), (ref, opt_ref.step)):
            gen = torch.Generator().manual_seed(i)
            m(torch.randn(5, 4, generator=gen, dtype=F64)).pow(2).sum().backward()
            s()
            m.zero_grad()
    for a, b in zip(model.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", FIRST_ORDER)
def test_torch_compile_of_step_on_the_default_path(name):
    """``torch.compile(opt.step)`` traces the rule (torch's CPU fused kernels have no fake-tensor kernel,
    numba loops and worker threads cannot be traced). ``aot_eager`` runs the tracing and functionalisation
    that inductor needs, without its code generation (seconds per optimizer on a small CPU)."""
    _compiled_run(name, "aot_eager")


def test_torch_compile_of_step_with_inductor():
    """One full compile to C++ (seconds with inductor's on-disk cache, tens of seconds cold on 2 cores)."""
    _compiled_run("adam", "inductor")


@pytest.mark.parametrize("name", ["momentum", "nesterov"])
def test_momentum_still_moves_at_lr_zero(name):
    """The seed's v ← γ v + α g: at α = 0 the velocity still moves the parameter (v ← γ v ; a ← a − v),
    as their docstrings say; torch's SGD (a ← a − α·buf) would stand still."""
    x = torch.zeros(3, dtype=F64, requires_grad=True)
    opt = create(name, [x], lr=0.1, momentum=0.9)
    x.grad = torch.ones(3, dtype=F64)
    opt.step()
    before = x.detach().clone()
    opt.param_groups[0]["lr"] = 0.0
    x.grad = torch.ones(3, dtype=F64)
    opt.step()
    step = (x.detach() - before).abs()
    assert torch.all(step > 0.05)
    doc = type(opt).__doc__
    assert "still moves at lr = 0" in doc and "warm-up" in doc
