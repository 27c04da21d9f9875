"""The ``mmoe`` command: train, evaluate and predict from the shell.

Errors caused by input (a config typo, a missing column, a corrupt run directory) print one line
``error: …`` on stderr and exit with status 1; they never show a traceback.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer

from mmoe.config_cli import config_app
from mmoe.config_cli import init as init_config
from mmoe.data_cli import data_app
from mmoe.deploy_cli import export_command, serve_command
from mmoe.errors import DataError, MmoeError, MmoeWarning
from mmoe.io import check_output_path, dumps
from mmoe.paper_cli import paper_app
from mmoe.show_cli import show_run
from mmoe.tune_cli import tune_config

app = typer.Typer(
    help="Multi-task learning for recommendation and ranking (Shared-Bottom, OMoE, MMoE).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help is printed as written: [brackets] are text, not markup
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        from mmoe import __version__

        typer.echo(f"mmoe {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=_print_version, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Multi-task learning for recommendation and ranking (Shared-Bottom, OMoE, MMoE).

    Start with: mmoe init TABLE --task COLUMN -o run.yaml, then mmoe train run.yaml.
    Every config key: mmoe config reference (also docs/config.md).
    """


app.command("init")(init_config)
app.add_typer(data_app, name="data")
app.command("export")(export_command)
app.command("serve")(serve_command)

SPLITS = ("train", "valid", "test")


