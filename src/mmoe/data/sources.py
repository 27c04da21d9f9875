"""Turn the ``data:`` section of a run config into train / validation / test tables."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from mmoe.config import (
    CensusSource,
    DataConfig,
    MemorySource,
    MovieLensSource,
    ParquetDatasetSource,
    SyntheticSource,
    TableSource,
)
from mmoe.data.census import load_census, read_census_file
from mmoe.data.movielens import load_movielens
from mmoe.data.splits import RowSplitter, holdout, split_table
from mmoe.data.synthetic import make_synthetic
from mmoe.data.tables import as_arrow, read_table
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
        return _table_splits(source)
    if isinstance(source, ParquetDatasetSource):
        raise DataError(
            "data.source parquet_dataset is read as a stream, not as whole tables; "
            "use mmoe.data.streaming.open_stream"
        )
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
    if isinstance(source, MemorySource):
        raise DataError(
            "this run was trained on tables in memory: pass them again, e.g. "
            "model.evaluate(df), or mmoe.train(config, data={'train': df, ...})"
        )
    raise AssertionError(f"unhandled data source {source!r}")


def _table_splits(source: TableSource) -> Splits:
    """Train / valid / test tables: files where given, else the configured split of train."""
    train = read_table(source.train, source.na_values)
    valid = read_table(source.valid, source.na_values) if source.valid is not None else None
    test = read_table(source.test, source.na_values) if source.test is not None else None
    if source.split == "random":
        fraction = source.valid_fraction if valid is None else 0.0
        test_fraction = source.test_fraction if test is None else 0.0
        if fraction or test_fraction:
            train, held_valid, held_test = _random_holdout(
                train, fraction, test_fraction, source.split_seed
            )
            valid = held_valid if valid is None else valid
            test = held_test if test is None else test
        assert valid is not None
        return Splits(train, valid, test)
    splitter = splitter_of(source)
    assert splitter is not None
    parts = split_table(train, splitter)
    for name in ("train", "valid"):
        if parts[name].num_rows == 0:
            raise DataError(f"the {source.split} split leaves no {name} rows; check its settings")
    wants_test = (
        source.test_fraction > 0 if source.split == "hash" else source.test_from is not None
    )
    return Splits(parts["train"], parts["valid"], parts["test"] if wants_test else None)


def _random_holdout(
    table: pa.Table, fraction: float, test_fraction: float, seed: int
) -> tuple[pa.Table, pa.Table | None, pa.Table | None]:
    if fraction == 0.0:  # a valid file is given: hold out the test share alone
        train, test, _ = holdout(table, test_fraction, seed)
        return train, None, test
    return holdout(table, fraction, seed, test_fraction)


def splitter_of(source: TableSource | ParquetDatasetSource) -> RowSplitter | None:
    """The row splitter a ``data:`` section describes (``None``: random split of a table)."""
    if source.split == "random" and isinstance(source, TableSource):
        return None
    test_fraction = source.test_fraction if source.test is None else 0.0
    return RowSplitter(
        source.split,
        source.split_column,
        valid_fraction=source.valid_fraction if source.valid is None else 0.0,
        test_fraction=test_fraction,
        valid_from=source.valid_from,
        test_from=source.test_from,
        seed=source.split_seed,
    )


def memory_splits(data: Mapping[str, Any], source: DataConfig) -> Splits:
    """Splits from tables in memory: ``{"train": df, "valid": df, "test": df}``.

    pandas DataFrames and pyarrow Tables are accepted; ``valid`` and ``test`` are optional
    (without ``valid``, ``valid_fraction`` of train is held out with ``split_seed``).

    Example:
        >>> import pandas as pd
        >>> from mmoe.config import MemorySource
        >>> df = pd.DataFrame({"x": range(10)})
        >>> memory_splits({"train": df}, MemorySource(valid_fraction=0.2)).valid.num_rows
        2
    """
    unknown = sorted(set(data) - {"train", "valid", "test"})
    if unknown or "train" not in data:
        raise DataError(
            f"data= takes the keys train (required), valid and test; got {sorted(data)}"
        )
    train = as_arrow(data["train"])
    if data.get("valid") is not None:
        valid = as_arrow(data["valid"])
    else:
        fraction = getattr(source, "valid_fraction", 0.1)
        train, valid, _ = holdout(train, fraction, getattr(source, "split_seed", 0))
    test = as_arrow(data["test"]) if data.get("test") is not None else None
    for name, table in (("train", train), ("valid", valid), ("test", test)):
        if table is not None and table.num_rows == 0:
            raise DataError(f"data[{name!r}] has no rows")
    return Splits(train, valid, test)


def read_any(path: str | Path, source: DataConfig | None = None) -> pa.Table:
    """Read a table given on the command line: a UCI census file by its name, else CSV/Parquet.

    ``source`` (the run's ``data:`` section) supplies the CSV ``na_values`` of table runs.
    """
    if Path(path).name.startswith(("census-income.data", "census-income.test")):
        return read_census_file(path)
    na_values = source.na_values if isinstance(source, TableSource) else None
    return read_table(path, na_values)
