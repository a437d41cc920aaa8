"""What the benchmark scripts that print markdown tables of counts share (``solvers_mgh.py``,
``solvers_nist.py``): the two header rows of a table and the command line that prints the lines and
writes them to a results file."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

__all__ = ["header", "main"]


def header(*columns: str) -> list[str]:
    """The header and alignment rows of a markdown table; a column named ``"name:"`` is right-aligned."""
    names = [c[:-1] if c.endswith(":") else c for c in columns]
    rules = ["---:" if c.endswith(":") else "---" for c in columns]
    return ["| " + " | ".join(names) + " |", "| " + " | ".join(rules) + " |"]


def main(
    argv: list[str] | None,
    *,
    doc: str,
    run: Callable[[bool], list[str]],
    results: Path,
    title: str,
    quick_help: str,
    preamble: Callable[[], str] = str,
) -> list[str]:
    """``[--quick] [--out FILE]``: print ``run(quick)``'s lines; write them under ``# title`` and
    ``preamble()`` to ``--out`` (default ``results``; no file with ``--quick`` unless ``--out`` is given)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument(
        "--out", type=Path, default=None, help=f"markdown file (default {results}, not with --quick)"
    )
    args = parser.parse_args(argv)
    lines = run(args.quick)
    print("\n".join(lines))
    out = args.out if args.out is not None else (None if args.quick else results)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(f"# {title}\n\n{preamble()}" + "\n".join(lines) + "\n")
    return lines
