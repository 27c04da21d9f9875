"""The synthetic task-correlation study of Ma et al., KDD 2018, §3.2 and §5.

Two regression tasks whose relatedness is set by the cosine ``p`` of their weight vectors
(:mod:`mmoe.data.synthetic`). For each correlation and model (Shared-Bottom, OMoE, MMoE at the
paper's sizes) the study trains many independent runs — each seed draws new data and a new
initialisation — and records the held-out loss along training and at its end.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmoe.data.synthetic import SyntheticTasks

#: The paper's sizes: input 100, 8 experts × 16 units, towers of 8; Shared-Bottom's bottom of
#: 113 units matches the parameter count (DESIGN.md §2).
MODELS: dict[str, dict[str, Any]] = {
    "shared_bottom": {"name": "shared_bottom", "bottom_hidden": [113], "tower_hidden": [8]},
    "omoe": {"name": "omoe", "num_experts": 8, "expert_hidden": [16], "tower_hidden": [8]},
    "mmoe": {"name": "mmoe", "num_experts": 8, "expert_hidden": [16], "tower_hidden": [8]},
    # Tang et al., RecSys 2020: the same 8 experts × 16 units, 4 shared and 2 per task. PLE's
    # second level adds 8 experts of 16 × 16 (2,048 weights) and a shared gate.
    "cgc": {"name": "cgc", "num_shared_experts": 4, "num_task_experts": 2,
            "expert_hidden": [16], "tower_hidden": [8]},
    "ple": {"name": "ple", "num_levels": 2, "num_shared_experts": 4, "num_task_experts": 2,
            "expert_hidden": [16], "tower_hidden": [8]},
}  # fmt: skip
#: What ``mmoe paper synthetic`` trains unless told otherwise: the MMoE paper's three models.
PAPER_MODELS = ("shared_bottom", "omoe", "mmoe")
CORRELATIONS = (1.0, 0.9, 0.5)


@dataclass(frozen=True)
class Profile:
    """How much of the study to run; the generator's constants are the config defaults."""

    seeds: int  # independent runs per model and correlation
    num_train: int
    num_test: int
    epochs: int
    batch_size: int
    learning_rate: float
    eval_every_steps: int
    constants: dict[str, float] = field(default_factory=dict)  # SyntheticSource overrides


PROFILES: dict[str, Profile] = {
    # A smoke test of the whole pipeline: too few seeds to show the paper's findings reliably.
    "quick": Profile(seeds=5, num_train=100_000, num_test=10_000, epochs=10, batch_size=512,
                     learning_rate=3e-3, eval_every_steps=250),
    "full": Profile(seeds=20, num_train=100_000, num_test=10_000, epochs=30, batch_size=512,
                    learning_rate=3e-3, eval_every_steps=250),
}  # fmt: skip


@dataclass(frozen=True)
class SyntheticJob:
    model: str
    correlation: float
    seed: int
    profile: Profile


def plan_jobs(
    profile: Profile,
    models: Sequence[str] = PAPER_MODELS,
    correlations: Sequence[float] = CORRELATIONS,
) -> list[SyntheticJob]:
    return [
        SyntheticJob(model, corr, seed, profile)
        for seed in range(profile.seeds)
        for corr in correlations
        for model in models
    ]


def job_config(job: SyntheticJob) -> dict[str, Any]:
    """The run config of one job: data and initialisation both follow ``job.seed``."""
    p = job.profile
    return {
        "name": f"synthetic-{job.model}-{job.correlation}-{job.seed}",
        "data": {"source": "synthetic", "correlation": job.correlation, "num_train": p.num_train,
                 "num_valid": p.num_test, "num_test": p.num_test, "seed": job.seed,
                 **p.constants},
        # The paper's loss is the raw squared error of each task: no target standardisation.
        "tasks": [{"name": y, "column": y, "type": "regression", "standardize": False}
                  for y in ("y1", "y2")],
        "model": MODELS[job.model],
        "training": {"epochs": p.epochs, "batch_size": p.batch_size,
                     "learning_rate": p.learning_rate, "seed": job.seed, "patience": None,
                     "restore_best": False, "eval_every_steps": p.eval_every_steps},
    }  # fmt: skip


