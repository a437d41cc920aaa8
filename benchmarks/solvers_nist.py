"""raytune_opt's LM against SciPy's MINPACK on the NIST StRD nonlinear regression problems, same run.

Counts, not times. The datasets (``benchmarks/data/nist_strd.json``: data, both NIST starting points,
certified parameters and residual sum of squares, public-domain NIST data from
https://www.itl.nist.gov/div898/strd/nls/nls_main.shtml) are fitted from Start 1 and Start 2 by

- ``raytune_opt.optim.LM`` (defaults: Moré's trust region, Marquardt scaling), closure calls counted;
- ``scipy.optimize.least_squares(method="lm")`` (MINPACK lmder, analytic Jacobian by autograd, its
  default ``x_scale="jac"``), ``nfev``;

both at ftol = xtol = 1e-8 (SciPy's default; ours ``tolerance_change=1e-8``, ``tolerance_grad=0``) and
the same budget of 20 000 function evaluations.
A run succeeds when its SSR matches the certified one to 6 significant digits (relative error ≤ 1e-6).
"converged elsewhere": a stopping test held (ours ``state["converged"]``, SciPy ``success``) at a
point other than the certified minimum (BoxBOD Start 1: both stop on a flat asymptote b2 → ∞).

    python benchmarks/solvers_nist.py [--quick] [--out benchmarks/results/solvers_nist.md]

``--quick`` runs the 2- and 3-parameter datasets only. The last line is the headline: success counts and the
median ratio of function evaluations (ours / SciPy's) over the runs where both succeed.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import least_squares

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _table, also when loaded by path
from _table import header  # noqa: E402
from _table import main as _main  # noqa: E402

from raytune_opt.optim import LM

DATA = Path(__file__).parent / "data" / "nist_strd.json"
RESULTS = Path(__file__).parent / "results" / "solvers_nist.md"
TOL = 1e-8
MAX_EVAL = 20_000  # the same function-evaluation budget for both (SciPy's default is 100·(p + 1))


def _rational(b: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return (b[0] + b[1] * x + b[2] * x**2 + b[3] * x**3) / (1 + b[4] * x + b[5] * x**2 + b[6] * x**3)


#: The NIST model functions y = f(b, x), as written in the data file's ``model`` field.
MODELS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "Misra1a": lambda b, x: b[0] * (1 - torch.exp(-b[1] * x)),
    "Misra1b": lambda b, x: b[0] * (1 - (1 + b[1] * x / 2) ** (-2)),
    "Misra1c": lambda b, x: b[0] * (1 - (1 + 2 * b[1] * x) ** (-0.5)),
    "Misra1d": lambda b, x: b[0] * b[1] * x / (1 + b[1] * x),
    "DanWood": lambda b, x: b[0] * x ** b[1],
    "BoxBOD": lambda b, x: b[0] * (1 - torch.exp(-b[1] * x)),
    "Eckerle4": lambda b, x: (b[0] / b[1]) * torch.exp(-0.5 * ((x - b[2]) / b[1]) ** 2),
    "Rat42": lambda b, x: b[0] / (1 + torch.exp(b[1] - b[2] * x)),
    "Rat43": lambda b, x: b[0] / (1 + torch.exp(b[1] - b[2] * x)) ** (1 / b[3]),
    "MGH09": lambda b, x: b[0] * (x**2 + x * b[1]) / (x**2 + x * b[2] + b[3]),
    "MGH10": lambda b, x: b[0] * torch.exp(b[1] / (x + b[2])),
    "MGH17": lambda b, x: b[0] + b[1] * torch.exp(-x * b[3]) + b[2] * torch.exp(-x * b[4]),
    "Roszman1": lambda b, x: b[0] - b[1] * x - torch.atan(b[2] / (x - b[3])) / math.pi,
    "Thurber": _rational,
    "Hahn1": _rational,
}


def load() -> dict[str, dict]:
    """The datasets by name: ``x``, ``y`` (float64 tensors), ``start1``, ``start2``, ``certified``,
    ``certified_ssr``."""
    raw = json.loads(DATA.read_text())["datasets"]
    out = {}
    for name, d in raw.items():
        d = dict(d)
        d["x"] = torch.tensor(d["x"], dtype=torch.float64)
        d["y"] = torch.tensor(d["y"], dtype=torch.float64)
        out[name] = d
    return out


def residuals(name: str, d: dict) -> Callable[[torch.Tensor], torch.Tensor]:
    f, x, y = MODELS[name], d["x"], d["y"]
    return lambda b: f(b, x) - y


def ours(name: str, d: dict, start: str, **hp: object) -> dict:
    res = residuals(name, d)
    b = torch.tensor(d[start], dtype=torch.float64, requires_grad=True)
    opt = LM([b], max_iter=MAX_EVAL, max_eval=MAX_EVAL, tolerance_change=TOL, tolerance_grad=0.0, **hp)
    try:
        opt.step(lambda: res(b))
        st = opt.state[b]
        conv, msg = bool(st["converged"]), st["message"]
    except FloatingPointError as exc:
        st, conv, msg = opt.state[b], False, str(exc)
    ssr = float(res(b.detach()).square().sum())
    return {
        "nfev": int(st["func_evals"]),
        "ssr": ssr,
        "b": b.detach().numpy(),
        "converged": conv,
        "message": msg,
    }


def scipy_lm(name: str, d: dict, start: str) -> dict:
    res = residuals(name, d)
    fun = lambda b: res(torch.from_numpy(b)).numpy()  # noqa: E731
    jac = lambda b: torch.autograd.functional.jacobian(res, torch.from_numpy(b)).numpy()  # noqa: E731
    with np.errstate(all="ignore"):
        r = least_squares(
            fun, np.array(d[start], dtype=float), jac=jac, method="lm", ftol=TOL, xtol=TOL, max_nfev=MAX_EVAL
        )
    return {
        "nfev": int(r.nfev),
        "ssr": 2.0 * float(r.cost),
        "b": r.x,
        "converged": bool(r.success),
        "message": r.message,
    }


def rel_error(run: dict, d: dict) -> float:
    """|SSR − certified SSR| / certified SSR."""
    return abs(run["ssr"] - d["certified_ssr"]) / d["certified_ssr"]


def success(run: dict, d: dict) -> bool:
    """The SSR matches the certified one to 6 significant digits."""
    return math.isfinite(run["ssr"]) and rel_error(run, d) <= 1e-6


def run(quick: bool = False) -> list[str]:
    """Run the comparison; return the table lines (markdown), the headline last."""
    torch.set_num_threads(1)
    data = load()
    if quick:
        data = {k: v for k, v in data.items() if len(v["start1"]) <= 3}
    lines = header(
        "dataset",
        "start",
        "ours f-evals:",
        "ours SSR rel. error:",
        "ours converged",
        "SciPy f-evals:",
        "SciPy SSR rel. error:",
        "SciPy success",
        "ratio:",
    )
    counts = {"ours": 0, "scipy": 0, "ours_false": 0, "scipy_false": 0}
    ratios = []
    for name, d in data.items():
        for start in ("start1", "start2"):
            a, s = ours(name, d, start), scipy_lm(name, d, start)
            ok_a, ok_s = success(a, d), success(s, d)
            counts["ours"] += ok_a
            counts["scipy"] += ok_s
            counts["ours_false"] += a["converged"] and not ok_a
            counts["scipy_false"] += s["converged"] and not ok_s
            ratio = a["nfev"] / s["nfev"]
            if ok_a and ok_s:
                ratios.append(ratio)
            lines.append(
                f"| {name} | {start[-1]} | {a['nfev']} | {rel_error(a, d):.1e} | {a['converged']} "
                f"| {s['nfev']} | {rel_error(s, d):.1e} | {s['converged']} | {ratio:.2f} |"
            )
    n_runs = 2 * len(data)
    med = float(np.median(ratios)) if ratios else float("nan")
    lines += [
        "",
        f"headline: NIST StRD, {len(data)} datasets × 2 starts = {n_runs} runs: lm success (SSR to 6 digits) "
        f"{counts['ours']}/{n_runs}, SciPy MINPACK {counts['scipy']}/{n_runs}; converged elsewhere "
        f"lm {counts['ours_false']}, SciPy {counts['scipy_false']}; median f-evals lm / SciPy where both "
        f"succeed ({len(ratios)} runs): {med:.2f}",
    ]
    return lines


def _preamble() -> str:
    import scipy

    return (
        "Function-evaluation counts (deterministic: no timing, any machine); "
        f"SciPy {scipy.__version__}, torch {torch.__version__}.\n\n"
    )


def main(argv: list[str] | None = None) -> list[str]:
    return _main(
        argv,
        doc=__doc__,
        run=run,
        results=RESULTS,
        title="LM vs SciPy MINPACK on NIST StRD (benchmarks/solvers_nist.py)",
        quick_help="the 2- and 3-parameter datasets only",
        preamble=_preamble,
    )


if __name__ == "__main__":
    main()
