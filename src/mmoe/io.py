"""File helpers: atomic writes and JSON. The one module below ``run`` that touches files directly.

Every write goes to a temporary name beside the target and is renamed into place, so a reader
(or a process restarted after ``kill -9``) never sees a half-written file.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "a" / "b.json"
    >>> write_json(path, {"x": [1, 2]})
    >>> read_json(path)
    {'x': [1, 2]}
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from mmoe.errors import ArtifactError, OutputError


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, else delete it.

    The parent directory is created if needed. The rename is atomic on POSIX file systems.
    """
    path = check_output_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file ordinary permissions
    try:
        yield Path(tmp)
        # Writers that replace the file (the safetensors writer does) leave 0600: reset it.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def check_output_path(path: str | Path, directory: bool = False) -> Path:
    """``path`` as a ``Path`` if a file (or, with ``directory``, a folder) can be made there.

    Raises ``OutputError`` in one line when ``path`` is an existing folder (for a file), an
    existing file (for a folder), lies under a regular file, or under a folder this process may
    not write into. Nothing is created.

    Example:
        >>> check_output_path("/dev/null/x.csv")
        Traceback (most recent call last):
        ...
        mmoe.errors.OutputError: cannot write /dev/null/x.csv: /dev/null is not a folder
    """
    path = Path(path)
    if path.is_dir() and not directory:
        raise OutputError(f"{path} is a folder; give a file name, e.g. {path / 'out.csv'}")
    if directory and path.exists() and not path.is_dir():
        raise OutputError(f"{path} is a file, not a folder; give another --out")
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputError(f"cannot write {path}: {ancestor} is not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {path}: no permission to write in {ancestor}")
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float replaced by ``None`` (JSON has no NaN or Infinity).

    Example:
        >>> json_safe({"auc": float("nan"), "rows": [1.5, float("inf")]})
        {'auc': None, 'rows': [1.5, None]}
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def dumps(payload: Any, indent: int | None = 1) -> str:
    """Strict JSON text of ``payload`` (NaN and infinities written as ``null``)."""
    return json.dumps(json_safe(payload), indent=indent, ensure_ascii=False, allow_nan=False)


def write_json(path: str | Path, payload: Any) -> None:
    """Write ``payload`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(dumps(payload) + "\n")


def write_jsonl(path: str | Path, records: Iterable[Any]) -> None:
    """Write ``records`` one JSON object per line, atomically (replacing the file)."""
    with atomic_path(path) as tmp:
        tmp.write_text("".join(dumps(r, indent=None) + "\n" for r in records))


def append_jsonl(path: str | Path, record: Any) -> None:
    """Append one JSON line to ``path``, flushed to the OS before returning."""
    with open(path, "a") as f:
        f.write(dumps(record, indent=None) + "\n")
        f.flush()


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def prune(directory: str | Path, pattern: str, keep: str) -> None:
    """Delete the files of ``directory`` matching ``pattern``, except the one named ``keep``."""
    for path in Path(directory).glob(pattern):
        if path.name != keep:
            path.unlink(missing_ok=True)


def read_json(path: str | Path) -> Any:
    """Read a JSON file, or raise one ``ArtifactError`` line naming the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path} not found")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path} is corrupt (not valid JSON: {exc})") from None


def read_bytes(path: str | Path) -> bytes:
    """Read a whole file, or raise one ``ArtifactError`` line."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path} not found")
    return path.read_bytes()


__all__ = [
    "append_jsonl",
    "atomic_path",
    "check_output_path",
    "dumps",
    "json_safe",
    "prune",
    "read_bytes",
    "read_json",
    "write_bytes",
    "write_json",
    "write_jsonl",
]
