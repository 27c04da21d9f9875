"""``mmoe serve --workers N`` on Linux: N processes, each listening on the port with its own socket.

uvicorn's workers share one listening socket. A keep-alive connection stays with the process
that accepted it, and the process that wakes first often accepts a whole burst of new
connections while the other sleeps: ``benchmarks/serving.py --workers 2`` measured 0.63 of the
onnxruntime ceiling at 8 connections and 0.38 at 32 for that reason. Here every worker binds
its own socket with ``SO_REUSEPORT``, and the kernel hashes each new connection to one of them,
so connections spread over the workers.

The supervisor (``supervise``) starts the workers as child processes
(``python -c "...run_worker()"``; none imports torch), starts a new worker when one dies, and
stops them all on SIGINT or SIGTERM.

Example:
    >>> sock = listening_socket("127.0.0.1", 0, reuse_port=reuse_port_supported())
    >>> sock.getsockname()[1] > 0  # an ephemeral port, listening
    True
    >>> sock.close()
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any

from mmoe.errors import MmoeError, OutputError
from mmoe.serving.app import SETTINGS_ENV, app_from_environment

#: A worker that exits sooner than this after its start is a start-up failure: stop, don't loop.
START_GRACE_SECONDS = 5.0
WORKER_CODE = "from mmoe.serving.workers import run_worker; run_worker()"


def reuse_port_supported() -> bool:
    """Whether the kernel spreads connections over sockets sharing a port (Linux)."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def listening_socket(host: str, port: int, reuse_port: bool) -> socket.socket:
    """A TCP socket bound to ``host:port`` and listening (``SO_REUSEPORT`` if ``reuse_port``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def check_port(host: str, port: int) -> None:
    """Raise ``OutputError`` (one line) if ``host:port`` cannot be bound by a plain socket.

    A plain bind also fails when other processes already share the port with
    ``SO_REUSEPORT`` (another ``mmoe serve``), so two servers never split one port's traffic.
    """
    try:
        listening_socket(host, port, reuse_port=False).close()
    except OSError as exc:
        raise OutputError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); "
            "choose another --port or stop the process using it"
        ) from None


def run_worker() -> None:
    """One worker process: the app and its own ``SO_REUSEPORT`` socket from the settings."""
    import uvicorn

    settings = json.loads(os.environ[SETTINGS_ENV])
    try:
        app = app_from_environment()
        sock = listening_socket(settings["host"], settings["port"], reuse_port=True)
    except (MmoeError, OSError) as exc:  # e.g. the model file went away since the check
        print(f"error: worker {os.getpid()}: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    config = uvicorn.Config(app, log_level=settings["log_level"], access_log=False)
    uvicorn.Server(config).run(sockets=[sock])


def supervise(workers: int, settings: dict[str, Any]) -> None:
    """Run ``workers`` worker processes until SIGINT or SIGTERM; replace any that dies.

    Args:
        workers: how many processes.
        settings: ``model``, ``host``, ``port``, ``log_level`` and the app's limits, handed to
            each worker as JSON in ``MMOE_SERVE_SETTINGS``.

    Raises:
        OutputError: a worker exited during its start-up.
    """
    env = {**os.environ, SETTINGS_ENV: json.dumps(settings)}
    stopping = False

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True

    def start() -> tuple[subprocess.Popen, float]:
        return subprocess.Popen([sys.executable, "-c", WORKER_CODE], env=env), time.monotonic()

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    procs = [start() for _ in range(workers)]
    try:
        while not stopping:
            for i, (proc, started) in enumerate(procs):
                status = proc.poll()
                if status is None or stopping:
                    continue
                if time.monotonic() - started < START_GRACE_SECONDS:
                    raise OutputError(
                        f"a server worker exited during start-up (status {status}); "
                        "its message is above"
                    )
                print(
                    f"worker {proc.pid} exited (status {status}); starting another",
                    file=sys.stderr,
                    flush=True,
                )
                procs[i] = start()
            time.sleep(0.2)
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                proc.terminate()  # uvicorn finishes the requests in flight, then exits
        for proc, _ in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


__all__ = ["check_port", "listening_socket", "reuse_port_supported", "run_worker", "supervise"]
