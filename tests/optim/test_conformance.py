"""torch.optim conformance of every first-order optimizer: state_dict resume, lr schedulers, parameter
groups, dtypes, maximize, native-vs-foreach agreement, bad input; and each reaches the minimum of
Rosenbrock and of an ill-conditioned quadratic."""

from __future__ import annotations

import io

import pytest
import torch
from first_order_helpers import FIRST_ORDER

from raytune_opt.errors import ConfigError
from raytune_opt.optim import available, create
from raytune_opt.optim.problems import ill_conditioned_quadratic, rosenbrock

NATIVE = ("sgd", "momentum", "adagrad", "adam", "adamw")  # torch has a fused kernel computing the equation
LR = {
    "sgd": 0.05,
    "momentum": 0.02,
    "nesterov": 0.02,
    "rmsprop": 1e-3,
    "adagrad": 0.05,
    "adam": 1e-3,
    "adamw": 1e-3,
    "lion": 1e-3,
}


def _model(seed=0, dtype=torch.float32):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2)).to(dtype)


def _batch(i, dtype=torch.float32):
    gen = torch.Generator().manual_seed(100 + i)
    return torch.randn(8, 6, generator=gen).to(dtype), torch.randn(8, 2, generator=gen).to(dtype)


def _train(model, opt, steps, start=0, sign=1.0, sched=None):
    for i in range(start, start + steps):
        x, y = _batch(i, next(model.parameters()).dtype)
        opt.zero_grad(set_to_none=True)
        (sign * ((model(x) - y) ** 2).mean()).backward()
        opt.step()
        if sched is not None:
            sched.step()


def _params(model):
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("fused", [None, False])
@pytest.mark.parametrize("name", FIRST_ORDER)
def test_state_dict_resume_is_bit_exact(name, fused):
    hp = dict(lr=LR[name], fused=fused)
    if "momentum" in available()[name].hparams and name == "rmsprop":
        hp["momentum"] = 0.5  # exercise the optional buffer
    ref = _model()
    opt = create(name, ref, **hp)
    _train(ref, opt, 10)

    first = _model()
    opt1 = create(name, first, **hp)
    _train(first, opt1, 5)
    buf = io.BytesIO()
    torch.save({"model": first.state_dict(), "opt": opt1.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    resumed = _model(seed=1)  # different init: everything must come from the checkpoint
    resumed.load_state_dict(saved["model"])
    opt2 = create(name, resumed, **hp)
    opt2.load_state_dict(saved["opt"])
    _train(resumed, opt2, 5, start=5)
    for a, b in zip(_params(ref), _params(resumed), strict=True):
        assert torch.equal(a, b)
    for sa, sb in zip(opt.state.values(), opt2.state.values(), strict=True):
        assert sa.keys() == sb.keys()
        for k in sa:  # tensors, and Nesterov's buffer scale (a float, exact in any parameter dtype)
            assert torch.equal(sa[k], sb[k]) if torch.is_tensor(sa[k]) else sa[k] == sb[k], k


@pytest.mark.parametrize("name", FIRST_ORDER)
def test_lr_schedulers(name):
    lr = LR[name]
    for make in (
        lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5),
        lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=10),
    ):
        model = _model()
        opt = create(name, model, lr=lr)
        _train(model, opt, 10, sched=make(opt))
        assert all(torch.isfinite(p).all() for p in model.parameters())
        assert all(g["lr"] < lr for g in opt.param_groups)


@pytest.mark.parametrize("name", FIRST_ORDER)
def test_one_cycle_cycles_momentum_or_beta1(name):
    hps = available()[name].hparams
    cycle = "momentum" in hps or "betas" in hps
    model = _model()
    opt = create(name, model, lr=LR[name])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR[name], total_steps=12, cycle_momentum=cycle)
    seen = set()
    for i in range(12):
        _train(model, opt, 1, start=i)
        sched.step() if i < 11 else None
        g = opt.param_groups[0]
        seen.add(round(g["lr"], 12))
        if cycle:
            seen.add(("m", round(g["betas"][0] if "betas" in hps else g["momentum"], 12)))
    assert len([s for s in seen if not isinstance(s, tuple)]) > 5
    if cycle:
        assert len([s for s in seen if isinstance(s, tuple)]) > 5
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize("fused", [None, False])
@pytest.mark.parametrize("name", FIRST_ORDER)
def test_param_groups_have_their_own_hyperparameters(name, fused):
    """One optimizer over two groups with different lr == two optimizers, one per group."""
    lr = LR[name]
    a, b = _model(), _model()
    wa, ba = list(a[0].parameters()), [p for m in (a[2],) for p in m.parameters()]
    opt = create(name, [{"params": wa}, {"params": ba, "lr": lr * 3}], lr=lr, fused=fused)
    opt_w = create(name, list(b[0].parameters()), lr=lr, fused=fused)
    opt_b = create(name, list(b[2].parameters()), lr=lr * 3, fused=fused)
    for i in range(4):
        x, y = _batch(i)
        for m, opts in ((a, [opt]), (b, [opt_w, opt_b])):
            for o in opts:
                o.zero_grad()
            ((m(x) - y) ** 2).mean().backward()
            for o in opts:
                o.step()
    for pa, pb in zip(_params(a), _params(b), strict=True):
        assert torch.equal(pa, pb)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("name", FIRST_ORDER)
