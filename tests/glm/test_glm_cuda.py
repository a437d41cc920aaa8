"""glm.fit on CUDA (``device="cuda"``) gives the CPU fit: IRLS and Newton for every family, robust Huber.

The CPU fits are checked against statsmodels in test_fit.py / test_robust.py. Skipped without a GPU (the
CI machine); run on a lent one.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_data

from raytune_opt import glm

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize("method", ["irls", "newton", "lbfgs"])
@pytest.mark.parametrize(("family", "link"), [("binomial", "logit"), ("poisson", "log"), ("gamma", "log")])
def test_cuda_fit_equals_cpu_fit(family, link, method):
    X, y = make_data(family, link)
    tol = 1e-13 if method == "lbfgs" else 1e-8  # L-BFGS: run to the solution itself (see test_distributed)
    cpu = glm.fit(X, y, family=family, link=link, method=method, tol=tol)
    cuda = glm.fit(X, y, family=family, link=link, method=method, tol=tol, device="cuda")
    assert cuda.converged
    # L-BFGS stops where its line search meets the tolerance: GPU summation order moves that point ~1e-8
    np.testing.assert_allclose(cuda.coef, cpu.coef, rtol=0, atol=1e-7 if method == "lbfgs" else 1e-9)
    np.testing.assert_allclose(cuda.bse, cpu.bse, rtol=1e-6 if method == "lbfgs" else 1e-8)
    np.testing.assert_allclose(cuda.deviance, cpu.deviance, rtol=1e-10)


def test_cuda_robust_huber_equals_cpu():
    X, y = make_data("gaussian", "identity")
    cpu, cuda = glm.fit(X, y, robust="huber"), glm.fit(X, y, robust="huber", device="cuda")
    np.testing.assert_allclose(cuda.coef, cpu.coef, rtol=0, atol=1e-9)
    np.testing.assert_allclose(cuda.bse, cpu.bse, rtol=1e-8)


def test_cuda_torch_input_stays_on_its_device():
    X, y = make_data("poisson", "log")
    Xt, yt = torch.from_numpy(X).cuda(), torch.from_numpy(y).cuda()
    res = glm.fit(Xt, yt, family="poisson")  # device taken from X
    np.testing.assert_allclose(res.coef, glm.fit(X, y, family="poisson").coef, rtol=0, atol=1e-9)
