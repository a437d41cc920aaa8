"""Results and reports of an experiment directory written by Ray Tune (and the raytune-opt runner).

    >>> from raytune_opt import report
    >>> results = report.load("results/random")       # metric/mode from experiment.json
    >>> print(report.table(results, top=10))          # the best trials, as markdown
    | # | trial ...
    >>> files = report.write("results/random")        # summary.json, trials.csv, PNGs, report.md
    >>> sorted(files)[-3:]
    ['slices.png', 'summary.json', 'trials.csv']

- :func:`load` → :class:`Results` (``.trials``, ``.history``, ``.best``, ``.summary()``)
- :func:`write` → ``{name: path}`` of the files written
- :func:`table` → the best trials as a compact markdown table
- :func:`comparison_table` → a comparison's ranking (``search.compare``), as markdown
- :func:`pareto_summary` → the Pareto front of an experiment with several objectives, as text
  (:mod:`raytune_opt.report.pareto`: :func:`~raytune_opt.report.pareto.pareto_mask`, ``front``)
"""

from raytune_opt.report.comparison import table as comparison_table
from raytune_opt.report.pareto import summary as pareto_summary
from raytune_opt.report.results import STATUSES, Results, load
from raytune_opt.report.tables import optimizer_table, table
from raytune_opt.report.writer import write, write_results

__all__ = [
    "STATUSES",
    "Results",
    "comparison_table",
    "load",
    "optimizer_table",
    "pareto_summary",
    "table",
    "write",
    "write_results",
]
