"""Where an experiment's folder lives: a local path or shared storage (``s3://``, ``gs://``, ``file://`` ...).

Ray Tune writes trial results and checkpoints to ``RunConfig(storage_path=...)`` itself, through
``pyarrow.fs``; :class:`ExperimentFolder` does the same for the runner's own files (``experiment.json``)
and, for the report, mirrors a remote folder to a local cache and uploads the report's files back.
On a cluster, a ``storage_path`` every node can reach (S3, GCS, NFS) is what lets trials on any node
write into one experiment folder.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from raytune_opt.errors import ConfigError

__all__ = ["ExperimentFolder", "is_uri", "MIN_FREE_BYTES"]

#: the free space a local experiment folder needs before a run starts (results, checkpoints)
MIN_FREE_BYTES = 100 << 20


def is_uri(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a URI (``scheme://...``) rather than a local path."""
    return "://" in str(path)


class ExperimentFolder:
    """``<storage_path>/<name>``, local or remote. ``storage_path`` is what Tune's RunConfig gets."""

    def __init__(self, storage_path: str | os.PathLike, name: str) -> None:
        self.name = name
        if is_uri(storage_path):
            import pyarrow.fs

            self.storage_path = str(storage_path).rstrip("/")
            self.fs, base = pyarrow.fs.FileSystem.from_uri(self.storage_path)
            self._base = base.rstrip("/")
        else:
            self.storage_path = str(Path(storage_path).expanduser().resolve())
            self.fs = None
            self._base = self.storage_path

    @classmethod
    def at(cls, path: str | os.PathLike) -> ExperimentFolder:
        """The folder ``path`` itself (``.../name``)."""
        text = str(path).rstrip("/")
        if is_uri(text):
            parent, _, name = text.rpartition("/")
            return cls(parent, name)
        p = Path(text).expanduser().resolve()
        return cls(p.parent, p.name)

    @property
    def remote(self) -> bool:
        return self.fs is not None

    @property
    def path(self) -> str:
        """The folder as a local path or a URI."""
        return f"{self.storage_path}/{self.name}"

    def _fs_path(self, *parts: str) -> str:
        return "/".join([self._base, self.name, *parts])

    def renamed(self, name: str) -> ExperimentFolder:
        return ExperimentFolder(self.storage_path, name)

    def exists(self) -> bool:
        """Whether the folder exists and holds anything."""
        if not self.remote:
            p = Path(self.path)
            return p.exists() and any(p.iterdir())
        import pyarrow.fs

        info = self.fs.get_file_info(pyarrow.fs.FileSelector(self._fs_path(), allow_not_found=True))
        return bool(info)

    def check_writable(self, min_free_bytes: int = MIN_FREE_BYTES) -> None:
        """Before a run: the local storage path is (or can become) a writable directory with at least
        ``min_free_bytes`` free; a ConfigError naming ``run.storage_path`` otherwise. (A remote URI is
        checked by its first write.)"""
        if self.remote:
            return
        where = Path(self.storage_path)
        existing = where
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            raise ConfigError.invalid("run.storage_path", str(where), f"a directory ({existing} is a file)")
        try:  # os.access says yes to root even on a read-only mount: write a probe file
            where.mkdir(parents=True, exist_ok=True)
            probe = where / f".raytune_opt-probe-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise ConfigError.invalid(
                "run.storage_path", str(where), f"a directory you can write ({e.strerror or e})"
            ) from None
        if len(str(Path(self.path))) > 3000 or any(len(part) > 255 for part in Path(self.path).parts):
            raise ConfigError.invalid("run.storage_path", str(where), "a path the file system can hold")
        free = shutil.disk_usage(existing).free
        if free < min_free_bytes:
            raise ConfigError.invalid(
                "run.storage_path",
                str(where),
                f"a disk with at least {min_free_bytes >> 20} MiB free (it has {free >> 20} MiB)",
            )

    def read_text(self, file: str) -> str | None:
        """The text of ``file`` in the folder, or ``None`` when it does not exist."""
        if not self.remote:
            p = Path(self.path) / file
            return p.read_text() if p.exists() else None
        import pyarrow.fs

        if self.fs.get_file_info(self._fs_path(file)).type == pyarrow.fs.FileType.NotFound:
            return None
        with self.fs.open_input_stream(self._fs_path(file)) as f:
            return f.read().decode()

    def names(self, pattern: str) -> list[str]:
        """The names of the files directly in the folder that match ``pattern`` (``fnmatch``)."""
        import fnmatch

        if not self.remote:
            p = Path(self.path)
            return sorted(x.name for x in p.glob(pattern) if x.is_file()) if p.is_dir() else []
        import pyarrow.fs

        selector = pyarrow.fs.FileSelector(self._fs_path(), allow_not_found=True)
        found = [i.base_name for i in self.fs.get_file_info(selector) if i.type == pyarrow.fs.FileType.File]
        return sorted(fnmatch.filter(found, pattern))

    def write_text(self, file: str, text: str) -> None:
        """Write ``file`` (atomically on a local disk: a temporary file, then a rename)."""
        if not self.remote:
            p = Path(self.path) / file
            p.parent.mkdir(parents=True, exist_ok=True)
            tmp = p.with_suffix(p.suffix + ".tmp")
            tmp.write_text(text)
            tmp.replace(p)
            return
        self.fs.create_dir(self._fs_path(), recursive=True)
        with self.fs.open_output_stream(self._fs_path(file)) as f:
            f.write(text.encode())

    def local_copy(self, cache: str | os.PathLike | None = None) -> Path:
        """A local folder with the same files: the folder itself, or a mirror of a remote one under
        ``cache`` (default ``$RAYTUNE_OPT_CACHE/results`` or ``~/.cache/raytune_opt/results``); trials'
        checkpoint folders are left out of the mirror, the report does not read them."""
        if not self.remote:
            return Path(self.path)
        import pyarrow.fs

        root = Path(cache or os.environ.get("RAYTUNE_OPT_CACHE", Path.home() / ".cache" / "raytune_opt"))
        local = root / "results" / self.name
        selector = pyarrow.fs.FileSelector(self._fs_path(), recursive=True)
        prefix = self._fs_path() + "/"
        for info in self.fs.get_file_info(selector):
            rel = info.path[len(prefix) :]
            if info.type != pyarrow.fs.FileType.File or "/checkpoint_" in f"/{rel}":
                continue
            dest = local / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            with self.fs.open_input_stream(info.path) as src:
                dest.write_bytes(src.read())
        return local

    def upload(self, files: dict[str, Any]) -> dict[str, str]:
        """Copy local report files into the (remote) folder; returns their remote paths by name."""
        if not self.remote:
            return {k: str(v) for k, v in files.items()}
        out = {}
        for name, local in files.items():
            target = self._fs_path(Path(local).name)
            with self.fs.open_output_stream(target) as f:
                f.write(Path(local).read_bytes())
            out[name] = f"{self.path}/{Path(local).name}"
        return out
