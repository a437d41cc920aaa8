"""The ``raytune-opt`` command (also ``python -m raytune_opt``).

    raytune-opt run CONFIG [--set key.path=value ...] [--address auto|ray://host:10001]
                           [--storage DIR] [--dry-run]
    raytune-opt resume DIR [--num-samples N] [--address ...]
    raytune-opt evaluate DIR [--seeds k] [--address ...] [--confidence 0.95 | --no-interval]
    raytune-opt widen DIR [--rounds n] [--address ...]
    raytune-opt report DIR [--out DIR]
    raytune-opt list optimizers|strategies|tasks
    raytune-opt export DIR [--trial ID] [--epoch best|last] [--out FILE]

Bad input (a wrong key, value or name in CONFIG or ``--set``) prints one ``error:`` line that names the
file, line and key, and exits with status 2, before Ray starts. A run whose storage fills up (a full
disk, a spent quota, the file size limit) prints one ``error:`` line saying how to resume and exits
with status 75 (:data:`EXIT_TEMPFAIL`), as does a ``resume`` whose previous run's actors are still alive
after its wait; an interrupted one exits with 130. A run prints the Ray
dashboard's URL, a live status line, and at the end the best configuration, its metric and the files
written.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from raytune_opt.errors import ConfigError, PreviousRunAliveError, StorageFullError

__all__ = ["main", "build_parser", "EXIT_TEMPFAIL", "EXIT_STORAGE_FULL"]

#: the exit status of a run or resume that may succeed later (``EX_TEMPFAIL``): a full storage (free
#: space, resume), or a previous run's actors still alive (stop them, resume)
EXIT_TEMPFAIL = 75
#: the exit status of a run or resume stopped by a full storage (:data:`EXIT_TEMPFAIL`)
EXIT_STORAGE_FULL = EXIT_TEMPFAIL


def _on_folder(
    sub: argparse._SubParsersAction,
    name: str,
    help: str,
    folder: str,
    count: tuple[str, int, str] | None = None,
) -> argparse.ArgumentParser:
    """The sub-command ``name`` on an experiment's folder (``dir``, described by ``folder``): an
    integer option ``count`` (flag, default, help), if any, and ``--address``."""
    cmd = sub.add_parser(name, help=help)
    cmd.add_argument("dir", type=Path, help=folder)
    if count is not None:
        flag, default, count_help = count
        cmd.add_argument(flag, type=int, default=default, help=count_help)
    cmd.add_argument("--address", help="Ray cluster to join (default: the experiment's run.address)")
    return cmd


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="raytune-opt",
        description="Tune PyTorch training with Ray: which optimizer and hyperparameters train best.",
    )
    from raytune_opt import __version__

    parser.add_argument("--version", action="version", version=f"raytune-opt {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run an experiment described in a YAML file")
    run.add_argument("config", type=Path, help="the experiment YAML (see examples/)")
    run.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY.PATH=VALUE",
        help="override a key of the YAML, e.g. --set search.num_samples=8 (repeatable; values are YAML)",
    )
    run.add_argument(
        "--address", help="Ray cluster to join: auto, ray://host:10001 (default: run.address, or local)"
    )
    run.add_argument("--storage", help="results folder (default: run.storage_path)")
    run.add_argument("--dry-run", action="store_true", help="validate and print the plan; start nothing")
    run.add_argument("--no-report", action="store_true", help="skip the report at the end")

    resume = _on_folder(
        sub,
        "resume",
        "continue an interrupted experiment from its folder",
        "the experiment folder (<storage_path>/<name>)",
    )
    resume.add_argument(
        "--num-samples",
        type=int,
        metavar="N",
        help="grow the experiment: the same search goes on to N trials in all, the searcher keeping "
        "its history (N at least the trials already created; not for grid, pbt, pb2, fabolas)",
    )
    ev = _on_folder(
        sub,
        "evaluate",
        "retrain the best configuration over seeds and test it on the task's test split",
        "the experiment folder",
        count=("--seeds", 5, "train seeds 0..k-1 (default 5); 1 tests the best trial's last checkpoint"),
    )
    level = ev.add_mutually_exclusive_group()
    level.add_argument(
        "--confidence", type=float, help="level of the Student's t interval (default 0.95; needs >= 2 seeds)"
    )
    level.add_argument("--no-interval", action="store_true", help="report no interval")
    _on_folder(
        sub,
        "widen",
        "a comparison: widen the ranges whose best value sits at their edge and search on",
        "the comparison's folder (search.compare: optimizers)",
        count=(
            "--rounds",
            1,
            "widening rounds (default 1): each widens every flagged range 10x (log) within the "
            "registry's hard bounds, runs num_samples more trials of that optimizer and retests it",
        ),
    )

    report = sub.add_parser("report", help="write summary.json, trials.csv, plots and report.md of a folder")
    report.add_argument("dir", type=Path, help="the experiment folder")
    report.add_argument("--out", type=Path, help="where to write (default: the experiment folder)")
    report.add_argument("--metric", help="for a folder not written by raytune-opt: the metric")
    report.add_argument("--mode", choices=("min", "max"), help="... and its mode")

    lst = sub.add_parser("list", help="list optimizers, strategies or tasks")
    lst.add_argument("what", choices=("optimizers", "strategies", "tasks"))

    export = sub.add_parser(
        "export", help="write a trial's model (state_dict) and the config that rebuilds it"
    )
    export.add_argument("dir", type=Path, help="the experiment folder")
    export.add_argument("--trial", help="the trial id (default: the best trial)")
    export.add_argument(
        "--epoch",
        choices=("best", "last"),
        default="best",
        help="its best epoch (default) or its final model",
    )
    export.add_argument("--out", type=Path, help="the .pt file (default: DIR/export/<trial>-<epoch>.pt)")
    return parser


def _export(args: argparse.Namespace) -> int:
    from raytune_opt.experiment.export import write_export

    out, meta, c = write_export(args.dir, trial=args.trial, epoch=args.epoch, out=args.out)
    best, last = c["best"], c["last"]
    print(
        f"trial {c['trial_id']}, epoch {c['epoch']} ({c['exported']}): {c['metric']} = {c['value']:.4g}; "
        f"its best epoch {best['epoch']} scored {best['value']:.4g}, its final model (epoch {last['epoch']}) "
        + (f"{last['value']:.4g}" if last["value"] is not None else "no value")
    )
    print(f"  state_dict: {out}  (torch.load(path, weights_only=True))")
    print(f"  config:     {meta}  (task, task_args, optimizer, hparams)")
    return 0


def _run(args: argparse.Namespace) -> int:
    from raytune_opt.experiment import Experiment, run_experiment

    overrides = list(args.overrides)
    if args.address is not None:
        overrides.append(f"run.address={args.address}")
    if args.storage is not None:
        overrides.append(f"run.storage_path={args.storage}")
    exp = Experiment.from_yaml(args.config, overrides=overrides)
    print(exp.plan(), flush=True)
    if args.dry_run:
        print("dry run: nothing started", flush=True)
        return 0
    result = run_experiment(exp, report=not args.no_report)
    if result.interrupted:
        return 130
    failed = result.summary.get("trials", {}).get("failed", 0) if result.summary else 0
    return 0 if not failed or failed < len(result.grid) else 1


def _resume(args: argparse.Namespace) -> int:
    from raytune_opt.experiment import resume_experiment

    result = resume_experiment(args.dir, address=args.address, num_samples=args.num_samples)
    return 130 if result.interrupted else 0


def _evaluate(args: argparse.Namespace) -> int:
    from raytune_opt.experiment.evaluate import evaluate

    evaluate(
        args.dir,
        args.seeds,
        confidence=args.confidence,
        interval=not args.no_interval,
        address=args.address,
    )
    print(f"  test.json, summary.json, report.md: {args.dir}")
    return 0


def _widen(args: argparse.Namespace) -> int:
    from raytune_opt.experiment.compare import widen_comparison

    result = widen_comparison(args.dir, args.rounds, address=args.address)
    return 130 if result.interrupted else 0


def _report(args: argparse.Namespace) -> int:
    from raytune_opt import report

    files = report.write(args.dir, out=args.out, metric=args.metric, mode=args.mode)
    if report.comparison.is_comparison(args.dir):
        print(report.comparison_table(args.dir))
    else:
        results = report.load(args.dir, metric=args.metric, mode=args.mode)
        print(report.table(results))
        if results.objectives is not None:
            print(report.pareto_summary(results))
    for name, path in files.items():
        print(f"  {name}: {path}")
    return 0


def _list(args: argparse.Namespace) -> int:
    if args.what == "optimizers":
        from raytune_opt import optim

        for name, spec in optim.available().items():
            shown = [h for h in spec.hparams.values() if h.name not in ("maximize", "fused", "foreach")]
            # what SearchSpace.for_optimizers searches (a range or choices) vs keeps at its default
            searched = [
                h for h in shown if h.choices is not None or (h.low is not None and h.high is not None)
            ]
            fixed = [h for h in shown if h not in searched]
            print(f"{name:10s} {spec.kind:13s} {spec.summary}")
            if searched:
                print(f"{'':24s} searched: " + ", ".join(_range(h) for h in searched))
            if fixed:
                print(f"{'':24s} fixed:    " + ", ".join(f"{h.name}={h.default!r}" for h in fixed))
    elif args.what == "strategies":
        from raytune_opt.search import available_strategies

        for name, summary in available_strategies().items():
            print(f"{name:10s} {summary}")
    else:
        from raytune_opt.tasks import available_tasks

        for name, task in available_tasks().items():
            print(f"{name:16s} {task.summary}")
    return 0


def _range(h: object) -> str:
    """``lr=0.001 in [1e-05, 1] log``: a hyperparameter's default and its search range."""
    where = f"in {list(h.choices)}" if h.choices is not None else f"in [{h.low:g}, {h.high:g}]"
    return f"{h.name}={h.default!r} {where}" + (" log" if getattr(h, "log", False) else "")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``raytune-opt``; returns the exit status (2 for bad input)."""
    args = build_parser().parse_args(argv)
    commands = {
        "run": _run,
        "resume": _resume,
        "evaluate": _evaluate,
        "widen": _widen,
        "report": _report,
        "list": _list,
        "export": _export,
    }
    command = commands[args.command]
    try:
        return command(args)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
    except (StorageFullError, PreviousRunAliveError) as e:  # temporary: resume once it is cleared
        print(f"error: {e}", file=sys.stderr, flush=True)
        return EXIT_TEMPFAIL
    except KeyboardInterrupt:
        print(
            "interrupted: `raytune-opt resume <experiment folder>` continues where it stopped",
            file=sys.stderr,
            flush=True,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
