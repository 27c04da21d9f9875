"""Training from Parquet datasets larger than memory: ``data.source: parquet_dataset``.

A split's files (a file, a folder with hive partitions, or a glob) are read with
``pyarrow.dataset`` one row group at a time, projected onto the columns the config uses. Row
groups are the unit of work: :class:`ParquetRows` lists them once (from the files' metadata),
and the number of rows each contributes to each split (after a hash or time split) is counted
once, reading only the split column.

:class:`StreamingSource` is the trainer's batch source (``mmoe.data.loaders.BatchSource``):

- every epoch permutes the row groups with a generator seeded by ``(seed, epoch)``; under
  ``torchrun`` each rank takes a disjoint share of them (greedily balanced by rows);
- a rank's rows, in that order, are cut into windows of ``shuffle_buffer_rows`` rows; each
  window is encoded, permuted with its own seeded generator and served in batches. Memory is
  one window of encoded rows plus one row group being read;
- batch ``k`` of an epoch is a pure function of ``(seed, epoch, rank layout, k)``: restarting at
  step ``k`` reads only from the window holding it (known from the row counts), so exact resume
  holds without replaying the epoch.

Under data parallelism every rank serves the same number of batches of
``batch_size // world_size`` rows; the few rows beyond that (less than one row group per rank)
are left out of that epoch, and a different few of the next.

Example:
    >>> import tempfile
    >>> from mmoe.data.ranking import write_ranking_log
    >>> from mmoe.specs import FeaturesConfig, TaskSpec
    >>> folder = Path(tempfile.mkdtemp()) / "log"
    >>> _ = write_ranking_log(folder, rows=3_000, days=3, row_group_rows=500, num_users=900,
    ...                       num_items=300, progress=False)
    >>> click = TaskSpec(name="click", column="click", type="binary")
    >>> rows = ParquetRows(str(folder), ["user_id", "item_id", "click"])
    >>> rows.num_rows, len(rows.units)
    (3000, 6)
    >>> from mmoe.data.preprocessor import Preprocessor
    >>> pre = Preprocessor(FeaturesConfig(categorical=["user_id", "item_id"]), [click])
    >>> pre = pre.fit_batches(rows.tables())
    >>> source = StreamingSource(StreamPart(rows, "train"), pre, batch_size=256, seed=0,
    ...                          shuffle_buffer_rows=1000)
    >>> source.steps_per_epoch, sum(len(p.batch) for p in source.epoch(1))
    (12, 3000)
"""

from __future__ import annotations

import glob as globbing
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from mmoe.data.batch import Batch
from mmoe.data.loaders import TrainBatch, _epoch_seed
from mmoe.data.preprocessor import Preprocessor
from mmoe.data.splits import PART_IDS, RowSplitter
from mmoe.errors import DataError


@dataclass(frozen=True)
class Unit:
    """One row group of one file: the unit of reading, shuffling and sharding."""

    file: int  # index of the file in the sorted file list
    row_group: int
    first_row: int  # position of the row group's first row in its file
    rows: int


class ParquetRows:
    """The row groups of a Parquet file, folder or glob, read with a column projection.

    Args:
        spec: a ``.parquet`` file, a folder (hive partitions ``key=value`` are columns) or a
            glob such as ``logs/day=*/part-*.parquet``.
        columns: the columns to read (partition columns included).
    """

    def __init__(self, spec: str, columns: list[str]) -> None:
        import pyarrow.dataset as ds

        self.spec = spec
        self.dataset = _open_dataset(spec, ds)
        missing = [c for c in columns if c not in self.dataset.schema.names]
        if missing:
            raise DataError(
                f"{spec}: column(s) {', '.join(repr(c) for c in missing)} not in the data "
                f"(it has {', '.join(self.dataset.schema.names[:12])}…)"
            )
        self.columns = list(dict.fromkeys(columns))
        self.fragments = sorted(self.dataset.get_fragments(), key=lambda f: f.path)
        self.units: list[Unit] = []
        self._row_groups: list[list[Any]] = []
        for i, fragment in enumerate(self.fragments):
            groups = fragment.split_by_row_group()
            self._row_groups.append(groups)
            first = 0
            for j, group in enumerate(groups):
                rows = group.row_groups[0].num_rows
                self.units.append(Unit(i, j, first, rows))
                first += rows
        self.num_rows = sum(u.rows for u in self.units)
        if self.num_rows == 0:
            raise DataError(f"{spec}: no rows")

    def read(self, unit: Unit, columns: list[str] | None = None) -> pa.Table:
        """The rows of one row group, projected onto ``columns`` (default: the configured)."""
        group = self._row_groups[unit.file][unit.row_group]
        wanted = self.columns if columns is None else columns
        return group.to_table(columns=wanted, schema=self.dataset.schema)

    def tables(self, columns: list[str] | None = None) -> Iterator[pa.Table]:
        """Every row group in file order."""
        for unit in self.units:
            yield self.read(unit, columns)