def test_dtypes(name, dtype):
    ref = _model(dtype=torch.float64)
    model = _model(dtype=dtype)
    opt = create(name, model, lr=LR[name])
    _train(model, opt, 5)
    _train(ref, create(name, ref, lr=LR[name]), 5)
    for state in opt.state.values():
        for k, v in state.items():
            if k == "momentum_scale":  # Nesterov's buffer scale: a Python float
                assert isinstance(v, float)
                continue
            assert v.dtype == (torch.float32 if k == "step" else dtype), k
    tol = {torch.float32: 1e-4, torch.float64: 1e-12, torch.bfloat16: 5e-2}[dtype]
    if name == "lion" and dtype != torch.float64:
        tol = max(tol, 2 * LR[name] * 5)  # a sign flip of a tiny c moves θ by 2η
    for p, r in zip(_params(model), _params(ref), strict=True):
        assert (p.double() - r).abs().max() <= tol * max(1.0, r.abs().max().item())


@pytest.mark.parametrize("name", FIRST_ORDER)
def test_maximize_ascends(name):
    """maximize=True on −J follows the same path as minimizing J."""
    a, b = _model(), _model()
    _train(a, create(name, a, lr=LR[name]), 5)
    _train(b, create(name, b, lr=LR[name], maximize=True), 5, sign=-1.0)
    for pa, pb in zip(_params(a), _params(b), strict=True):
        assert torch.equal(pa, pb)


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
@pytest.mark.parametrize("name", NATIVE)
def test_native_kernel_agrees_with_foreach_path(name, dtype, tol):
    """fused=None runs torch's fused kernel; fused=False the foreach rule: the same equation, so they agree
    to rounding (bit for bit for sgd; the kernels order some products differently, so not for the others)."""
    extra = {"adagrad": dict(decay=0.9), "adam": dict(weight_decay=0.01), "adamw": dict(weight_decay=0.1)}
    out = []
    for fused in (None, False):
        model = _model(dtype=dtype)
        _train(model, create(name, model, lr=LR[name] * 10, fused=fused, **extra.get(name, {})), 10)
        out.append(_params(model))
    for a, b in zip(*out, strict=True):
        if name == "sgd":
            assert torch.equal(a, b)
        assert (a - b).abs().max() <= tol * b.abs().max()


def test_params_without_grad_are_skipped():
    model = _model()
    opt = create("adam", model, lr=0.1)
    model[2].weight.requires_grad_(False)
    _train(model, opt, 1)
    assert model[2].weight not in opt.state and model[0].weight in opt.state


# -- bad input --------------------------------------------------------------------------------------

BAD = [
    ("lr", -1.0, FIRST_ORDER),
    ("betas", (1.0, 0.9), ("adam", "adamw", "lion")),
    ("betas", (0.9, -0.1), ("adam", "adamw", "lion")),
    ("betas", 0.9, ("adam", "adamw", "lion")),
    ("eps", 0.0, ("rmsprop", "adagrad", "adam", "adamw")),
    ("momentum", 1.0, ("momentum", "nesterov", "rmsprop")),
    ("beta", 1.5, ("rmsprop",)),
    ("decay", 1.1, ("adagrad",)),
    ("weight_decay", -0.1, FIRST_ORDER),
    ("maximize", "yes", FIRST_ORDER),
    ("fused", "auto", FIRST_ORDER),
]


@pytest.mark.parametrize("field,value,names", BAD, ids=[f"{f}={v!r}" for f, v, _ in BAD])
def test_bad_hyperparameters_raise_config_error(field, value, names):
    for name in names:
        with pytest.raises(ConfigError) as err:
            create(name, [torch.zeros(2, requires_grad=True)], **{field: value})
        msg = str(err.value)
        assert name in msg and field in msg and "expected" in msg or "choose one of" in msg, msg


