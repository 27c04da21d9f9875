"""Run independent training jobs on every core, one torch thread per process, with a progress bar.

The models of the paper's studies are small, so one process per core with a single intra-op
thread each beats one process whose matmuls are split across threads.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from typing import Any, TypeVar

from tqdm.auto import tqdm

Job = TypeVar("Job")


_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@contextlib.contextmanager
def _single_threaded_children() -> Iterator[None]:
    """Children inherit one-thread BLAS/OpenMP settings (NumPy reads them at import)."""
    saved = {k: os.environ.get(k) for k in _THREAD_VARIABLES}
    os.environ.update(dict.fromkeys(_THREAD_VARIABLES, "1"))
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _single_thread() -> None:
    import torch

    torch.set_num_threads(1)


def run_jobs(
    fn: Callable[[Job], Any],
    jobs: Sequence[Job],
    workers: int | None = None,
    desc: str = "runs",
    progress: bool = True,
) -> list[Any]:
    """``[fn(job) for job in jobs]``, computed in ``workers`` processes (default: every core).

    ``fn`` must be a module-level function (it is pickled to the workers). Results keep the
    order of ``jobs``; the first failing job's exception is raised.
    """
    workers = min(workers or os.cpu_count() or 1, len(jobs)) or 1
    bar = tqdm(total=len(jobs), desc=desc, disable=not progress, dynamic_ncols=True)
    results: list[Any] = [None] * len(jobs)
    try:
        if workers == 1:
            for i, job in enumerate(jobs):
                results[i] = fn(job)
                bar.update()
            return results
        context = get_context("spawn")  # a clean interpreter: no forked torch thread pools
        with (
            _single_threaded_children(),
            ProcessPoolExecutor(workers, mp_context=context, initializer=_single_thread) as pool,
        ):
            futures = {pool.submit(fn, job): i for i, job in enumerate(jobs)}
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                bar.update()
        return results
    finally:
        bar.close()
