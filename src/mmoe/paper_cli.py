"""``mmoe paper …``: the paper's experiments, one command each (see ``mmoe.experiments``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mmoe.errors import ConfigError

paper_app = typer.Typer(
    help="Reproduce the MMoE paper's experiments (Ma et al., KDD 2018).",
    no_args_is_help=True,
    rich_markup_mode=None,  # help is printed as written: [brackets] are text, not markup
)


@paper_app.command("correlation-curve")
def correlation_curve(
    seeds: Annotated[int, typer.Option(min=1, help="Draws of the problem per cosine.")] = 20,
    samples: Annotated[int, typer.Option(min=100, help="Rows per draw.")] = 50_000,
    out: Annotated[Path, typer.Option(help="Output directory.")] = Path("runs/paper-synthetic"),
) -> None:
    """Label correlation against weight cosine (paper Fig. 2): a PNG and a table."""
    from mmoe.experiments.plots import correlation_curve_figure
    from mmoe.experiments.synthetic_study import correlation_curve as curve
    from mmoe.experiments.synthetic_study import format_correlation_curve
    from mmoe.io import write_json

    cosines = [round(0.1 * i, 2) for i in range(11)] + [0.95]
    rows = curve(sorted(cosines), seeds=seeds, num_samples=samples)
    text = format_correlation_curve(rows)
    write_json(out / "correlation_curve.json", rows)
    (out / "correlation_curve.md").write_text(text + "\n")
    correlation_curve_figure(rows, out / "correlation_curve.png")
    typer.echo(text)
    typer.echo(f"wrote {out}/correlation_curve.png, .md and .json")


@paper_app.command()
def synthetic(
    quick: Annotated[
        bool, typer.Option("--quick", help="The small profile (about two minutes).")
    ] = False,
    seeds: Annotated[
        int | None, typer.Option(min=1, help="Runs per model and correlation [profile's].")
    ] = None,
    epochs: Annotated[int | None, typer.Option(min=1, help="Epochs per run [profile's].")] = None,
    num_train: Annotated[
        int | None, typer.Option(min=10, help="Training rows per run [profile's].")
    ] = None,
    models: Annotated[
        str,
        typer.Option(
            help="Comma-separated: shared_bottom, omoe, mmoe, cgc, ple (cgc and ple: Tang et "
            "al., RecSys 2020, beyond the MMoE paper's three)."
        ),
    ] = "shared_bottom,omoe,mmoe",
    correlations: Annotated[
        str, typer.Option(help="Comma-separated task correlations (weight cosines).")
    ] = "1.0,0.9,0.5",
    workers: Annotated[int | None, typer.Option(help="Parallel runs (default: cores).")] = None,
    out: Annotated[Path, typer.Option(help="Output directory.")] = Path("runs/paper-synthetic"),
    from_runs: Annotated[
        Path | None,
        typer.Option(help="Re-summarise a runs.json written earlier instead of training."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Shared-Bottom, OMoE and MMoE (and CGC, PLE on request) at correlations 1.0, 0.9, 0.5
    over many seeds (Fig. 4, 5)."""
    import dataclasses

    from mmoe.experiments import synthetic_study as study
    from mmoe.experiments.parallel import run_jobs
    from mmoe.io import read_json

    if from_runs is not None:
        saved = read_json(from_runs)
        profile, results = study.Profile(**saved["profile"]), saved["runs"]
    else:
        profile = study.PROFILES["quick" if quick else "full"]
        changes = {"seeds": seeds, "epochs": epochs, "num_train": num_train}
        profile = dataclasses.replace(
            profile, **{k: v for k, v in changes.items() if v is not None}
        )
        chosen = [m.strip() for m in models.split(",") if m.strip()]
        unknown = sorted(set(chosen) - set(study.MODELS))
        if unknown or not chosen:
            name = unknown[0] if unknown else models
            raise ConfigError(f"unknown model {name!r}; choose from {', '.join(study.MODELS)}")
        try:
            corrs = [float(c) for c in correlations.split(",") if c.strip()]
        except ValueError:
            raise ConfigError(
                f"--correlations {correlations!r}: give numbers such as 1.0,0.9,0.5"
            ) from None
        if not corrs or any(not -1.0 <= c <= 1.0 for c in corrs):
            raise ConfigError(f"--correlations {correlations!r}: each must lie in [-1, 1]")
        jobs = study.plan_jobs(profile, chosen, corrs)
        results = run_jobs(study.run_job, jobs, workers, desc="synthetic study", progress=not quiet)
    typer.echo(study.write_report(results, profile, out))
    typer.echo(f"wrote {out}/summary.md, loss_curves.png, final_loss_histograms.png")


