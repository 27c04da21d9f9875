"""Census read as Parquet through the streaming source against the in-memory census path.

Writes the census train / validation / test tables (the same split as ``source: census``) as
Parquet files, then trains one shipped census config with ``source: census`` (in memory) and
with ``source: parquet_dataset`` (streamed), for each seed, interleaved, and prints the test
AUCs of both. The two sources draw different batch orders from the same seed, so their AUCs
agree to within seed noise, not bit for bit.

    python benchmarks/census_parquet.py --data-dir ../shared/data/census-income \
        --config configs/census/group1-omoe.yaml --seeds 0 1
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np


def main() -> None:
    import pyarrow.parquet as pq

    import mmoe
    from mmoe.config import load_config
    from mmoe.data.census import load_census

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--config", type=Path, default=Path("configs/census/group1-omoe.yaml"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/census_parquet.json"))
    args = parser.parse_args()
    base = load_config(args.config, [f"data.data_dir={args.data_dir}"])
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tables = load_census(args.data_dir, base.data.split_seed)
        for name, table in zip(("train", "valid", "test"), tables, strict=True):
            pq.write_table(table, f"{tmp}/{name}.parquet", row_group_size=65_536)
        files = {k: f"{tmp}/{k}.parquet" for k in ("train", "valid", "test")}
        stream = {"source": "parquet_dataset", **files}
        for seed in args.seeds:
            for kind in ("census", "parquet_dataset"):
                raw = base.model_dump(mode="json")
                raw["training"]["seed"] = seed
                if args.threads:
                    raw["training"]["num_threads"] = args.threads
                if kind == "parquet_dataset":
                    raw["data"] = stream
                run = mmoe.train(raw, progress=False)
                aucs = {f"test_auc_{t}": m["auc"] for t, m in run.metrics["test"].items()}
                row = {"source": kind, "seed": seed, "steps": run.metrics["steps"], **aucs}
                results.append(row)
                print(json.dumps(row), flush=True)
    tasks = [k for k in results[0] if k.startswith("test_auc_")]
    for kind in ("census", "parquet_dataset"):
        rows = [r for r in results if r["source"] == kind]
        cells = "  ".join(
            f"{t[9:]} {np.mean([r[t] for r in rows]):.4f} ± {np.std([r[t] for r in rows]):.4f}"
            for t in tasks
        )
        print(f"{kind:16} {len(rows)} seeds  {cells}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
