"""GLM and robust-regression solvers against statsmodels and scikit-learn, same data, same run.

Float64, 2 threads (torch and BLAS). Problems: logistic regression (n=200 000, p=100), Poisson regression
(n=200 000, p=50), Huber regression (n=200 000, p=50); ``--quick`` uses n=1 000, p/5. Each solver's wall
time is the best of ``--repeats`` runs; ``iters`` is the solver's own count; ``max|dcoef|`` is against
statsmodels (GLM IRLS or RLM HuberT), the reference. scikit-learn's ``HuberRegressor`` estimates its scale
jointly with the coefficients (a different M-estimator than RLM's MAD scale), so its coefficients differ.

    python benchmarks/glm_solvers.py [--quick] [--repeats 3]

The last line is the headline: raytune_opt IRLS time over statsmodels' and over scikit-learn's fastest.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "2"

import numpy as np  # noqa: E402
import torch  # noqa: E402

from raytune_opt import glm  # noqa: E402


def _data(kind: str, n: int, p: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = np.column_stack([np.ones(n), rng.standard_normal((n, p - 1))])
    beta = rng.normal(0.0, 1.0 / np.sqrt(p), p)
    eta = X @ beta
    if kind == "logistic":
        y = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(np.float64)
    elif kind == "poisson":
        y = rng.poisson(np.exp(0.5 * eta)).astype(np.float64)
    else:  # huber: heavy-tailed noise plus 5 % gross outliers
        y = eta + rng.standard_t(3, n)
        bad = rng.random(n) < 0.05
        y[bad] += rng.normal(0.0, 20.0, bad.sum())
    return X, y


def _time(fn, repeats: int):
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _peers(kind: str, X: np.ndarray, y: np.ndarray):
    """(name, fit) pairs; each fit returns (coef, iterations)."""
    import statsmodels.api as sm
    from sklearn.linear_model import HuberRegressor, LogisticRegression, PoissonRegressor

    def sm_glm(family):
        def run():
            r = sm.GLM(y, X, family=family).fit()
            return r.params, r.fit_history["iteration"]

        return run

    def sk(est):
        def run():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                e = est.fit(X, y)
            it = e.n_iter_[0] if np.ndim(e.n_iter_) else e.n_iter_
            return np.ravel(e.coef_), int(it)

        return run

    def ours(**kw):
        def run():
            r = glm.fit(X, y, **kw)
            return r.coef, r.n_iter

        return run

    if kind == "logistic":
        return [
            ("statsmodels GLM irls", sm_glm(sm.families.Binomial())),
            (
                "sklearn newton-cholesky",
                sk(
                    LogisticRegression(
                        penalty=None, solver="newton-cholesky", fit_intercept=False, max_iter=100
                    )
                ),
            ),
            ("raytune_opt irls", ours(family="binomial")),
            ("raytune_opt newton", ours(family="binomial", method="newton")),
            ("raytune_opt irls-lm", ours(family="binomial", method="irls-lm")),
            ("raytune_opt lbfgs", ours(family="binomial", method="lbfgs")),
        ]
    if kind == "poisson":
        return [
            ("statsmodels GLM irls", sm_glm(sm.families.Poisson())),
            (
                "sklearn newton-cholesky",
                sk(PoissonRegressor(alpha=0.0, solver="newton-cholesky", fit_intercept=False, max_iter=100)),
            ),
            (
                "sklearn lbfgs",
                sk(PoissonRegressor(alpha=0.0, solver="lbfgs", fit_intercept=False, max_iter=1000)),
            ),
            ("raytune_opt irls", ours(family="poisson")),
            ("raytune_opt newton", ours(family="poisson", method="newton")),
            ("raytune_opt irls-lm", ours(family="poisson", method="irls-lm")),
            ("raytune_opt lbfgs", ours(family="poisson", method="lbfgs")),
        ]

    def sm_rlm():
        r = sm.RLM(y, X, M=sm.robust.norms.HuberT()).fit()
        return r.params, r.fit_history["iteration"]

    return [
        ("statsmodels RLM HuberT", sm_rlm),
        (
            "sklearn HuberRegressor",
            sk(HuberRegressor(epsilon=1.345, alpha=0.0, fit_intercept=False, max_iter=1000)),
        ),
        ("raytune_opt irls huber", ours(robust="huber")),
        ("raytune_opt irls-lm huber", ours(robust="huber", method="irls-lm")),
    ]


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="n = 1 000 and p / 5: a smoke run")
    ap.add_argument("--repeats", type=int, default=2, help="timed runs per solver (best is reported)")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(2)
    except ImportError:
        pass
    n, shrink = (1_000, 5) if args.quick else (200_000, 1)
    problems = [("logistic", n, 100 // shrink), ("poisson", n, 50 // shrink), ("huber", n, 50 // shrink)]
    print("| problem | solver | time s | iters | max abs dcoef vs statsmodels | time / raytune_opt irls |")
    print("|---|---|---:|---:|---:|---:|")
    times: dict[str, dict[str, float]] = {}
    for kind, n_rows, p in problems:
        X, y = _data(kind, n_rows, p)
        rows = []
        for name, run in _peers(kind, X, y):
            t, (coef, iters) = _time(run, args.repeats)
            rows.append((name, t, iters, coef))
        ref = rows[0][3]
        ours = next(t for name, t, _, _ in rows if name.startswith("raytune_opt irls"))
        times[kind] = {name: t for name, t, _, _ in rows}
        for name, t, iters, coef in rows:
            print(
                f"| {kind} n={n_rows} p={p} | {name} | {t:.3f} | {iters} | {np.abs(coef - ref).max():.1e} "
                f"| {t / ours:.2f} |"
            )
    heads = []
    for kind, tt in times.items():
        ours = next(t for name, t in tt.items() if name.startswith("raytune_opt irls"))
        sm_t = next(t for name, t in tt.items() if name.startswith("statsmodels"))
        sk_t = min(t for name, t in tt.items() if name.startswith("sklearn"))
        heads.append(f"{kind} {ours / sm_t:.2f}x statsmodels, {ours / sk_t:.2f}x sklearn-best")
    print("headline (raytune_opt irls time ratio): " + "; ".join(heads))
    return times


if __name__ == "__main__":
    main()