def parquet_dataset_files(spec: str | Path) -> list[Path]:
    """The Parquet files a ``parquet_dataset`` path names (a file, a folder or a glob), as the
    stream reads them."""
    import pyarrow.dataset as ds

    return [Path(f) for f in _open_dataset(str(spec), ds).files]


def _open_dataset(spec: str, ds: Any) -> Any:
    path = Path(spec).expanduser()
    try:
        if path.is_dir() or path.is_file():
            return ds.dataset(str(path), format="parquet", partitioning="hive")
        files = sorted(globbing.glob(str(path), recursive=True))
        if not files:
            raise DataError(f"no Parquet data at {spec} (not a file, folder or matching glob)")
        base = str(Path(*Path(str(path)).parts[: _literal_depth(str(path))]))
        return ds.dataset(files, format="parquet", partitioning="hive", partition_base_dir=base)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{spec}: cannot be read as Parquet: {str(exc).splitlines()[0]}") from exc


def _literal_depth(pattern: str) -> int:
    """How many leading path parts of a glob contain no wildcard."""
    parts = Path(pattern).parts
    for i, part in enumerate(parts):
        if any(c in part for c in "*?["):
            return i
    return len(parts) - 1


class StreamPart:
    """The rows of one split (train, valid or test) within a :class:`ParquetRows`.

    Args:
        rows: the files.
        part: ``train``, ``valid`` or ``test``.
        splitter: assigns rows to splits; ``None``: every row belongs to ``part``.
    """

    def __init__(self, rows: ParquetRows, part: str, splitter: RowSplitter | None = None):
        self.rows, self.part, self.splitter = rows, part, splitter
        self._counts: np.ndarray | None = None

    @property
    def counts(self) -> np.ndarray:
        """Rows of this split in each unit (counted once, reading the split column only)."""
        if self._counts is None:
            if self.splitter is None:
                self._counts = np.array([u.rows for u in self.rows.units], dtype=np.int64)
            else:
                self._counts = np.array(
                    [int(self.keep(u, self._split_columns(u)).sum()) for u in self.rows.units],
                    dtype=np.int64,
                )
        return self._counts

    @property
    def num_rows(self) -> int:
        return int(self.counts.sum())

    def keep(self, unit: Unit, table: pa.Table) -> np.ndarray:
        """Bool mask of the rows of ``table`` (read from ``unit``) in this split."""
        if self.splitter is None:
            return np.ones(table.num_rows, dtype=bool)
        parts = self.splitter.assign(table, file_key=unit.file, first_row=unit.first_row)
        return parts == PART_IDS[self.part]

    def read(self, unit: Unit) -> pa.Table:
        table = self.rows.read(unit)
        if self.splitter is None:
            return table
        return table.filter(pa.array(self.keep(unit, table)))

    def tables(self) -> Iterator[pa.Table]:
        """This split's rows, row group by row group, in file order."""
        for unit, count in zip(self.rows.units, self.counts, strict=True):
            if count:
                yield self.read(unit)

    def _split_columns(self, unit: Unit) -> pa.Table:
        assert self.splitter is not None
        columns = self.splitter.columns
        if columns:
            return self.rows.read(unit, columns)
        return pa.table({"_": pa.nulls(unit.rows)})  # random split: positions only


