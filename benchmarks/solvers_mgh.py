"""raytune_opt's LM, BFGS and L-BFGS against SciPy on the Moré–Garbow–Hillstrom problems, same run.

Counts, not times. For each MGH residual problem (Rosenbrock, Powell singular, Freudenstein–Roth, Box 3-D,
Brown badly scaled; standard starting points) ``raytune_opt.optim.LM`` against
``scipy.optimize.least_squares(method="lm")`` (MINPACK lmder, analytic Jacobian): function evaluations
(closure calls for ours, counted by a wrapper; ``nfev`` for SciPy), Jacobian evaluations counted separately,
final cost ½‖r‖² and the ratio of function evaluations. At equal settings: ours with
``tolerance_change=1e-8`` (SciPy's ftol = xtol = 1e-8), and each of our variants against SciPy with the
same scaling — ``lm`` (the defaults: Moré's trust region with Marquardt's diag(JᵀJ) scaling), ``lm nielsen``
and ``lm marquardt`` (λ rules, scaled) against SciPy's default ``x_scale="jac"`` (MINPACK's column-norm
scaling), ``lm scale=False`` (damping λ I) against ``x_scale=1.0``. The NIST StRD comparison is
``benchmarks/solvers_nist.py``. Then
BFGS / L-BFGS against ``scipy.optimize.minimize(method="BFGS" / "L-BFGS-B")`` on the Rosenbrock function
(2-D from (−1.2, 1), 10-D from 0), both stopped at max|∇f| ≤ 1e-5: iterations and function evaluations.

    python benchmarks/solvers_mgh.py [--quick] [--out benchmarks/results/solvers_mgh.md]

``--quick`` runs the LM rows with the defaults and the 2-D Rosenbrock only, and writes no file
unless ``--out`` is given. The last line is the headline: LM function evaluations over SciPy's (same
scaling, same tolerance), over the five MGH problems and over the four without Powell singular; target
≤ 1.2. Both stop on Powell singular by the gradient test max_j |J_jᵀr| / (‖J_j‖‖r‖) (ours ≤ 1e-10, SciPy's
gtol ≤ 1e-8): its Jacobian is singular at x* = 0, so near x* that cosine is rounding noise (the same to
six digits in both until the cost is ~1e-30, then apart) and the call at which it dips below the tolerance
is chance.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import least_squares, minimize, rosen, rosen_der

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _table, also when loaded by path
from _table import header  # noqa: E402
from _table import main as _main  # noqa: E402

from raytune_opt.optim import BFGS, LBFGS, LM
from raytune_opt.optim.problems import MGH, ResidualProblem, rosenbrock

RESULTS = Path(__file__).parent / "results" / "solvers_mgh.md"


TOL = 1e-8  # SciPy's default ftol = xtol


def _ours_lm(pb: ResidualProblem, **hp: object) -> tuple[int, int, float]:
    x = pb.start().requires_grad_()
    calls = [0]

    def closure() -> torch.Tensor:
        calls[0] += 1
        return pb.residuals(x)

    opt = LM([x], max_iter=1000, tolerance_change=TOL, **hp)
    opt.step(closure)
    return calls[0], opt.state[x]["jac_evals"], float(pb.cost(x.detach()))


def _solved(pb: ResidualProblem, cost: float) -> bool:
    """The final cost is the known minimum f_star (to 1e-10 absolute, 1e-8 relative)."""
    return abs(cost - pb.f_star) <= 1e-10 + 1e-8 * pb.f_star


def _scipy_lm(pb: ResidualProblem, x_scale: str | float) -> tuple[int, int, float]:
    fun = lambda x: pb.residuals(torch.from_numpy(x)).numpy()  # noqa: E731
    jac = lambda x: torch.autograd.functional.jacobian(pb.residuals, torch.from_numpy(x)).numpy()  # noqa: E731
    r = least_squares(fun, np.array(pb.x0), jac=jac, method="lm", x_scale=x_scale, ftol=TOL, xtol=TOL)
    return int(r.nfev), int(r.njev), float(r.cost)


def _ours_min(cls: type, x0: np.ndarray) -> tuple[int, int, float]:
    x = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
    calls = [0]

    def closure() -> torch.Tensor:
        calls[0] += 1
        return rosenbrock(x)

    opt = cls([x], max_iter=10_000, max_eval=20_000, tolerance_grad=1e-5, tolerance_change=1e-14)
    opt.step(closure)
    return opt.state[x]["n_iter"], calls[0], float(rosenbrock(x.detach()))


def _scipy_min(method: str, x0: np.ndarray) -> tuple[int, int, float]:
    r = minimize(rosen, x0, jac=rosen_der, method=method, options={"gtol": 1e-5})
    return int(r.nit), int(r.nfev), float(r.fun)


def run(quick: bool = False) -> list[str]:
    """Run the comparison; return the table lines (markdown), the headline last."""
    torch.set_num_threads(1)
    lines = header(
        "problem",
        "solver",
        "f-evals:",
        "J-evals:",
        "final cost:",
        "SciPy scaling",
        "SciPy f-evals:",
        "SciPy J-evals:",
        "SciPy cost:",
        "ratio:",
    )
    variants = {"lm": ({}, "jac")}  # label: (our hyperparameters, SciPy's x_scale)
    if not quick:
        variants["lm scale=False"] = ({"scale": False}, 1.0)
        variants["lm nielsen"] = ({"damping_update": "nielsen"}, "jac")
        variants["lm marquardt"] = ({"damping_update": "marquardt", "nu": 10.0}, "jac")
    totals = {v: [0, 0] for v in variants}  # ours, SciPy's
    solved = {v: [0, 0] for v in variants}  # runs reaching the known minimum f_star: ours, SciPy's
    ratios: dict[str, list[float]] = {v: [] for v in variants}  # f-evals ratios where both solved
    no_powell = {v: [0, 0] for v in variants}  # Powell singular: ours stops earlier (gtol), at cost ~1e-15
    for name, pb in MGH.items():
        scipy_runs = {xs: _scipy_lm(pb, xs) for xs in {xs for _, xs in variants.values()}}
        for label, (hp, xs) in variants.items():
            f, j, c = _ours_lm(pb, **hp)
            sf, sj, sc = scipy_runs[xs]
            ok, sok = _solved(pb, c), _solved(pb, sc)
            solved[label][0] += ok
            solved[label][1] += sok
            if ok and sok:
                ratios[label].append(f / sf)
            for acc in (totals[label],) + ((no_powell[label],) if name != "powell_singular" else ()):
                acc[0] += f
                acc[1] += sf
            lines.append(
                f"| {name} | {label} | {f} | {j} | {c:.3g} | x_scale={xs} | {sf} | {sj} | {sc:.3g} "
                f"| {f / sf:.2f} |"
            )
    for label, (_, xs) in variants.items():
        pairs = (("all 5 MGH", totals[label]), ("4 MGH without Powell singular", no_powell[label]))
        for what, (f, sf) in pairs:
            lines.append(f"| {what} | {label} | {f} | | | x_scale={xs} | {sf} | | | {f / sf:.2f} |")
    lines += [
        "",
        *header(
            "problem",
            "solver",
            "iterations:",
            "f-evals:",
            "final f:",
            "SciPy method",
            "SciPy iterations:",
            "SciPy f-evals:",
            "SciPy f:",
            "iter ratio:",
        ),
    ]
    starts = {"rosenbrock 2-D": np.array([-1.2, 1.0])}
    if not quick:
        starts["rosenbrock 10-D"] = np.zeros(10)
    for pname, x0 in starts.items():
        for label, cls, method in (("bfgs", BFGS, "BFGS"), ("lbfgs", LBFGS, "L-BFGS-B")):
            it, fe, fv = _ours_min(cls, x0)
            sit, sfe, sfv = _scipy_min(method, x0)
            lines.append(
                f"| {pname} | {label} | {it} | {fe} | {fv:.2g} | {method} | {sit} | {sfe} | {sfv:.2g} "
                f"| {it / sit:.2f} |"
            )
    heads = [
        f"{label} {f / sf:.2f} (without Powell singular {f4 / sf4:.2f}; reached f* {solved[label][0]}/"
        f"{len(MGH)}, SciPy {solved[label][1]}/{len(MGH)}; median ratio {np.median(ratios[label]):.2f})"
        for label, ((f, sf), (f4, sf4)) in ((v, (totals[v], no_powell[v])) for v in variants)
        if label in ("lm", "lm scale=False")
    ]
    lines += [
        "",
        "headline: lm function evaluations / SciPy least_squares(method='lm'), same scaling, tolerance "
        f"{TOL:g}, over the 5 MGH problems: " + "; ".join(heads) + " (target ≤ 1.2)",
    ]
    return lines


def main(argv: list[str] | None = None) -> list[str]:
    return _main(
        argv,
        doc=__doc__,
        run=run,
        results=RESULTS,
        title="Second-order solvers vs SciPy (benchmarks/solvers_mgh.py)",
        quick_help="default LM rule and 2-D Rosenbrock only",
    )


if __name__ == "__main__":
    main()
