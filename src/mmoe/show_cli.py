"""``mmoe show RUN``: a trained run's summary on stdout and its training curves as a PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def show_run(
    run_dir: Annotated[
        Path, typer.Argument(metavar="RUN", help="Run directory written by `mmoe train`.")
    ],
    plot: Annotated[
        str | None,
        typer.Option(help="Where to write the curves (default: RUN/curves.png); - for none."),
    ] = None,
) -> None:
    """Summarise a run and draw its training curves.

    Prints the model, tasks, metrics, environment and data fingerprint of RUN.

    The curves (train loss and every validation metric per task, against the training step)
    need matplotlib (pip install 'mmoe[plot]'); without it only the summary is printed.
    """
    import importlib.util

    from mmoe.errors import ArtifactError
    from mmoe.io import read_json
    from mmoe.run_report import CURVES_FILE, curves_figure, read_history, summary

    if not (run_dir / "config.json").is_file():
        raise ArtifactError(f"{run_dir} is not a run directory (no config.json); see mmoe train")
    typer.echo(summary(run_dir))
    if plot == "-":
        return
    history = read_history(run_dir)
    if not history:
        typer.echo("no metrics.jsonl: nothing to plot", err=True)
        return
    if importlib.util.find_spec("matplotlib") is None:
        typer.echo("curves need matplotlib: pip install 'mmoe[plot]'", err=True)
        return
    path = Path(plot) if plot else run_dir / CURVES_FILE
    metrics = read_json(run_dir / "metrics.json") if (run_dir / "metrics.json").is_file() else {}
    best = (metrics.get("best") or {}).get("step")
    curves_figure(history, path, best)
    typer.echo(f"curves     {path}")


__all__ = ["show_run"]
