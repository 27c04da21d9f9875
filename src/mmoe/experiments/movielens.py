"""Every model of ``configs/movielens/`` over several seeds, as one table of test metrics.

MovieLens 100K with two tasks read from the rating: ``rating`` (regression, 1-5) and ``like``
(binary, rating >= 4), split by time (:mod:`mmoe.data.movielens`). Each method's config is
trained once per seed (``training.seed``); Single-Task trains one model per task from
``single-task.yaml``. The table holds, per task, the mean and standard deviation over seeds of
the test metrics (rating: RMSE; like: AUC).

Run (the ml-100k directory is the user's; mmoe never ships it)::

    python -m mmoe.experiments.movielens --data-dir DIR --seeds 3 [--out runs/movielens]
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

METHODS = ("single_task", "shared_bottom", "mmoe", "cgc", "ple")
LABELS = {
    "single_task": "Single-Task",
    "shared_bottom": "Shared-Bottom",
    "mmoe": "MMoE",
    "cgc": "CGC",
    "ple": "PLE",
}
TASKS = ("rating", "like")
#: The test metric of each task in the table.
METRICS = {"rating": "rmse", "like": "auc"}
CONFIGS = Path(__file__).resolve().parents[3] / "configs" / "movielens"


@dataclass(frozen=True)
class MovieLensJob:
    """One training run of the study."""

    method: str
    seed: int
    config: str
    data_dir: str
    task: str | None = None  # single-task runs: the one task this model learns


def plan_jobs(
    methods: Sequence[str], seeds: int, configs_dir: str | Path, data_dir: str | Path
) -> list[MovieLensJob]:
    """Every (method, seed[, task]) run, in a stable order.

    Example:
        >>> [(j.method, j.seed, j.task) for j in plan_jobs(["single_task", "mmoe"], 1, "c", "d")]
        [('single_task', 0, 'rating'), ('single_task', 0, 'like'), ('mmoe', 0, None)]
    """
    jobs = []
    for method in methods:
        config = str(Path(configs_dir) / f"{method.replace('_', '-')}.yaml")
        tasks: Sequence[str | None] = TASKS if method == "single_task" else [None]
        for seed in range(seeds):
            jobs += [MovieLensJob(method, seed, config, str(data_dir), t) for t in tasks]
    return jobs


def run_job(job: MovieLensJob) -> dict[str, Any]:
    """Train one run; its validation and test metrics per task (a JSON-ready dict)."""
    from mmoe.config import load_config, parse_config
    from mmoe.training.run import train

    config = load_config(job.config, [f"data.data_dir={job.data_dir}", f"training.seed={job.seed}"])
    if job.task is not None:
        raw = config.model_dump(mode="json")
        raw["tasks"] = [t for t in raw["tasks"] if t["name"] == job.task]
        raw["training"]["monitor_task"] = None
        config = parse_config(raw)
    run = train(config, progress=False)
    return {
        **asdict(job),
        "valid": run.metrics["best"]["valid"],
        "test": run.metrics["test"],
        "steps": run.metrics["steps"],
        "seconds": run.metrics["seconds"]["total"],
    }


def build_table(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per method: mean and standard deviation over seeds of each task's test metric.

    Example:
        >>> runs = [{"method": "mmoe", "seed": s, "task": None, "seconds": 10.0,
        ...          "test": {"rating": {"rmse": r}, "like": {"auc": a}}}
        ...         for s, r, a in [(0, 1.0, 0.7), (1, 0.8, 0.8)]]
        >>> row = build_table(runs)[0]
        >>> row["mean"], row["runs"]
        ({'rating': 0.9, 'like': 0.75}, 2)
    """
    rows = []
    for method in dict.fromkeys(r["method"] for r in runs):
        mine = [r for r in runs if r["method"] == method]
        row: dict[str, Any] = {"method": method, "mean": {}, "std": {}}
        for task in TASKS:
            values = [r["test"][task][METRICS[task]] for r in mine if r["task"] in (None, task)]
            row["mean"][task] = round(statistics.fmean(values), 6)
            row["std"][task] = round(statistics.pstdev(values), 6)
        row["runs"] = len({r["seed"] for r in mine})
        row["seconds"] = round(statistics.fmean(r["seconds"] for r in mine), 1)
        rows.append(row)
    return rows


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown: per task, the test metric's mean ± standard deviation over seeds."""
    header = ["method", "seeds", *(f"{t} test {METRICS[t].upper()}" for t in TASKS), "s per run"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [LABELS.get(row["method"], row["method"]), str(row["runs"])]
        cells += [f"{row['mean'][t]:.4f} ± {row['std'][t]:.4f}" for t in TASKS]
        lines.append("| " + " | ".join([*cells, f"{row['seconds']:.0f}"]) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    from mmoe.experiments.parallel import run_jobs
    from mmoe.io import atomic_path, write_json

    parser = argparse.ArgumentParser(
        prog="python -m mmoe.experiments.movielens", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--data-dir", required=True, help="The ml-100k directory.")
    parser.add_argument("--seeds", type=int, default=3, help="Runs per method (seeds 0..N-1).")
    parser.add_argument("--methods", default=",".join(METHODS), help="Comma-separated methods.")
    parser.add_argument("--configs", default=str(CONFIGS), help="Directory of the configs.")
    parser.add_argument("--workers", type=int, default=None, help="Parallel runs [cores].")
    parser.add_argument("--out", default="runs/movielens", help="Output directory.")
    args = parser.parse_args(argv)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        parser.error(f"unknown method {unknown[0]!r}; choose from {', '.join(METHODS)}")
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    if not Path(args.data_dir).is_dir():
        parser.error(f"--data-dir {args.data_dir} is not a directory")
    jobs = plan_jobs(methods, args.seeds, args.configs, args.data_dir)
    runs = run_jobs(run_job, jobs, args.workers, desc="movielens")
    text = format_table(build_table(runs))
    out = Path(args.out)
    write_json(out / "runs.json", runs)
    with atomic_path(out / "table.md") as path:
        path.write_text(text + "\n")
    print(text)
    print(f"wrote {out}/table.md and runs.json")


if __name__ == "__main__":
    main()