@app.command()
def train(
    config: Annotated[
        Path,
        typer.Argument(
            metavar="CONFIG", help="YAML run config (mmoe init writes one; see configs/)."
        ),
    ],
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            "-s",
            metavar="KEY=VALUE",
            help="Override a config key, e.g. model.num_experts=4.",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", metavar="DIR", help="Run directory to create (default: runs/NAME-TIME)."
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing run directory.")] = False,
    resume: Annotated[
        bool,
        typer.Option(help="Continue from the last checkpoint in OUT.partial (same config)."),
    ] = False,
    nproc: Annotated[
        int | None,
        typer.Option(
            "--nproc",
            min=1,
            help="Train with N processes (DistributedDataParallel through torchrun).",
        ),
    ] = None,
    seeds: Annotated[
        int | None,
        typer.Option(
            "--seeds",
            min=1,
            help="Train a seed ensemble of K members (seeds seed..seed+K-1) saved as one model "
            "predicting the mean of their logits (training.ensemble_size=K).",
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print metrics as JSON on stdout (progress: stderr).")
    ] = False,
) -> None:
    """Train a model from CONFIG; save a run directory, print metrics.

    Progress goes to stderr; stdout holds only the result.
    Checkpoints go to OUT.partial/checkpoint at every evaluation.
    Ctrl-C or SIGTERM writes one and prints the --resume command.
    """
    from mmoe.training.distributed import launched_by_torchrun
    from mmoe.training.run import default_run_dir, resolve_config
    from mmoe.training.run import train as run_training

    set_ = [*(set_ or []), *([f"training.ensemble_size={seeds}"] if seeds else [])]
    cfg = resolve_config(config, set_)
    out = out or default_run_dir(cfg)
    check_output_path(out, directory=True)
    if nproc is not None and nproc > 1 and not launched_by_torchrun():
        _relaunch_with_torchrun(nproc, out)
        return
    run = run_training(
        config, out, set_ or [], progress=not quiet, overwrite=overwrite, resume=resume
    )
    if not run.metrics:  # a rank other than 0 of a data-parallel run: rank 0 reports
        return
    splits = {k: run.metrics[k] for k in ("valid", "test") if k in run.metrics}
    if as_json:
        typer.echo(dumps({"run_dir": str(out), **run.metrics}))
        return
    typer.echo(format_metrics(splits))
    seconds = run.metrics["seconds"]
    typer.echo(
        f"saved {out}  ({run.metrics['steps']} steps; {seconds['total']:.1f}s total, "
        f"{seconds['train']:.1f}s training)"
    )


@app.command()
def evaluate(
    run_dir: Annotated[
        Path, typer.Argument(metavar="RUN", help="Run directory written by `mmoe train`.")
    ],
    data: Annotated[
        str,
        typer.Argument(
            metavar="DATA",
            help="Labelled CSV/Parquet file, or train|valid|test for the run's data.",
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print metrics as JSON.")] = False,
) -> None:
    """Per-task metrics of a trained model on labelled DATA."""
    from mmoe.predictor import load

    trained = load(run_dir)
    if data in SPLITS and not Path(data).exists():
        from mmoe.data.sources import load_splits
        from mmoe.training.inputs import evaluate_stream_split

        if trained.config.data.source == "parquet_dataset":
            metrics = evaluate_stream_split(trained, data)
        else:
            metrics = trained.evaluate(load_splits(trained.config.data).get(data))
    else:
        metrics = trained.evaluate(_existing(data))
    if as_json:
        typer.echo(dumps(metrics))
    else:
        typer.echo(format_metrics({Path(data).name: metrics}))


@app.command()
def predict(
    run_dir: Annotated[
        Path, typer.Argument(metavar="RUN", help="Run directory written by `mmoe train`.")
    ],
    input_: Annotated[str, typer.Argument(metavar="INPUT", help="CSV or Parquet file to score.")],
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            help="Where to write predictions (.csv/.parquet); - for CSV on stdout.",
        ),
    ],
    keep: Annotated[
        list[str] | None,
        typer.Option(
            "--keep",
            "-k",
            metavar="COLUMN",
            help="Copy this input column to the output (repeatable).",
        ),
    ] = None,
) -> None:
    """Score a table: one column per task.

    Binary tasks give the probability of the positive class; regression tasks the value.
    Categories never seen in training are scored as unknown, with a warning when they are
    more than 1% of a column.
    """
    import pyarrow as pa

    from mmoe.data.sources import read_any
    from mmoe.data.tables import column, write_table
    from mmoe.predictor import load

    if output != "-":
        check_output_path(output)
        if not output.lower().endswith((".csv", ".parquet", ".pq")):
            raise DataError(f"{output}: output must end in .csv or .parquet (or be - for stdout)")
    trained = load(run_dir)
    table = read_any(_existing(input_), trained.config.data)
    keep = keep or []
    clash = sorted(set(keep) & set(trained.task_names))
    if clash:
        raise DataError(f"--keep {clash[0]!r} clashes with the task of that name in the output")
    kept = {name: column(table, name, "--keep") for name in keep}
    predictions = trained.predict(table)
    out = pa.table({**kept, **{c: predictions[c].to_numpy() for c in predictions.columns}})
    if output == "-":
        from pyarrow import csv

        sys.stdout.flush()
        csv.write_csv(out, sys.stdout.buffer)
        return
    write_table(out, output)
    typer.echo(f"wrote {out.num_rows} rows × {len(trained.task_names)} tasks to {output}")


@app.command()
def gates(
    run_dir: Annotated[Path, typer.Argument(help="Run directory written by `mmoe train`.")],
    data: Annotated[
        str,
        typer.Argument(help="CSV/Parquet file, or train|valid|test for the run's own data."),
    ],
    by: Annotated[
        list[str] | None,
        typer.Option(
            "--by", "-b", help="Also split the gate weights by this column's values (repeatable)."
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Report directory (default: RUN_DIR/gates)."),
    ] = None,
    top: Annotated[
        int, typer.Option(min=1, help="Most frequent values kept per --by column; rest grouped.")
    ] = 8,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Report what the gates learned: per-task expert weights, entropy, task relatedness.

    Writes gates.json, PNG figures and a self-contained report.html (open it in a browser).
    Prints each gate's heaviest experts and any dead expert or polarised gate.
    """
    from mmoe.gates.reporting import report

    result = report(run_dir, data, by or [], out, top=top, progress=not quiet)
    typer.echo(format_gate_summary(result.data))
    figures = len(result.files) - 2
    typer.echo(f"wrote {result.out / 'report.html'} (and gates.json, {figures} figures)")


def format_gate_summary(data: dict[str, Any]) -> str:
    """One line per gate (its three heaviest experts, entropy), then the warnings."""
    lines = []
    for gate in data["gates"]:
        heaviest = sorted(gate["mean_weight"].items(), key=lambda kv: -kv[1])[:3]
        experts = ", ".join(f"{name} {weight:.2f}" for name, weight in heaviest)
        lines.append(
            f"{gate['label']}: {experts}  (normalised entropy {gate['normalized_entropy']:.2f})"
        )
    lines += [f"warning: {w}" for w in data["warnings"]]
    return "\n".join(lines)


app.command("show")(show_run)
app.command("tune")(tune_config)
app.add_typer(config_app, name="config")
app.add_typer(paper_app, name="paper")


def _relaunch_with_torchrun(nproc: int, out: Path) -> None:
    """Run this same ``mmoe train`` command as ``nproc`` processes under torch's launcher.

    The launcher runs in this process (what ``torchrun --standalone`` does), so that a signal
    or a failed rank ends in one line and an exit status rather than the launcher's traceback.
    """
    import logging

    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    kept: list[str] = []
    skip = False
    for arg in sys.argv[1:]:  # drop --nproc N / --nproc=N; pin --out so every rank agrees on it
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            kept.append(arg)
    if not any(a in ("--out", "-o") or a.startswith("--out=") for a in kept):
        kept += ["--out", str(out)]
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    for name in list(logging.root.manager.loggerDict):  # the launcher's own chatter
        if name.startswith("torch.distributed"):
            logging.getLogger(name).setLevel(logging.ERROR)
    launcher = ["--standalone", f"--nproc_per_node={nproc}", "-m", "mmoe", *kept]
    try:
        run(parse_args(launcher))
    except SignalException as exc:  # the ranks wrote a checkpoint and said how to resume
        sys.exit(128 + int(exc.sigval))
    except ChildFailedError as exc:
        rank, failure = min(exc.failures.items())
        if rank != 0 or failure.exitcode < 0:  # rank 0 prints its own error; others do not
            typer.echo(
                f"error: training process {rank} of {nproc} failed (exit code "
                f"{failure.exitcode}); rerun without --nproc to see its error",
                err=True,
            )
        sys.exit(failure.exitcode if failure.exitcode > 0 else 1)


def format_metrics(by_split: dict[str, dict[str, dict[str, float]]]) -> str:
    """A fixed-width table: one row per split and task, one column per metric."""
    names: list[str] = []
    for tasks in by_split.values():
        for row in tasks.values():
            names += [m for m in row if m != "rows" and m not in names]
    header = ["split", "task", "rows", *names]
    rows = [header]
    for split, tasks in by_split.items():
        for task, row in tasks.items():
            cells = [_cell(row.get(m)) for m in names]
            rows.append([split, task, str(int(row["rows"])), *cells])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [
        "  ".join(
            c.ljust(w) if i < 2 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, int):  # counts (gauc_groups)
        return str(value)
    return "-" if value is None or value != value else f"{value:.4f}"  # NaN: "-" too


def _existing(path: str) -> str:
    if not Path(path).exists():
        raise DataError(f"data file not found: {path}")
    return path


def _show_warning(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    """mmoe's own warnings as one ``warning: …`` line on stderr; others as Python shows them."""
    if issubclass(category, MmoeWarning):
        typer.echo(f"warning: {' '.join(str(message).split())}", err=True)
    else:
        _python_showwarning(message, category, *args, **kwargs)


_python_showwarning = warnings.showwarning


def main() -> None:
    """Entry point of the ``mmoe`` console script."""
    warnings.showwarning = _show_warning
    try:
        app()
    except MmoeError as exc:
        # One line, or a summary line with one indented line per listed problem.
        lines = [" ".join(line.split()) for line in str(exc).splitlines() if line.strip()]
        message = "\n  ".join(lines)
        if os.environ.get("RANK", "0") == "0":  # under torchrun every rank fails alike: one line
            typer.echo(f"error: {message}", err=True)
        sys.exit(getattr(exc, "exit_code", 1))
    except KeyboardInterrupt:
        typer.echo("error: interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
