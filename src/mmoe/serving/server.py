"""``mmoe serve``: run the scoring app on uvicorn, from an ONNX file or a run directory.

A run directory is exported first, in a child process (``python -m mmoe export``), so the
serving processes never import torch: they hold onnxruntime, FastAPI and the model only.
Several workers run as processes with one ``SO_REUSEPORT`` socket each on Linux
(``mmoe.serving.workers``), as uvicorn's workers sharing one socket elsewhere.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from mmoe.errors import ArtifactError
from mmoe.serving.app import SETTINGS_ENV, create_app
from mmoe.serving.requests import Limits
from mmoe.serving.workers import check_port, reuse_port_supported, supervise


def resolve_model(target: str | Path, workdir: Path) -> Path:
    """The ONNX file to serve: ``target`` itself, or the export of the run directory ``target``."""
    target = Path(target)
    if target.is_file() and target.suffix == ".onnx":
        return target
    if not target.is_dir():
        raise ArtifactError(f"{target} is neither an .onnx file nor a run directory")
    out = workdir / "model.onnx"
    done = subprocess.run(
        [sys.executable, "-m", "mmoe", "export", str(target), "-o", str(out), "--quiet"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        message = lines[-1] if lines else f"exit status {done.returncode}"
        raise ArtifactError(
            f"cannot export {target} for serving: {message.removeprefix('error: ')}"
        )
    return out


def serve(
    target: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    limits: Limits | None = None,
    threads: int | None = None,
    log_level: str = "warning",
) -> None:
    """Serve ``target`` (ONNX file or run directory) until interrupted."""
    import uvicorn

    limits = limits or Limits()
    workdir = Path(tempfile.mkdtemp(prefix="mmoe-serve-"))
    try:
        model = resolve_model(target, workdir)
        app = create_app(model, limits, threads)  # fails here, once, on a bad file
        check_port(host, port)
        print(
            f"serving {target} on http://{host}:{port} with {workers} worker(s); Ctrl-C stops",
            file=sys.stderr,
            flush=True,
        )
        options = {"host": host, "port": port, "log_level": log_level, "access_log": False}
        if workers == 1:
            uvicorn.run(app, **options)
            return
        del app  # each worker loads its own
        settings = {
            "model": str(model.resolve()),
            "max_rows": limits.max_rows,
            "max_body_bytes": limits.max_body_bytes,
            "threads": threads,
            "offload_rows": None,  # the worker processes already keep the cores busy
            "host": host,
            "port": port,
            "log_level": log_level,
        }
        if reuse_port_supported():
            supervise(workers, settings)
            return
        os.environ[SETTINGS_ENV] = json.dumps(settings)
        uvicorn.run(
            "mmoe.serving.app:app_from_environment", factory=True, workers=workers, **options
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


__all__ = ["resolve_model", "serve"]
