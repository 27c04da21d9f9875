"""``mmoe data …``: generate and inspect data sets (see ``mmoe.data.ranking``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

data_app = typer.Typer(help="Generate data sets for training at scale.", no_args_is_help=True)


@data_app.command("synth-ranking")
def synth_ranking(
    out: Annotated[Path, typer.Argument(help="Folder to create (hive-partitioned Parquet).")],
    rows: Annotated[int, typer.Option(min=1, help="Rows to write.")] = 1_000_000,
    users: Annotated[int, typer.Option(min=1, help="Distinct user ids.")] = 1_000_000,
    items: Annotated[int, typer.Option(min=1, help="Distinct item ids.")] = 200_000,
    categories: Annotated[int, typer.Option(min=1, help="Distinct item categories.")] = 1_000,
    zipf: Annotated[float, typer.Option(help="Zipf exponent of user and item ids.")] = 1.05,
    days: Annotated[int, typer.Option(min=1, help="Days (partitions day=0..days-1).")] = 14,
    negative_keep: Annotated[
        float, typer.Option(help="Share of non-clicked rows kept (their weight is 1/share).")
    ] = 0.5,
    chunk_rows: Annotated[
        int, typer.Option(min=1, help="Rows generated and written at a time (bounds memory).")
    ] = 1_000_000,
    row_group_rows: Annotated[int, typer.Option(min=1, help="Rows per Parquet row group.")] = (
        131_072
    ),
    seed: Annotated[int, typer.Option(help="Seed of every draw.")] = 0,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing OUT.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Write a synthetic ranking log: Zipf user/item ids, numeric columns, click, conversion
    (on clicks only), watch time, timestamp and sampling weight; one file per chunk."""
    from mmoe.data.ranking import write_ranking_log

    info = write_ranking_log(
        out,
        rows,
        overwrite=overwrite,
        progress=not quiet,
        num_users=users,
        num_items=items,
        num_categories=categories,
        zipf_exponent=zipf,
        days=days,
        negative_keep=negative_keep,
        chunk_rows=chunk_rows,
        row_group_rows=row_group_rows,
        seed=seed,
    )
    gib = info["bytes"] / 2**30
    typer.echo(f"wrote {info['rows']:,} rows in {info['files']} files ({gib:.2f} GiB) to {out}")
