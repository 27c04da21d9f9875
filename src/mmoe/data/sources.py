"""Turn the ``data:`` section of a run config into train / validation / test tables."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from mmoe.config import CensusSource, DataConfig, MovieLensSource, SyntheticSource, TableSource
from mmoe.data.census import load_census, read_census_file
from mmoe.data.movielens import load_movielens
from mmoe.data.synthetic import make_synthetic
from mmoe.data.tables import read_table
from mmoe.errors import DataError


@dataclass
class Splits:
    """The tables of one run. ``test`` is ``None`` when the source has no test split."""

    train: pa.Table
    valid: pa.Table
    test: pa.Table | None

    def get(self, name: str) -> pa.Table:
        table = {"train": self.train, "valid": self.valid, "test": self.test}.get(name)
        if table is None:
            raise DataError(f"the configured data has no {name!r} split")
        return table


def load_splits(source: DataConfig) -> Splits:
    """Read or generate the tables the ``data:`` section describes."""
    if isinstance(source, TableSource):
        train = read_table(source.train, source.na_values)
        if source.valid is not None:
            valid = read_table(source.valid, source.na_values)
        else:
            train, valid = holdout(train, source.valid_fraction, source.split_seed)
        test = read_table(source.test, source.na_values) if source.test is not None else None
        return Splits(train, valid, test)
    if isinstance(source, CensusSource):
        if source.data_dir is None:
            raise DataError(
                "census data needs a directory: pass --set data.data_dir=DIR "
                "(the folder with census-income.data[.gz] and census-income.test[.gz])"
            )
        return Splits(*load_census(source.data_dir, source.split_seed, source.download))
    if isinstance(source, SyntheticSource):
        sizes = (source.num_train, source.num_valid, source.num_test)
        tables = make_synthetic(
            source.correlation,
            sizes,
            seed=source.seed,
            num_features=source.num_features,
            scale=source.scale,
            num_sines=source.num_sines,
            alpha_std=source.alpha_std,
            noise_std=source.noise_std,
        )
        return Splits(*tables)
    if isinstance(source, MovieLensSource):
        if source.data_dir is None:
            raise DataError(
                "MovieLens data needs a directory: pass --set data.data_dir=DIR "
                "(the ml-100k folder with u.data, u.user and u.item)"
            )
        return Splits(*load_movielens(source.data_dir, source.valid_from, source.test_from))
    raise AssertionError(f"unhandled data source {source!r}")


def holdout(table: pa.Table, fraction: float, seed: int) -> tuple[pa.Table, pa.Table]:
    """Split ``table`` at random into ``(1 - fraction, fraction)`` parts with a fixed seed."""
    n = table.num_rows
    n_out = round(n * fraction)
    if n_out < 1 or n_out >= n:
        raise DataError(f"cannot hold out {fraction:.0%} of {n} rows for validation; add rows")
    order = np.random.default_rng(seed).permutation(n)
    return table.take(np.sort(order[n_out:])), table.take(np.sort(order[:n_out]))


def read_any(path: str | Path, source: DataConfig | None = None) -> pa.Table:
    """Read a table given on the command line: a UCI census file by its name, else CSV/Parquet.

    ``source`` (the run's ``data:`` section) supplies the CSV ``na_values`` of table runs.
    """
    if Path(path).name.startswith(("census-income.data", "census-income.test")):
        return read_census_file(path)
    na_values = source.na_values if isinstance(source, TableSource) else None
    return read_table(path, na_values)
