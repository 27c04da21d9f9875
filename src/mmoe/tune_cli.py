"""``mmoe tune CONFIG --trials N --param KEY=SPEC``: search any config on validation data."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer


def tune_config(
    config: Annotated[
        str, typer.Argument(metavar="CONFIG", help="YAML run config (or a shipped config's name).")
    ],
    param: Annotated[
        list[str],
        typer.Option(
            "--param",
            "-p",
            metavar="KEY=SPEC",
            help=(
                "A searched key, repeatable: KEY=int:LOW:HIGH[:log], KEY=float:LOW:HIGH[:log] "
                "or KEY=choice:[A, B, ...], e.g. model.num_experts=int:2:16."
            ),
        ),
    ],
    trials: Annotated[int, typer.Option(min=1, help="Configurations to train.")] = 20,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            "-s",
            metavar="KEY=VALUE",
            help="Fixed override for every trial, e.g. training.epochs=5.",
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the sampler.")] = 0,
    workers: Annotated[
        int, typer.Option(min=1, help="Trials trained at once (processes; default 1).")
    ] = 1,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            metavar="DIR",
            help="Folder for the record (default: runs/tune-NAME-TIME).",
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Search hyper-parameters of a config on validation data.

    Needs Optuna: pip install 'mmoe[tune]'.

    Each trial trains CONFIG with the drawn values as --set overrides and is scored by the
    monitored validation metric (training.monitor_task and monitor_metric; default: the first
    task's AUC, or MSE for regression) at its best evaluation; the test split is never read.
    Writes OUT/trials.json (every trial, its values, metrics and rerun command), OUT/trials.md
    and OUT/best.yaml (CONFIG with the best values applied), and prints the best trial.
    """
    import yaml

    from mmoe.config import load_config
    from mmoe.io import check_output_path, write_json
    from mmoe.search import (
        OptunaSearch,
        format_results,
        parse_param,
        ranked,
        rerun_command,
        run_search,
    )
    from mmoe.training.metrics import HIGHER_IS_BETTER

    params = [parse_param(p) for p in param]
    base = list(set_ or [])
    cfg = load_config(config, base)
    for p in params:  # a bad key or value fails now, not after the first trial
        probe = p.choices[0] if p.kind == "choice" else p.low
        load_config(config, [*base, f"{p.key}={probe}"])
    maximize = cfg.monitor_metric() in HIGHER_IS_BETTER
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = out or Path("runs") / f"tune-{cfg.name or Path(config).stem}-{stamp}"
    check_output_path(out, directory=True)
    search = OptunaSearch(params, maximize, seed)
    results = run_search(config, search, trials, base, workers, progress=not quiet)
    for r in results:
        r["command"] = rerun_command(config, r)
    best = ranked(results, maximize)[0]
    write_json(
        out / "trials.json",
        {"config": config, "params": param, "fixed": base, "seed": seed, "trials": results},
    )
    table = format_results(results, maximize)
    (out / "trials.md").parent.mkdir(parents=True, exist_ok=True)
    (out / "trials.md").write_text(f"# Search of {config}\n\n{table}\n")
    best_config = load_config(config, list(best["overrides"])).model_dump(mode="json")
    (out / "best.yaml").write_text(yaml.safe_dump(best_config, sort_keys=False))
    typer.echo(table)
    monitor = best["monitor"]
    typer.echo(
        f"best: trial {best['index']}, valid {monitor['task']} {monitor['metric']} "
        f"{best['value']:.4f}\nrerun: {best['command']}\nwrote {out}/trials.json, trials.md, "
        "best.yaml"
    )


__all__ = ["tune_config"]
