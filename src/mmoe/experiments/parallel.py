"""Run independent training jobs on every core, one torch thread per process, with a progress bar.

The models of the paper's studies are small, so one process per core with a single intra-op
thread each beats one process whose matmuls are split across threads.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from typing import Any, TypeVar

from tqdm.auto import tqdm

Job = TypeVar("Job")


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
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_single_thread) as pool:
            futures = {pool.submit(fn, job): i for i, job in enumerate(jobs)}
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                bar.update()
        return results
    finally:
        bar.close()
