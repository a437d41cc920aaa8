"""benchmarks/comparison.py runs end to end (--quick, on the session's Ray): ``stability`` runs the
comparison with two search seeds and checks every significant pair in both; ``mnist1d`` tunes under
a time budget, tests over seeds and prints the published numbers beside."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "comparison.py"


def _module(monkeypatch):
    spec = importlib.util.spec_from_file_location("comparison_bench", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


def test_agreement_of_two_rankings(monkeypatch) -> None:
    m = _module(monkeypatch)

    def run(*pairs):
        return {"pairs": [{"a": a, "b": b, "diff": d, "significant": s} for a, b, d, s in pairs]}

    first = run(("x", "y", 0.1, True), ("x", "z", 0.05, False), ("z", "y", 0.02, True))
    # the same x > y written the other way round agrees; z-y significant once only does not
    second = run(("y", "x", -0.08, True), ("x", "z", 0.01, False), ("y", "z", 0.01, False))
    a = m.agreement(first, second)
    assert (a["significant"], a["agree"], a["reversed"], a["all_agree"]) == (2, 1, 0, False)
    reversed_ = m.agreement(
        first, run(("x", "y", -0.1, True), ("x", "z", 0.0, False), ("y", "z", -0.02, True))
    )
    assert reversed_["reversed"] == 1 and reversed_["agree"] == 1 and not reversed_["all_agree"]
    assert m.agreement(first, first)["all_agree"]


def test_quick_stability(ray_local, tmp_path, capsys, monkeypatch) -> None:
    m = _module(monkeypatch)
    out = m.main(["stability", "--quick", "--storage", str(tmp_path)])
    assert len(out["runs"]) == 2
    for s in out["runs"]:
        assert {r["optimizer"] for r in s["ranking"]} == {"adamw", "momentum"}
        assert all(r["trials"] == 2 and r["test"]["n"] == 2 for r in s["ranking"])
    assert [(p["a"], p["b"]) for p in out["pairs"]] == [("adamw", "momentum")]
    assert out["all_agree"] == all(p["agree"] for p in out["pairs"] if any(p["significant"]))
    assert "every significant difference agrees:" in capsys.readouterr().out.rstrip().splitlines()[-1]


def test_quick_mnist1d(ray_local, tmp_path, capsys, monkeypatch) -> None:
    m = _module(monkeypatch)
    (row,) = m.main(["mnist1d", "--quick", "--storage", str(tmp_path)])
    assert row["model"] == "mlp" and row["published"] == 0.68 and row["target"] == 0.72
    assert row["recipe"] == "shift=4, cosine"  # the paper MLP, random-translation augmentation, cosine lr
    assert 1 <= row["trials"] <= 2 and row["seeds"] == 2 and 0 <= row["test_mean"] <= 1
    last = capsys.readouterr().out.rstrip().splitlines()[-1]
    assert last.startswith("test accuracy / published: mlp") and "reduced budget" in last