def run_job(job: SyntheticJob) -> dict[str, Any]:
    """Train one run; its held-out loss curve and final test loss (MSE, mean of both tasks)."""
    from mmoe.training.run import train

    run = train(job_config(job), progress=False)
    curve = [[r["step"], _mean_mse(r["valid"])] for r in run.history]
    return {
        "model": job.model,
        "correlation": job.correlation,
        "seed": job.seed,
        "curve": curve,
        "final_test_loss": _mean_mse(run.metrics["test"]),
        "seconds": run.metrics["seconds"]["total"],
    }


def _mean_mse(metrics: dict[str, dict[str, float]]) -> float:
    return statistics.fmean(m["mse"] for m in metrics.values())


def summarize(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean, median and spread of the final test loss per model and correlation.

    Example:
        >>> rows = summarize([{"model": "mmoe", "correlation": 0.5, "final_test_loss": v}
        ...                   for v in (0.1, 0.2, 0.6)])
        >>> rows[0]["mean"], rows[0]["median"], rows[0]["max"], rows[0]["runs"]
        (0.3, 0.2, 0.6, 3)
    """
    rows = []
    for model in MODELS:
        for corr in sorted({r["correlation"] for r in results}, reverse=True):
            losses = [r["final_test_loss"] for r in results
                      if r["model"] == model and r["correlation"] == corr]  # fmt: skip
            if not losses:
                continue
            q25, q75 = np.quantile(losses, [0.25, 0.75])
            rows.append({
                "model": model, "correlation": corr, "runs": len(losses),
                "mean": round(statistics.fmean(losses), 6),
                "median": round(statistics.median(losses), 6),
                "std": round(statistics.pstdev(losses), 6),
                "q25": round(float(q25), 6), "q75": round(float(q75), 6),
                "min": round(min(losses), 6), "max": round(max(losses), 6),
            })  # fmt: skip
    return rows


def paired_wins(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each correlation and pair of models, on how many seeds the first ends lower.

    Seeds draw the problem (weights, α, β) as well as the data, and problems differ in
    difficulty, so comparing two models on the same seeds says more than comparing means.

    Example:
        >>> runs = [{"model": m, "correlation": 0.5, "seed": s, "final_test_loss": v}
        ...         for m, s, v in [("mmoe", 0, 0.1), ("omoe", 0, 0.2),
        ...                         ("mmoe", 1, 0.3), ("omoe", 1, 0.2)]]
        >>> paired_wins(runs)
        [{'correlation': 0.5, 'lower': 'mmoe', 'higher': 'omoe', 'wins': 1, 'seeds': 2}]
    """
    final = {(r["model"], r["correlation"], r["seed"]): r["final_test_loss"] for r in results}
    order = ("ple", "cgc", "mmoe", "omoe", "shared_bottom")  # the first of a pair is the newer
    models = [m for m in order if any(k[0] == m for k in final)]
    rows = []
    for corr in sorted({k[1] for k in final}, reverse=True):
        for i, first in enumerate(models):
            for second in models[i + 1 :]:
                seeds = [s for (m, c, s) in final if m == first and c == corr
                         and (second, corr, s) in final]  # fmt: skip
                wins = sum(final[(first, corr, s)] < final[(second, corr, s)] for s in seeds)
                rows.append({"correlation": corr, "lower": first, "higher": second,
                             "wins": wins, "seeds": len(seeds)})  # fmt: skip
    return rows


def correlation_effect(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per model and pair of correlations, on how many seeds the lower correlation ends higher.

    A seed draws the same directions u1, u2, constants α, β and inputs at every correlation, so
    the pair differs only in the cosine of the task weights: this asks whether less related
    tasks cost each model loss, seed by seed.

    Example:
        >>> runs = [{"model": "omoe", "correlation": c, "seed": s, "final_test_loss": v}
        ...         for c, s, v in [(1.0, 0, 0.1), (0.5, 0, 0.2), (1.0, 1, 0.3), (0.5, 1, 0.2)]]
        >>> correlation_effect(runs)
        [{'model': 'omoe', 'higher': 1.0, 'lower': 0.5, 'wins': 1, 'seeds': 2}]
    """
    final = {(r["model"], r["correlation"], r["seed"]): r["final_test_loss"] for r in results}
    rows = []
    for model in MODELS:
        corrs = sorted({c for (m, c, _) in final if m == model}, reverse=True)
        for i, high in enumerate(corrs):
            for low in corrs[i + 1 :]:
                seeds = [s for (m, c, s) in final if m == model and c == high
                         and (model, low, s) in final]  # fmt: skip
                wins = sum(final[(model, low, s)] > final[(model, high, s)] for s in seeds)
                rows.append({"model": model, "higher": high, "lower": low,
                             "wins": wins, "seeds": len(seeds)})  # fmt: skip
    return rows


def format_correlation_effect(rows: Sequence[dict[str, Any]]) -> str:
    from mmoe.experiments.plots import MODEL_LABELS

    lines = ["| model | correlations | seeds where the lower correlation ends higher |",
             "|---|---|---|"]  # fmt: skip
    for r in rows:
        lines.append(f"| {MODEL_LABELS[r['model']]} | {r['lower']} vs {r['higher']} "
                     f"| {r['wins']} of {r['seeds']} |")  # fmt: skip
    return "\n".join(lines)


def format_paired_wins(rows: Sequence[dict[str, Any]]) -> str:
    from mmoe.experiments.plots import MODEL_LABELS

    lines = ["| correlation | comparison | seeds where the first ends lower |", "|---|---|---|"]
    for r in rows:
        names = f"{MODEL_LABELS[r['lower']]} < {MODEL_LABELS[r['higher']]}"
        lines.append(f"| {r['correlation']} | {names} | {r['wins']} of {r['seeds']} |")
    return "\n".join(lines)


def format_summary(rows: Sequence[dict[str, Any]]) -> str:
    """The summary as a markdown table."""
    from mmoe.experiments.plots import MODEL_LABELS

    lines = [
        "| model | correlation | runs | mean | median | std | q25 – q75 | min – max |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {MODEL_LABELS[r['model']]} | {r['correlation']} | {r['runs']} | {r['mean']:.4f} "
            f"| {r['median']:.4f} | {r['std']:.4f} | {r['q25']:.4f} – {r['q75']:.4f} "
            f"| {r['min']:.4f} – {r['max']:.4f} |"
        )
    return "\n".join(lines)


def mean_curves(
    results: Sequence[dict[str, Any]], statistic: str = "mean"
) -> dict[tuple[str, float], tuple[list[int], list[float]]]:
    """Loss curves over seeds, per (model, correlation): their ``mean`` or ``median`` per step.

    The median is what the README's figure draws: one diverged seed (a final loss 50 times the
    others') pulls a mean curve above every other seed's.
    """
    reduce = {"mean": np.mean, "median": np.median}[statistic]
    grouped: dict[tuple[str, float], list[list[list[float]]]] = {}
    for r in results:
        grouped.setdefault((r["model"], r["correlation"]), []).append(r["curve"])
    out = {}
    for key, curves in grouped.items():
        steps = [int(s) for s, _ in curves[0]]
        losses = reduce([[loss for _, loss in c] for c in curves], axis=0)
        out[key] = (steps, [float(v) for v in losses])
    return out


def quartile_curves(
    results: Sequence[dict[str, Any]],
) -> dict[tuple[str, float], tuple[list[float], list[float], int]]:
    """Per (model, correlation): the 25th and 75th percentiles of the loss over seeds at each
    evaluation, and the number of seeds (the spread the figure draws around the mean)."""
    grouped: dict[tuple[str, float], list[list[list[float]]]] = {}
    for r in results:
        grouped.setdefault((r["model"], r["correlation"]), []).append(r["curve"])
    out = {}
    for key, curves in grouped.items():
        losses = np.array([[loss for _, loss in c] for c in curves])
        low, high = np.percentile(losses, [25, 75], axis=0)
        out[key] = ([float(v) for v in low], [float(v) for v in high], len(curves))
    return out


# ---- the correlation curve (paper Fig. 2) ------------------------------------------------------


def correlation_curve(
    cosines: Sequence[float],
    seeds: int = 10,
    num_samples: int = 50_000,
    **constants: float,
) -> list[dict[str, float]]:
    """Pearson correlation of the two labels for each weight cosine, over ``seeds`` draws.

    Example:
        >>> rows = correlation_curve([0.0, 1.0], seeds=2, num_samples=2000)
        >>> rows[0]["mean"] < 0.2 < 0.9 < rows[1]["mean"]
        True
    """
    rows = []
    for p in cosines:
        values = []
        for seed in range(seeds):
            rng = np.random.default_rng(seed)
            tasks = SyntheticTasks.draw(p, rng, **constants)
            _, y = tasks.sample(num_samples, rng)
            values.append(float(np.corrcoef(y[:, 0], y[:, 1])[0, 1]))
        rows.append({"cosine": p, "mean": statistics.fmean(values),
                     "std": statistics.pstdev(values), "seeds": seeds})  # fmt: skip
    return rows


def format_correlation_curve(rows: Sequence[dict[str, float]]) -> str:
    lines = ["| cosine | label correlation (mean) | std over seeds |", "|---|---|---|"]
    lines += [f"| {r['cosine']:.2f} | {r['mean']:.4f} | {r['std']:.4f} |" for r in rows]
    return "\n".join(lines)


def format_curve_table(results: Sequence[dict[str, Any]], points: int = 4) -> str:
    """Median held-out loss at ``points`` evenly spaced evaluations along training."""
    from mmoe.experiments.plots import MODEL_LABELS

    steps = [int(s) for s, _ in results[0]["curve"]]
    picked = [steps[round((len(steps) - 1) * (i + 1) / points)] for i in range(points)]
    lines = ["| model | correlation | " + " | ".join(f"step {s}" for s in picked) + " |"]
    lines.append("|---|---|" + "---|" * points)
    for model in MODELS:
        for corr in sorted({r["correlation"] for r in results}, reverse=True):
            curves = [dict((int(s), v) for s, v in r["curve"]) for r in results
                      if r["model"] == model and r["correlation"] == corr]  # fmt: skip
            if curves:
                cells = [f"{statistics.median(c[s] for c in curves):.4f}" for s in picked]
                lines.append(f"| {MODEL_LABELS[model]} | {corr} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(results: Sequence[dict[str, Any]], profile: Profile, out: Path) -> str:
    """Write runs, summaries and figures into ``out``; return the markdown summary."""
    from mmoe.experiments.plots import final_loss_histograms, loss_curves_figure
    from mmoe.io import write_json

    rows, wins = summarize(results), paired_wins(results)
    effect = correlation_effect(results)
    text = "\n\n".join([
        "Final test loss (MSE, mean of both tasks) over seeds:\n\n" + format_summary(rows),
        "Paired by seed (same problem and data):\n\n" + format_paired_wins(wins),
        "Paired by seed across correlations (same directions, α, β and inputs):\n\n"
        + format_correlation_effect(effect),
        "Median held-out loss along training:\n\n" + format_curve_table(results),
    ])  # fmt: skip
    write_json(out / "runs.json", {"profile": asdict(profile), "runs": list(results)})
    write_json(
        out / "summary.json",
        {"summary": rows, "paired_wins": wins, "correlation_effect": effect},
    )
    (out / "summary.md").write_text(text + "\n")
    loss_curves_figure(
        mean_curves(results, "median"), out / "loss_curves.png", quartile_curves(results), "median"
    )
    finals: dict[tuple[str, float], list[float]] = {}
    for r in results:
        finals.setdefault((r["model"], r["correlation"]), []).append(r["final_test_loss"])
    final_loss_histograms(finals, out / "final_loss_histograms.png")
    return text
