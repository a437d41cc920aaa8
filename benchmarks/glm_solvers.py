"""GLM and robust-regression solvers against statsmodels and scikit-learn, same data, same run.

Float64, 2 threads (torch and BLAS). Problems: logistic regression (n=200 000, p=100), Poisson regression
(n=200 000, p=50), Huber regression (n=200 000, p=50); ``--quick`` uses n=1 000, p/5. The solvers of a
problem run interleaved, round after round (``--repeats`` rounds, the order rotating from round to round),
so that load from other processes hits them alike, each after a pause of ``PAUSE_S`` (the thread pools of
OpenBLAS, which scikit-learn and statsmodels use, spin for up to ~0.1 s after their last call, on the cores
the next solver needs: without the pause whichever solver follows them pays for it); the table gives each
one's median and best wall time, and its median CPU time (``time.process_time``: all of the process's
threads, which a loaded machine distorts less than wall time; spinning BLAS threads count) with the
CPU-time ratios beside the wall-time ones. ``iters`` is the solver's own count;
``max|dcoef|`` is against statsmodels (GLM IRLS or RLM HuberT), the reference. scikit-learn's solvers stop
at ``tol=1e-4`` by default, short of the statsmodels coefficients, so the lbfgs ones also run at a ``tol``
that reaches them to 1e-6 ("equal coefficients"). scikit-learn's ``HuberRegressor`` estimates its scale
jointly with the coefficients (a different M-estimator than RLM's MAD scale), so its coefficients differ.

    python benchmarks/glm_solvers.py [--quick] [--repeats 3] [--problems poisson,huber] [--skip newton,lm]
                                     [--reference-once]

``--skip``: leave out the solvers whose names contain one of these words (never the reference);
``--reference-once``: fit the reference (statsmodels, ~40x raytune_opt's time) in the first round only.

The last line is the headline: raytune_opt IRLS median time over statsmodels' (including the standard errors,
which statsmodels computes in its fit and ``glm.fit`` when they are first asked for: the "+ bse" rows), over
scikit-learn's fastest at equal coefficients (max|dcoef| <= 1e-6) and over scikit-learn's fastest whatever
its coefficients (both without standard errors, which scikit-learn does not compute); in parentheses, the
fastest raytune_opt solver at equal coefficients over scikit-learn's fastest at equal coefficients; then
the same ratios of median CPU times.
"""

from __future__ import annotations

import argparse
import os
import statistics
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


EQUAL = 1e-6  # max |dcoef| against statsmodels under which coefficients count as equal


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

    def ours(bse=False, **kw):
        def run():
            r = glm.fit(X, y, **kw)
            if bse:  # the covariance is formed on first access (GLMResult.cov_params)
                r.bse  # noqa: B018
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
            (
                "sklearn lbfgs",
                sk(LogisticRegression(penalty=None, solver="lbfgs", fit_intercept=False, max_iter=1000)),
            ),
            (
                "sklearn lbfgs tol=1e-6",
                sk(
                    LogisticRegression(
                        penalty=None, solver="lbfgs", fit_intercept=False, max_iter=1000, tol=1e-6
                    )
                ),
            ),
            ("raytune_opt irls", ours(family="binomial")),
            ("raytune_opt irls + bse", ours(family="binomial", bse=True)),
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
            (
                "sklearn lbfgs tol=1e-6",
                sk(PoissonRegressor(alpha=0.0, solver="lbfgs", fit_intercept=False, max_iter=1000, tol=1e-6)),
            ),
            ("raytune_opt irls", ours(family="poisson")),
            ("raytune_opt irls + bse", ours(family="poisson", bse=True)),
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


PAUSE_S = 0.3


