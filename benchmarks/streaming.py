"""Streaming against in-memory training: rows/s and peak RSS on the same model and data.

Generates a synthetic ranking log (``mmoe data synth-ranking``) of ``--rows`` rows, then, for
each size in ``--sizes`` (rows of that log) and each round, trains one epoch with the in-memory
source (the whole split read, encoded and held as tensors) and with the streaming source
(``parquet_dataset``), interleaved (memory, stream, memory, stream, …) so that machine drift
hits both. Every run is a fresh process: its peak RSS (``ru_maxrss``) is its own. Prints
training rows/s (training steps only; evaluation excluded), the stream/memory ratio, peak RSS
and the RSS slope per million rows of each source.

    python benchmarks/streaming.py --sizes 250000 500000 1000000 --rounds 1
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FEATURES = {
    "categorical": [
        {"name": "user_id", "embedding_dim": 8, "min_frequency": 2},
        {"name": "item_id", "embedding_dim": 8, "min_frequency": 2},
        "item_category",
        "device",
        "country",
        "hour",
    ],
    "numeric": ["position", {"name": "item_price", "transform": "log1p"}, "user_age"],
    "embedding_dim": 4,
}
TASKS = [
    {"name": "click", "column": "click", "type": "binary"},
    {"name": "conversion", "column": "conversion", "type": "binary"},
]
MODEL = {"name": "mmoe", "num_experts": 8, "expert_hidden": [64], "tower_hidden": [16]}


def run_once(kind: str, data: str, threads: int, batch_size: int, queue: mp.Queue) -> None:
    """One epoch in this (fresh) process; puts rows/s and peak RSS on ``queue``."""
    import torch

    import mmoe

    torch.set_num_threads(threads)
    if kind == "memory":
        source = {"source": "table", "train": f"{data}/train.parquet",
                  "valid": f"{data}/valid.parquet"}  # fmt: skip
    else:
        source = {"source": "parquet_dataset", "train": f"{data}/train.parquet",
                  "valid": f"{data}/valid.parquet", "shuffle_buffer_rows": 1_000_000}  # fmt: skip
    config = {
        "data": source,
        "features": FEATURES,
        "tasks": TASKS,
        "model": MODEL,
        "training": {
            "epochs": 1,
            "batch_size": batch_size,
            "learning_rate": 0.002,
            "num_threads": threads,
            "patience": None,
        },
    }
    start = time.perf_counter()
    run = mmoe.train(config, progress=False)
    rows = run.metrics["steps"] * batch_size
    queue.put(
        {
            "rows_per_s": rows / run.metrics["seconds"]["train_steps"],
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "seconds": time.perf_counter() - start,
            "valid_auc_click": run.metrics["valid"]["click"]["auc"],
        }
    )


def prepare(folder: Path, rows: int, sizes: list[int]) -> dict[int, Path]:
    """The log, and for each size a train.parquet (its first rows) and a valid.parquet."""
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    from mmoe.data.ranking import write_ranking_log

    log = folder / "log"
    write_ranking_log(log, rows=rows, days=1, progress=True)
    table = ds.dataset(log, partitioning="hive").to_table()
    valid = table.slice(table.num_rows - 100_000)
    out = {}
    for size in sizes:
        d = folder / f"n{size}"
        d.mkdir()
        pq.write_table(table.slice(0, size), d / "train.parquet", row_group_size=131_072)
        pq.write_table(valid, d / "valid.parquet")
        out[size] = d
    del table
    assert isinstance(valid, pa.Table)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[250_000, 500_000, 1_000_000])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/streaming.json"))
    args = parser.parse_args()
    ctx = mp.get_context("spawn")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        data = prepare(Path(tmp), max(args.sizes) + 100_000, args.sizes)
        for round_ in range(args.rounds):
            for size in args.sizes:
                for kind in ("memory", "stream"):
                    queue = ctx.Queue()
                    proc = ctx.Process(target=run_once, args=(
                        kind, str(data[size]), args.threads, args.batch_size, queue))  # fmt: skip
                    proc.start()
                    result = queue.get()
                    proc.join()
                    result.update(kind=kind, rows=size, round=round_)
                    results.append(result)
                    print(json.dumps(result), file=sys.stderr, flush=True)
    print(f"{'source':8} {'rows':>9} {'rows/s':>9} {'peak RSS MiB':>13} {'valid AUC':>9}")
    for r in results:
        print(f"{r['kind']:8} {r['rows']:>9,} {r['rows_per_s']:>9,.0f} {r['peak_rss_mib']:>13,.0f}"
              f" {r['valid_auc_click']:>9.4f}")  # fmt: skip
    for size in args.sizes:
        mem = np.median(
            [r["rows_per_s"] for r in results if r["rows"] == size and r["kind"] == "memory"]
        )
        st = np.median(
            [r["rows_per_s"] for r in results if r["rows"] == size and r["kind"] == "stream"]
        )
        print(f"{size:,} rows: stream / memory rows/s = {st / mem:.2f}")
    for kind in ("memory", "stream"):
        xs = [r["rows"] / 1e6 for r in results if r["kind"] == kind]
        ys = [r["peak_rss_mib"] for r in results if r["kind"] == kind]
        if len(set(xs)) > 1:
            slope, intercept = np.polyfit(xs, ys, 1)
            print(f"{kind}: peak RSS ≈ {intercept:,.0f} MiB + {slope:,.0f} MiB per million rows")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
