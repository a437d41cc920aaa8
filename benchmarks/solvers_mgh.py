"""raytune_opt's LM, BFGS and L-BFGS against SciPy on the Moré–Garbow–Hillstrom problems, same run.

Counts, not times. For each MGH residual problem (Rosenbrock, Powell singular, Freudenstein–Roth, Box 3-D,
Brown badly scaled; standard starting points) ``raytune_opt.optim.LM`` against
``scipy.optimize.least_squares(method="lm")`` (MINPACK lmder, analytic Jacobian): function evaluations
(closure calls for ours, counted by a wrapper; ``nfev`` for SciPy), Jacobian evaluations counted separately,
final cost ½‖r‖² and the ratio of function evaluations. Both use their default settings (SciPy: ftol = xtol
= gtol = 1e-8). Then BFGS / L-BFGS against ``scipy.optimize.minimize(method="BFGS" / "L-BFGS-B")`` on the
Rosenbrock function (2-D from (−1.2, 1), 10-D from 0), both stopped at max|∇f| ≤ 1e-5: iterations and
function evaluations.

    python benchmarks/solvers_mgh.py [--quick] [--out benchmarks/results/solvers_mgh.md]

``--quick`` runs the LM rows with the default damping rule and the 2-D Rosenbrock only, and writes no file
unless ``--out`` is given. The last line is the headline: LM function evaluations over SciPy's, summed over
the five MGH problems (target ≤ 1.2).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import least_squares, minimize, rosen, rosen_der

from raytune_opt.optim import BFGS, LBFGS, LM
from raytune_opt.optim.problems import MGH, ResidualProblem, rosenbrock

RESULTS = Path(__file__).parent / "results" / "solvers_mgh.md"


def _ours_lm(pb: ResidualProblem, **hp: object) -> tuple[int, int, float]:
    x = pb.start().requires_grad_()
    calls = [0]

    def closure() -> torch.Tensor:
        calls[0] += 1
        return pb.residuals(x)

    opt = LM([x], max_iter=1000, **hp)
    opt.step(closure)
    return calls[0], opt.state[x]["jac_evals"], float(pb.cost(x.detach()))


def _scipy_lm(pb: ResidualProblem) -> tuple[int, int, float]:
    fun = lambda x: pb.residuals(torch.from_numpy(x)).numpy()  # noqa: E731
    jac = lambda x: torch.autograd.functional.jacobian(pb.residuals, torch.from_numpy(x)).numpy()  # noqa: E731
    r = least_squares(fun, np.array(pb.x0), jac=jac, method="lm")
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
    lines = [
        "| problem | solver | f-evals | J-evals | final cost | SciPy f-evals | SciPy J-evals | SciPy cost "
        "| ratio |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    variants = (
        {"lm": {}}
        if quick
        else {
            "lm": {},
            "lm scale": {"scale": True},
            "lm marquardt": {"damping_update": "marquardt", "nu": 10.0},
        }
    )
    totals = {v: 0 for v in variants}
    no_powell = {v: 0 for v in variants}  # Powell singular: ours stops earlier (gtol), at cost ~1e-15
    sp_total = sp_no_powell = 0
    for name, pb in MGH.items():
        sf, sj, sc = _scipy_lm(pb)
        sp_total += sf
        sp_no_powell += sf if name != "powell_singular" else 0
        for label, hp in variants.items():
            f, j, c = _ours_lm(pb, **hp)
            totals[label] += f
            no_powell[label] += f if name != "powell_singular" else 0
            lines.append(
                f"| {name} | {label} | {f} | {j} | {c:.3g} | {sf} | {sj} | {sc:.3g} | {f / sf:.2f} |"
            )
    for label in variants:
        lines.append(
            f"| all 5 MGH | {label} | {totals[label]} | | | {sp_total} | | | {totals[label] / sp_total:.2f} |"
        )
        lines.append(
            f"| 4 MGH without Powell singular | {label} | {no_powell[label]} | | | {sp_no_powell} | | | "
            f"{no_powell[label] / sp_no_powell:.2f} |"
        )
    lines += [
        "",
        "| problem | solver | iterations | f-evals | final f | SciPy method | SciPy iterations "
        "| SciPy f-evals | SciPy f | iter ratio |",
        "| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |",
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
    lines += [
        "",
        f"headline: lm function evaluations / SciPy least_squares(method='lm') over the 5 MGH problems "
        f"= {totals['lm'] / sp_total:.2f} (target ≤ 1.2)",
    ]
    return lines


def main(argv: list[str] | None = None) -> list[str]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="default LM rule and 2-D Rosenbrock only")
    parser.add_argument(
        "--out", type=Path, default=None, help=f"markdown file (default {RESULTS}, not with --quick)"
    )
    args = parser.parse_args(argv)
    lines = run(quick=args.quick)
    print("\n".join(lines))
    out = args.out if args.out is not None else (None if args.quick else RESULTS)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(
            "# Second-order solvers vs SciPy (benchmarks/solvers_mgh.py)\n\n" + "\n".join(lines) + "\n"
        )
    return lines


if __name__ == "__main__":
    main()