class EvalStream:
    """A labelled split encoded row group by row group, for evaluation over all its rows.

    Example: ``mmoe.training.evaluation.evaluate(model, EvalStream(part, pre), tasks)``.
    """

    def __init__(self, part: StreamPart, preprocessor: Preprocessor) -> None:
        self.part, self.preprocessor = part, preprocessor

    def __len__(self) -> int:
        return self.part.num_rows

    def batches(self) -> Iterator[Batch]:
        for table in self.part.tables():
            yield self.preprocessor.transform(table, labels=True)


class StreamingSource:
    """Shuffled training batches streamed from a :class:`StreamPart` (see the module doc).

    Args:
        part: the training rows.
        preprocessor: the fitted preprocessor (encodes each row group as it is read).
        batch_size: rows per global batch (all ranks together).
        seed: seed of the row-group order and of the in-window permutations.
        rank, world_size: this process's place in a data-parallel run.
        shuffle_buffer_rows: rows per shuffling window (per rank).
        device: where the batches go (the model's device).
    """

    def __init__(
        self,
        part: StreamPart,
        preprocessor: Preprocessor,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        shuffle_buffer_rows: int = 1_000_000,
        device: torch.device | str = "cpu",
    ) -> None:
        assert 0 <= rank < world_size
        self.part, self.preprocessor = part, preprocessor
        self.batch_size, self.seed = batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.window = shuffle_buffer_rows
        self.device = torch.device(device)
        self.local_batch = batch_size // world_size
        if self.local_batch < 1:
            raise DataError(f"training.batch_size {batch_size} is smaller than the process count")
        total = part.num_rows
        if total == 0:
            raise DataError(f"{part.rows.spec}: no {part.part} rows")
        if world_size == 1:
            self.steps_per_epoch: int | None = math.ceil(total / batch_size)
        else:
            # Greedy balancing leaves every rank at least total/world - one unit of rows.
            floor_rows = total // world_size - int(part.counts.max())
            self.steps_per_epoch = floor_rows // self.local_batch
            if self.steps_per_epoch < 1:
                raise DataError(
                    f"too few {part.part} rows ({total}) for {world_size} processes reading "
                    "whole row groups; write smaller row groups or use fewer processes"
                )
        self.has_missing_labels = True  # unknown without reading every label: keep the mask

    # ---- the order of an epoch -----------------------------------------------------------------

    def units(self, epoch: int) -> list[int]:
        """Indices of this rank's units in epoch ``epoch``, in reading order."""
        counts = self.part.counts
        generator = np.random.default_rng(_epoch_seed(self.seed, epoch))
        order = [int(i) for i in generator.permutation(len(counts)) if counts[i] > 0]
        if self.world_size == 1:
            return order
        load = [0] * self.world_size
        mine = []
        for i in order:
            r = min(range(self.world_size), key=lambda k: (load[k], k))
            load[r] += int(counts[i])
            if r == self.rank:
                mine.append(i)
        return mine

    def epoch(self, epoch: int, start_step: int = 0) -> Iterator[TrainBatch]:
        assert self.steps_per_epoch is not None
        units = self.units(epoch)
        counts = self.part.counts[units] if units else np.zeros(0, np.int64)
        ends = np.cumsum(counts)
        rows = int(ends[-1]) if len(ends) else 0
        if self.world_size > 1:
            rows = self.steps_per_epoch * self.local_batch
        size = self.local_batch
        position = start_step * size  # first row (in shuffled order) still to serve
        pending: Batch | None = None
        for w in range(position // self.window, math.ceil(rows / self.window)):
            lo, hi = w * self.window, min((w + 1) * self.window, rows)
            window = self._window(units, ends, lo, hi)
            generator = torch.Generator().manual_seed(_epoch_seed(self.seed, epoch) ^ w)
            shuffled = window.take(torch.randperm(len(window), generator=generator))
            if position > lo:
                shuffled = shuffled.slice(position - lo, len(shuffled))
            if pending is not None:
                shuffled = _concat([pending, shuffled])
            full = len(shuffled) // size * size
            for start in range(0, full, size):
                yield self._part(shuffled.slice(start, start + size))
            pending = shuffled.slice(full, len(shuffled)) if full < len(shuffled) else None
            position = hi
        if pending is not None and len(pending):
            yield self._part(pending)

    def _window(self, units: list[int], ends: np.ndarray, lo: int, hi: int) -> Batch:
        """Encoded rows ``lo:hi`` of this rank's epoch stream (before shuffling)."""
        pieces = []
        first = int(np.searchsorted(ends, lo, side="right"))
        for k in range(first, len(units)):
            start = 0 if k == 0 else int(ends[k - 1])
            if start >= hi:
                break
            unit = self.part.rows.units[units[k]]
            batch = self.preprocessor.transform(self.part.read(unit), labels=True)
            pieces.append(batch.slice(max(lo - start, 0), min(hi, int(ends[k])) - start))
        return _concat(pieces)

    def _part(self, batch: Batch) -> TrainBatch:
        batch = batch.to(self.device)
        if self.world_size == 1:
            return TrainBatch(batch, len(batch))
        assert batch.label_mask is not None
        # Each rank's loss is the mean over its own rows; scaled so the ranks' shares add up to
        # the mean of their means (DDP averages the gradients).
        present = batch.label_mask.to(torch.float32)
        if batch.weights is not None:
            present = present * batch.weights.unsqueeze(1)
        counts = present.sum(0) * self.world_size
        return TrainBatch(batch, len(batch) * self.world_size, counts)

    def state_dict(self) -> dict[str, int]:
        return {
            "seed": self.seed,
            "batch_size": self.batch_size,
            "world_size": self.world_size,
            "shuffle_buffer_rows": self.window,
            "rows": self.part.num_rows,
        }


def _concat(batches: list[Batch]) -> Batch:
    if len(batches) == 1:
        return batches[0]
    fields = zip(*(b._tensors() for b in batches), strict=True)
    return Batch(*(None if t[0] is None else torch.cat(t) for t in fields))


# ---- a run's streamed data ----------------------------------------------------------------------


@dataclass
class StreamedData:
    """The three splits of a ``parquet_dataset`` run (``test`` is ``None`` when there is none)."""

    train: StreamPart
    valid: StreamPart
    test: StreamPart | None


def open_stream(source: Any, columns: list[str]) -> StreamedData:
    """The splits a ``ParquetDatasetSource`` describes, reading ``columns`` (+ split column).

    Args:
        source: the ``data:`` section (``mmoe.config.ParquetDatasetSource``).
        columns: features, labels and weight column.
    """
    from mmoe.data.sources import splitter_of

    splitter = splitter_of(source)
    random = splitter is not None and splitter.kind == "random"
    if random and splitter.valid_fraction == 0 and splitter.test_fraction == 0:
        splitter = None  # valid and test are files: every train row trains
    needed = columns + (splitter.columns if splitter is not None else [])
    train_rows = ParquetRows(source.train, needed)

    def split_of(name: str) -> StreamPart | None:
        path = getattr(source, name)
        if path is not None:
            return StreamPart(ParquetRows(path, columns), name)
        if splitter is None:
            return None
        wanted = splitter.valid_fraction if name == "valid" else splitter.test_fraction
        if splitter.kind == "time":
            wanted = 1.0 if name == "valid" else float(source.test_from is not None)
        return StreamPart(train_rows, name, splitter) if wanted > 0 else None

    train = StreamPart(train_rows, "train", splitter)
    valid = split_of("valid")
    if valid is None:  # pragma: no cover - the config requires a valid file or a split
        raise DataError("parquet_dataset needs a valid file or a split of train")
    return StreamedData(train, valid, split_of("test"))


__all__ = [
    "EvalStream",
    "ParquetRows",
    "StreamPart",
    "StreamedData",
    "StreamingSource",
    "Unit",
    "open_stream",
    "parquet_dataset_files",
]
