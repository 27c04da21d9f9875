"""``mmoe config …`` and ``mmoe init``: see, check and start run configs without reading code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

config_app = typer.Typer(
    help="Config reference, JSON Schema, shipped configs; show or validate a config.",
    no_args_is_help=True,
    rich_markup_mode=None,  # help is printed as written: [brackets] are text, not markup
)

SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set", "-s", metavar="KEY=VALUE", help="Override a config key, e.g. model.num_experts=4."
    ),
]
OutOption = Annotated[
    str,
    typer.Option(
        "--output", "-o", metavar="FILE", help="File to write; - (the default) is stdout."
    ),
]


@config_app.command()
def reference(output: OutOption = "-") -> None:
    """Every config key: type, default, meaning (Markdown, as docs/config.md)."""
    from mmoe.config.reference import config_reference

    write_text_output(config_reference(), output)


@config_app.command()
def schema(output: OutOption = "-") -> None:
    """The JSON Schema of a run config (for editor completion)."""
    from mmoe.config.reference import config_schema

    write_text_output(json.dumps(config_schema(), indent=1, ensure_ascii=False) + "\n", output)


@config_app.command()
def show(
    config: Annotated[
        str, typer.Argument(metavar="CONFIG", help="YAML run config, or a shipped config's name.")
    ],
    set_: SetOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of YAML.")] = False,
) -> None:
    """Print CONFIG as mmoe reads it, every default filled in."""
    import yaml

    from mmoe.config import load_config

    raw = load_config(config, set_ or []).model_dump(mode="json")
    if as_json:
        typer.echo(json.dumps(raw, indent=1, ensure_ascii=False))
    else:
        typer.echo(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True).rstrip())


@config_app.command()
def validate(
    config: Annotated[
        str, typer.Argument(metavar="CONFIG", help="YAML run config, or a shipped config's name.")
    ],
    set_: SetOption = None,
) -> None:
    """Check CONFIG, and that its table files hold its columns.

    Keys, types and choices are checked; for source: table, each file is read and every
    feature and label column looked up (all missing ones are named at once).
    """
    from mmoe.config import TableSource, load_config
    from mmoe.data.checks import check_table_columns

    cfg = load_config(config, set_ or [])
    if isinstance(cfg.data, TableSource):
        for split in ("train", "valid", "test"):
            path = getattr(cfg.data, split)
            if path is not None:
                check_table_columns(path, cfg, cfg.data.na_values)
    tasks = ", ".join(f"{t.name} ({t.type})" for t in cfg.tasks)
    typer.echo(
        f"ok: {config}: {len(cfg.features.column_names)} features, tasks {tasks}, "
        f"model {cfg.model.name}"
    )


@config_app.command("list")
def list_shipped() -> None:
    """The run configs shipped with mmoe (usable by name: mmoe train census/group1-mmoe)."""
    from mmoe.config.shipped import shipped_config_names, shipped_configs_dir

    typer.echo(f"# in {shipped_configs_dir()}")
    for name in shipped_config_names():
        typer.echo(name)


def init(
    table: Annotated[
        Path, typer.Argument(metavar="TABLE", help="CSV, TSV or Parquet file with a header row.")
    ],
    task: Annotated[
        list[str],
        typer.Option(
            "--task",
            "-t",
            metavar="TASK",
            help=(
                "A label column, repeatable: COLUMN, NAME=COLUMN, NAME=COLUMN>=X (binary, 1 where "
                "the value is at least X), NAME=COLUMN:regression or NAME=COLUMN:binary."
            ),
        ),
    ],
    drop: Annotated[
        list[str] | None,
        typer.Option(
            "--drop",
            "-d",
            metavar="COLUMN",
            help="A column that must not be a feature (repeatable).",
        ),
    ] = None,
    output: OutOption = "-",
) -> None:
    """Write a starter run config for a table of your own.

    Every column but the labels becomes a feature, typed categorical or numeric.

    Columns of text or true/false, integer columns named like identifiers (..._id) and integer
    columns with at most 20 distinct values become categorical; other numbers become numeric.
    A text column whose every value is distinct is left out (it cannot generalise). Read the
    comments in the result, then run: mmoe train CONFIG.
    """
    from mmoe.starter import starter_config

    write_text_output(starter_config(table, task, drop or []), output)


def write_text_output(text: str, output: str) -> None:
    """``text`` to stdout (``-``) or atomically to the file ``output`` (one-line errors)."""
    if output == "-":
        typer.echo(text, nl=not text.endswith("\n"))
        return
    from mmoe.io import atomic_path, check_output_path

    path = check_output_path(output)
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    typer.echo(f"wrote {path}", err=True)


__all__ = ["config_app", "init", "write_text_output"]
