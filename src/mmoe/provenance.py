"""Where a run came from: the environment it trained in and a fingerprint of its data.

``mmoe train`` writes both into the run directory as ``provenance.json``::

    {"environment": {"mmoe": "0.1.0", "python": "3.11.7", "torch": "2.13.0", ...,
                     "git_commit": "2d7e263…", "git_dirty": false, "command": "mmoe train …"},
     "data": {"source": "table", "splits": {"train": {"rows": 90000}, ...},
              "files": [{"path": "ratings.csv", "bytes": 12345678, "sha256": "…"}]}}

Files up to :data:`HASH_LIMIT_BYTES` are hashed (sha256); larger ones are recorded by size and
modification time only, so a run on a large table does not spend minutes hashing it.

Example:
    >>> env = environment()
    >>> sorted(k for k in env if k in ("mmoe", "python", "torch"))
    ['mmoe', 'python', 'torch']
"""

from __future__ import annotations

import hashlib
import platform
import shlex
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mmoe.data.streaming import parquet_dataset_files

#: Files larger than this are fingerprinted by size and mtime instead of a hash.
HASH_LIMIT_BYTES = 512 * 2**20

PROVENANCE_FILE = "provenance.json"


def environment() -> dict[str, Any]:
    """Versions, platform, git commit (when run inside a git checkout) and the command line."""
    from importlib.metadata import PackageNotFoundError, version

    versions: dict[str, Any] = {}
    for name in ("mmoe", "torch", "numpy", "pandas", "pyarrow", "pydantic"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    env: dict[str, Any] = {
        **versions,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "time_utc": datetime.now(UTC).isoformat(timespec="seconds"),  # when training started
        "command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else None,
        "cwd": str(Path.cwd()),
    }
    try:
        import torch

        env["cuda"] = torch.version.cuda
        env["torch_threads"] = torch.get_num_threads()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    env.update(_git())
    return env


def _git() -> dict[str, Any]:
    """The commit of the git checkout holding the current directory, if any."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        if commit.returncode != 0:
            return {"git_commit": None}
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        )
        return {"git_commit": commit.stdout.strip(), "git_dirty": bool(status.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": None}


def file_fingerprint(path: str | Path) -> dict[str, Any]:
    """Path, size and sha256 (or, above :data:`HASH_LIMIT_BYTES`, the modification time)."""
    path = Path(path)
    stat = path.stat()
    entry: dict[str, Any] = {"path": str(path), "bytes": stat.st_size}
    if stat.st_size <= HASH_LIMIT_BYTES:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(2**20), b""):
                digest.update(block)
        entry["sha256"] = digest.hexdigest()
    else:
        entry["mtime_utc"] = datetime.fromtimestamp(stat.st_mtime, UTC).isoformat()
    return entry


def data_fingerprint(source: Any, rows: dict[str, int]) -> dict[str, Any]:
    """The ``data:`` section's files (hashed) and each split's row count.

    Args:
        source: the run config's ``data`` section.
        rows: rows per split, e.g. ``{"train": 90000, "valid": 10000}``.
    """
    files: list[Path] = []
    kind = getattr(source, "source", "memory")
    if kind == "table":
        files = [Path(p) for p in (source.train, source.valid, source.test) if p is not None]
    elif kind == "census" and source.data_dir is not None:
        files = sorted(Path(source.data_dir).glob("census-income.*"))
    elif kind == "movielens" and source.data_dir is not None:
        files = [Path(source.data_dir) / name for name in ("u.data", "u.user", "u.item")]
    elif kind == "parquet_dataset":
        for spec in (source.train, source.valid, source.test):
            files += [] if spec is None else parquet_dataset_files(spec)
    entries = [file_fingerprint(p) for p in files if p.is_file()]
    if kind == "parquet_dataset":  # a stream has no row counts up front: the files' metadata does
        import pyarrow.parquet as pq

        for entry in entries:
            entry["rows"] = pq.ParquetFile(entry["path"]).metadata.num_rows
    return {
        "source": kind,
        "splits": {name: {"rows": n} for name, n in rows.items()},
        "files": entries,
    }


__all__ = [
    "HASH_LIMIT_BYTES",
    "PROVENANCE_FILE",
    "data_fingerprint",
    "environment",
]