def _cpu_head(kind: str, ours: str, cpu: dict[str, float], dcoef: dict[str, float]) -> str:
    """The headline's CPU-time ratios: raytune_opt IRLS (and with standard errors) over statsmodels and
    scikit-learn's fastest at equal coefficients."""
    ref = next(t for name, t in cpu.items() if name.startswith("statsmodels"))
    bse = cpu.get(ours + " + bse", cpu.get("raytune_opt irls + bse", cpu[ours]))
    text = f"; CPU: {bse / ref:.2f}x statsmodels (with bse)"
    sk_equal = [t for name, t in cpu.items() if name.startswith("sklearn") and dcoef[name] <= EQUAL]
    if sk_equal:
        best = min(sk_equal)
        text += f", {cpu[ours] / best:.2f}x sklearn-best at equal coefficients"
        if kind != "huber":
            text += f" ({bse / best:.2f}x with bse)"
    return text


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="n = 1 000 and p / 5: a smoke run")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved rounds (median and best reported)")
    ap.add_argument("--problems", default="logistic,poisson,huber", help="comma-separated subset")
    ap.add_argument("--skip", default="", help="comma-separated words: leave out solvers naming one")
    ap.add_argument("--reference-once", action="store_true", help="fit the reference in round 1 only")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(2)
    except ImportError:
        pass
    n, shrink = (1_000, 5) if args.quick else (200_000, 1)
    pause = 0.0 if args.quick else PAUSE_S
    sizes = {"logistic": 100, "poisson": 50, "huber": 50}
    kinds = [k.strip() for k in args.problems.split(",") if k.strip()]
    print(f"load average (1 min) on {os.cpu_count()} cores at start: {os.getloadavg()[0]:.1f}")
    print(
        "| problem | solver | iters | max abs dcoef vs statsmodels | median s | best s "
        "| median / raytune_opt irls | median CPU s | CPU / raytune_opt irls |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    skip = [w.strip() for w in args.skip.split(",") if w.strip()]
    medians: dict[str, dict[str, float]] = {}
    heads = []
    for kind in kinds:
        p = sizes[kind] // shrink
        X, y = _data(kind, n, p)
        peers = _peers(kind, X, y)
        peers = peers[:1] + [(name, run) for name, run in peers[1:] if not any(w in name for w in skip)]
        times: dict[str, list[float]] = {name: [] for name, _ in peers}
        cpu: dict[str, list[float]] = {name: [] for name, _ in peers}
        results: dict[str, tuple] = {}
        for r in range(args.repeats):
            for name, run in peers[r % len(peers) :] + peers[: r % len(peers)]:  # each round a new order
                if r > 0 and args.reference_once and name == peers[0][0]:
                    continue
                time.sleep(pause)  # let the previous solver's BLAS/OpenMP threads stop spinning
                t0, c0 = time.perf_counter(), time.process_time()
                results[name] = run()
                times[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
        ref = results[peers[0][0]][0]
        dcoef = {name: float(np.abs(coef - ref).max()) for name, (coef, _) in results.items()}
        med = {name: statistics.median(t) for name, t in times.items()}
        med_cpu = {name: statistics.median(t) for name, t in cpu.items()}
        medians[kind] = med
        ours_name = "raytune_opt irls" if kind != "huber" else "raytune_opt irls huber"
        ours, ours_cpu = med[ours_name], med_cpu[ours_name]
        for name, _ in peers:
            print(
                f"| {kind} n={n} p={p} | {name} | {results[name][1]} | {dcoef[name]:.1e} "
                f"| {med[name]:.3f} | {min(times[name]):.3f} | {med[name] / ours:.2f} "
                f"| {med_cpu[name]:.3f} | {med_cpu[name] / ours_cpu:.2f} |",
                flush=True,
            )
        sm_t = next(t for name, t in med.items() if name.startswith("statsmodels"))
        sk = {name: t for name, t in med.items() if name.startswith("sklearn")}
        sk_equal = [t for name, t in sk.items() if dcoef[name] <= EQUAL]
        with_bse = med.get("raytune_opt irls + bse", ours)  # statsmodels' fit computes standard errors
        text = f"{kind} {with_bse / sm_t:.2f}x statsmodels (with bse)"
        if sk_equal:
            text += f", {ours / min(sk_equal):.2f}x sklearn-best at equal coefficients"
        if sk:
            text += f", {ours / min(sk.values()):.2f}x sklearn-best"
        own = {
            name: t
            for name, t in med.items()
            if name.startswith("raytune_opt") and "bse" not in name and dcoef[name] <= EQUAL
        }
        if sk_equal and own:
            fastest = min(own, key=own.get)
            text += f" (fastest raytune_opt solver, {fastest}: {own[fastest] / min(sk_equal):.2f}x)"
        text += _cpu_head(kind, ours_name, med_cpu, dcoef)
        heads.append(text)
    print(f"load average (1 min) at end: {os.getloadavg()[0]:.1f}")
    print("headline (raytune_opt irls median time ratio): " + "; ".join(heads))
    return medians


if __name__ == "__main__":
    main()
