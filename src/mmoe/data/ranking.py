"""A large synthetic ranking log, written as hive-partitioned Parquet in bounded memory.

``mmoe data synth-ranking OUT --rows N`` writes ``OUT/day=D/part-NNNNN.parquet``: one row per
impression, with

=================  ==========  =================================================================
column             type        what
=================  ==========  =================================================================
``user_id``        int64       Zipf-distributed over ``num_users`` ids (a few users, many rows)
``item_id``        int64       Zipf-distributed over ``num_items`` ids
``item_category``  int64       one of ``num_categories``, fixed per item
``device``         string      ios / android / web / tv (dictionary-encoded)
``country``        string      Zipf over 60 codes (dictionary-encoded)
``hour``           int64       hour of day of the impression
``position``       int64       1-20, the slot the item was shown in
``item_price``     float64     log-normal, fixed per item
``user_age``       float64     fixed per user, missing for 5% of users
``item_age_days``  float64     days since the item was published
``click``          int64       0/1
``conversion``     float64     0/1 on clicked rows, missing (null) otherwise
``watch_time``     float64     seconds watched (every row; heavy-tailed, larger after a click)
``timestamp``      int64       Unix seconds, increasing with the day
``weight``         float64     1 for clicks; 1/negative_keep for negatives (they are sampled)
``day``            partition   0 … days-1 (hive partition ``day=D``)
=================  ==========  =================================================================

The labels depend on hidden per-user and per-item vectors, the device, the position and the
price, so ids carry signal that the embeddings can learn. Memory is the per-id tables (about 40
bytes per user and per item) plus one chunk of rows; the output is written chunk by chunk into
``OUT.partial`` and renamed to ``OUT`` when complete. The same arguments and seed give the same
files.

Example:
    >>> import tempfile, pyarrow.dataset as ds
    >>> out = Path(tempfile.mkdtemp()) / "log"
    >>> info = write_ranking_log(out, rows=5_000, days=2, chunk_rows=2_000, num_users=900,
    ...                          num_items=300, progress=False)
    >>> ds.dataset(out, partitioning="hive").count_rows(), info["files"]
    (5000, 4)
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from mmoe.errors import DataError
from mmoe.io import atomic_path, write_json

#: 2026-01-05 00:00:00 UTC, the first day of the log.
START_TIME = 1_767_571_200
DEVICES = ("ios", "android", "web", "tv")
COUNTRIES = tuple(f"c{i:02d}" for i in range(60))
LATENT = 4  # width of the hidden user and item vectors


@dataclass(frozen=True)
class RankingLogSpec:
    """The knobs of the generator (``mmoe data synth-ranking --help`` lists them)."""

    rows: int
    num_users: int = 1_000_000
    num_items: int = 200_000
    num_categories: int = 1_000
    zipf_exponent: float = 1.05
    days: int = 14
    negative_keep: float = 0.5
    chunk_rows: int = 1_000_000
    row_group_rows: int = 131_072
    seed: int = 0


def write_ranking_log(
    out: str | Path, rows: int, *, overwrite: bool = False, progress: bool = True, **options: Any
) -> dict[str, Any]:
    """Generate the log into ``out`` (a folder); return a summary (rows, files, bytes).

    Args:
        out: the folder to create; it must not exist unless ``overwrite``.
        rows: rows to write (after negative sampling).
        overwrite: replace an existing ``out`` once the new log is complete.
        progress: show a progress bar on stderr.
        **options: the other fields of :class:`RankingLogSpec`.
    """
    from tqdm.auto import tqdm

    spec = RankingLogSpec(rows=rows, **options)
    _check(spec)
    out = Path(out)
    if out.exists() and not overwrite:
        raise DataError(f"{out} already exists; pass another folder or --overwrite")
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    world = _World(spec)
    files = written = 0
    with tqdm(total=rows, unit="row", unit_scale=True, disable=not progress) as bar:
        for day, part, table in world.chunks():
            path = staging / f"day={day}" / f"part-{part:05d}.parquet"
            _write_parquet(table, path, spec.row_group_rows)
            files += 1
            written += table.num_rows
            bar.update(table.num_rows)
    size = sum(p.stat().st_size for p in staging.rglob("*.parquet"))
    info = {"rows": written, "files": files, "bytes": size, "spec": asdict(spec)}
    write_json(staging / "_generator.json", info)  # '_' files are skipped by dataset readers
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)
    return info


def _check(spec: RankingLogSpec) -> None:
    if spec.rows < 1:
        raise DataError("--rows must be at least 1")
    if spec.days < 1 or spec.days > spec.rows:
        raise DataError(f"--days must be between 1 and --rows ({spec.rows})")
    if min(spec.num_users, spec.num_items, spec.num_categories) < 1:
        raise DataError("--users, --items and --categories must be at least 1")
    if not 0.0 < spec.negative_keep <= 1.0:
        raise DataError("--negative-keep must be in (0, 1]")
    if spec.zipf_exponent <= 0.0:
        raise DataError("--zipf must be positive")
    if spec.chunk_rows < 1 or spec.row_group_rows < 1:
        raise DataError("--chunk-rows and --row-group-rows must be at least 1")


def _write_parquet(table: pa.Table, path: Path, row_group_rows: int) -> None:
    import pyarrow.parquet as pq

    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, row_group_size=row_group_rows, compression="snappy")


class _Zipf:
    """Draws ids 0..n-1 with P(rank r) ∝ 1/(r+1)^s; ranks are mapped to ids by a permutation."""

    def __init__(self, n: int, exponent: float, rng: np.random.Generator) -> None:
        weights = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** exponent
        self.cdf = np.cumsum(weights)
        self.cdf /= self.cdf[-1]
        self.ids = rng.permutation(n)

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        ranks = np.searchsorted(self.cdf, rng.random(size), side="right")
        return self.ids[np.minimum(ranks, len(self.ids) - 1)]


class _World:
    """The hidden per-user and per-item quantities, and the chunks of rows drawn from them."""

    def __init__(self, spec: RankingLogSpec) -> None:
        self.spec = spec
        rng = np.random.default_rng([spec.seed, 0])
        self.users = _Zipf(spec.num_users, spec.zipf_exponent, rng)
        self.items = _Zipf(spec.num_items, spec.zipf_exponent, rng)
        self.countries = _Zipf(len(COUNTRIES), 1.2, rng)
        self.user_vec = rng.normal(0.0, 0.6, (spec.num_users, LATENT)).astype(np.float32)
        self.user_bias = rng.normal(0.0, 0.5, spec.num_users).astype(np.float32)
        age = rng.normal(38.0, 12.0, spec.num_users).clip(16, 90).round()
        self.user_age = np.where(rng.random(spec.num_users) < 0.05, np.nan, age)
        self.item_vec = rng.normal(0.0, 0.6, (spec.num_items, LATENT)).astype(np.float32)
        self.item_bias = rng.normal(0.0, 0.5, spec.num_items).astype(np.float32)
        self.item_buy = rng.normal(0.0, 0.7, spec.num_items).astype(np.float32)
        self.item_category = rng.integers(0, spec.num_categories, spec.num_items)
        self.item_price = np.round(np.exp(rng.normal(3.0, 1.0, spec.num_items)), 2)
        self.item_published = rng.uniform(-365.0, spec.days, spec.num_items)
        self.device_effect = np.array([0.2, 0.0, -0.3, -0.6])

    def chunks(self) -> Iterator[tuple[int, int, pa.Table]]:
        """``(day, part, table)`` for every chunk, in time order."""
        spec = self.spec
        per_day = [spec.rows // spec.days + (d < spec.rows % spec.days) for d in range(spec.days)]
        part = 0
        for day, day_rows in enumerate(per_day):
            chunks = max(1, math.ceil(day_rows / spec.chunk_rows))
            for c in range(chunks):
                n = day_rows // chunks + (c < day_rows % chunks)
                rng = np.random.default_rng([spec.seed, 1, day, c])
                start = START_TIME + 86_400 * day + round(86_400 * c / chunks)
                yield day, part, self._rows(rng, n, day, start, 86_400 // chunks)
                part += 1

    def _rows(self, rng: np.random.Generator, n: int, day: int, start: int, span: int) -> pa.Table:
        """``n`` impressions kept after negative sampling (drawn in rounds until there are n)."""
        keep = self.spec.negative_keep
        parts: list[dict[str, np.ndarray]] = []
        have = 0
        while have < n:
            draw = self._impressions(rng, math.ceil((n - have) / (keep * 0.9)) + 16, day)
            kept = (draw["click"] == 1) | (rng.random(len(draw["click"])) < keep)
            draw = {k: v[kept] for k, v in draw.items()}
            parts.append(draw)
            have += len(draw["click"])
        cols = {k: np.concatenate([p[k] for p in parts])[:n] for k in parts[0]}
        seconds = np.sort(rng.integers(0, span, n))
        cols["timestamp"] = start + seconds
        cols["hour"] = (cols["timestamp"] - START_TIME) % 86_400 // 3_600
        cols["weight"] = np.where(cols["click"] == 1, 1.0, 1.0 / keep)
        conversion = pa.array(cols.pop("conversion"), mask=cols["click"] == 0)
        device = pa.DictionaryArray.from_arrays(
            pa.array(cols.pop("device"), pa.int8()), pa.array(DEVICES)
        )
        country = pa.DictionaryArray.from_arrays(
            pa.array(cols.pop("country"), pa.int16()), pa.array(COUNTRIES)
        )
        user_age = pa.array(cols.pop("user_age"), from_pandas=True)  # NaN → null
        return pa.table(
            {
                "user_id": cols["user_id"],
                "item_id": cols["item_id"],
                "item_category": cols["item_category"],
                "device": device,
                "country": country,
                "hour": cols["hour"],
                "position": cols["position"],
                "item_price": cols["item_price"],
                "user_age": user_age,
                "item_age_days": cols["item_age_days"],
                "click": cols["click"],
                "conversion": conversion,
                "watch_time": cols["watch_time"],
                "timestamp": cols["timestamp"],
                "weight": cols["weight"],
            }
        )

    def _impressions(self, rng: np.random.Generator, m: int, day: int) -> dict[str, np.ndarray]:
        user = self.users.sample(rng, m)
        item = self.items.sample(rng, m)
        device = rng.choice(len(DEVICES), m, p=[0.35, 0.4, 0.2, 0.05])
        country = self.countries.sample(rng, m)
        position = rng.integers(1, 21, m)
        price = self.item_price[item]
        affinity = np.einsum("bl,bl->b", self.user_vec[user], self.item_vec[item])
        click_logit = (
            -1.6
            + self.user_bias[user]
            + self.item_bias[item]
            + 1.5 * affinity
            + self.device_effect[device]
            - 0.45 * np.log(position)
        )
        click = (rng.random(m) < _sigmoid(click_logit)).astype(np.int64)
        buy_logit = -1.2 + self.item_buy[item] + 0.8 * affinity - 0.35 * (np.log(price) - 3.0)
        conversion = (rng.random(m) < _sigmoid(buy_logit)).astype(np.float64)
        watch = np.exp(rng.normal(1.0 + 1.8 * click + 0.4 * self.item_bias[item], 0.6))
        return {
            "user_id": user.astype(np.int64),
            "item_id": item.astype(np.int64),
            "item_category": self.item_category[item],
            "device": device,
            "country": country,
            "position": position,
            "item_price": price,
            "user_age": self.user_age[user],
            "item_age_days": np.round(day + 0.5 - self.item_published[item], 2).clip(0),
            "click": click,
            "conversion": conversion,
            "watch_time": np.round(watch, 1),
        }


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


__all__ = ["RankingLogSpec", "write_ranking_log"]
