"""The numba passes over X (``glm._kernels``) that large CPU float64 fits use: each against numpy, and fits
that take them against statsmodels and against the same fits through torch's ops."""

from __future__ import annotations

import warnings

import numba
import numpy as np
import pytest
import statsmodels.api as sm
import torch
from conftest import CASES, make_data, sm_family

from raytune_opt import glm
from raytune_opt.glm import _kernels, shard
from raytune_opt.glm.families import get_family


@pytest.fixture
def kernels_on(monkeypatch):
    """Every CPU float64 shard takes the kernels."""
    monkeypatch.setattr(shard, "KERNEL_MIN_ELEMENTS", 1)
    assert shard.kernels() is not None


@pytest.mark.parametrize("n", [1, _kernels.BLOCK, 3 * _kernels.BLOCK + 17])
def test_passes_equal_numpy_and_do_not_depend_on_the_thread_count(n):
    rng = np.random.default_rng(n)
    X, beta = rng.normal(size=(n, 7)), rng.normal(size=7)
    offset, sqrt_w, v = rng.normal(size=n), rng.random(n), rng.normal(size=n)
    out32 = np.empty((n, 7), np.float32)
    before = torch.get_num_threads()
    runs = []
    try:
        for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            torch.set_num_threads(threads)
            eta = _kernels.linear_predictor(X, beta, offset)
            rhs = _kernels.weighted_rows(X, sqrt_w, v, out32)
            runs.append((eta, rhs, _kernels.rmatvec(X, v), out32.copy()))
    finally:
        torch.set_num_threads(before)
    eta, rhs, xtv, rows = runs[0]
    np.testing.assert_allclose(eta, offset + X @ beta, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(rhs, X.T @ v, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(xtv, rhs)
    np.testing.assert_array_equal(rows, (sqrt_w[:, None] * X).astype(np.float32))
    for a, b in zip(runs[0], runs[1], strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(("family", "link"), sorted(CASES))
def test_irls_with_kernels_equals_statsmodels_and_the_torch_path(family, link, kernels_on, monkeypatch):
    X, y = make_data(family, link, seed=3)
    res = glm.fit(X, y, family=family, link=link)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # statsmodels' DomainWarning for the gamma inverse link
        ref = sm.GLM(y, X, family=sm_family(family, link)).fit(tol=1e-8, maxiter=1000)
    assert res.converged
    np.testing.assert_allclose(res.coef, ref.params, rtol=1e-6)
    np.testing.assert_allclose(res.bse, ref.bse, rtol=1e-6)
    np.testing.assert_allclose(res.deviance, ref.deviance, rtol=1e-9)
    monkeypatch.setattr(shard, "KERNEL_MIN_ELEMENTS", 1 << 62)  # the same fit through torch's ops
    torch_res = glm.fit(X, y, family=family, link=link)
    np.testing.assert_allclose(res.coef, torch_res.coef, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("method", ["newton", "irls-lm", "lbfgs"])
def test_other_methods_with_kernels_reach_the_irls_solution(method, kernels_on):
    X, y = make_data("poisson", "log", seed=4)
    ref = glm.fit(X, y, family="poisson")
    res = glm.fit(X, y, family="poisson", method=method)
    assert res.converged
    np.testing.assert_allclose(res.coef, ref.coef, rtol=1e-6, atol=1e-8)


def test_robust_with_kernels_equals_statsmodels_rlm(kernels_on):
    rng = np.random.default_rng(5)
    X = np.column_stack([np.ones(800), rng.normal(size=(800, 3))])
    y = X @ np.array([1.0, 2.0, -1.0, 0.5]) + rng.standard_t(2, 800)
    res = glm.fit(X, y, robust="huber")
    ref = sm.RLM(y, X, M=sm.robust.norms.HuberT()).fit(tol=1e-10)
    np.testing.assert_allclose(res.coef, ref.params, rtol=1e-5)


def test_fits_reuse_one_scratch_buffer_and_free_buffers_releases_it(kernels_on):
    X, y = make_data("binomial", "logit", seed=6)
    glm.free_buffers()
    first = glm.fit(X, y, family="binomial")
    assert len(shard._SPARE) == 1
    storage = shard._SPARE[0].untyped_storage().data_ptr()
    taken = shard._rows32(torch.Size(X.shape), torch.device("cpu"))  # what the next fit gets
    assert taken.untyped_storage().data_ptr() == storage and shard._SPARE == []
    shard._give_back(taken)
    second = glm.fit(X[:700], y[:700], family="binomial")  # a smaller fit takes the same buffer
    assert shard._SPARE[0].untyped_storage().data_ptr() == storage
    np.testing.assert_array_equal(glm.fit(X, y, family="binomial").coef, first.coef)
    assert second.converged
    glm.free_buffers()
    assert shard._SPARE == []


@pytest.mark.parametrize("n", [3, 2 * _kernels.BLOCK + 7])
@pytest.mark.parametrize(("family", "link"), sorted(_kernels.CANONICAL))
def test_canonical_pass_equals_numpy_and_does_not_depend_on_the_thread_count(family, link, n):
    rng = np.random.default_rng(n)
    X, beta = rng.normal(size=(n, 6)), rng.normal(size=6)
    offset, w = rng.normal(size=n), rng.random(n) + 0.5
    offset[:2] = (60.0, -60.0) if family == "binomial" else (0.0, -800.0)  # mu clipped into the domain
    fam = get_family(family, link)
    y = rng.random(n).round() if family == "binomial" else rng.poisson(2.0, n).astype(float)
    sat = fam.saturated(torch.from_numpy(y)).numpy()
    kind = _kernels.CANONICAL[(family, link)]
    lo, hi = (fam.eps, 1.0 - fam.eps) if family == "binomial" else (1e-300, np.inf)
    before, runs = torch.get_num_threads(), []
    try:
        for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            torch.set_num_threads(threads)
            runs.append(_kernels.canonical_pass(X, beta, offset, y, w, sat, kind, lo, hi))
    finally:
        torch.set_num_threads(before)
    eta, mu, dev, rhs = runs[0]
    ref_eta = offset + X @ beta
    ref_mu = fam.clip_mu(fam.link.inverse(torch.from_numpy(ref_eta))).numpy()
    ref_dev = float(
        (torch.from_numpy(w) * fam.unit_deviance(torch.from_numpy(y), torch.from_numpy(ref_mu))).sum()
    )
    np.testing.assert_allclose(eta, ref_eta, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(mu, ref_mu, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(dev, ref_dev, rtol=1e-12)
    np.testing.assert_allclose(rhs, X.T @ (w * (y - ref_mu)), rtol=1e-11, atol=1e-11)
    for a, b in zip(runs[0], runs[1], strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(("family", "link"), [*sorted(_kernels.CANONICAL), ("binomial", "probit")])
def test_deviance_rhs_equals_the_deviance_and_the_rhs_through_torch(family, link, kernels_on, monkeypatch):
    X, y = make_data(family, link, n=700, seed=8)
    rng = np.random.default_rng(8)
    w, off = rng.random(700) + 0.5, 0.1 * rng.normal(size=700)
    beta = torch.tensor([0.3, -0.5, 0.2, 0.1, 0.4], dtype=torch.float64)
    fam = get_family(family, link)

    def shard_():
        return shard.Shard(*(torch.from_numpy(a) for a in (X, y, w, off)), fam)

    fused = shard_()
    dev, rhs = fused.deviance_rhs(beta)
    np.testing.assert_array_equal(fused.mean(beta).numpy(), fused._cache[2].numpy())  # eta, mu cached
    monkeypatch.setattr(shard, "KERNEL_MIN_ELEMENTS", 1 << 62)
    ref = shard_()
    assert ref._fast() is None
    np.testing.assert_allclose(float(dev), float(ref.deviance(beta)[0]), rtol=1e-12)
    np.testing.assert_allclose(rhs.numpy(), ref.irls_rhs(beta)[0].numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(fused.mean(beta).numpy(), ref.mean(beta).numpy(), rtol=1e-13)


@pytest.mark.parametrize(("family", "link"), sorted(_kernels.CANONICAL))
def test_weighted_offset_fits_through_the_one_pass_chord_steps_equal_statsmodels(family, link, kernels_on):
    X, y = make_data(family, link, n=3000, seed=9)
    rng = np.random.default_rng(9)
    w, off = rng.random(3000) + 0.5, 0.1 * rng.normal(size=3000)
    res = glm.fit(X, y, family=family, link=link, weights=w, offset=off)
    ref = sm.GLM(y, X, family=sm_family(family, link), var_weights=w, offset=off).fit(tol=1e-10, maxiter=100)
    assert res.converged and any(h.get("next_step_chord") for h in res.history)
    np.testing.assert_allclose(res.coef, ref.params, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(res.bse, ref.bse, rtol=1e-6)
    np.testing.assert_allclose(res.deviance, ref.deviance, rtol=1e-10)


@pytest.mark.parametrize("n", [2, 5, 1001])
def test_float64_gram_by_syrk_in_the_scratch_buffer_equals_numpy(n):
    rng = np.random.default_rng(n)
    X, sqrt_w = rng.normal(size=(n, 7)), rng.random(n)
    glm.free_buffers()
    sh = shard.Shard(
        torch.from_numpy(X),
        torch.zeros(n, dtype=torch.float64),
        torch.ones(n, dtype=torch.float64),
        torch.zeros(n, dtype=torch.float64),
        None,
    )
    G = sh.gram(torch.from_numpy(sqrt_w)).numpy()
    np.testing.assert_allclose(G, (X * sqrt_w[:, None] ** 2).T @ X, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(G, G.T)
    sh.release()
    assert len(shard._SPARE) == 1  # the buffer the float64 Gram used is kept for the next fit
    G2 = sh.gram(torch.from_numpy(sqrt_w)).numpy()  # after release: borrowed, given back
    np.testing.assert_array_equal(G, G2)
    assert len(shard._SPARE) == 1 and sh._buf32 is None
    glm.free_buffers()