@paper_app.command()
def census(
    group: Annotated[int, typer.Option(help="1: income + marital; 2: education + marital.")],
    data_dir: Annotated[
        Path, typer.Option(help="Directory with census-income.data[.gz] and .test[.gz].")
    ],
    seeds: Annotated[int, typer.Option(min=1, help="Runs per method (training.seed 0..N-1).")] = 5,
    methods: Annotated[
        str,
        typer.Option(
            help="Comma-separated: single_task, shared_bottom, omoe, mmoe, cgc, ple "
            "(cgc and ple: Tang et al., RecSys 2020, rows beyond the MMoE paper's)."
        ),
    ] = "single_task,shared_bottom,omoe,mmoe",
    lightgbm: Annotated[
        bool | None,
        typer.Option(
            "--lightgbm/--no-lightgbm",
            help="Add the LightGBM single-task baseline (default: when lightgbm is installed).",
        ),
    ] = None,
    configs: Annotated[
        Path | None,
        typer.Option(
            help="Folder holding census/groupG-METHOD.yaml [default: the shipped configs]."
        ),
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Parallel runs (default: cores).")] = None,
    out: Annotated[
        Path | None, typer.Option(help="Output directory (default: runs/paper-census-gG).")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", "-s", help="Override a key of every network's config."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Train every method over SEEDS seeds and print the paper's Census-Income table.

    Multi-task methods also get a seed-ensemble row: the mean of all seeds' logits, reported
    apart from the single models' mean. LightGBM uses the tuned parameters of
    tuning/groupG-lightgbm.json when `mmoe paper tune --method lightgbm` wrote it.
    """
    from mmoe.experiments.census_tables import (
        METHODS,
        build_table,
        ensemble_rows,
        format_table,
        plan_jobs,
    )
    from mmoe.experiments.census_tables import run_job as census_job
    from mmoe.experiments.parallel import run_jobs
    from mmoe.io import write_json

    if group not in (1, 2):
        raise ConfigError(f"--group must be 1 or 2, not {group}")
    chosen = [m.strip() for m in methods.split(",") if m.strip()]
    unknown = sorted(set(chosen) - set(METHODS))
    if unknown:
        raise ConfigError(f"unknown method {unknown[0]!r}; choose from {', '.join(METHODS)}")
    if lightgbm is None:
        lightgbm = _importable("lightgbm")
    if lightgbm:
        chosen.append("lightgbm")
    configs_dir = _configs_dir(configs) / "census"
    if not Path(data_dir).is_dir():
        raise ConfigError(f"--data-dir {data_dir} is not a directory")
    out = out or Path("runs") / f"paper-census-g{group}"
    predictions = out / "predictions"
    jobs = plan_jobs(group, chosen, seeds, configs_dir, data_dir, set_ or [], predictions)
    for job in jobs:
        if not Path(job.config).is_file():
            raise ConfigError(f"config not found: {job.config}; pass --configs DIR")
    runs = run_jobs(census_job, jobs, workers, desc=f"census group {group}", progress=not quiet)
    table = build_table(runs, group)
    table += ensemble_rows(runs, group, predictions)
    text = format_table(table, group)
    write_json(out / "runs.json", runs)
    write_json(out / "table.json", table)
    (out / "table.md").write_text(text + "\n")
    typer.echo(text)
    typer.echo(f"wrote {out}/table.md, table.json and runs.json")


@paper_app.command()
def tune(
    group: Annotated[int, typer.Option(help="1: income + marital; 2: education + marital.")],
    method: Annotated[
        str, typer.Option(help="single_task, shared_bottom, omoe, mmoe, cgc, ple or lightgbm.")
    ],
    data_dir: Annotated[
        Path, typer.Option(help="Directory with census-income.data[.gz] and .test[.gz].")
    ],
    trials: Annotated[int, typer.Option(min=1, help="Configurations to train.")] = 16,
    search_seed: Annotated[int, typer.Option(help="Seed of the random search.")] = 0,
    max_epochs: Annotated[
        int, typer.Option(min=1, help="Epochs per trial; early stopping (patience 3) inside.")
    ] = 30,
    space: Annotated[
        str,
        typer.Option(
            help="paper: the architecture's hyper-parameters; options: numeric encoding, cross "
            "layers, dropout (hyper-parameters as configured); both."
        ),
    ] = "paper",
    configs: Annotated[
        Path | None,
        typer.Option(
            help="Folder holding census/groupG-METHOD.yaml [default: the shipped configs]."
        ),
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Parallel runs (default: cores).")] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Where to write the search record [default: CONFIGS/census/tuning]."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Random search on validation data for one census config; record every trial.

    The paper's search space (experiments/tuning.py) drawn with a seeded random generator, so
    the records in configs/census/tuning rerun trial for trial; the trials train through the
    same search runner as mmoe tune.
    """
    from mmoe.experiments.census_tables import METHODS, TASKS, config_path
    from mmoe.experiments.tuning import (
        SEARCH_PATIENCE,
        SPACES,
        best_trial,
        format_search,
        run_paper_search,
        sample_trials,
    )
    from mmoe.io import write_json

    if group not in (1, 2):
        raise ConfigError(f"--group must be 1 or 2, not {group}")
    if method == "lightgbm":
        _tune_lightgbm(group, data_dir, trials, search_seed, configs, workers, out, quiet)
        return
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}; choose from {', '.join(METHODS)}, lightgbm")
    root = _configs_dir(configs) / "census"
    config = config_path(root, group, method)
    if not config.is_file():
        raise ConfigError(f"config not found: {config}; pass --configs DIR")
    if space not in SPACES:
        raise ConfigError(f"unknown --space {space!r}; choose from {', '.join(SPACES)}")
    plan = sample_trials(method, trials, str(config), str(data_dir), search_seed, max_epochs, space)
    results = run_paper_search(plan, workers, progress=not quiet)
    main = TASKS[group][0]
    best = best_trial(results, main)
    out = out or root / "tuning"
    name = config.stem if space == "paper" else f"{config.stem}-{space}"
    # The record sits beside the configs: name the config relative to them, not this machine.
    results = [{**r, "config": f"census/{config.name}"} for r in results]
    write_json(out / f"{name}.json", {"search_seed": search_seed, "trials": results})
    table = format_search(results, main)
    command = (
        f"mmoe paper tune --group {group} --method {method} --data-dir DIR --trials {trials} "
        f"--search-seed {search_seed} --max-epochs {max_epochs}"
        + ("" if space == "paper" else f" --space {space}")
    )
    (out / f"{name}.md").write_text(
        f"# Search for {name}\n\n{trials} trials, search seed {search_seed}, selected on the "
        f"validation AUC of {main}; each trial trains once (training.seed 0) for at most "
        f"{max_epochs} epochs, stopping after {SEARCH_PATIENCE} epochs without a better "
        f"validation AUC. The test split is never used.\n\nRerun: `{command}`\n\n{table}\n"
    )
    typer.echo(table)
    sets = " ".join(f"--set {o}" for o in best["overrides"]) or "(the config as shipped)"
    typer.echo(
        f"best: trial {best['index']}, valid {main} AUC {best['valid_auc'][main]:.4f}: {sets}"
    )


def _tune_lightgbm(
    group: int,
    data_dir: Path,
    trials: int,
    search_seed: int,
    configs: Path | None,
    workers: int | None,
    out: Path | None,
    quiet: bool,
) -> None:
    """Search LightGBM's parameters per task of GROUP; write tuning/groupG-lightgbm.{json,md}."""
    from mmoe.experiments.census_tables import TASKS, config_path
    from mmoe.experiments.gbdt import format_lightgbm_search, tune_job
    from mmoe.experiments.parallel import run_jobs
    from mmoe.io import write_json

    root = _configs_dir(configs) / "census"
    config = config_path(root, group, "single_task")  # the trees read its features and tasks
    if not config.is_file():
        raise ConfigError(f"config not found: {config}; pass --configs DIR")
    jobs = [(str(config), str(data_dir), task, trials, search_seed) for task in TASKS[group]]
    searches = run_jobs(tune_job, jobs, workers, desc=f"tune lightgbm g{group}", progress=not quiet)
    record = {
        "search_seed": search_seed,
        "trials": trials,
        "config": f"census/{config.name}",
        "best": {s["task"]: s["best"] for s in searches},
        "tasks": {s["task"]: s for s in searches},
    }
    out = out or root / "tuning"
    write_json(out / f"group{group}-lightgbm.json", record)
    command = (
        f"mmoe paper tune --group {group} --method lightgbm --data-dir DIR --trials {trials} "
        f"--search-seed {search_seed}"
    )
    table = format_lightgbm_search(record)
    (out / f"group{group}-lightgbm.md").write_text(
        f"# LightGBM search, group {group}\n\n{trials} trials per task, search seed "
        f"{search_seed}, each one booster (seed 0) early-stopped on the task's validation AUC "
        f"and selected on it; the test split is never used.\n\nRerun: `{command}`\n\n{table}"
    )
    typer.echo(table)


def _configs_dir(configs: Path | None) -> Path:
    from mmoe.config.shipped import shipped_configs_dir

    path = configs or shipped_configs_dir()
    if not path.is_dir():
        raise ConfigError(f"configs directory not found: {path}; pass --configs DIR")
    return path


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


__all__ = ["paper_app"]
