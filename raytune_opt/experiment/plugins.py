"""The experiment's ``imports``: the user's own modules, imported before validation so that their
``register_task`` / ``register`` calls have run. Importing runs their code: on ``run``, on
``--dry-run`` and on ``resume`` (whose ``experiment.json`` names them), so whoever can write the
experiment file or folder can run code as the user who starts it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from raytune_opt.errors import ConfigError

__all__ = ["import_plugins"]


def import_plugins(entries: Any, *, base: Path, where: str = "imports") -> None:
    """Import ``entries``: Python files (relative to ``base``, the YAML's folder) or module names. Their
    code is pickled by value, so the tasks reach Ray workers on other nodes too."""
    import importlib
    import importlib.util
    import sys

    from ray import cloudpickle  # Ray pickles trainables with its own copy of cloudpickle

    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        raise ConfigError(
            f"{where}: imports = {entries!r} is not allowed: expected a list of files or module names"
        )
    for i, entry in enumerate(entries):
        try:
            if entry.endswith(".py"):
                file = (base / entry).resolve()
                name = f"raytune_opt_imports_{file.stem}_{abs(hash(str(file))) % 10**8}"
                if name not in sys.modules:
                    spec = importlib.util.spec_from_file_location(name, file)
                    if spec is None or spec.loader is None or not file.is_file():
                        raise FileNotFoundError(f"no such file {file}")
                    module = importlib.util.module_from_spec(spec)
                    sys.modules[name] = module
                    spec.loader.exec_module(module)
                module = sys.modules[name]
            else:
                module = importlib.import_module(entry)
        except ConfigError:
            raise
        except Exception as e:  # the user's code: any error, reported in one line
            raise ConfigError(
                f"{where}: imports[{i}] = {entry!r} cannot be imported: {type(e).__name__}: {e}"
            ) from None
        cloudpickle.register_pickle_by_value(module)