@pytest.mark.parametrize("name", FIRST_ORDER)
def test_bad_group_hyperparameters_raise_config_error(name):
    with pytest.raises(ConfigError, match="lr"):
        create(name, [{"params": [torch.zeros(2)], "lr": -0.5}])
    opt = create(name, [torch.zeros(2)])
    with pytest.raises(ConfigError, match="lr"):
        opt.add_param_group({"params": [torch.zeros(3)], "lr": float("nan")})


@pytest.mark.parametrize("name", FIRST_ORDER)
def test_sparse_gradients_raise_config_error(name):
    emb = torch.nn.Embedding(10, 3, sparse=True)
    opt = create(name, emb.parameters())
    emb(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(ConfigError, match=f"{name}.*sparse"):
        opt.step()


def test_other_bad_params_raise_config_error():
    with pytest.raises(ConfigError, match="non-empty"):
        create("adam", [])
    with pytest.raises(ConfigError, match="dtype"):
        create("sgd", [torch.zeros(3, dtype=torch.int64)])
    with pytest.raises(ConfigError, match="Tensor"):
        create("lion", torch.zeros(3))


# -- reaching the minimum ---------------------------------------------------------------------------

# (hyperparameters, steps, cosine-annealed lr) per optimizer, tuned for each problem
ROSENBROCK = {
    "sgd": (dict(lr=2e-3), 16000, False),
    "momentum": (dict(lr=1e-3, momentum=0.95), 2000, False),
    "nesterov": (dict(lr=1e-3, momentum=0.95), 2000, False),
    "rmsprop": (dict(lr=1e-3, momentum=0.9), 3000, True),
    "adagrad": (dict(lr=1.5), 6000, False),
    "adam": (dict(lr=0.03, betas=(0.9, 0.99)), 2000, True),
    "adamw": (dict(lr=0.03, betas=(0.9, 0.99), weight_decay=0.0), 2000, True),
    "lion": (dict(lr=3e-3), 4000, True),
}
QUADRATIC = {
    "sgd": (dict(lr=0.019), 600, False),
    "momentum": (dict(lr=1e-2, momentum=0.9), 250, False),
    "nesterov": (dict(lr=1e-2, momentum=0.9), 250, False),
    "rmsprop": (dict(lr=3e-2), 500, True),
    "adagrad": (dict(lr=1.0), 400, False),
    "adam": (dict(lr=0.1, betas=(0.9, 0.99)), 300, False),
    "adamw": (dict(lr=0.1, betas=(0.9, 0.99), weight_decay=0.0), 300, False),
    "lion": (dict(lr=3e-2), 2000, True),
}


def _rosenbrock_grad(x: torch.Tensor) -> torch.Tensor:
    """∇ of 100 (y − x²)² + (1 − x)² in closed form (checked against autograd below): fast enough for SGD's
    16k steps."""
    a, b = x[0], x[1]
    return torch.stack([-400 * a * (b - a * a) - 2 * (1 - a), 200 * (b - a * a)])


def test_rosenbrock_gradient():
    x = torch.tensor([-1.2, 1.0], dtype=torch.float64, requires_grad=True)
    rosenbrock(x).backward()
    torch.testing.assert_close(x.grad, _rosenbrock_grad(x.detach()), rtol=1e-14, atol=0)


@pytest.mark.parametrize("problem", ["rosenbrock", "quadratic"])
@pytest.mark.parametrize("name", FIRST_ORDER)
def test_reaches_the_minimum(name, problem):
    if problem == "rosenbrock":
        x_star, x, tol = (
            torch.ones(2, dtype=torch.float64),
            torch.tensor([-1.2, 1.0], dtype=torch.float64),
            5e-3,
        )
        hp, steps, cosine = ROSENBROCK[name]

        def set_grad():
            x.grad = _rosenbrock_grad(x)
    else:
        f, x_star = ill_conditioned_quadratic(10, 100.0, seed=0)  # condition number 100
        x, tol = torch.zeros(10, dtype=torch.float64, requires_grad=True), 1e-3
        hp, steps, cosine = QUADRATIC[name]

        def set_grad():
            opt.zero_grad()
            f(x).backward()

    opt = create(name, [x], **hp)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps) if cosine else None
    for _ in range(steps):
        set_grad()
        opt.step()
        if sched is not None:
            sched.step()
    a = opt.iterate()[0] if name == "nesterov" else x.detach()
    assert (a - x_star).norm() < tol * max(1.0, x_star.norm().item())
